"""The node agent starting in a cluster that is not ready for it: its Node does not
exist yet, or the API server is down. It waits, says why once, stays alive (/livez)
and unready (/healthz), and becomes ready by itself when the cluster is there."""

from __future__ import annotations

from pathlib import Path

from ome_agent.adapters.kube.agent import WATCHED_KINDS
from tests.cluster.kube import Cluster, unique_name
from tests.integration.agent_process import Agent, wait_for


def _agent(cluster: Cluster, tmp: Path, node: str) -> Agent:
    namespace = cluster.make_namespace()
    (tmp / "models").mkdir()
    return Agent(
        kubeconfig=cluster.service_account_kubeconfig(namespace, "ome-agent"),
        node=node,
        namespace=namespace,
        models_root=tmp / "models",
        log_path=tmp / "agent.log",
    )


def test_waits_for_its_node(cluster: Cluster, tmp_path: Path) -> None:
    node = unique_name("late-node")
    agent = _agent(cluster, tmp_path, node).start(wait_ready=False)
    try:
        wait_for(lambda: f"Node {node} does not exist" in agent.log(), 30, "the log line")
        assert agent.get("/livez")[0] == 200
        assert agent.get("/healthz") == (503, "first sync not done\n")
        cluster.make_node(node)
        agent.wait_ready()
        assert agent.log().count(f"Node {node} does not exist") == 1
    finally:
        assert agent.stop() == 0


def test_starts_while_the_api_server_is_down(cluster: Cluster, tmp_path: Path) -> None:
    node = unique_name("node")
    cluster.make_node(node)
    agent = _agent(cluster, tmp_path, node)
    cluster.control_plane.stop_apiserver()
    try:
        agent.start(wait_ready=False)
        wait_for(lambda: "API server request failed" in agent.log(), 30, "the failure logged")
        assert agent.get("/livez")[0] == 200
        assert agent.get("/healthz")[0] == 503
    finally:
        cluster.control_plane.start_apiserver()
    try:
        agent.wait_ready(60)
        log = agent.log()
        # at most one line per watched collection and state change, not one per retry
        watches = len(WATCHED_KINDS) + 1  # the model kinds and the own Node
        assert log.count("API server request failed") <= watches, log
        assert "Traceback" not in log
    finally:
        assert agent.stop() == 0


def test_health_address_is_where_it_listens(cluster: Cluster, tmp_path: Path) -> None:
    """``--health-address 127.0.0.2``: the probes answer there and nowhere else (the
    default, 0.0.0.0, would answer on 127.0.0.1 too)."""
    import urllib.request

    node = unique_name("node")
    cluster.make_node(node)
    agent = _agent(cluster, tmp_path, node)
    agent.extra_args = ("--health-address", "127.0.0.2")
    agent.start(wait_ready=False)
    try:

        def answers(host: str) -> bool:
            try:
                url = f"http://{host}:{agent.port}/livez"
                with urllib.request.urlopen(url, timeout=5) as r:
                    return bool(r.status == 200)
            except OSError:
                return False

        wait_for(lambda: answers("127.0.0.2"), 30, "/livez on 127.0.0.2")
        assert not answers("127.0.0.1")
        assert "health on 127.0.0.2:" in agent.log()
    finally:
        assert agent.stop() == 0
