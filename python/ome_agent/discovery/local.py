"""``discover(model_dir)``: metadata of a model directory on this node (discovery, layer 3).

The node agent calls it after a download; ``ome-agent inspect PATH`` too. Only the
config files and the safetensors headers are read, never the weights. Bad model
content never raises: each problem becomes a line in ``Discovery.errors`` naming the
file, and the rest is still reported.
"""

from __future__ import annotations

import os
from pathlib import Path

from ome_agent.discovery.configfile import (
    MAX_CONFIG_BYTES,
    ConfigError,
    check_schema_path,
    locate,
    parent_of,
    read_config_file,
)
from ome_agent.discovery.describe import build, quantization_of, weight_dirs
from ome_agent.discovery.result import Discovery
from ome_agent.discovery.weights import WeightCount, merge, read_local, select_shards
from ome_agent.errors import BadInput

_OTHER_WEIGHTS = (".bin", ".gguf", ".pt", ".pth", ".onnx")


def discover(model_dir: Path | str, schema_path: str | None = None) -> Discovery:
    """Describe the model in ``model_dir``; ``schema_path`` is ``storage.schemaPath``."""
    root = Path(model_dir)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a directory"
        raise BadInput(f"model directory {str(root)!r} {what}: give the model's folder")
    errors: list[str] = []
    names = _list(root, depth=2)

    config_path: str | None
    try:
        config_path = _config_path(root, names, schema_path)
    except ConfigError as e:
        errors.append(str(e))
        config_path = None
    config = None
    if config_path is None:
        if not errors:
            errors.append("config.json: not found in the model directory (nor a subfolder)")
    else:
        try:
            config = read_config_file(root / config_path, config_path)
        except ConfigError as e:
            errors.append(str(e))

    quant = quantization_of(config)
    total: WeightCount | None = None
    other_bytes = 0
    for directory in weight_dirs(config_path, config, names):
        here = _list(root / directory, depth=1) if directory else [n for n in names if "/" not in n]
        shards, shard_errors = select_shards(here, lambda n, d=directory: _read_small(root / d / n))
        errors.extend(f"{directory}/{e}" if directory else e for e in shard_errors)
        found = read_local(root / directory, shards, quant)
        errors.extend(f"{directory}/{e}" if directory else e for e in found.errors)
        found.errors = shard_errors + found.errors
        total = merge(total, found)
        if not shards:
            other_bytes += sum(
                _size(root / directory / n) for n in here if n.endswith(_OTHER_WEIGHTS)
            )

    tokenizer = None
    if config_path is not None:
        tok_name = _join(parent_of(config_path), "tokenizer_config.json")
        if tok_name in names:
            try:
                tokenizer = read_config_file(root / tok_name, tok_name)
            except ConfigError:
                tokenizer = None  # only evidence of a chat template; the tokenizer is not ours
    return build(
        config=config,
        config_path=config_path,
        dir_files=frozenset(names),
        weights=total,
        other_weight_bytes=other_bytes,
        tokenizer_config=tokenizer,
        errors=errors,
    )


def _config_path(root: Path, names: list[str], schema_path: str | None) -> str | None:
    if schema_path is None:
        if (root / "config.json").is_dir():
            raise ConfigError("config.json is a directory, not a file: remove it or fix schemaPath")
        return locate(names)
    relative = check_schema_path(schema_path)
    target = root / relative
    if target.is_dir():
        target = target / "config.json"
    rel = target.relative_to(root).as_posix()
    if not target.exists():
        raise ConfigError(f"schemaPath {schema_path!r}: {rel} does not exist in the model")
    return rel


def _list(directory: Path, depth: int) -> list[str]:
    """File names under ``directory`` down to ``depth`` levels, "/"-separated."""
    out: list[str] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for entry in entries:
        try:
            if entry.is_file():
                out.append(entry.name)
            elif entry.is_dir() and depth > 1 and not entry.name.startswith("."):
                out.extend(f"{entry.name}/{n}" for n in _list(Path(entry.path), depth - 1))
        except OSError:
            continue
    return out


def _join(directory: str, name: str) -> str:
    return f"{directory}/{name}" if directory else name


def _read_small(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_CONFIG_BYTES + 1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
