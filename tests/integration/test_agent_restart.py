"""The node agent across restarts, on the real API server: a restarted agent confirms
Ready models from disk with no download and no label flap (the Node is watched
throughout to prove it) and no API write at all; an API server restart mid-run is
survived; and the ServiceAccount's rules are each needed: without one, the agent
says so clearly and the rest keeps working."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ome_agent.observability.kube_metrics import WRITE_VERBS
from tests.cluster.kube import Cluster, unique_name
from tests.integration.agent_process import (
    API,
    Agent,
    NodeLabelRecorder,
    agent_on,
    cluster_model,
    config_map,
    entry,
    node_labels,
    wait_for,
)
from tests.servers.fault_server import FaultServer, Throttle

SEL = "ome-test/node"


def _agent(
    cluster: Cluster, tmp: Path, namespace: str, node: str, sa: str = "ome-agent", **kw: Any
) -> Agent:
    (tmp / "models").mkdir(exist_ok=True)
    return agent_on(cluster, namespace, node, tmp, sa=sa, log=f"{sa}.log", rbac=kw)


def _writes(agent: Agent) -> float:
    return sum(agent.metric("ome_agent_kube_requests_total", verb=v) for v in WRITE_VERBS)


def test_restart_confirms_from_disk_without_flap_then_survives_apiserver_restart(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace, node = cluster.make_namespace_and_node(SEL)
    names = [unique_name("keep") for _ in range(3)]
    keys = [f"models.ome.io/clusterbasemodel.{n}" for n in names]
    with FaultServer("127.0.0.1") as server:
        agent = _agent(cluster, tmp_path, namespace, node).start()
        try:
            for n in names:
                url = server.add(f"/{n}/w.bin", n.encode() * 5000)
                cluster.apply(cluster_model(n, url, nodeSelector={SEL: node}))
            for k in keys:
                wait_for(lambda k=k: node_labels(cluster, node).get(k) == "Ready", 60, k)
            assert agent.stop() == 0
            requests_before = len(server.requests)
            recorder = NodeLabelRecorder(cluster, node, keys)
            agent.start()  # waits for /healthz: first sync and confirmation done
            wait_for(lambda: agent.metric("ome_agent_kube_requests_total", verb="watch"), 10)
            recorder.stop()
            # no download, no label flap, and not a single API write
            assert len(server.requests) == requests_before
            for k in keys:
                # every event of the restart was seen (the last is the wake-up label)
                # and the label never left Ready
                assert recorder.seen[k], k
                assert set(recorder.seen[k]) == {"Ready"}, (k, recorder.seen[k])
            assert _writes(agent) == 0
            for n in names:
                e = entry(cluster, namespace, node, f"clusterbasemodel.{n}")
                assert e is not None
                assert e["status"] == "Ready"

            # the API server restarts under the running agent: it recovers and reports
            cluster.control_plane.restart_apiserver()
            late = unique_name("late")
            url = server.add(f"/{late}/w.bin", b"after the restart" * 100)
            cluster.apply(cluster_model(late, url, nodeSelector={SEL: node}))
            wait_for(
                lambda: (
                    (entry(cluster, namespace, node, f"clusterbasemodel.{late}") or {}).get(
                        "status"
                    )
                    == "Ready"
                ),
                60,
                f"a model created after the API server restart:\n{agent.log()[-3000:]}",
            )
            agent.wait_ready()
            for n in [*names, late]:
                cluster.delete(API, "ClusterBaseModel", n)
        finally:
            assert agent.stop() == 0


@pytest.mark.parametrize(
    ("without", "missing"),
    [(("configmaps", "create"), "configmap"), (("nodes", "patch"), "labels")],
)
def test_each_rbac_rule_is_needed(
    cluster: Cluster, tmp_path: Path, without: tuple[str, str], missing: str
) -> None:
    namespace, node = cluster.make_namespace_and_node(SEL)
    name = unique_name("rbac")
    key = f"clusterbasemodel.{name}"
    with FaultServer("127.0.0.1") as server:
        agent = _agent(cluster, tmp_path, namespace, node, sa="limited", without=without).start()
        try:
            url = server.add(f"/{name}/w.bin", b"x" * 1000)
            cluster.apply(cluster_model(name, url, nodeSelector={SEL: node}))
            forbidden = f"{without[0]}"
            wait_for(
                lambda: "403" in agent.log() and forbidden in agent.log(), 60, "the 403 logged"
            )
            log = agent.log()
            line = next(ln for ln in log.splitlines() if "403" in ln and forbidden in ln)
            assert "cannot write reports" in line
            assert "lacks a permission" in line
            if missing == "configmap":
                # labels still work; the ConfigMap cannot exist
                wait_for(
                    lambda: node_labels(cluster, node).get(f"models.ome.io/{key}") == "Ready", 60
                )
                assert config_map(cluster, namespace, node) is None
            else:
                wait_for(
                    lambda: (entry(cluster, namespace, node, key) or {}).get("status") == "Ready",
                    60,
                )
                assert f"models.ome.io/{key}" not in node_labels(cluster, node)
            cluster.delete(API, "ClusterBaseModel", name)
        finally:
            assert agent.stop() == 0


def test_sigterm_during_download_exits_cleanly_and_the_restart_resumes(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace, node = cluster.make_namespace_and_node(SEL)
    name = unique_name("resume")
    key = f"clusterbasemodel.{name}"
    size = 16 * 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    with FaultServer("127.0.0.1") as server:
        path = f"/{name}/big.bin"
        url = server.add(path, data)
        # one connection at 4 MB/s: the engine journals each range it completes
        server.set_faults(path, Throttle(bytes_per_sec=4_000_000))
        agent = _agent(cluster, tmp_path, namespace, node)
        agent.extra_args = ("--max-connections", "1")
        agent.start()
        try:
            cluster.apply(cluster_model(name, url, nodeSelector={SEL: node}))
            wait_for(
                lambda: (entry(cluster, namespace, node, key) or {}).get("status") == "Updating",
                30,
                "Updating",
            )
            wait_for(
                lambda: server.total_bytes_sent(path) >= size // 2 + 1024 * 1024,
                30,
                "the first half sent",
            )
            time.sleep(1.0)  # the engine's journal commits every 500 ms
            t0 = time.monotonic()
            assert agent.stop() == 0
            assert time.monotonic() - t0 < 10
            assert "Traceback" not in agent.log()
            before = len(server.requests)
            server.clear_faults(path)
            agent.start()
            wait_for(
                lambda: (entry(cluster, namespace, node, key) or {}).get("status") == "Ready",
                60,
                f"Ready after the restart:\n{agent.log()[-3000:]}",
            )
            resumed = sum(r.bytes_sent for r in server.requests[before:] if r.method == "GET")
            # the second run fetched only what the first had not kept
            assert resumed < size, (resumed, size)
            done = Path(entry(cluster, namespace, node, key)["path"]) / "big.bin"  # type: ignore[index]
            assert done.read_bytes() == data
            cluster.delete(API, "ClusterBaseModel", name)
        finally:
            assert agent.stop() == 0
