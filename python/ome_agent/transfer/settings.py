"""Transfer settings shared by ``pull``, ``bench`` and the agent (one place, one meaning).

The CLI builds a :class:`TransferSettings` from its flags; the agent will build the
same object from its configuration, so a setting tuned with ``ome-agent bench``
means the same thing everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ome_agent.errors import BadInput

MIN_CHUNK = 64 * 1024
MAX_CHUNK = 1024 * 1024 * 1024
# curl's --speed-limit/--speed-time semantics: an attempt that averages below
# SPEED_LIMIT bytes/s over SPEED_TIME seconds fails as "slow" (and is retried twice)
SPEED_LIMIT = 1024
SPEED_TIME = 30.0
# A body whose size the server does not give (no Content-Length, no Content-Range
# total) is cut off here: above a model shard (5-10 GB), far below a disk. The
# trade-off: a bigger file from such a server needs the flag raised; a lower cap would
# refuse real files, a higher one lets a runaway body fill more of the disk first (the
# free space is checked as it goes either way).
MAX_UNKNOWN_SIZE = 16 * 1024**3

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str, flag: str = "size") -> int:
    """``8M``, ``8MiB``, ``8m`` → 8·2²⁰; ``8MB`` → 8·10⁶; a bare number is bytes.

    Single letters are binary, like aria2c's ``-k8M`` and curl's ``--limit-rate``."""
    m = _SIZE.match(text)
    if m is None:
        raise BadInput(f"{flag} {text!r} is not a size: write e.g. 8M, 16MiB or 1048576")
    number, unit, binary, b = m.groups()
    base = 1000 if (unit and b and not binary) else 1024
    value = float(number) * base ** _POWERS[unit.lower()]
    if value != int(value):
        raise BadInput(f"{flag} {text!r} is not a whole number of bytes")
    return int(value)


@dataclass(frozen=True)
class TransferSettings:
    """How files are fetched. ``None`` for connections/chunk_size means adaptive."""

    connections: int | None = None  # parallel ranges per file
    chunk_size: int | None = None  # bytes per range request
    max_connections: int = 64  # over all files of the process (one shared engine)
    parallel_files: int = 8  # files fetched at once
    # O_DIRECT writes (skip the page cache); None = the engine decides: O_DIRECT
    # for files of 64 MiB or more outside tmpfs
    direct_io: bool | None = None
    verify: bool = True  # False = no hashing at all: unsafe, for benchmarks only
    resume: bool = True  # keep/use the .partial journal across runs
    ca_bundle: str | None = None  # extra PEM roots, e.g. an internal mirror's CA
    # --require-digest: a file with no digest to check (its size only) fails before
    # its download instead of being accepted as size only, unverified
    require_digest: bool = False
    speed_limit: int = SPEED_LIMIT  # bytes/s; 0 turns the low-speed limit off
    speed_time: float = SPEED_TIME  # seconds
    max_unknown_size: int = MAX_UNKNOWN_SIZE  # bytes

    def __post_init__(self) -> None:
        if self.connections is not None and not 1 <= self.connections <= 1024:
            raise BadInput(f"--connections {self.connections}: give a number from 1 to 1024")
        if self.chunk_size is not None and not MIN_CHUNK <= self.chunk_size <= MAX_CHUNK:
            raise BadInput(
                f"--chunk-size {self.chunk_size}: give a size from 64KiB to 1GiB, e.g. 16M"
            )
        if not 1 <= self.max_connections <= 4096:
            raise BadInput(f"--max-connections {self.max_connections}: give 1 to 4096")
        if not 1 <= self.parallel_files <= 256:
            raise BadInput(f"--parallel-files {self.parallel_files}: give 1 to 256")
        if self.speed_limit < 0:
            raise BadInput(
                f"--speed-limit {self.speed_limit}: give bytes per second, 0 to turn it off"
            )
        if not 1 <= self.speed_time <= 3600:
            raise BadInput(f"--speed-time {self.speed_time:g}: give 1 to 3600 seconds")
        if self.max_unknown_size < 1:
            raise BadInput(
                f"--max-unknown-size {self.max_unknown_size}: give a size of at least 1 byte"
            )
        if self.require_digest and not self.verify:
            raise BadInput("--require-digest and --no-verify contradict each other: drop one")

    def engine_kwargs(self) -> dict[str, Any]:
        return {
            "ca_bundle": self.ca_bundle,
            "max_connections": self.max_connections,
            "speed_limit": self.speed_limit,
            "speed_time": self.speed_time,
        }

    def transfer_kwargs(self) -> dict[str, Any]:
        return {
            "hash": self.verify,
            "connections": self.connections,
            "chunk_size": self.chunk_size,
            "direct_io": self.direct_io,
            "resume": self.resume,
            "max_unknown_size": self.max_unknown_size,
        }
