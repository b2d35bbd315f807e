"""The keyed work queue (coalescing, priorities, one run per key, cancel, bounded
concurrency, delays, idle detection, failing handlers) and the retry backoff."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from ome_agent.reconcile.backoff import Backoff
from ome_agent.reconcile.workqueue import Priority, WorkQueue

Handler = Callable[[str, Priority], Awaitable[None]]


class Recorder:
    """A handler that records calls, tracks concurrency and can be held per key."""

    def __init__(self, hold: float = 0.0) -> None:
        self.calls: list[tuple[str, Priority]] = []
        self.active: dict[str, int] = defaultdict(int)
        self.max_active_per_key = 0
        self.max_active = 0
        self.cancelled: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.hold = hold

    async def __call__(self, key: str, priority: Priority) -> None:
        self.calls.append((key, priority))
        self.active[key] += 1
        self.max_active_per_key = max(self.max_active_per_key, self.active[key])
        self.max_active = max(self.max_active, sum(self.active.values()))
        try:
            if key in self.gates:
                await self.gates[key].wait()
            await asyncio.sleep(self.hold)
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.active[key] -= 1

    @property
    def keys(self) -> list[str]:
        return [k for k, _ in self.calls]


def run_with_queue(
    handler: Handler,
    body: Callable[[WorkQueue[str]], Coroutine[Any, Any, None]],
    concurrency: int = 4,
) -> None:
    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(handler, concurrency)
        runner = asyncio.create_task(queue.run())
        try:
            await asyncio.wait_for(body(queue), timeout=10)
        finally:
            queue.close()
            await asyncio.wait_for(runner, timeout=5)

    asyncio.run(main())


def fill_then_drain(
    handler: Handler, fill: Callable[[WorkQueue[str]], None], concurrency: int
) -> None:
    """``fill`` a queue before it runs, then run it until idle and close it."""

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(handler, concurrency)
        fill(queue)
        runner = asyncio.create_task(queue.run())
        await queue.wait_idle()
        queue.close()
        await runner

    asyncio.run(main())


def once_m_is_in_flight(
    handler: Handler, then: Callable[[WorkQueue[str], asyncio.Task[None]], Awaitable[None]]
) -> None:
    """A queue of two slots with key ``m`` added; ``then(queue, runner)`` once ``m`` is
    in flight (``runner``: the task of ``queue.run()``)."""

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(handler, 2)
        queue.add("m", Priority.DOWNLOAD)
        runner = asyncio.create_task(queue.run())
        await until(lambda: queue.in_flight == 1)
        await then(queue, runner)

    asyncio.run(main())


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_coalescing_keeps_the_most_urgent_priority() -> None:
    rec = Recorder()

    def fill(queue: WorkQueue[str]) -> None:
        queue.add("m", Priority.VERIFY)
        queue.add("m", Priority.DELETE)
        queue.add("m", Priority.DOWNLOAD)
        queue.add("n", Priority.DOWNLOAD)
        queue.add("n", Priority.DOWNLOAD)
        assert queue.depth == 2

    fill_then_drain(rec, fill, concurrency=2)
    assert sorted(rec.calls) == [("m", Priority.DELETE), ("n", Priority.DOWNLOAD)]


def test_priority_order_then_fifo() -> None:
    rec = Recorder()

    def fill(queue: WorkQueue[str]) -> None:
        for key, prio in [
            ("verify-1", Priority.VERIFY),
            ("download-1", Priority.DOWNLOAD),
            ("delete-1", Priority.DELETE),
            ("download-2", Priority.DOWNLOAD),
            ("verify-2", Priority.VERIFY),
            ("delete-2", Priority.DELETE),
        ]:
            queue.add(key, prio)

    fill_then_drain(rec, fill, concurrency=1)
    assert rec.keys == ["delete-1", "delete-2", "download-1", "download-2", "verify-1", "verify-2"]


def test_a_key_in_flight_runs_once_more_never_twice_at_once() -> None:
    rec = Recorder()
    rec.gates["m"] = asyncio.Event()

    async def body(queue: WorkQueue[str]) -> None:
        queue.add("m", Priority.DOWNLOAD)
        await until(lambda: queue.in_flight == 1)
        for _ in range(5):  # repeated events while it runs: one more run, not five
            queue.add("m", Priority.VERIFY)
        await asyncio.sleep(0.05)
        assert rec.calls == [("m", Priority.DOWNLOAD)]  # slots free, yet it waits
        assert queue.depth == 1
        rec.gates["m"].set()
        await queue.wait_idle()

    run_with_queue(rec, body)
    assert rec.calls == [("m", Priority.DOWNLOAD), ("m", Priority.VERIFY)]
    assert rec.max_active_per_key == 1


def test_cancel_stops_the_handler_in_flight_at_once() -> None:
    rec = Recorder()
    rec.gates["big"] = asyncio.Event()  # never set: a download that would take forever

    async def body(queue: WorkQueue[str]) -> None:
        queue.add("big", Priority.DOWNLOAD)
        await until(lambda: queue.in_flight == 1)
        started = time.monotonic()
        assert queue.cancel("big") is True
        queue.add("big", Priority.DELETE)  # the delete follows the cancelled download
        await queue.wait_idle()
        assert time.monotonic() - started < 1.0
        assert queue.cancel("big") is False  # nothing left to cancel

    async def handler(key: str, priority: Priority) -> None:
        if priority is Priority.DELETE:
            rec.gates.pop(key, None)  # the delete itself completes
        await rec(key, priority)

    run_with_queue(handler, body)
    assert rec.cancelled == ["big"]
    assert rec.calls == [("big", Priority.DOWNLOAD), ("big", Priority.DELETE)]
    assert rec.max_active_per_key == 1


def test_cancel_drops_a_queued_key() -> None:
    rec = Recorder()

    def fill(queue: WorkQueue[str]) -> None:
        queue.add("a", Priority.DOWNLOAD)
        queue.add("b", Priority.DOWNLOAD)
        assert queue.cancel("a") is True
        assert queue.cancel("zzz") is False

    fill_then_drain(rec, fill, concurrency=1)
    assert rec.keys == ["b"]


def test_concurrency_is_bounded() -> None:
    rec = Recorder(hold=0.03)

    async def body(queue: WorkQueue[str]) -> None:
        for i in range(8):
            queue.add(f"m{i}", Priority.DOWNLOAD)
        await until(lambda: queue.in_flight == 2)
        assert queue.depth == 6
        await queue.wait_idle()

    run_with_queue(rec, body, concurrency=2)
    assert rec.max_active == 2
    assert sorted(rec.keys) == [f"m{i}" for i in range(8)]


def test_delayed_items_wait_without_holding_a_slot() -> None:
    rec = Recorder()

    async def body(queue: WorkQueue[str]) -> None:
        t0 = time.monotonic()
        queue.add("retry", Priority.DOWNLOAD, delay=0.3)
        queue.add("now", Priority.VERIFY)
        await until(lambda: rec.keys == ["now"])
        assert queue.delayed == 1
        assert queue.depth == 0
        await until(lambda: "retry" in rec.keys)
        assert time.monotonic() - t0 >= 0.3
        assert queue.delayed == 0

    run_with_queue(rec, body, concurrency=1)


def test_coalescing_keeps_the_earliest_due_time() -> None:
    rec = Recorder()

    async def body(queue: WorkQueue[str]) -> None:
        queue.add("m", Priority.DOWNLOAD, delay=60)  # a retry far away
        queue.add("m", Priority.DOWNLOAD)  # a spec change: now
        await until(lambda: rec.keys == ["m"], timeout=2)
        queue.add("n", Priority.DOWNLOAD)
        queue.add("n", Priority.DOWNLOAD, delay=60)  # a later retry does not postpone it
        await until(lambda: rec.keys == ["m", "n"], timeout=2)

    run_with_queue(rec, body)


def test_wait_idle_with_and_without_delayed_items() -> None:
    rec = Recorder()

    async def body(queue: WorkQueue[str]) -> None:
        queue.add("failed", Priority.DOWNLOAD, delay=0.3)
        queue.add("ok", Priority.DOWNLOAD)
        t0 = time.monotonic()
        await queue.wait_idle(include_delayed=False)  # a --once run: do not wait out backoff
        assert time.monotonic() - t0 < 0.25
        assert rec.keys == ["ok"]
        assert queue.delayed == 1
        await queue.wait_idle()  # everything, the retry included
        assert time.monotonic() - t0 >= 0.3
        assert rec.keys == ["ok", "failed"]

    run_with_queue(rec, body)


def test_wait_idle_returns_at_once_when_idle() -> None:
    async def body(queue: WorkQueue[str]) -> None:
        await asyncio.wait_for(queue.wait_idle(), 0.5)

    run_with_queue(Recorder(), body)


def test_a_failing_handler_is_logged_and_the_queue_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: list[str] = []

    async def handler(key: str, priority: Priority) -> None:
        if key == "bad":
            raise RuntimeError("disk on fire")
        done.append(key)

    async def body(queue: WorkQueue[str]) -> None:
        queue.add("bad", Priority.DELETE)
        queue.add("good", Priority.DOWNLOAD)
        await queue.wait_idle()
        queue.add("bad", Priority.DOWNLOAD)  # the key is usable again
        queue.add("later", Priority.DOWNLOAD)
        await queue.wait_idle()

    with caplog.at_level(logging.ERROR, logger="ome_agent.reconcile.workqueue"):
        run_with_queue(handler, body, concurrency=1)
    assert done == ["good", "later"]
    failures = [r for r in caplog.records if "bad" in r.getMessage()]
    assert len(failures) == 2
    assert failures[0].exc_info is not None
    assert "disk on fire" in str(failures[0].exc_info[1])


def test_close_cancels_in_flight_and_ignores_new_work() -> None:
    rec = Recorder()
    rec.gates["m"] = asyncio.Event()

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(rec, 2)
        queue.add("m", Priority.DOWNLOAD)
        queue.add("q", Priority.VERIFY, delay=60)
        runner = asyncio.create_task(queue.run())
        await until(lambda: queue.in_flight == 1)
        queue.close()
        await asyncio.wait_for(runner, 1)
        queue.add("late", Priority.DOWNLOAD)
        assert (queue.depth, queue.delayed, queue.in_flight) == (0, 0, 0)
        await asyncio.wait_for(queue.wait_idle(), 0.5)

    asyncio.run(main())
    assert rec.cancelled == ["m"]
    assert rec.keys == ["m"]


def test_close_without_cancel_lets_handlers_finish() -> None:
    rec = Recorder(hold=0.1)

    async def then(queue: WorkQueue[str], runner: asyncio.Task[None]) -> None:
        queue.close(cancel=False)
        await asyncio.wait_for(runner, 1)

    once_m_is_in_flight(rec, then)
    assert rec.cancelled == []
    assert rec.keys == ["m"]


def test_cancelling_run_cancels_the_handlers() -> None:
    rec = Recorder()
    rec.gates["m"] = asyncio.Event()

    async def then(queue: WorkQueue[str], runner: asyncio.Task[None]) -> None:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        assert queue.in_flight == 0

    once_m_is_in_flight(rec, then)
    assert rec.cancelled == ["m"]


def test_bad_concurrency_and_second_run() -> None:
    with pytest.raises(ValueError, match="concurrency must be at least 1"):
        WorkQueue(Recorder(), 0)

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(Recorder(), 1)
        runner = asyncio.create_task(queue.run())
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already started"):
            await queue.run()
        queue.close()
        await runner

    asyncio.run(main())


# ---- backoff --------------------------------------------------------------------


def test_backoff_doubles_to_the_cap_without_jitter() -> None:
    backoff = Backoff(jitter=0)
    delays = [backoff.next_delay("m") for _ in range(10)]
    assert delays == [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]
    assert backoff.failures("m") == 10


def test_backoff_is_per_key_and_resets() -> None:
    backoff = Backoff(base=1, cap=100, jitter=0)
    assert [backoff.next_delay("a") for _ in range(3)] == [1, 2, 4]
    assert backoff.next_delay("b") == 1
    backoff.reset("a")
    backoff.reset("never-failed")
    assert backoff.failures("a") == 0
    assert backoff.next_delay("a") == 1
    assert backoff.next_delay("b") == 2


def test_backoff_jitter_stays_within_bounds_and_varies() -> None:
    backoff = Backoff(base=10, cap=10, jitter=0.5, rng=random.Random(7))  # noqa: S311
    delays = [backoff.next_delay("m") for _ in range(200)]
    assert all(5 <= d <= 10 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100


def test_backoff_survives_endless_failures() -> None:
    backoff = Backoff(jitter=0)
    for _ in range(5000):
        delay = backoff.next_delay("m")
    assert delay == 600


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": 0}, "need 0 < base <= cap"),
        ({"base": 700}, "need 0 < base <= cap"),
        ({"factor": 0.5}, "factor must be at least 1"),
        ({"jitter": 1.5}, r"jitter must be within \[0, 1\]"),
    ],
)
def test_backoff_rejects_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)
