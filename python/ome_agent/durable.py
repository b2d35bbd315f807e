"""Crash-safe writes of the agent's own small files (manifests, the standalone state file).

A reader sees the old file or the new one, never half of either, and after a power
loss the rename itself survives: data fsync'd, renamed over the old name, then the
directory fsync'd. Model bytes are written by the Rust engine, not here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(
    path: Path, data: Any, *, indent: int | None = None, sort_keys: bool = False
) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f, indent=indent, sort_keys=sort_keys)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
