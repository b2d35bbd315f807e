"""Engine against the fault-injection server: what is retried, what is not.

Proves the engine's retry policy: 5xx bursts, 408/429 with Retry-After (the
wait is honoured), resets, truncated bodies and stalls are survived with the
right digest; 401/403/404 fail at once with one request; corrupted bytes fail
the checksum; exhausted retries fail with a clear message.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers.fault_server import (
    Fault,
    FaultServer,
    Reset,
    Stall,
    Status,
    Truncate,
    WrongBytes,
    http_date,
)
from tests.servers.http_fixtures import MiB, core

PATH = "/data/model.bin"
BODY = os.urandom(4 * MiB + 777)
SHA = hashlib.sha256(BODY).hexdigest()


def _run(engine: Any, server: FaultServer, dest: Path, **kw: Any) -> Any:
    kw.setdefault("chunk_size", MiB)
    kw.setdefault("connections", 4)
    return core().Transfer(engine, server.url(PATH), str(dest), sha256=SHA, **kw).run()


def _serve(server: FaultServer, tmp_path: Path, *faults: Fault) -> Path:
    """``BODY`` at ``PATH`` of ``server``, behind ``faults``; where the test's transfer
    writes it."""
    server.add(PATH, BODY)
    server.set_faults(PATH, *faults)
    return tmp_path / "m.bin"


def _assert_ok(res: Any, dest: Path) -> None:
    assert res.sha256 == SHA
    assert "sha256" in res.verified
    assert dest.read_bytes() == BODY
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]


# ---------------------------------------------------------------- survived
@pytest.mark.parametrize("code", [500, 502, 503, 504])
def test_5xx_burst_is_retried(
    engine: Any, fault_server: FaultServer, tmp_path: Path, code: int
) -> None:
    dest = _serve(fault_server, tmp_path, Status(code=code, times=3))
    res = _run(engine, fault_server, dest)
    _assert_ok(res, dest)
    statuses = [r.status for r in fault_server.requests_for(PATH)]
    assert statuses.count(code) == 3
    assert res.retries >= 1


@pytest.mark.parametrize("code", [408, 429, 503])
def test_retry_after_seconds_is_honoured(
    engine: Any, fault_server: FaultServer, tmp_path: Path, code: int
) -> None:
    dest = _serve(fault_server, tmp_path, Status(code=code, times=1, retry_after=1))
    res = _run(engine, fault_server, dest, connections=1)
    _assert_ok(res, dest)
    reqs = fault_server.requests_for(PATH)
    assert reqs[0].status == code
    gap = reqs[1].time - reqs[0].time
    assert gap >= 1.0, f"Retry-After: 1 not honoured, retried after {gap:.3f}s"
    assert gap < 10.0


def test_retry_after_http_date_is_honoured(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    # HTTP-dates have whole seconds: the client may retry at `not_before` at the earliest.
    not_before = int(time.time()) + 2
    dest = _serve(
        fault_server, tmp_path, Status(code=429, times=1, retry_after=http_date(not_before))
    )
    res = _run(engine, fault_server, dest, connections=1)
    _assert_ok(res, dest)
    reqs = fault_server.requests_for(PATH)
    assert reqs[0].status == 429
    # 50 ms of slack for clock granularity between the two clocks read here.
    assert reqs[1].wall_time >= not_before - 0.05, (
        f"retried {not_before - reqs[1].wall_time:.3f}s before the Retry-After date"
    )
    assert reqs[1].wall_time - reqs[0].wall_time < 10.0


@pytest.mark.parametrize(
    "fault",
    [Reset(after_bytes=100_000, times=3), Truncate(after_bytes=300_000, times=3)],
    ids=["reset-mid-body", "truncated-body"],
)
def test_broken_bodies_are_retried(
    fault: Reset | Truncate, engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _serve(fault_server, tmp_path, fault)
    res = _run(engine, fault_server, dest)
    _assert_ok(res, dest)
    assert res.retries >= 1
    assert sum(1 for r in fault_server.requests if r.fault == type(fault).__name__) == 3


def test_stalled_connection_is_abandoned_and_retried(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """The engine fixture has stall_timeout=1s; the server stalls for 30 s."""
    dest = _serve(fault_server, tmp_path, Stall(after_bytes=200_000, seconds=30, times=1))
    t0 = time.monotonic()
    res = _run(engine, fault_server, dest)
    elapsed = time.monotonic() - t0
    _assert_ok(res, dest)
    assert elapsed < 10.0, f"stall not detected in time ({elapsed:.1f}s)"
    assert res.retries >= 1


def test_stall_without_any_body_byte_is_detected(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _serve(fault_server, tmp_path, Stall(after_bytes=0, seconds=30, times=1))
    t0 = time.monotonic()
    res = _run(engine, fault_server, dest, connections=1)
    assert time.monotonic() - t0 < 10.0
    _assert_ok(res, dest)


# ---------------------------------------------------------------- failed
@pytest.mark.parametrize("code", [401, 403, 404])
def test_client_errors_are_not_retried(
    engine: Any, fault_server: FaultServer, tmp_path: Path, code: int
) -> None:
    dest = _serve(fault_server, tmp_path, Status(code=code))
    url = fault_server.url(PATH)
    t0 = time.monotonic()
    with pytest.raises(core().HttpStatusError) as ei:
        core().Transfer(engine, url, str(dest)).run()
    assert time.monotonic() - t0 < 2.0
    assert ei.value.status == code
    assert (ei.value.kind, ei.value.retryable) == ("status", False)
    assert ei.value.url == url
    assert isinstance(ei.value, ConnectionError)
    assert str(code) in str(ei.value)
    assert len(fault_server.requests) == 1, "a 4xx must not be retried"
    assert not dest.exists()


def test_missing_object_is_404(engine: Any, fault_server: FaultServer, tmp_path: Path) -> None:
    with pytest.raises(core().HttpStatusError) as ei:
        core().Transfer(engine, fault_server.url("/nope"), str(tmp_path / "x")).run()
    assert ei.value.status == 404
    assert len(fault_server.requests) == 1


def test_wrong_bytes_fail_the_checksum(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _serve(fault_server, tmp_path, WrongBytes(offset=3 * MiB + 5, count=3))
    corrupted = bytearray(BODY)
    for i in range(3 * MiB + 5, 3 * MiB + 8):
        corrupted[i] ^= 0xFF
    with pytest.raises(core().ChecksumMismatch) as ei:
        _run(engine, fault_server, dest)
    assert ei.value.algorithm == "sha256"
    assert ei.value.expected == SHA
    assert ei.value.actual == hashlib.sha256(corrupted).hexdigest()
    assert not dest.exists()


def test_exhausted_retries_give_a_clear_transfer_error(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _serve(fault_server, tmp_path, Status(code=503))
    t0 = time.monotonic()
    with pytest.raises(core().TransferError) as ei:
        _run(engine, fault_server, dest, connections=1)
    assert time.monotonic() - t0 < 60.0
    # the typed fields callers decide on (never the message)
    assert (ei.value.kind, ei.value.status, ei.value.retryable) == ("status", 503, True)
    msg = str(ei.value)
    assert "503" in msg, f"message should name the status: {msg!r}"
    assert fault_server.url(PATH) in msg or PATH in msg, f"message should name the URL: {msg!r}"
    # max_retries=4 in the fixture: 1 try + 4 retries for the failing request.
    n = len(fault_server.requests)
    assert 5 <= n <= 12, f"{n} requests for max_retries=4"
    assert not dest.exists()


def test_resets_forever_give_a_transfer_error(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _serve(fault_server, tmp_path, Reset(after_bytes=1000))
    with pytest.raises(core().TransferError) as ei:
        _run(engine, fault_server, dest, connections=1)
    assert not isinstance(ei.value, core().HttpStatusError)
    assert (ei.value.kind, ei.value.status) == ("broken", None)
    assert str(ei.value), "the error needs a message"
    assert not dest.exists()


def test_refused_connections_give_a_connect_error(engine: Any, tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(core().TransferError) as ei:
        core().Transfer(engine, f"http://127.0.0.1:{port}/m.bin", str(tmp_path / "m")).run()
    assert (ei.value.kind, ei.value.status, ei.value.retryable) == ("connect", None, True)
