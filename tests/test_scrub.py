"""Ready means the bytes are right: the background scrub (``reconcile.scrub``), the
hashing against the manifest and the refusal of links out (``reconcile.localcheck``),
with the reconcile core on the local Hub and an in-memory reporter.

The three tampering cases a restart's ``stat`` cannot see (a flipped byte with its
mtime put back, a same-size replacement with the same mtime, a symbolic link to a
same-size file out of the model directory) each leave the model Ready with wrong bytes
without the scrub; with it the wrong file alone is fetched again."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput, Interrupted
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile.localcheck import Status, check_manifest, intact, refuse_links_out
from ome_agent.reconcile.manifest import Identity, Manifest, record_files
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import NodeState
from ome_agent.reconcile.scrub import TokenBucket
from ome_agent.wire.entry import encode_entry
from tests.servers.hf_hub_server import HubServer
from tests.servers.http_fixtures import MiB
from tests.test_reconcile_core import (
    CONFIG,
    Agent,
    MemoryReporter,
    Secrets,
    aio,
    model,
    options,
    root,
    staging_leftovers,
    until,
)

__all__ = ["root"]  # the fixture, re-exported for pytest
FAST = 1e9  # bytes/s: the scrub's pace is not what these tests measure


# ---------------------------------------------------------------- tampering
def _flip_keep_mtime(path: Path, _outside: Path) -> None:
    st = path.stat()
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0x01
    path.write_bytes(bytes(body))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_same_size_same_mtime(path: Path, _outside: Path) -> None:
    st = path.stat()
    path.write_bytes(os.urandom(st.st_size))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _link_out_same_size(path: Path, outside: Path) -> None:
    st = path.stat()
    outside.write_bytes(os.urandom(st.st_size))
    os.utime(outside, ns=(st.st_atime_ns, st.st_mtime_ns))
    path.unlink()
    path.symlink_to(outside)


TAMPER: dict[str, Callable[[Path, Path], None]] = {
    "flipped-byte-mtime-restored": _flip_keep_mtime,
    "same-size-same-mtime": _replace_same_size_same_mtime,
    "symlink-out-same-size": _link_out_same_size,
}


def _repo(hf_env: HubServer) -> bytes:
    weights = os.urandom(2 * MiB)
    hf_env.add_repo("org/scrubbed", {"config.json": CONFIG, "model.safetensors": weights})
    return weights


async def _fetched_then_stopped(root: Path, reporter: MemoryReporter) -> ModelResource:
    """A first agent (no scrub) fetches the scrubbed model and stops: what a restart finds."""
    spec = model("scrubbed", "hf://org/scrubbed", path="scrubbed")
    first = Agent(options(root, scrub_rate=0), reporter, Secrets())
    await first.start(None, spec)
    await until(lambda: reporter.state("scrubbed") is NodeState.READY)
    await first.stop()
    return spec


def _metrics(agent: Agent) -> AgentMetrics:
    """The agent's counters (the scrub's among them)."""
    metrics = agent.rec._metrics
    assert metrics is not None
    return metrics


def _regular_bytes(path: Path) -> bytes | None:
    """The file's bytes, None while it is missing (fetched again) or a link."""
    try:
        return None if path.is_symlink() else path.read_bytes()
    except FileNotFoundError:
        return None


def _requested_paths(hf_env: HubServer) -> list[str]:
    return [str(r["path"]) for which in ("hub", "cdn") for r in hf_env.requests(which)]


@pytest.mark.parametrize("how", sorted(TAMPER))
@aio
async def test_tampered_file_is_fetched_again_across_a_restart(
    hf_env: HubServer, root: Path, tmp_path: Path, how: str
) -> None:
    weights = _repo(hf_env)
    reporter = MemoryReporter()
    spec = await _fetched_then_stopped(root, reporter)

    target = root / "scrubbed" / "model.safetensors"
    outside = tmp_path / "elsewhere.safetensors"
    TAMPER[how](target, outside)
    foreign = outside.read_bytes() if outside.exists() else b""
    hf_env.clear_requests()
    reporter.history.clear()
    second = Agent(options(root, scrub_rate=FAST), reporter, Secrets())
    metrics = _metrics(second)
    await second.start(None, spec)
    try:
        await until(lambda: _regular_bytes(target) == weights)
        await until(lambda: reporter.state("scrubbed") is NodeState.READY)
    finally:
        await second.stop()
    assert os.lstat(target).st_size == len(weights)
    assert (root / "scrubbed" / "config.json").read_bytes() == CONFIG
    if foreign:  # the link's target is not ours: untouched
        assert outside.read_bytes() == foreign
    # the wrong file alone came again over the network
    assert [p for p in _requested_paths(hf_env) if "config.json" in p] == []
    assert any("model.safetensors" in p for p in _requested_paths(hf_env))
    states = [r.state for r in reporter.history]
    assert states[-1] is NodeState.READY
    assert NodeState.FAILED not in states
    updating = [r for r in reporter.history if r.state is NodeState.UPDATING]
    assert updating, states
    assert all(r.error and "model.safetensors" in r.error for r in updating)
    why = updating[0].error
    assert why is not None
    if how == "symlink-out-same-size":
        # refused at the restart already (lstat): never Ready on the link's bytes
        assert states[0] is NodeState.UPDATING
        assert "a symbolic link out of the model directory" in why
    else:
        # Ready at once from disk (the restart stays fast), then the scrub's repair
        assert states[0] is NodeState.READY
        assert "sha256 differs from the manifest's" in why
        assert metrics.scrub_mismatches._value.get() == 1
        assert metrics.scrub_bytes._value.get() >= len(weights)
    assert reporter.report("scrubbed").error is None  # Ready again: no message left


