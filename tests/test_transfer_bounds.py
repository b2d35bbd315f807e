"""Every transfer is bounded in time and bytes, and its retries are visible.

Against the fault server (throttled bodies, 503s) and the raw-socket responder
(answers no real server gives on purpose: a head at one byte per second, silence,
an endless body without a length, malformed heads):

- the low-speed limit (``--speed-limit``/``--speed-time``, curl's semantics) fails a
  slow body, a slow head and a silent server as "slow", retried twice, in seconds;
- a body without a size stops at ``--max-unknown-size`` and before the disk is
  full, and a file without size or digest is never reported as verified;
- each retry is a line on stderr (``retry 1/8 weights.bin: HTTP 503; next in …``), a
  log record for the agent and a metric;
- a name that does not exist and a malformed response head fail at once, typed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry

from ome_agent.cli import main
from ome_agent.errors import FailureReason, TransferFailed
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile.download import Fetch
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer.engine import build_engine
from ome_agent.transfer.progress import RetryNotice
from ome_agent.transfer.runner import Job, Runner
from ome_agent.transfer.settings import TransferSettings
from ome_agent.transfer.summary import NO_SIZE
from tests.pull_helpers import pull_cli, pull_process
from tests.servers.fault_server import FaultServer, Status, Throttle
from tests.servers.http_fixtures import MiB, core
from tests.servers.raw_http import RawServer, Reply, no_length_head
from tests.servers.tmpfs import mounted_tmpfs

SLOW = {"speed_limit": 1024, "speed_time": 1.0}
OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n"


def _fail(engine: Any, url: str, dest: Path, **kw: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    with pytest.raises(core().TransferError) as ei:
        core().Transfer(engine, url, str(dest), **kw).run()
    return ei.value, time.monotonic() - t0


@contextlib.contextmanager
def _raw(reply: Reply) -> Iterator[RawServer]:
    with RawServer(reply) as srv:
        yield srv


# ---------------------------------------------------------------- low-speed limit
def test_slow_body_fails_as_slow_after_two_retries(tmp_path: Path) -> None:
    """300 bytes at 1 byte/s: before, 300 s of waiting; now 3 periods of 1 s."""
    engine = core().Engine(**SLOW)
    with _raw(Reply(head=OK_HEAD, body=b"a" * 300, body_rate=1)) as srv:
        err, took = _fail(engine, srv.url(), tmp_path / "w.bin")
        assert (err.kind, err.retryable) == ("slow", True)
        assert "below the speed limit of 1024 bytes/s" in str(err)
        assert srv.hits == 3  # the first try and two retries
    assert took < 10, took
    assert not (tmp_path / "w.bin").exists()


@pytest.mark.parametrize(
    "reply",
    [
        Reply(head=b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * 60 + b"\r\n\r\n", head_rate=1),
        Reply(silent=True),
    ],
    ids=["head-at-1-byte-per-s", "never-answers"],
)
def test_slow_or_missing_head_is_slow(tmp_path: Path, reply: Reply) -> None:
    engine = core().Engine(**SLOW)
    with _raw(reply) as srv:
        err, took = _fail(engine, srv.url(), tmp_path / "w.bin")
        assert err.kind == "slow"
        assert "no response head within 1 s" in str(err)
        assert srv.hits == 3
    assert took < 10, took


def test_slow_ranges_are_slow_too(fault_server: FaultServer, tmp_path: Path) -> None:
    """The ranged path: each piece's body is judged on its own connection."""
    url = fault_server.add("/r.bin", os.urandom(2 * MiB))
    fault_server.set_faults("/r.bin", Throttle(bytes_per_sec=20_000))
    engine = core().Engine(speed_limit=200_000, speed_time=1.0)
    err, took = _fail(engine, url, tmp_path / "r.bin", chunk_size=MiB, connections=2)
    assert err.kind == "slow"
    assert took < 15, took


