"""Which models' directories overlap a path, without a scan (reconcile core, layer 4).

The reconcile core asks, for every model it downloads or removes, which other models
use the same directory or one nested in it. Scanning every model for that made a
reconcile of N models cost N² path resolutions; this index answers from the path's
own ancestors and from the models registered below it, so the cost follows the depth
of the path, not the number of models. Pure: no I/O (paths come resolved).
"""

from __future__ import annotations

from collections.abc import Hashable
from pathlib import Path
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class PathIndex(Generic[K]):
    """Keys by directory: ``overlapping(p)`` gives the keys whose directory equals,
    contains or lies inside ``p``."""

    def __init__(self) -> None:
        self._path: dict[K, Path] = {}
        self._at: dict[Path, dict[K, None]] = {}  # a directory -> keys with exactly it
        self._below: dict[Path, dict[K, None]] = {}  # a directory -> keys strictly inside

    def set(self, key: K, path: Path | None) -> None:
        """Record ``key``'s directory (None: it has none that is allowed)."""
        self.discard(key)
        if path is None:
            return
        self._path[key] = path
        self._at.setdefault(path, {})[key] = None
        for parent in path.parents:
            self._below.setdefault(parent, {})[key] = None

    def discard(self, key: K) -> None:
        path = self._path.pop(key, None)
        if path is None:
            return
        _drop(self._at, path, key)
        for parent in path.parents:
            _drop(self._below, parent, key)

    def get(self, key: K) -> Path | None:
        return self._path.get(key)

    def overlapping(self, path: Path) -> list[K]:
        found: dict[K, None] = {}
        for directory in (path, *path.parents):
            found.update(self._at.get(directory, {}))
        found.update(self._below.get(path, {}))
        return list(found)


def _drop(index: dict[Path, dict[K, None]], path: Path, key: K) -> None:
    keys = index.get(path)
    if keys is None:
        return
    keys.pop(key, None)
    if not keys:
        del index[path]


__all__ = ["PathIndex"]
