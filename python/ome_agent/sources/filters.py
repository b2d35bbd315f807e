"""``--include`` / ``--exclude`` glob filtering of a listed repo (sources → transfer).

Globs are :mod:`fnmatch` patterns matched against the whole "/"-separated path in
the repo (``*`` also crosses "/", like huggingface_hub's ``allow_patterns``). A
pattern ending in "/" means everything under that folder.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from ome_agent.errors import BadInput
from ome_agent.sources.model import RemoteFile


def check_globs(patterns: Sequence[str], flag: str) -> list[str]:
    """Normalise patterns; reject ones that can never match anything."""
    out = []
    for p in patterns:
        if not p.strip():
            raise BadInput(f"{flag} got an empty pattern: give a glob such as '*.safetensors'")
        if p.startswith("/") or "\\" in p or "\0" in p:
            raise BadInput(
                f"{flag} {p!r} can never match: repo paths are relative and use '/', "
                "e.g. 'subdir/*.json'"
            )
        if p.count("[") != p.count("]"):
            raise BadInput(f"{flag} {p!r} has an unbalanced '[': close it or escape it as '[[]'")
        out.append(p + "*" if p.endswith("/") else p)
    return out


def select(
    files: Sequence[RemoteFile], include: Sequence[str], exclude: Sequence[str]
) -> list[RemoteFile]:
    """Files matching any include pattern (all when none) and no exclude pattern."""
    inc = check_globs(include, "--include")
    exc = check_globs(exclude, "--exclude")
    return [
        f
        for f in files
        if (not inc or any(fnmatch.fnmatchcase(f.path, p) for p in inc))
        and not any(fnmatch.fnmatchcase(f.path, p) for p in exc)
    ]