def test_a_body_above_the_limit_is_left_alone(fault_server: FaultServer, tmp_path: Path) -> None:
    data = os.urandom(MiB)
    url = fault_server.add("/ok.bin", data)
    fault_server.set_faults("/ok.bin", Throttle(bytes_per_sec=400_000))
    engine = core().Engine(speed_limit=50_000, speed_time=1.0)
    res = core().Transfer(engine, url, str(tmp_path / "ok.bin"), connections=1).run()
    assert res.retries == 0
    assert (tmp_path / "ok.bin").read_bytes() == data


def test_speed_limit_zero_turns_it_off(tmp_path: Path) -> None:
    """No limit: the 300-byte trickle is only bounded by the stall timeout."""
    engine = core().Engine(speed_limit=0, speed_time=1.0, stall_timeout=5.0)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"
    with _raw(Reply(head=head, body=b"abc", body_rate=1.5)) as srv:
        res = core().Transfer(engine, srv.url(), str(tmp_path / "w.bin")).run()
    assert res.retries == 0
    assert (tmp_path / "w.bin").read_bytes() == b"abc"


def test_cli_speed_flags_fail_a_slow_server_in_one_line(tmp_path: Path) -> None:
    with _raw(Reply(head=OK_HEAD, body=b"a" * 300, body_rate=1)) as srv:
        t0 = time.monotonic()
        run = pull_process(srv.url(), f"{tmp_path}/", "--speed-limit", "1K", "--speed-time", "1")
        took = time.monotonic() - t0
    assert run.code == 1, run.stderr
    lines = run.stderr.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines[:2]] == [
        "retry 1/2 weights.bin",
        "retry 2/2 weights.bin",
    ]
    assert lines[-1].startswith("error: weights.bin: too slow after retries:")
    assert "--speed-limit" in lines[-1]
    assert len(lines) == 3, run.stderr
    assert took < 20, took


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--speed-time", "0"), "--speed-time 0"),
        (("--speed-limit", "fast"), "--speed-limit 'fast'"),
        (("--speed-limit", "-1"), "--speed-limit '-1'"),
        (("--max-unknown-size", "0"), "--max-unknown-size 0"),
    ],
)
def test_bad_bound_flags_name_the_flag(
    fault_server: FaultServer, tmp_path: Path, flags: tuple[str, ...], named: str
) -> None:
    run = pull_cli(fault_server.url("/x.bin"), str(tmp_path), *flags)
    assert run.code == 2
    assert run.stderr.startswith(f"error: {named}"), run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["pull", "run"])
def test_bound_flags_are_shared_by_pull_and_run(command: str) -> None:
    """Declared once (cli/params.transfer_options): the agent takes the same bounds."""
    out = CliRunner().invoke(main, [command, "--help"], terminal_width=200).output
    for flag, default in [
        ("--speed-limit BYTES_PER_S", "1024"),
        ("--speed-time SECONDS", "30.0"),
        ("--max-unknown-size SIZE", "16GiB"),
    ]:
        assert flag in out, out
        assert f"[default: {default}]" in out, out


# ---------------------------------------------------------------- bodies with no length
@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_endless_body_without_size_stops_at_the_cap(tmp_path: Path, chunked: bool) -> None:
    reply = Reply(head=no_length_head(chunked=chunked), endless=True, chunked=chunked)
    with _raw(reply) as srv:
        err, _ = _fail(core().Engine(), srv.url(), tmp_path / "w.bin", max_unknown_size=4 * MiB)
        assert (err.kind, err.retryable) == ("too-large", False)
        assert "passed 4194304 bytes (max_unknown_size)" in str(err)
        assert srv.hits == 1
    assert not any(tmp_path.iterdir()), "the partial file is removed"


def test_cli_names_max_unknown_size(tmp_path: Path) -> None:
    with _raw(Reply(head=no_length_head(chunked=True), endless=True, chunked=True)) as srv:
        run = pull_process(srv.url(), f"{tmp_path}/", "--max-unknown-size", "4M")
    assert run.code == 1
    [line] = run.stderr.strip().splitlines()
    assert line.startswith("error: weights.bin: ")
    assert "raise --max-unknown-size" in line


