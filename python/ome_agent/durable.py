"""Crash-safe writes of the agent's own small files (manifests, the standalone state file).

A reader sees the old file or the new one, never half of either, and after a power
loss the rename itself survives: data fsync'd, renamed over the old name, then the
directory fsync'd. Each write has its own temporary name (the file's name, the
process id and a random part), so two writers of one file, in two processes or two
threads, never write into one temporary file: the last rename wins whole. Model bytes
are written by the Rust engine, not here.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any


def fsync_dir(path: Path) -> None:
    """Make a rename or creation inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


NAME_MAX = 255  # bytes of one path component on Linux filesystems


def temporary_name(path: Path) -> Path:
    """A sibling of ``path`` no other writer uses: ``.<name>.<pid>.<random>.tmp``, the
    name cut so the whole stays within :data:`NAME_MAX` bytes."""
    suffix = f".{os.getpid()}.{secrets.token_hex(6)}.tmp"
    room = NAME_MAX - len(suffix.encode()) - 1
    name = os.fsencode(path.name)[:room].decode(errors="ignore")
    return path.with_name(f".{name}{suffix}")


def write_json(
    path: Path, data: Any, *, indent: int | None = None, sort_keys: bool = False
) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably."""
    # json.dumps, not json.dump: only the one-shot call uses the C encoder
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys))


def write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text``, atomically and durably."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        with tmp.open("x") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
