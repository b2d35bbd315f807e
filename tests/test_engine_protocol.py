"""Engine against servers that bend HTTP: no Range, no Content-Length, redirects
to another host; plus the controls a caller has on a running transfer
(progress counters, cancel) and the rule that secrets never reach messages.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers.fault_server import (
    ChangeObject,
    FaultServer,
    IgnoreRange,
    NoContentLength,
    Redirect,
    Reset,
    Status,
    Throttle,
)
from tests.servers.http_fixtures import MiB, core

BODY = os.urandom(3 * MiB + 4321)
SHA = hashlib.sha256(BODY).hexdigest()
PATH = "/org/model/file.safetensors"
TOKEN = "tok-Sup3rSecret-9f8e7d"  # noqa: S105 - a fake, checked for leaks


def _fetch(engine: Any, server: FaultServer, dest: Path, **kw: Any) -> Any:
    """One transfer of ``PATH`` from ``server`` to ``dest``, run to the end."""
    return core().Transfer(engine, server.url(PATH), str(dest), **kw).run()


class _Runner:
    """Runs a Transfer on a thread so the test thread can watch or cancel it."""

    def __init__(self, transfer: Any) -> None:
        self.transfer = transfer
        self.result: Any = None
        self.error: BaseException | None = None
        self.finished_at: float | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result = self.transfer.run()
        except BaseException as e:
            self.error = e
        finally:
            self.finished_at = time.monotonic()

    def start(self) -> _Runner:
        self.thread.start()
        return self

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"transfer still running after {timeout}s"


def _wait_for(cond: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# ---------------------------------------------------------------- odd servers
def test_server_ignoring_range_still_works(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY, faults=[IgnoreRange()])
    dest = tmp_path / "f"
    res = _fetch(engine, fault_server, dest, sha256=SHA, chunk_size=MiB, connections=4)
    assert res.ranged is False
    assert res.sha256 == SHA
    assert dest.read_bytes() == BODY
    gets = fault_server.requests_for(PATH, "GET")
    assert all(r.status == 200 for r in gets)
    # One stream: the body is not fetched once per planned range.
    assert sum(r.bytes_sent for r in gets) < 2 * len(BODY)


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_server_without_content_length_still_works(
    engine: Any, fault_server: FaultServer, tmp_path: Path, chunked: bool
) -> None:
    fault_server.add(PATH, BODY, faults=[NoContentLength(chunked=chunked)])
    dest = tmp_path / "f"
    res = _fetch(engine, fault_server, dest, sha256=SHA)
    assert res.ranged is False
    assert res.size == len(BODY)
    assert res.sha256 == SHA
    assert dest.read_bytes() == BODY


def test_no_content_length_with_expected_size_mismatch(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """Size unknown up front: the check happens at the end of the stream."""
    fault_server.add(PATH, BODY, faults=[NoContentLength()])
    dest = tmp_path / "f"
    with pytest.raises(core().ChecksumMismatch) as ei:
        _fetch(engine, fault_server, dest, expected_size=len(BODY) + 10)
    assert ei.value.algorithm == "size"
    assert not dest.exists()


@pytest.mark.parametrize("code", [301, 302, 307])
def test_redirect_to_other_host_keeps_range_drops_authorization(
    engine: Any,
    fault_server: FaultServer,
    fault_server_b: FaultServer,
    tmp_path: Path,
    code: int,
) -> None:
    fault_server.add(PATH, BODY)
    fault_server_b.add(PATH, BODY)
    fault_server.set_faults(PATH, Redirect(target=fault_server_b.base_url, code=code))
    dest = tmp_path / "f"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    res = _fetch(
        engine, fault_server, dest, headers=auth, sha256=SHA, chunk_size=MiB, connections=4
    )
    assert res.sha256 == SHA
    assert res.ranged is True
    assert dest.read_bytes() == BODY

    first = fault_server.requests_for(PATH)
    second = fault_server_b.requests_for(PATH)
    assert first
    assert second
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in first)
    assert all(r.header("authorization") is None for r in second), (
        "Authorization leaked to the redirect target on another host"
    )
    ranged = [r for r in second if r.method == "GET" and r.header("range")]
    assert len(ranged) >= 2, "the Range header must survive the redirect"
    assert all(r.status == 206 for r in ranged)


def test_redirect_on_same_host_keeps_authorization(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """Same origin: credentials may follow (the Hub's own redirects rely on it)."""
    fault_server.add("/final" + PATH, BODY)
    fault_server.set_faults(PATH, Redirect(target=fault_server.base_url + "/final", code=302))
    dest = tmp_path / "f"
    res = _fetch(
        engine, fault_server, dest, headers={"Authorization": f"Bearer {TOKEN}"}, sha256=SHA
    )
    assert res.sha256 == SHA
    finals = fault_server.requests_for("/final" + PATH)
    assert finals
    assert all(r.header("authorization") == f"Bearer {TOKEN}" for r in finals)


def test_object_changing_mid_transfer_is_never_mixed(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """The object is replaced after 3 requests. Ranges of two versions must never
    be stitched together: the engine starts over (new content) or fails."""
    new_body = os.urandom(len(BODY))
    fault_server.add(PATH, BODY, faults=[ChangeObject(after_requests=3, body=new_body)])
    dest = tmp_path / "f"
    try:
        res = _fetch(engine, fault_server, dest, chunk_size=MiB, connections=1)
    except core().EngineError:
        assert not dest.exists()
        return
    assert dest.read_bytes() == new_body
    assert res.sha256 == hashlib.sha256(new_body).hexdigest()
    assert res.etag == fault_server.etag(PATH)


# ---------------------------------------------------------------- running transfer
def test_progress_counters_readable_while_running(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    # ~1.5 s in total over 2 connections: long enough to sample many times.
    fault_server.set_faults(PATH, Throttle(bytes_per_sec=1 * MiB))
    t = core().Transfer(
        engine, fault_server.url(PATH), str(tmp_path / "f"), chunk_size=MiB, connections=2
    )
    assert t.done_bytes == 0
    run = _Runner(t).start()
    samples: list[tuple[int, int | None, float]] = []
    while run.thread.is_alive():
        samples.append((t.done_bytes, t.total_bytes, t.rate))
        time.sleep(0.02)
    run.join(5)
    assert run.error is None, run.error
    done = [s[0] for s in samples]
    assert done == sorted(done), "done_bytes must never go backwards"
    assert len({d for d in done if 0 < d < len(BODY)}) >= 3, f"too few distinct samples: {done}"
    assert len(BODY) in {s[1] for s in samples}, "total_bytes must be known while running"
    assert any(s[2] > 0 for s in samples), "rate must be positive while bytes flow"
    assert t.done_bytes == len(BODY)
    assert t.total_bytes == len(BODY)


def test_cancel_from_another_thread(engine: Any, fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.add(PATH, BODY, faults=[Throttle(bytes_per_sec=256 * 1024)])
    dest = tmp_path / "f"
    t = core().Transfer(engine, fault_server.url(PATH), str(dest), chunk_size=MiB)
    run = _Runner(t).start()
    _wait_for(lambda: t.done_bytes > 0, timeout=5)
    t0 = time.monotonic()
    t.cancel()
    run.join(5)
    assert run.finished_at is not None
    assert run.finished_at - t0 < 2.0, "cancel must take effect quickly"
    assert isinstance(run.error, core().Cancelled), repr(run.error)
    assert not dest.exists()


def test_cancel_during_retry_backoff(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """A long Retry-After must not delay a cancel."""
    fault_server.add(PATH, BODY, faults=[Status(code=503, retry_after=30)])
    dest = tmp_path / "f"
    t = core().Transfer(engine, fault_server.url(PATH), str(dest))
    run = _Runner(t).start()
    _wait_for(lambda: len(fault_server.requests) >= 1, timeout=5)
    time.sleep(0.1)
    t0 = time.monotonic()
    t.cancel()
    run.join(5)
    assert run.finished_at is not None
    assert run.finished_at - t0 < 2.0
    assert isinstance(run.error, core().Cancelled), repr(run.error)


def test_engine_caps_connections_over_all_transfers(
    fault_server: FaultServer, tmp_path: Path
) -> None:
    """``max_connections`` bounds parallel requests of *all* transfers together."""
    engine = core().Engine(max_connections=2, connect_timeout=2.0, stall_timeout=2.0)
    fault_server.add("/a.bin", BODY)
    fault_server.add("/b.bin", BODY)
    fault_server.set_faults("/a.bin", Throttle(bytes_per_sec=4 * MiB))
    fault_server.set_faults("/b.bin", Throttle(bytes_per_sec=4 * MiB))
    runs = [
        _Runner(
            core().Transfer(
                engine,
                fault_server.url(name),
                str(tmp_path / name),
                sha256=SHA,
                chunk_size=MiB // 2,
                connections=4,
            )
        ).start()
        for name in ("/a.bin", "/b.bin")
    ]
    for run in runs:
        run.join(30)
        assert run.error is None, run.error
    peak = fault_server.peak_concurrency()
    assert peak <= 2, f"{peak} requests in parallel with max_connections=2"
    # Without the cap the two transfers would have run 8 requests at once.
    assert peak == 2


def test_empty_file(engine: Any, fault_server: FaultServer, tmp_path: Path) -> None:
    """An empty object: Range on it is unsatisfiable (416), the file still appears."""
    fault_server.add("/empty", b"")
    dest = tmp_path / "empty"
    empty_sha = hashlib.sha256(b"").hexdigest()
    res = (
        core()
        .Transfer(engine, fault_server.url("/empty"), str(dest), sha256=empty_sha, expected_size=0)
        .run()
    )
    assert res.size == 0
    assert res.sha256 == empty_sha
    assert dest.read_bytes() == b""
    assert [p.name for p in tmp_path.iterdir()] == ["empty"]


# ---------------------------------------------------------------- secrets
def _all_text(exc: BaseException) -> str:
    return " ".join([str(exc), repr(exc), *(str(a) for a in exc.args)])


@pytest.mark.parametrize(
    "fault",
    [Status(code=401), Status(code=403), Status(code=503), Reset(after_bytes=10)],
    ids=["401", "403", "503-forever", "reset-forever"],
)
def test_token_never_in_error_messages(
    engine: Any, fault_server: FaultServer, tmp_path: Path, fault: Any
) -> None:
    fault_server.add(PATH, BODY, faults=[fault])
    with pytest.raises(core().EngineError) as ei:
        core().Transfer(
            engine,
            fault_server.url(PATH),
            str(tmp_path / "f"),
            headers={"Authorization": f"Bearer {TOKEN}"},
            connections=1,
        ).run()
    assert TOKEN not in _all_text(ei.value)
    assert fault_server.requests[0].header("authorization") == f"Bearer {TOKEN}"


def test_signed_query_string_never_in_error(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY, faults=[Status(code=403)])
    url = fault_server.url(PATH) + f"?X-Amz-Signature={TOKEN}&X-Amz-Expires=60"
    with pytest.raises(core().HttpStatusError) as ei:
        core().Transfer(engine, url, str(tmp_path / "f")).run()
    assert ei.value.url == fault_server.url(PATH)
    assert TOKEN not in _all_text(ei.value)


# ---------------------------------------------------------------- small calls
def test_head_and_fetch_range(engine: Any, fault_server: FaultServer) -> None:
    fault_server.add(PATH, BODY)
    info = engine.head(fault_server.url(PATH))
    assert info["size"] == len(BODY)
    assert info["etag"] == fault_server.etag(PATH)
    assert info["last_modified"]
    assert info["final_url"] == fault_server.url(PATH)
    assert engine.fetch_range(fault_server.url(PATH), 1000, 500) == BODY[1000:1500]
    # Fewer bytes at the end of the file.
    assert engine.fetch_range(fault_server.url(PATH), len(BODY) - 10, 100) == BODY[-10:]


def test_fetch_range_is_retried(engine: Any, fault_server: FaultServer) -> None:
    fault_server.add(PATH, BODY, faults=[Status(code=503, times=2)])
    assert engine.fetch_range(fault_server.url(PATH), 0, 64) == BODY[:64]
    assert [r.status for r in fault_server.requests] == [503, 503, 206]
