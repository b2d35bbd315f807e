"""Faults that come through Kubernetes, on a real kubelet: a node label changed so a
model no longer belongs on the node (its files, node label and ConfigMap entry go,
the agent pod stays); ``cordon`` + ``drain`` + ``uncordon``, a kubelet restart and a
containerd restart (nothing lost: the model stays Ready, its files untouched, nothing
fetched again, its node label never absent, the agent pod neither replaced nor
restarted).

Where it sits: the real-node tier (marked ``node``), on the chart ``release`` of
``conftest``; the kubelet and containerd are restarted by ``scripts/real-node.sh
restart-kubelet`` and ``restart-containerd``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cluster.kube import wait_until
from tests.node.conftest import (
    NAMESPACE,
    RELEASE,
    Release,
    agent_logs,
    cluster_model,
    create_ready_model,
    node_entry,
    pods,
)
from tests.node.realnode import LabelWatch, pod_ready
from tests.node.test_smoke import CONFIG, SHARD

pytestmark = pytest.mark.node

POOL = "ome-test/pool"  # the node label the relabel test selects on
FILES = {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": SHARD}


def model_label(name: str) -> str:
    return f"models.ome.io/clusterbasemodel.{name}"


def identity(path: Path) -> dict[str, tuple[int, int]]:
    """Inode and mtime of the model's files: both change if a file is written again."""
    return {f: ((p := path / f).stat().st_ino, p.stat().st_mtime_ns) for f in FILES}


def fetches(release: Release) -> list[str]:
    """File downloads the local Hub and its CDN served (metadata calls left out)."""
    hub = [
        r["path"]
        for r in release.hub.requests("hub")
        if r["method"] == "GET" and "/resolve/" in r["path"]
    ]
    return hub + [r["path"] for r in release.hub.requests("cdn") if r["method"] == "GET"]


def agent_pod(release: Release) -> tuple[str, int]:
    """The agent pod's uid and its container's restart count."""
    (pod,) = pods(release, "node-agent")
    return pod.metadata.uid, sum(c.restart_count for c in pod.status.container_statuses or [])


