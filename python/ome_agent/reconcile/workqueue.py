"""The keyed work queue that drives the reconcile core (docs/architecture.md, layer 4).

Events (a watch, a node label change, a retry timer) only *add* a model's key; the
queue runs one handler per key at a time with bounded concurrency. This is what OME's
agent lacks (docs/architecture.md, "Where OME's agent falls short": an unbounded
channel without dedup let the same model download twice at once and corrupt its files):

- a key is queued at most once: adding it again coalesces, keeping the more urgent
  priority and the earlier due time;
- a key is never handled twice at once: added while in flight, it runs once more after
  the current run ends (level-triggered: that run sees the latest state);
- ``DELETE`` runs before ``DOWNLOAD`` before ``VERIFY``; FIFO among equals;
- :meth:`WorkQueue.cancel` stops a key's in-flight handler at once (a delete must not
  wait for a download of hundreds of GB) and drops it from the queue;
- a delay schedules a retry without holding a slot; a failing handler is logged and
  the queue goes on.

Choosing the next key scans the queued keys: a node holds tens to hundreds of models,
where a scan is cheaper to get right than a heap with coalescing and cancellation.
asyncio only; no other I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class Priority(enum.IntEnum):
    """Lower runs first: freeing disk and stopping a removed model come before new
    downloads, which come before re-checking models already Ready."""

    DELETE = 0
    DOWNLOAD = 1
    VERIFY = 2


@dataclass
class _Queued:
    priority: Priority
    due: float  # time.monotonic() at which it may run
    seq: int  # arrival order, for FIFO among equals


class WorkQueue(Generic[K]):
    """Runs ``handler(key, priority)`` for queued keys, at most ``concurrency`` at once
    and never two for one key. Start it with ``await queue.run()`` (in a task); stop it
    with :meth:`close`."""

    def __init__(self, handler: Callable[[K, Priority], Awaitable[None]], concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError(f"work queue concurrency must be at least 1, got {concurrency}")
        self._handler = handler
        self._concurrency = concurrency
        self._queued: dict[K, _Queued] = {}
        self._running: dict[K, asyncio.Task[None]] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()  # run() loop: something to look at
        self._changed = asyncio.Event()  # wait_idle(): replaced on every change
        self._closed = False
        self._cancel_on_close = True
        self._started = False

    # ---- producers -------------------------------------------------------------

    def add(self, key: K, priority: Priority, delay: float = 0.0) -> None:
        """Queue ``key`` to run after ``delay`` seconds (never blocks). Ignored once closed."""
        if self._closed:
            log.debug("work queue closed: not queueing %s", key)
            return
        due = time.monotonic() + max(0.0, delay)
        queued = self._queued.get(key)
        if queued is None:
            self._queued[key] = _Queued(priority, due, next(self._seq))
        else:
            queued.priority = min(queued.priority, priority)
            queued.due = min(queued.due, due)
        self._notify()

    def cancel(self, key: K) -> bool:
        """Drop ``key`` from the queue and cancel its in-flight handler, if any. Returns
        whether there was anything to cancel. The handler sees :class:`asyncio.CancelledError`
        at its next ``await``; until it has unwound, the key still counts as in flight,
        so work added for it meanwhile waits."""
        dropped = self._queued.pop(key, None) is not None
        task = self._running.get(key)
        if task is not None:
            task.cancel()
        self._notify()
        return dropped or task is not None

    # ---- the loop --------------------------------------------------------------

    async def run(self) -> None:
        """Run handlers until :meth:`close`; then cancel (or, with ``close(cancel=False)``,
        await) the handlers in flight and return. Cancelling ``run`` itself cancels them."""
        if self._started:
            raise RuntimeError("WorkQueue.run() was already started")
        self._started = True
        try:
            while not self._closed:
                self._wake.clear()
                self._start_due()
                with contextlib.suppress(TimeoutError):  # timeout: a delayed key fell due
                    await asyncio.wait_for(self._wake.wait(), self._next_timer())
        finally:
            tasks = list(self._running.values())
            if self._cancel_on_close or not self._closed:
                for task in tasks:
                    task.cancel()
            if tasks:
                await asyncio.wait(tasks)

    def close(self, *, cancel: bool = True) -> None:
        """Stop: queued keys are dropped and :meth:`run` returns once the handlers in
        flight are done — cancelled first unless ``cancel=False``."""
        self._closed = True
        self._cancel_on_close = cancel
        self._queued.clear()
        self._notify()

    async def wait_idle(self, include_delayed: bool = True) -> None:
        """Return once nothing is queued and nothing is in flight.

        With ``include_delayed=False``, keys queued with a delay that is not yet due do
        not count: a one-shot run can stop as soon as every model has had its attempt,
        without waiting out the backoff of a failed one."""
        while not self._idle(include_delayed):
            await self._changed.wait()

    # ---- state -----------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Keys due and waiting (for a slot, or for their own in-flight run to end)."""
        now = time.monotonic()
        return sum(1 for q in self._queued.values() if q.due <= now)

    @property
    def delayed(self) -> int:
        """Keys queued with a delay that is not yet due."""
        now = time.monotonic()
        return sum(1 for q in self._queued.values() if q.due > now)

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return len(self._running)

    # ---- internals -------------------------------------------------------------

    def _idle(self, include_delayed: bool) -> bool:
        if self._running:
            return False
        return not (self._queued if include_delayed else self.depth)

    def _notify(self) -> None:
        self._wake.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _start_due(self) -> None:
        now = time.monotonic()
        while len(self._running) < self._concurrency:
            ready = [
                (q.priority, q.due, q.seq, key)
                for key, q in self._queued.items()
                if q.due <= now and key not in self._running
            ]
            if not ready:
                return
            priority, _, _, key = min(ready, key=lambda r: r[:3])
            del self._queued[key]
            task = asyncio.create_task(self._invoke(key, priority), name=f"work {key}")
            self._running[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
            self._notify()

    def _next_timer(self) -> float | None:
        """Seconds until the next delayed key falls due (None: nothing delayed)."""
        now = time.monotonic()
        waits = [q.due - now for q in self._queued.values() if q.due > now]
        return min(waits) if waits else None

    async def _invoke(self, key: K, priority: Priority) -> None:
        try:
            await self._handler(key, priority)
        except asyncio.CancelledError:
            log.debug("work on %s (%s) cancelled", key, priority.name)
            raise
        except Exception:
            # a failing handler must not stop the others; the handler owns its retries
            log.exception("work on %s (%s) failed", key, priority.name)

    def _finished(self, key: K, task: asyncio.Task[None]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        self._notify()
