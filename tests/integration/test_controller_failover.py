"""Two ``ome-agent controller`` replicas on the real API server: one Lease, one leader.

The standby watches nothing and writes nothing; when the leader is killed (SIGKILL,
no release) the standby takes over within about the lease duration; when the leader
stops normally (SIGTERM) it releases the Lease, exits 0, and the standby takes over
at once. After each failover the new leader writes statuses.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.kube import Cluster, unique_name
from tests.integration.agent_process import API, cluster_model
from tests.integration.controller_process import (
    ControllerProcess,
    controller_kubeconfig,
    release_finalizers,
    status_of,
    wait_for,
)

LEASE_SECONDS = 2.0


@pytest.fixture
def replicas(cluster: Cluster, tmp_path: Path) -> Iterator[dict[str, ControllerProcess]]:
    namespace = cluster.make_namespace()
    kubeconfig = controller_kubeconfig(cluster, namespace, "ome-agent-controller")
    procs = {
        name: ControllerProcess(
            kubeconfig=kubeconfig,
            namespace=namespace,
            identity=name,
            log_path=tmp_path / f"{name}.log",
            extra_args=("--lease-duration", f"{LEASE_SECONDS:.0f}s"),
        )
        for name in ("ctl-a", "ctl-b")
    }
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.proc is not None:
                proc.stop()
        release_finalizers(cluster)


def lease_holder(cluster: Cluster, namespace: str) -> str:
    lease = cluster.request(
        "GET",
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/ome-agent-controller",
    )
    return str(lease["spec"].get("holderIdentity") or "")


def writes_status(cluster: Cluster, leader: ControllerProcess) -> None:
    """A model no node can hold gets NoEligibleNodes from the leader, once synced."""
    leader.wait_leading()
    name = unique_name("nowhere")
    cluster.apply(cluster_model(name, "hf://org/none", nodeSelector={"no-such": name}))
    wait_for(
        lambda: status_of(cluster, "ClusterBaseModel", name).get("state") == "NoEligibleNodes",
        15,
        f"status of {name}:\n{leader.log()[-2000:]}",
    )
    cluster.delete(API, "ClusterBaseModel", name)


def test_failover_on_kill_and_on_sigterm(
    cluster: Cluster, replicas: dict[str, ControllerProcess]
) -> None:
    a, b = replicas["ctl-a"], replicas["ctl-b"]
    namespace = a.namespace
    a.start()
    wait_for(a.leading, 15, f"ctl-a leading:\n{a.log()}")
    b.start()  # ready while on standby
    time.sleep(LEASE_SECONDS * 1.5)
    assert not b.leading(), b.log()
    assert "waiting" in b.log()
    assert b.metric("ome_agent_controller_reconciles_total") == 0
    assert lease_holder(cluster, namespace) == "ctl-a"
    writes_status(cluster, a)

    a.kill()
    killed = time.monotonic()
    wait_for(b.leading, 4 * LEASE_SECONDS + 5, f"ctl-b leading:\n{b.log()}")
    took = time.monotonic() - killed
    # the Lease must first be seen unchanged for a whole lease duration
    assert LEASE_SECONDS * 0.5 <= took <= 3 * LEASE_SECONDS + 2, took
    assert lease_holder(cluster, namespace) == "ctl-b"
    writes_status(cluster, b)

    a.start()
    time.sleep(0.5)
    assert not a.leading()
    stopped = time.monotonic()
    assert b.stop() == 0
    assert "released Lease" in b.log()
    wait_for(a.leading, LEASE_SECONDS + 3, f"ctl-a leading again:\n{a.log()}")
    # released: no need to wait out the lease duration
    assert time.monotonic() - stopped < LEASE_SECONDS + 1.5
    assert lease_holder(cluster, namespace) == "ctl-a"
    writes_status(cluster, a)
