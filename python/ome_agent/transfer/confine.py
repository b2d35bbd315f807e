"""Path confinement: a remote file name may only ever land inside DEST.

Names come from servers (an HF tree listing, a URL); a hostile listing must not
write outside DEST. Rejected: empty names, absolute paths, ``..`` and ``.``
segments, empty segments, backslashes, NUL and other control characters, drive
letters, names that resolve through an existing symlink to outside DEST, and names
the kernel would refuse: beside each file the engine writes ``<name>.partial`` and
``<name>.partial.journal`` (``rust/src/engine/file.rs``), so a segment may have at
most 255 - 16 bytes and the whole path must fit PATH_MAX with that suffix.
The check runs before any byte is written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ome_agent.errors import UnsafePath
from ome_agent.names import NAME_MAX, PATH_MAX, path_fits

_DRIVE = re.compile(r"^[A-Za-z]:")
PART_SUFFIX = ".partial.journal"  # the longest name the engine derives from a file's
SEGMENT_MAX = NAME_MAX - len(PART_SUFFIX)


def check_name(name: str) -> list[str]:
    """The segments of a syntactically safe relative name, or UnsafePath."""
    if not name:
        raise UnsafePath(name, "empty name")
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise UnsafePath(name, "contains NUL or control characters")
    if "\\" in name:
        raise UnsafePath(name, "contains a backslash")
    if name.startswith("/") or _DRIVE.match(name):
        raise UnsafePath(name, "is an absolute path")
    segments = name.split("/")
    if any(s in ("", ".", "..") for s in segments):
        raise UnsafePath(name, "has an empty, '.' or '..' segment")
    longest = max(len(s.encode(errors="surrogatepass")) for s in segments)
    if longest > SEGMENT_MAX:
        raise UnsafePath(
            name,
            f"has a segment of {longest} bytes: at most {SEGMENT_MAX} fit a file name "
            f"({NAME_MAX} bytes) with the download's {PART_SUFFIX} suffix",
        )
    return segments


def confine(root: str | Path, name: str) -> Path:
    """Absolute path of ``name`` under ``root``; UnsafePath if it would escape.

    Symlinks already inside DEST are followed (realpath) and must stay inside."""
    segments = check_name(name)
    real_root = Path(os.path.realpath(root))
    target = real_root.joinpath(*segments)
    resolved = Path(os.path.realpath(target))
    if resolved != real_root and real_root not in resolved.parents:
        raise UnsafePath(name, f"resolves through a symlink to {resolved}, outside DEST")
    if resolved == real_root:
        raise UnsafePath(name, "resolves to DEST itself")
    if not path_fits(os.fsencode(resolved), len(PART_SUFFIX)):
        raise UnsafePath(
            name,
            f"makes a path of {len(os.fsencode(resolved))} bytes under {real_root}: with "
            f"the download's {PART_SUFFIX} suffix it passes the kernel's limit of "
            f"{PATH_MAX - 1}",
        )
    return resolved
