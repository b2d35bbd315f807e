"""``storage.downloadPolicy: ReuseIfExists`` on the real API server with an agent process
and the local Hub, whose request log counts the downloads: two models of one repo and
revision cost one download; a restart downloads nothing; deleting the parent leaves the
child Ready with every byte; a model reusing that child splits off when its revision
changes, and deleting it leaves the child untouched. OME's artifact fields are read
from the node's ConfigMap (each entry decoded as OME would) at every step."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.cluster.kube import Cluster, unique_name
from tests.integration.agent_process import API, agent_on, cluster_model, entry, wait_for
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

SEL = "ome-test/node"
WEIGHTS = "model.safetensors"
CONFIG = json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}).encode()


def _downloads(hub: HubServer) -> int:
    """GETs of the weights on the Hub's resolve route: one per download, since the agent
    runs with one range request per file (``--chunk-size 1G``)."""
    return sum(
        1
        for r in hub.requests("hub")
        if r["method"] == "GET" and "/resolve/" in r["path"] and r["path"].endswith(WEIGHTS)
    )


def test_reuse_downloads_once_and_survives_restart_deletes_and_splits(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace, node = cluster.make_namespace_and_node(SEL)
    root = tmp_path / "models"
    root.mkdir()
    weights, other = os.urandom(3 * 1024 * 1024), os.urandom(1024 * 1024)
    parent, child, late = unique_name("parent"), unique_name("child"), unique_name("late")

    def declare(name: str, uri: str = "hf://org/shared") -> None:
        cluster.apply(
            cluster_model(
                name, uri, path=str(root / name), nodeSelector={SEL: node},
                downloadPolicy="ReuseIfExists",
            )
        )  # fmt: skip

    def ready(name: str) -> dict[str, Any]:
        e = wait_for(
            lambda: (
                (e := entry(cluster, namespace, node, f"clusterbasemodel.{name}"))
                and e["status"] == "Ready"
                and e
            ),
            90,
            f"{name} Ready:\n{agent.log()[-3000:]}",
        )
        return dict(e["config"]["artifact"])

    def artifact_becomes(name: str, field: str, value: Any) -> None:
        wait_for(lambda: ready(name)[field] == value, 30, f"{name} {field} == {value}")

    with HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024) as hub:
        commit = hub.add_repo("org/shared", {"config.json": CONFIG, WEIGHTS: weights})
        hub.add_repo("org/shared", {"config.json": CONFIG, WEIGHTS: other}, revision="v2")
        agent = agent_on(
            cluster,
            namespace,
            node,
            tmp_path,
            env={"HF_ENDPOINT": hub.endpoint},
            extra_args=("--chunk-size", "1G"),
        ).start()
        try:
            # two models of one repo and revision, declared together: one download
            declare(parent)
            declare(child)
            ready(parent)
            ready(child)
            assert _downloads(hub) == 1, agent.log()[-3000:]
            assert agent.metric("ome_agent_downloads_total", result="success") == 1
            assert agent.metric("ome_agent_downloads_total", result="reused") == 1
            # which one downloaded depends on the order the watch delivered them
            reusing = [n for n in (parent, child) if ready(n)["parentPath"]]
            assert len(reusing) == 1, "exactly one of them reuses the other"
            second = reusing[0]
            first = child if second == parent else parent
            artifact_becomes(first, "childrenPaths", [str(root / second)])
            assert ready(second) == {
                "sha": commit,
                "parentPath": {f"clusterbasemodel.{first}": str(root / first)},
                "childrenPaths": [],
            }
            assert (root / first / WEIGHTS).stat().st_ino == (root / second / WEIGHTS).stat().st_ino

            # a restart: nothing re-downloaded, not even listed; the fields unchanged
            assert agent.stop() == 0
            hub.clear_requests()
            agent.start()
            assert ready(first)["childrenPaths"] == [str(root / second)]
            assert ready(second)["parentPath"] == {f"clusterbasemodel.{first}": str(root / first)}
            assert hub.requests("hub") == []
            assert hub.requests("cdn") == []

            # the parent goes: the child stays Ready with every byte, its parentPath empty
            cluster.delete(API, "ClusterBaseModel", first)
            wait_for(lambda: not (root / first).exists(), 60, f"{first} removed")
            artifact_becomes(second, "parentPath", {})
            assert (root / second / WEIGHTS).read_bytes() == weights
            assert (root / second / "config.json").read_bytes() == CONFIG

            # a new model reuses the survivor, then splits off with another revision
            declare(late)
            artifact_becomes(late, "parentPath", {f"clusterbasemodel.{second}": str(root / second)})
            artifact_becomes(second, "childrenPaths", [str(root / late)])
            assert _downloads(hub) == 0
            declare(late, "hf://org/shared@v2")
            wait_for(lambda: (root / late / WEIGHTS).read_bytes() == other, 90, "v2 in place")
            artifact_becomes(late, "parentPath", {})
            artifact_becomes(second, "childrenPaths", [])
            assert _downloads(hub) == 1

            # the model that was its child goes: the survivor is untouched
            before = (root / second / WEIGHTS).stat()
            cluster.delete(API, "ClusterBaseModel", late)
            wait_for(lambda: not (root / late).exists(), 60, f"{late} removed")
            after = (root / second / WEIGHTS).stat()
            assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
            assert (root / second / WEIGHTS).read_bytes() == weights
            assert ready(second)["childrenPaths"] == []
            cluster.delete(API, "ClusterBaseModel", second)
            wait_for(lambda: not (root / second).exists(), 60, f"{second} removed")
        finally:
            assert agent.stop() == 0, agent.log()[-3000:]
