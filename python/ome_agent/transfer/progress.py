"""Aggregated progress of a multi-file pull, read from the engine's counters.

The runner polls every running ``Transfer`` (no per-chunk callbacks: the engine
keeps counters, reading them is cheap) and hands a :class:`Snapshot` to whoever
displays it (the CLI's progress bar, later the agent's ConfigMap progress), and
each retry the engine made as a :class:`RetryNotice` (a line above the CLI's bar,
a log line and a metric for the agent).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Snapshot:
    done_bytes: int
    total_bytes: int | None  # None while some file's size is still unknown
    files_done: int
    files_total: int
    rate: float  # bytes/s over the last few seconds
    seconds: float  # since the pull started
    active: list[str]  # names of files being fetched now


ProgressCallback = Callable[[Snapshot], None]


@dataclass(frozen=True)
class RetryNotice:
    """One retry of one file, as the engine recorded it (``Transfer.take_retries``)."""

    path: str  # the file, relative to DEST
    number: int  # 1-based, out of ``of``
    of: int  # the retries this kind of failure gets (fewer for "slow")
    kind: str  # TransferError.kind: "connect", "slow", "timeout", "status", ...
    message: str  # what failed, without the URL
    wait: float  # seconds until the next try

    def line(self) -> str:
        """``retry 2/8 weights.bin: connection refused; next in 1.2 s``"""
        return (
            f"retry {self.number}/{self.of} {self.path}: {self.message}; next in {self.wait:.1f} s"
        )


RetryCallback = Callable[[RetryNotice], None]


class RateMeter:
    """Bytes/s over a sliding window, from (time, done) samples."""

    def __init__(self, window: float = 3.0) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, done: int, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > self.window:
            self._samples.popleft()
        t0, d0 = self._samples[0]
        return (done - d0) / (now - t0) if now > t0 else 0.0
