"""The reconcile core with names too long for their files as they were once written:
a manifest an earlier version stored under the model's full name is renamed at start
and confirms the model from disk (real HTTP server, in-memory reporter)."""

from __future__ import annotations

import os
from pathlib import Path

from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.ports import NodeState
from tests.servers.fault_server import FaultServer
from tests.test_reconcile_core import MemoryReporter, Secrets, aio, model, options, root, until

__all__ = ["root"]  # the fixture, re-exported for pytest

MiB = 1024 * 1024


@aio
async def test_a_manifest_under_its_full_name_is_migrated_at_start(
    fault_server: FaultServer, root: Path
) -> None:
    name = "l" * 210  # fits a file name (255) but not the budget, so it is now shortened
    url = fault_server.add("/long/w.bin", os.urandom(MiB))
    reporter = MemoryReporter()
    first = Reconciler(options(root), reporter, Secrets())
    first.set_node("node-a", {})
    first.replace_all(("ClusterBaseModel",), [model(name, url)])
    await first.start()
    assert await first.run_until_idle()
    assert reporter.state(name) is NodeState.READY
    manifests = root / ".ome-agent" / "manifests"
    (current,) = manifests.iterdir()
    legacy = manifests / f"ClusterBaseModel._.{name}.json"  # how earlier versions named it
    assert current != legacy
    current.rename(legacy)
    assert (root / name / "w.bin").is_file()  # the default directory kept the full name

    fault_server.requests.clear()
    reporter.history.clear()
    second = Reconciler(options(root), reporter, Secrets())
    second.set_node("node-a", {})
    second.replace_all(("ClusterBaseModel",), [model(name, url)])
    await second.start()
    await until(lambda: reporter.state(name) is NodeState.READY)
    assert await second.run_until_idle()
    assert [r.state for r in reporter.history] == [NodeState.READY]  # no flap, no download
    assert fault_server.requests == []
    assert [p.name for p in manifests.iterdir()] == [current.name]