@aio
async def test_scrub_of_an_intact_model_publishes_nothing(hf_env: HubServer, root: Path) -> None:
    _repo(hf_env)
    reporter = MemoryReporter()
    agent = Agent(options(root, scrub_rate=FAST), reporter, Secrets())
    metrics = _metrics(agent)
    await agent.start(None, model("scrubbed", "hf://org/scrubbed", path="scrubbed"))
    try:
        await until(lambda: reporter.state("scrubbed") is NodeState.READY)
        published = len(reporter.history)
        hf_env.clear_requests()
        # two passes at least (one second apart): read, no report, no network
        await until(lambda: metrics.scrub_bytes._value.get() >= 2 * 2 * MiB, timeout=30)
        assert len(reporter.history) == published
        assert hf_env.requests("cdn") == []
        assert hf_env.requests("hub") == []
        assert metrics.scrub_mismatches._value.get() == 0
    finally:
        await agent.stop()


# ---------------------------------------------------------------- rate and cancellation
def test_token_bucket_bounds_the_rate_over_all_takers() -> None:
    rate = 4 * MiB
    bucket = TokenBucket(rate)
    never = threading.Event()
    started = time.monotonic()

    def taker() -> None:
        for _ in range(6):
            bucket.take(MiB, never)

    threads = [threading.Thread(target=taker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 12 MiB at 4 MiB/s, one second's worth free at the start: at least 2 s
    assert time.monotonic() - started >= (12 * MiB - rate) / rate - 0.05


def test_scrub_reading_stops_at_once_when_cancelled(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, {"big.bin": os.urandom(8 * MiB)})
    bucket = TokenBucket(MiB)  # eight seconds of reading
    stop = threading.Event()
    outcome: list[BaseException] = []

    def scrub() -> None:
        try:
            check_manifest(manifest, cancelled=stop, pace=lambda n: bucket.take(n, stop))
        except Interrupted as e:
            outcome.append(e)

    thread = threading.Thread(target=scrub)
    thread.start()
    time.sleep(0.3)
    cancelled_at = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - cancelled_at < 1.0
    assert len(outcome) == 1


@aio
async def test_removing_a_model_stops_its_scrub(hf_env: HubServer, root: Path) -> None:
    _repo(hf_env)
    reporter = MemoryReporter()
    # 64 KiB/s: the 2 MiB file takes half a minute, so the scrub is mid-file when removed
    agent = Agent(options(root, scrub_rate=64 * 1024), reporter, Secrets())
    metrics = _metrics(agent)
    await agent.start(None, model("scrubbed", "hf://org/scrubbed", path="scrubbed"))
    try:
        await until(lambda: reporter.state("scrubbed") is NodeState.READY)
        await until(lambda: metrics.scrub_bytes._value.get() > 0)
        agent.rec.replace_all(("ClusterBaseModel", "BaseModel"), [])
        await until(lambda: not (root / "scrubbed").exists())
        read = metrics.scrub_bytes._value.get()
        await asyncio.sleep(1.0)
        assert metrics.scrub_bytes._value.get() == read  # nothing read since
    finally:
        await agent.stop()


# ---------------------------------------------------------------- against the manifest
def _manifest(tmp_path: Path, files: dict[str, bytes]) -> Manifest:
    root = tmp_path / "m"
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    digests = {
        rel: ({"sha256": hashlib.sha256(b).hexdigest()}, ["size", "sha256"])
        for rel, b in files.items()
    }
    return Manifest(
        ModelKey("ClusterBaseModel", None, "m"), "uid", 1,
        Identity("hf://org/m", None, str(root)), None, record_files(root, digests),
    )  # fmt: skip


@pytest.mark.parametrize("how", sorted(TAMPER))
def test_stat_passes_the_tampering_that_hashing_finds(tmp_path: Path, how: str) -> None:
    manifest = _manifest(tmp_path, {"w.bin": os.urandom(MiB), "c.json": b"{}"})
    root = Path(manifest.identity.path)
    TAMPER[how](root / "w.bin", tmp_path / "out.bin")
    checks = {c.path: c for c in check_manifest(manifest, workers=2)}
    assert checks["c.json"].status is Status.OK
    assert checks["w.bin"].status is Status.MISMATCH
    if how == "symlink-out-same-size":
        assert not intact(manifest)  # lstat: a link is not the file, whatever its size
    else:
        assert intact(manifest)  # what a restart checks cannot see it: hashing does


def test_a_link_inside_the_directory_is_allowed_and_a_link_out_refused(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, {"w.bin": b"weights", "sub/c.json": b"{}"})
    root = Path(manifest.identity.path)
    (root / "alias.bin").symlink_to("w.bin")  # an alias to the model's own file
    (root / "sub" / "up").symlink_to("..")
    assert intact(manifest)
    refuse_links_out(root)
    assert all(c.status is Status.OK for c in check_manifest(manifest))
    (tmp_path / "secret").write_text("node credentials")
    (root / "sub" / "leak").symlink_to(tmp_path / "secret")
    assert not intact(manifest)
    with pytest.raises(BadInput, match=r"sub/leak is a symbolic link out of the model directory"):
        refuse_links_out(root)
    bad = [c for c in check_manifest(manifest) if c.status is not Status.OK]
    assert [(c.path, c.status) for c in bad] == [("sub/leak", Status.MISMATCH)]


def test_a_directory_linked_out_is_never_read_through(tmp_path: Path) -> None:
    manifest = _manifest(tmp_path, {"w.bin": b"weights", "sub/c.json": b"{}"})
    root = Path(manifest.identity.path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "c.json").write_bytes(b"{}")  # the very bytes: still not ours
    (root / "sub" / "c.json").unlink()
    (root / "sub").rmdir()
    (root / "sub").symlink_to(elsewhere)
    checks = {c.path: c for c in check_manifest(manifest)}
    assert checks["sub"].status is Status.MISMATCH
    assert checks["sub/c.json"].status is Status.MISMATCH
    assert checks["sub/c.json"].read == 0


def test_scrub_rate_is_checked_at_the_edge(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="--scrub-rate"):
        AgentOptions(node_name="n", models_roots=(tmp_path,), scrub_rate=-1.0)


@aio
async def test_repair_reports_pass_the_wire_schema(hf_env: HubServer, root: Path) -> None:
    """Updating with a message after Ready is new on the wire: every entry the repair
    publishes is encoded and checked against OME's schema, as the adapters do."""
    weights = _repo(hf_env)
    reporter = MemoryReporter()
    agent = Agent(options(root, scrub_rate=FAST), reporter, Secrets())
    await agent.start(None, model("scrubbed", "hf://org/scrubbed", path="scrubbed"))
    target = root / "scrubbed" / "model.safetensors"
    try:
        await until(lambda: reporter.state("scrubbed") is NodeState.READY)
        _flip_keep_mtime(target, root / "unused")
        await until(lambda: any(r.state is NodeState.UPDATING for r in reporter.history[1:]))
        await until(lambda: _regular_bytes(target) == weights)
        await until(lambda: reporter.state("scrubbed") is NodeState.READY)
    finally:
        await agent.stop()
    updating = [r for r in reporter.history if r.error]
    assert updating
    for report in reporter.history:
        entry = json.loads(encode_entry(report))  # raises on a schema violation
        assert entry.get("message") == report.error


@aio
async def test_restart_fetches_again_only_a_truncated_file(hf_env: HubServer, root: Path) -> None:
    weights = _repo(hf_env)
    reporter = MemoryReporter()
    spec = await _fetched_then_stopped(root, reporter)
    target = root / "scrubbed" / "model.safetensors"
    with target.open("r+b") as f:
        f.truncate(MiB)
    hf_env.clear_requests()
    reporter.history.clear()
    second = Agent(options(root, scrub_rate=0), reporter, Secrets())
    await second.start(None, spec)
    try:
        await until(lambda: _regular_bytes(target) == weights)
        await until(lambda: [r.state for r in reporter.history][-1:] == [NodeState.READY])
    finally:
        await second.stop()
    assert target.read_bytes() == weights
    assert [p for p in _requested_paths(hf_env) if "config.json" in p] == []
    why = reporter.history[0].error
    assert why is not None
    assert "model.safetensors: size or mtime changed" in why
    assert staging_leftovers(root) == []  # fetched in place, not a whole new download