@pytest.fixture
def model(release: Release, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """A Ready hf:// model of a repo of its own; deleted afterwards."""
    repo = f"org/{request.node.name.removeprefix('test_').split('_')[0]}"
    release.hub.add_repo(repo, FILES)
    name, path, status = create_ready_model(release, repo)
    assert status["nodesReady"] == [release.node.name]
    yield name, path
    delete_model(release, name)


def delete_model(release: Release, name: str) -> None:
    release.node.custom().delete_cluster_custom_object(
        "ome.io", "v1beta1", "clusterbasemodels", name
    )
    wait_until(lambda: cluster_model(release, name) is None, 120, 1, f"{name} deleted")


@dataclass
class Before:
    """What a fault must leave as it was: the model's files, the agent pod, and its
    node label (watched from here on)."""

    name: str
    path: Path
    files: dict[str, tuple[int, int]]
    pod: tuple[str, int]
    watched: LabelWatch


def before_fault(release: Release, model: tuple[str, Path]) -> Before:
    """The model's state before a fault, with the Hub's request log cleared."""
    name, path = model
    files, pod = identity(path), agent_pod(release)
    release.hub.clear_requests()
    return Before(name, path, files, pod, LabelWatch(release.node, model_label(name)))


def assert_nothing_lost(release: Release, before: Before) -> None:
    node = release.node
    status = (cluster_model(release, before.name) or {}).get("status", {})
    assert status.get("state") == "Ready", status
    assert status["nodesReady"] == [node.name]
    entry = node_entry(release, f"clusterbasemodel.{before.name}")
    assert (entry or {}).get("status") == "Ready", entry
    assert identity(before.path) == before.files, "the model's files were written again"
    assert fetches(release) == [], "the model was downloaded again"
    assert agent_pod(release) == before.pod, "the agent pod was replaced or restarted"
    seen = before.watched.stop()
    assert set(seen) == {"Ready"}, f"the node label took the values {seen}"


def test_relabelled_node_drops_a_model_it_no_longer_selects(release: Release) -> None:
    node = release.node
    node.kubectl("label", "node", node.name, f"{POOL}=faults-a", "--overwrite")
    name = ""
    try:
        release.hub.add_repo("org/picky", FILES)
        name, path, status = create_ready_model(
            release, "org/picky", nodeSelector={POOL: "faults-a"}
        )
        key = f"clusterbasemodel.{name}"
        assert status["nodesReady"] == [node.name]
        assert node.node_labels().get(model_label(name)) == "Ready"
        assert (node_entry(release, key) or {}).get("status") == "Ready"
        assert (path / "model.safetensors").read_bytes() == SHARD
        pod = agent_pod(release)

        t0 = time.monotonic()
        node.kubectl("label", "node", node.name, f"{POOL}=faults-b", "--overwrite")
        wait_until(
            lambda: (
                not path.exists()
                and model_label(name) not in node.node_labels()
                and node_entry(release, key) is None
            ),
            timeout=120,
            interval=1,
            what=f"files, label and entry of {name} gone; agent says:\n{agent_logs(release)}",
        )
        gone = time.monotonic() - t0
        # the controller stops counting the node once its entry is gone
        wait_until(
            lambda: (
                node.name
                not in (
                    (cluster_model(release, name) or {}).get("status", {}).get("nodesReady") or []
                )
            ),
            timeout=60,
            interval=1,
            what=f"{name} no longer Ready on {node.name}",
        )
        assert agent_pod(release) == pod, "the agent pod was replaced or restarted"
        print(f"model gone from the relabelled node in {gone:.1f}s")
    finally:
        if name:
            delete_model(release, name)
        node.kubectl("label", "node", node.name, f"{POOL}-")


def test_cordon_drain_uncordon_loses_nothing(release: Release, model: tuple[str, Path]) -> None:
    node = release.node
    assert fetches(release), "the model's files came from the local Hub"
    controllers = {p.metadata.uid for p in pods(release, "controller")}
    before = before_fault(release, model)

    t0 = time.monotonic()
    node.kubectl("cordon", node.name)
    try:
        node.kubectl(
            "drain", node.name, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=180s"
        )
        # the drain evicted the controller; its replacement waits for the uncordon
        assert controllers.isdisjoint(p.metadata.uid for p in pods(release, "controller"))
    finally:
        node.kubectl("uncordon", node.name)
    node.kubectl(
        "-n", NAMESPACE, "rollout", "status", f"deployment/{RELEASE}-controller", "--timeout=180s"
    )
    cycle = time.monotonic() - t0
    assert_nothing_lost(release, before)
    print(f"cordon + drain + uncordon, controller back, in {cycle:.1f}s")


def test_kubelet_restart_loses_nothing(release: Release, model: tuple[str, Path]) -> None:
    node = release.node
    before = before_fault(release, model)

    ready = node.restart_kubelet()
    # the restarted kubelet syncs every pod within seconds: a pod it meant to restart
    # or replace would show by then
    time.sleep(15)
    assert all(pod_ready(p) for p in pods(release, "node-agent"))
    assert_nothing_lost(release, before)
    print(f"kubelet restarted, node Ready again in {ready:.1f}s")


def test_containerd_restart_loses_nothing(release: Release, model: tuple[str, Path]) -> None:
    node = release.node
    before = before_fault(release, model)

    ready = node.restart_containerd()
    # the kubelet relists the runtime after it reconnects: a container it took for dead
    # would be restarted by then
    t0 = time.monotonic()
    wait_until(
        lambda: all(pod_ready(p) for p in pods(release, "node-agent")),
        timeout=120,
        interval=1,
        what=f"the agent pod Ready after containerd's restart; agent says:\n{agent_logs(release)}",
    )
    agent_ready = ready + time.monotonic() - t0
    time.sleep(15)
    assert all(pod_ready(p) for p in pods(release, "node-agent"))
    assert_nothing_lost(release, before)
    print(
        f"containerd restarted, node Ready again in {ready:.1f}s, "
        f"agent pod Ready {agent_ready:.1f}s after the restart began"
    )
