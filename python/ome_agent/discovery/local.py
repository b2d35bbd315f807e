"""``discover(model_dir)``: metadata of a model directory on this node (discovery, layer 3).

The node agent calls it after a download; ``ome-agent inspect PATH`` too. Only the
config files and the safetensors headers are read, never the weights. Bad model
content never raises: each problem becomes a line in ``Discovery.errors`` naming the
file, and the rest is still reported.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ome_agent.discovery.configfile import (
    MAX_CONFIG_BYTES,
    ConfigError,
    check_schema_path,
    locate,
    read_config_file,
)
from ome_agent.discovery.quantization import Quantization
from ome_agent.discovery.reader import Weights, describe_model, prefixed
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
    return describe_model(_Directory(root), schema_path)


class _Directory:
    """A model directory on this node, for ``reader.describe_model``."""

    place = "the model directory"

    def __init__(self, root: Path) -> None:
        self._root = root
        self.names = frozenset(_list(root, depth=2))

    def config_path(self, schema_path: str | None) -> str | None:
        return _config_path(self._root, self.names, schema_path)

    def read_config(self, name: str) -> dict[str, Any]:
        return read_config_file(self._root / name, name)

    def tokenizer(self, name: str) -> dict[str, Any] | None:
        if name not in self.names:
            return None
        try:
            return read_config_file(self._root / name, name)
        except ConfigError:
            return None

    def weights(self, directories: list[str], quant: Quantization) -> Weights:
        root = self._root
        total: WeightCount | None = None
        other_bytes = 0
        errors: list[str] = []
        for directory in directories:
            here = (
                _list(root / directory, depth=1)
                if directory
                else [n for n in self.names if "/" not in n]
            )
            shards, shard_errors = select_shards(
                here, lambda n, d=directory: _read_small(root / d / n)
            )
            found = read_local(root / directory, shards, quant)
            errors += prefixed(directory, shard_errors) + prefixed(directory, found.errors)
            found.errors = shard_errors + found.errors
            total = merge(total, found)
            if not shards:
                other_bytes += sum(
                    _size(root / directory / n) for n in here if n.endswith(_OTHER_WEIGHTS)
                )
        return total, other_bytes, errors


def _config_path(root: Path, names: frozenset[str], schema_path: str | None) -> str | None:
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


def _read_small(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(MAX_CONFIG_BYTES + 1)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