def test_body_without_size_is_never_verified(tmp_path: Path) -> None:
    body = os.urandom(MiB + 5)
    with _raw(Reply(head=no_length_head(), body=body)) as srv:
        run = pull_cli(srv.url(), f"{tmp_path}/", "--json")
    assert run.code == 0, run.stderr
    [f] = run.json()["files"]
    assert f["size"] == len(body)
    assert f["verified"] == []
    assert f["unverified"] == NO_SIZE


def test_summary_line_says_no_size(tmp_path: Path) -> None:
    with _raw(Reply(head=no_length_head(), body=b"x" * 1000)) as srv:
        run = pull_cli(srv.url(), f"{tmp_path}/")
    assert run.code == 0, run.stderr
    assert "0/1 verified by digest, 1 unverified (no size, no digest)" in run.stdout


def test_sized_is_reported(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/s.bin", b"y" * 1000)
    res = core().Transfer(core().Engine(), url, str(tmp_path / "s.bin")).run()
    assert res.sized
    with _raw(Reply(head=no_length_head(), body=b"x" * 1000)) as srv:
        res = core().Transfer(core().Engine(), srv.url(), str(tmp_path / "n.bin")).run()
    assert not res.sized
    assert "size" not in res.verified


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 128 MiB tmpfs (the kernel's own free-space accounting, not a fake)."""
    with mounted_tmpfs(tmp_path / "fs", "size=128m") as mount:
        yield mount


def test_body_without_size_stops_before_the_disk_is_full(small_fs: Path) -> None:
    with _raw(Reply(head=no_length_head(chunked=True), endless=True, chunked=True)) as srv:
        run = pull_process(srv.url(), f"{small_fs}/")
        sent = srv.body_bytes_sent
    assert run.code == 1, run.stderr
    [line] = run.stderr.strip().splitlines()
    assert "stopped before the disk is full" in line
    assert str(small_fs / "weights.bin.partial") in line
    assert "bytes free" in line
    assert sent > 32 * MiB, "it wrote until the reserve, not before"
    st = os.statvfs(small_fs)
    assert st.f_bavail * st.f_frsize >= 64 * MiB, "the reserve stayed free"
    assert not any(small_fs.iterdir()), "the partial file is removed"


# ---------------------------------------------------------------- retries a user can see
def test_cli_prints_each_retry_with_its_reason(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/m/weights.bin", b"z" * 5000)
    fault_server.set_faults("/m/weights.bin", Status(code=503, times=2))
    run = pull_process(url, f"{tmp_path}/")
    assert run.code == 0, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 2, run.stderr
    for n, line in enumerate(lines, 1):
        assert line.startswith(f"retry {n}/8 weights.bin: HTTP 503; next in "), line
        assert line.endswith(" s")


def test_connection_refused_retries_are_reported(tmp_path: Path) -> None:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = core().Engine(max_retries=2)
    f = RemoteFile(path="weights.bin", url=f"http://127.0.0.1:{port}/weights.bin")
    seen: list[RetryNotice] = []
    runner = Runner(
        engine, [Job(f, tmp_path / "weights.bin")], TransferSettings(), on_retry=seen.append
    )
    with pytest.raises(TransferFailed) as ei:
        runner.run()
    assert ei.value.reason is FailureReason.NETWORK
    assert [(n.number, n.of, n.kind, n.message) for n in seen] == [
        (1, 2, "connect", "connection refused"),
        (2, 2, "connect", "connection refused"),
    ]
    assert seen[0].line().startswith("retry 1/2 weights.bin: connection refused; next in ")


def test_retries_are_logged_and_counted(
    fault_server: FaultServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = fault_server.add("/weights.bin", b"q" * 5000)
    fault_server.set_faults("/weights.bin", Status(code=503, times=1))
    metrics = AgentMetrics(CollectorRegistry())
    settings = TransferSettings()
    f = RemoteFile(path="weights.bin", url=url)
    caplog.set_level(logging.INFO, logger="ome_agent.transfer.runner")
    runner = Runner(
        build_engine(settings),
        [Job(f, tmp_path / "weights.bin")],
        settings,
        on_retry=lambda n: metrics.retried(n.kind),
    )
    runner.run()
    [rec] = [r for r in caplog.records if r.getMessage() == "retry"]
    assert (rec.file, rec.reason, rec.attempt) == ("weights.bin", "status", "1/8")  # type: ignore[attr-defined]
    assert metrics.retries.labels("status")._value.get() == 1
    assert metrics.retries.labels("slow")._value.get() == 0


def test_agent_fetch_counts_retries(fault_server: FaultServer, tmp_path: Path) -> None:
    """The agent's path (reconcile.download.Fetch): each retry lands in the metric."""
    url = fault_server.add("/weights.bin", b"q" * 5000)
    fault_server.set_faults("/weights.bin", Status(code=503, times=2))
    metrics = AgentMetrics(CollectorRegistry())
    settings = TransferSettings()
    fetch = Fetch(build_engine(settings), settings, metrics)
    fetch.fetch_jobs(
        [Job(RemoteFile(path="weights.bin", url=url), tmp_path / "weights.bin")], tmp_path
    )
    assert metrics.retries.labels("status")._value.get() == 2
    assert (tmp_path / "weights.bin").read_bytes() == b"q" * 5000


# ---------------------------------------------------------------- fail fast
@pytest.fixture
def nxdomain() -> str:
    """A name under ``.invalid`` (reserved, RFC 2606): the system resolver answers
    that it does not exist, without any network; skipped where it answers otherwise
    (no resolver configured at all)."""
    name = "weights.invalid"
    try:
        socket.getaddrinfo(name, 80)
    except socket.gaierror as e:
        if e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            return name
        pytest.skip(f"the resolver answers {name} with {e}, not NXDOMAIN")
    pytest.skip(f"the resolver resolves {name}")


def test_unknown_host_fails_at_once(tmp_path: Path, nxdomain: str) -> None:
    err, took = _fail(core().Engine(), f"http://{nxdomain}/w.bin", tmp_path / "w.bin")
    assert (err.kind, err.retryable) == ("dns", False)
    assert "no such host: weights.invalid" in str(err)
    assert took < 5, took


def test_cli_unknown_host_is_one_line(tmp_path: Path, nxdomain: str) -> None:
    run = pull_cli(f"http://{nxdomain}/weights.bin", f"{tmp_path}/")
    assert run.code == 1
    [line] = run.stderr.strip().splitlines()
    assert "no such host: weights.invalid" in line
    assert line.endswith("check the host name of the URL")


MALFORMED = {
    "bad-status-line": b"HTTP/1.1 2x0 OK\r\nContent-Length: 3\r\n\r\nabc",
    "negative-length": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nabc",
    "conflicting-lengths": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
    ),
    "oversized-head": b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n",
}


@pytest.mark.parametrize("head", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_head_fails_at_once(tmp_path: Path, head: bytes) -> None:
    with _raw(Reply(head=head)) as srv:
        err, took = _fail(core().Engine(), srv.url(), tmp_path / "w.bin")
        assert (err.kind, err.retryable) == ("malformed", False)
        assert srv.hits == 1
    assert took < 5, took


def test_malformed_reason_is_typed(tmp_path: Path) -> None:
    with _raw(Reply(head=MALFORMED["negative-length"])) as srv:
        f = RemoteFile(path="weights.bin", url=srv.url())
        settings = TransferSettings()
        runner = Runner(build_engine(settings), [Job(f, tmp_path / "weights.bin")], settings)
        with pytest.raises(TransferFailed) as ei:
            runner.run()
    assert ei.value.reason is FailureReason.MALFORMED
