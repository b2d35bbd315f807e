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

Choosing the next key costs O(log n): due keys wait in a heap by (priority, due, arrival),
delayed ones in a heap by due time. Coalescing and cancellation leave stale heap
entries behind, which are recognised (they no longer match the key's queued record)
and dropped when they surface. A scan of every queued key per start made a start-up
of thousands of models quadratic.
asyncio only; no other I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import heapq
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
        # (priority, due, seq, tick, key) of due keys; (due, seq, tick, key) of delayed
        # ones. tick makes every entry unique, so keys themselves are never compared.
        self._ready: list[tuple[Priority, float, int, int, K]] = []
        self._delayed: list[tuple[float, int, int, K]] = []
        self._tick = itertools.count()
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
            queued = self._queued[key] = _Queued(priority, due, next(self._seq))
        elif priority < queued.priority or due < queued.due:
            queued.priority = min(queued.priority, priority)
            queued.due = min(queued.due, due)
        else:
            self._notify()
            return
        self._push(key, queued, time.monotonic())
        self._notify()

    def _push(self, key: K, q: _Queued, now: float) -> None:
        if q.due <= now:
            heapq.heappush(self._ready, (q.priority, q.due, q.seq, next(self._tick), key))
        else:
            heapq.heappush(self._delayed, (q.due, q.seq, next(self._tick), key))

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
        self._ready.clear()
        self._delayed.clear()
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
        if include_delayed:
            return not self._queued
        self._promote(time.monotonic())
        self._drop_stale_ready()
        return not self._ready

    def _notify(self) -> None:
        self._wake.set()
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def _current(self, key: K, priority: Priority | None, due: float, seq: int) -> bool:
        """Whether a heap entry still describes ``key``'s queued record."""
        q = self._queued.get(key)
        return (
            q is not None
            and q.seq == seq
            and q.due == due
            and (priority is None or q.priority == priority)
        )

    def _promote(self, now: float) -> None:
        """Move the delayed keys that fell due into the ready heap."""
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            due, seq, _, key = heapq.heappop(delayed)
            if self._current(key, None, due, seq):
                self._push(key, self._queued[key], now)

    def _drop_stale_ready(self) -> None:
        ready = self._ready
        while ready and not self._current(ready[0][4], ready[0][0], ready[0][1], ready[0][2]):
            heapq.heappop(ready)

    def _start_due(self) -> None:
        now = time.monotonic()
        self._promote(now)
        parked = []  # due, but their key is in flight: back in the heap afterwards
        while len(self._running) < self._concurrency and self._ready:
            entry = heapq.heappop(self._ready)
            priority, due, seq, _, key = entry
            if not self._current(key, priority, due, seq):
                continue
            if key in self._running:
                parked.append(entry)
                continue
            del self._queued[key]
            task = asyncio.create_task(self._invoke(key, priority), name=f"work {key}")
            self._running[key] = task
            task.add_done_callback(functools.partial(self._finished, key))
            self._notify()
        for entry in parked:
            heapq.heappush(self._ready, entry)

    def _next_timer(self) -> float | None:
        """Seconds until the next delayed key falls due (None: nothing delayed)."""
        delayed = self._delayed
        while delayed and not self._current(delayed[0][3], None, delayed[0][0], delayed[0][1]):
            heapq.heappop(delayed)
        return max(0.0, delayed[0][0] - time.monotonic()) if delayed else None

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
