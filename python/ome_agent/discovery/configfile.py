"""Finding and reading a model's config.json without trusting it (discovery, layer 3).

Where the config lives: ``storage.schemaPath`` when the user gave one (a file, or a
directory holding config.json; confined to the model directory); otherwise where
OME looks: ``config.json`` at the root, then diffusers' ``model_index.json``, then
a ``config.json`` one level down (preferring common names such as ``model/``).

Reading is strict JSON: UTF-8 only, no ``NaN``/``Infinity`` (Python's json accepts
them, other parsers do not), an object at the top, a size cap. Every problem comes
back as a message naming the file and the fix, never as an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

MAX_CONFIG_BYTES = 16 * 1024 * 1024
CONFIG_NAME = "config.json"
DIFFUSERS_INDEX = "model_index.json"
# subfolders where repos keep the transformers config (checked in this order)
PREFERRED_SUBDIRS = ("model", "hf", "transformers", "llm", "language_model", "text_encoder")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and the problem."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (write a number or null)")


def parse_config_bytes(data: bytes, name: str) -> dict[str, Any]:
    """Decode one JSON object; raise ConfigError with a message naming ``name``."""
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{name}: larger than the {MAX_CONFIG_BYTES}-byte limit of a config file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{name}: not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}): save it as UTF-8"
        ) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise ConfigError(
            f"{name}: malformed JSON at line {e.lineno} column {e.colno}: {e.msg}"
        ) from None
    except ValueError as e:
        raise ConfigError(f"{name}: {e}") from None
    except RecursionError:
        raise ConfigError(f"{name}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a JSON object at the top, got {type(value).__name__}")
    return value


def read_config_file(path: Path, name: str) -> dict[str, Any]:
    """Read and parse a local config file; ConfigError for anything unusable."""
    try:
        if path.is_dir():
            raise ConfigError(f"{name} is a directory, not a file: remove it or fix schemaPath")
        if path.exists() and not path.is_file():
            # a FIFO or device would block or never end: only regular files are read
            raise ConfigError(f"{name} is not a regular file: replace it with the JSON file")
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except ConfigError:
        raise
    except FileNotFoundError:
        raise ConfigError(f"{name}: not found") from None
    except OSError as e:
        raise ConfigError(f"{name}: cannot read it ({e.strerror or type(e).__name__})") from None
    return parse_config_bytes(data, name)


def check_schema_path(schema_path: str) -> PurePosixPath:
    """The user's schemaPath as a relative path inside the model; ConfigError otherwise."""
    relative = PurePosixPath(schema_path.strip().replace("\\", "/"))
    if not schema_path.strip() or relative.is_absolute() or ".." in relative.parts:
        raise ConfigError(
            f"schemaPath {schema_path!r} must be a relative path inside the model, "
            "e.g. config.json or model/config.json"
        )
    return relative


def locate(names: Iterable[str], schema_path: str | None = None) -> str | None:
    """Pick the config among the model's file names ("/"-separated, relative).

    With a schemaPath: that file, or ``<dir>/config.json`` when it names a directory.
    """
    available = set(names)
    if schema_path is not None:
        relative = check_schema_path(schema_path).as_posix().strip("/")
        if relative in available:
            return relative
        inside = f"{relative}/{CONFIG_NAME}" if relative not in ("", ".") else CONFIG_NAME
        return inside if inside in available else relative
    if CONFIG_NAME in available:
        return CONFIG_NAME
    if DIFFUSERS_INDEX in available:
        return DIFFUSERS_INDEX
    nested = sorted(n for n in available if n.count("/") == 1 and n.endswith("/" + CONFIG_NAME))
    for sub in PREFERRED_SUBDIRS:
        if f"{sub}/{CONFIG_NAME}" in nested:
            return f"{sub}/{CONFIG_NAME}"
    return nested[0] if len(nested) == 1 else None


def parent_of(name: str) -> str:
    """Directory part of a "/"-separated name ("" at the root)."""
    return name.rpartition("/")[0]
