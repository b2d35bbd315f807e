"""Each kind of download failure reaches the node's report and the failure metric with
its typed reason: engine error → PyO3 exception fields → ``TransferFailed.reason`` →
reconcile core → ``NodeReport.reason`` (whose message is the ConfigMap entry's) and the
``reason`` label.

Real servers throughout: the fault server, a local Hub, a closed port, a small tmpfs;
the engine is the real one with one retry, so retried failures end quickly. The
assertions read the typed fields, never the message text.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from ome_agent import _core
from ome_agent.errors import FailureReason
from ome_agent.observability.metrics import FAILURE_REASONS, AgentMetrics
from ome_agent.reconcile import fetching
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.ports import NodeReport, NodeState
from ome_agent.transfer.settings import TransferSettings
from tests.servers.fault_server import ChangeObject, Fault, FaultServer, Status
from tests.servers.hf_hub_server import HubServer
from tests.test_reconcile_core import MemoryReporter, Secrets, aio, model, options

MiB = 1024 * 1024
DATA = os.urandom(24 * MiB)  # larger than the first piece: later ranges see a change


@pytest.fixture(autouse=True)
def one_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's real engine, with one retry instead of eight (seconds of backoff)."""

    def build_engine(settings: TransferSettings) -> _core.Engine:
        return _core.Engine(**settings.engine_kwargs(), max_retries=1)

    monkeypatch.setattr(fetching, "build_engine", build_engine)


async def fail(root: Path, uri: str) -> tuple[NodeReport, CollectorRegistry]:
    """Reconcile one model until its first failure; its report and the metrics."""
    reporter = MemoryReporter()
    registry = CollectorRegistry()
    rec = Reconciler(options(root), reporter, Secrets(), metrics=AgentMetrics(registry))
    rec.set_node("node-a", {})
    rec.apply(model("m", uri, path="m"))
    await rec.start()
    assert not await rec.run_until_idle()
    report = reporter.report("m")
    assert report.state is NodeState.FAILED
    return report, registry


def assert_counted(registry: CollectorRegistry, label: str) -> None:
    counts = {
        r: registry.get_sample_value("ome_agent_failures_total", {"reason": r})
        for r in FAILURE_REASONS
    }
    assert counts == {r: 1.0 if r == label else 0.0 for r in FAILURE_REASONS}


def test_every_reason_counts_under_a_metric_label() -> None:
    assert {r.category for r in FailureReason} == set(FAILURE_REASONS)


@pytest.mark.parametrize(
    ("fault", "reason", "label"),
    [
        (Status(code=404), FailureReason.NOT_FOUND, "source"),
        (Status(code=403), FailureReason.DENIED, "credentials"),
        (Status(code=429), FailureReason.THROTTLED, "source"),
        (Status(code=503), FailureReason.THROTTLED, "source"),
        (Status(code=500), FailureReason.SERVER, "source"),
        # every request after the first sees a new version: the restarts run out
        (ChangeObject(after_requests=1, body=DATA, times=None), FailureReason.CHANGED_UPSTREAM,
         "source"),
    ],
    ids=["404", "403", "429", "503", "500", "changed-upstream"],
)  # fmt: skip
@aio
async def test_http_failures_keep_their_reason(
    fault_server: FaultServer, tmp_path: Path, fault: Fault, reason: FailureReason, label: str
) -> None:
    url = fault_server.add("/w.bin", DATA)
    fault_server.set_faults("/w.bin", fault)
    report, registry = await fail(tmp_path, url)
    assert report.reason is reason, report
    assert_counted(registry, label)


@aio
async def test_connection_refused_is_a_network_failure(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report, registry = await fail(tmp_path, f"http://127.0.0.1:{port}/w.bin")
    assert report.reason is FailureReason.NETWORK, report
    assert_counted(registry, "source")


@aio
async def test_checksum_mismatch_is_a_verify_failure(hf_env: HubServer, tmp_path: Path) -> None:
    weights = os.urandom(2 * MiB)
    hf_env.add_repo("org/bad", {"model.safetensors": weights})
    served = hf_env.lfs_file(hashlib.sha256(weights).hexdigest())
    assert served is not None
    served.data = os.urandom(len(weights))  # the CDN now serves other bytes than listed
    report, registry = await fail(tmp_path, "hf://org/bad")
    assert report.reason is FailureReason.CHECKSUM, report
    assert_counted(registry, "verify")


@aio
async def test_full_disk_during_download_is_a_disk_failure(
    fault_server: FaultServer, tiny_fs: Path
) -> None:
    # a plain URL has no size in its listing: the kernel's ENOSPC, not the space check
    url = fault_server.add("/big.bin", DATA)
    report, registry = await fail(tiny_fs, url)
    assert report.reason is FailureReason.DISK_FULL, report
    assert_counted(registry, "disk")
