"""``ome-agent controller`` on the real API server with two real node agents.

Two Nodes (no kubelet: the test writes their Ready condition as a kubelet would),
two ``ome-agent run`` processes with different NODE_NAMEs, one controller process,
each with a ServiceAccount token bound to its deploy/ RBAC. Models come from a local
Hub server (config.json + safetensors, so the back-fill has a config) and a local
HTTP server (throttled, to see the download running; 404, to see it fail).

Checked: Updating → Ready with lifecycle, counts and sorted nodesReady; Failed with
the agent's reason in the Degraded condition and an Event; back-fill of empty spec
fields that never overrides the user's; deletion waits for the nodes, and with one
agent stopped times out with the condition and an Event; the ConfigMap of a deleted
Node is collected; in a steady state the controller writes and lists nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ome_agent.api import GROUP
from ome_agent.fleet.deletion import FINALIZER
from tests.cluster.kube import Cluster, unique_name
from tests.data import hf_config
from tests.data.safetensors_fixtures import shard_bytes
from tests.integration.agent_process import API, Agent, cluster_model, config_map, entry
from tests.integration.controller_process import (
    ControllerProcess,
    condition,
    controller_in,
    model_object,
    ready_node,
    release_finalizers,
    status_of,
    status_when,
    wait_for,
)
from tests.servers.fault_server import FaultServer, Status, Throttle
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

SEL = "ome-test/controller"  # the label every model of this module selects
CONFIG = hf_config("llama3_1")
SHARD = shard_bytes({"model.embed_tokens.weight": ("BF16", (64, 32))})
# long enough that a loaded machine still sees the WaitingForNodes phase before it ends
FINALIZER_TIMEOUT = 12.0


@dataclass
class Env:
    cluster: Cluster
    namespace: str
    group: str  # the value of SEL on both nodes
    node_a: str  # labelled role=a
    node_b: str  # labelled role=b
    agents: dict[str, Agent]
    controller: ControllerProcess
    hub: HubServer
    fault: FaultServer

    def model(self, name: str, uri: str, **selector: str) -> dict[str, Any]:
        return cluster_model(name, uri, nodeSelector={SEL: self.group, **selector})

    def status(self, name: str) -> dict[str, Any]:
        return dict(status_of(self.cluster, "ClusterBaseModel", name))

    def events(self, name: str) -> list[dict[str, Any]]:
        listed = self.cluster.request(
            "GET",
            "/api/v1/namespaces/default/events",
            query=[("fieldSelector", f"involvedObject.name={name}")],
        )
        return list(listed.get("items") or [])

    def metric(self, name: str, **labels: str) -> float:
        return self.controller.metric(name, **labels)

    def logs(self) -> str:
        reports = {
            n: (c.data if (c := config_map(self.cluster, self.namespace, n)) else None)
            for n in self.agents
        }
        return f"reports: {reports}\nrequests: {self.fault.requests[:5]}\n" + "\n".join(
            [f"--- controller\n{self.controller.log()[-3000:]}"]
            + [f"--- agent {n}\n{a.log()[-1500:]}" for n, a in self.agents.items()]
        )


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("controller")
    namespace = cluster.make_namespace()
    group = unique_name("grp")
    node_a = ready_node(cluster, "node-a", {SEL: group, "role": "a"})
    node_b = ready_node(cluster, "node-b", {SEL: group, "role": "b"})
    agent_config = cluster.service_account_kubeconfig(namespace, "ome-agent")
    hub = HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024).start()
    hub.add_repo(
        "org/tiny", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": SHARD}
    )
    fault = FaultServer("127.0.0.1").start()
    agents = {}
    for node in (node_a, node_b):
        (work / node).mkdir()
        agents[node] = Agent(
            kubeconfig=agent_config,
            node=node,
            namespace=namespace,
            models_root=work / node,
            log_path=work / f"{node}.log",
            env={"HF_ENDPOINT": hub.endpoint},
        )
    controller = controller_in(
        cluster,
        namespace,
        work,
        extra_args=("--finalizer-timeout", f"{FINALIZER_TIMEOUT:.0f}s", "--lease-duration", "3s"),
    )
    for agent in agents.values():
        agent.start(wait_ready=False)
    controller.start().wait_leading()
    for agent in agents.values():
        agent.wait_ready()
    env = Env(cluster, namespace, group, node_a, node_b, agents, controller, hub, fault)
    try:
        yield env
    finally:
        codes = {"controller": controller.stop()}
        codes.update({n: a.stop() for n, a in agents.items()})
        hub.stop()
        fault.stop()
        release_finalizers(cluster)
        assert set(codes.values()) == {0}, f"exit codes {codes}:\n{env.logs()}"


def test_updating_then_ready_on_the_eligible_node_only(env: Env) -> None:
    name = unique_name("slow")
    body = b"w" * 600_000
    url = env.fault.add(f"/{name}/weights.bin", body)
    env.fault.set_faults(f"/{name}/weights.bin", Throttle(bytes_per_sec=300_000, methods=("GET",)))
    env.cluster.apply(env.model(name, url, role="a"))

    downloading = status_when(
        env.status, name, "lifecycle", "Downloading", 90, f"lifecycle Downloading:\n{env.logs()}"
    )
    assert downloading["state"] == "In_Transit"
    assert downloading["eligibleNodeCount"] == 1
    assert condition(downloading, "Progressing")["status"] == "True"
    assert env.node_a in condition(downloading, "Progressing")["message"]

    ready = status_when(env.status, name, "state", "Ready", 90, f"Ready:\n{env.logs()}")
    obj = model_object(env.cluster, "ClusterBaseModel", name)
    assert FINALIZER in obj["metadata"]["finalizers"]
    assert ready["lifecycle"] == "Ready"
    assert ready["nodesReady"] == [env.node_a]
    assert ready["nodesFailed"] == []
    assert (ready["eligibleNodeCount"], ready["readyNodeCount"]) == (1, 1)
    # the back-fill makes a new generation, which the next status then observes
    wait_for(
        lambda: (
            env.status(name).get("observedGeneration")
            == model_object(env.cluster, "ClusterBaseModel", name)["metadata"]["generation"]
        ),
        10,
        "observedGeneration",
    )
    assert condition(ready, "Ready")["status"] == "True"
    assert "1/1 nodes ready" in condition(ready, "Ready")["message"]
    # the other node's agent never reported it
    assert entry(env.cluster, env.namespace, env.node_b, f"clusterbasemodel.{name}") is None
    wait_for(lambda: any(e["reason"] == "Ready" for e in env.events(name)), 10, "Ready Event")


def test_failed_with_the_reason(env: Env) -> None:
    name = unique_name("missing")
    url = env.fault.add(f"/{name}/weights.bin", b"never served")
    env.fault.set_faults(f"/{name}/weights.bin", Status(code=404, methods=("GET", "HEAD")))
    env.cluster.apply(env.model(name, url))

    failed = status_when(
        env.status, name, "failedNodeCount", 2, 90, f"Failed on both nodes:\n{env.logs()}"
    )
    assert failed["state"] == "Failed"
    assert failed["nodesFailed"] == sorted([env.node_a, env.node_b])
    assert failed["lifecycle"] == "Failed"
    degraded = condition(failed, "Degraded")
    assert degraded["status"] == "True"
    assert "404" in degraded["message"], degraded
    assert "2/2" in degraded["message"]
    events = wait_for(
        lambda: [e for e in env.events(name) if e["reason"] == "Failed"], 10, "Failed Event"
    )
    assert events[0]["type"] == "Warning"
    assert "404" in events[0]["message"]


def test_backfill_sorted_nodes_and_clean_delete(env: Env) -> None:
    name = unique_name("tiny")
    manifest = env.model(name, "hf://org/tiny")
    manifest["spec"]["modelType"] = "user-type"  # the user's word wins
    env.cluster.apply(manifest)

    ready = status_when(
        env.status, name, "readyNodeCount", 2, 60, f"Ready on both nodes:\n{env.logs()}"
    )
    assert ready["nodesReady"] == sorted([env.node_a, env.node_b])
    assert ready["lifecycle"] == "Ready"

    def filled() -> dict[str, Any] | None:
        spec = model_object(env.cluster, "ClusterBaseModel", name)["spec"]
        return spec if spec.get("modelArchitecture") else None

    spec = wait_for(filled, 10, "spec back-filled")
    assert spec["modelType"] == "user-type"
    assert spec["modelArchitecture"] == "LlamaForCausalLM"
    assert spec["maxTokens"] == CONFIG["max_position_embeddings"]
    assert spec["modelFormat"]["name"] == "safetensors"
    assert spec["modelFramework"]["name"] == "transformers"

    # both agents are up: delete waits for their entries, then the object goes
    env.cluster.delete(API, "ClusterBaseModel", name)
    wait_for(
        lambda: model_object(env.cluster, "ClusterBaseModel", name) is None,
        30,
        f"deleted once both nodes cleaned up:\n{env.logs()}",
    )
    for node in (env.node_a, env.node_b):
        assert entry(env.cluster, env.namespace, node, f"clusterbasemodel.{name}") is None


def test_steady_state_writes_and_lists_nothing(env: Env) -> None:
    name = unique_name("steady")
    manifest = env.model(name, "hf://org/tiny", role="b")
    manifest["metadata"]["annotations"] = {"ome.io/skip-config-parsing": "true"}
    env.cluster.apply(manifest)
    wait_for(lambda: env.status(name).get("state") == "Ready", 60, "Ready")
    # the last reports settle: wait for one quiet second (a loaded machine takes longer)
    wait_for(_quiet_for(env, 1.0), 30, f"the controller to stop writing:\n{env.logs()}")
    # the annotation: nothing discovered is written into the spec
    assert "modelArchitecture" not in model_object(env.cluster, "ClusterBaseModel", name)["spec"]
    writes = env.metric("ome_agent_controller_writes_total")
    lists = env.metric("ome_agent_kube_requests_total", verb="list")
    time.sleep(3.0)
    assert env.metric("ome_agent_controller_writes_total") == writes
    assert env.metric("ome_agent_kube_requests_total", verb="list") == lists
    env.cluster.delete(API, "ClusterBaseModel", name)
    wait_for(lambda: model_object(env.cluster, "ClusterBaseModel", name) is None, 30, "deleted")


def test_deletion_with_an_agent_stopped_times_out(env: Env) -> None:
    name = unique_name("orphan")
    env.cluster.apply(env.model(name, "hf://org/tiny"))
    wait_for(lambda: env.status(name).get("readyNodeCount") == 2, 60, "Ready on both")
    # the test's own finalizer keeps the object readable after ours is gone
    hold = "test.ome.io/hold"
    obj = model_object(env.cluster, "ClusterBaseModel", name)
    env.cluster.request(
        "PATCH",
        f"/apis/{GROUP}/v1beta1/clusterbasemodels/{name}",
        {"metadata": {"finalizers": [*obj["metadata"]["finalizers"], hold]}},
        content_type="application/merge-patch+json",
    )
    stopped = env.agents[env.node_b]
    assert stopped.stop() == 0  # node b stays Ready: its agent is just down
    try:
        began = time.monotonic()
        env.cluster.delete(API, "ClusterBaseModel", name)
        waiting = wait_for(
            lambda: (
                condition(env.status(name), "Deleting").get("reason") == "WaitingForNodes"
                and env.status(name)
            ),
            FINALIZER_TIMEOUT,
            f"waiting for node b:\n{env.logs()}",
        )
        assert env.node_b in condition(waiting, "Deleting")["message"]
        assert waiting["lifecycle"] == "Deleting"

        def released() -> dict[str, Any] | None:
            o = model_object(env.cluster, "ClusterBaseModel", name)
            return o if FINALIZER not in o["metadata"]["finalizers"] else None

        gone = wait_for(released, FINALIZER_TIMEOUT + 10, f"finalizer removed:\n{env.logs()}")
        assert time.monotonic() - began >= FINALIZER_TIMEOUT - 1
        deleting = condition(gone["status"], "Deleting")
        assert deleting["reason"] == "TimedOut"
        assert env.node_b in deleting["message"]
        assert "files may remain" in deleting["message"]
        events = wait_for(
            lambda: [e for e in env.events(name) if e["reason"] == "DeletionTimedOut"],
            10,
            "DeletionTimedOut Event",
        )
        assert events[0]["type"] == "Warning"
    finally:
        env.cluster.request(
            "PATCH",
            f"/apis/{GROUP}/v1beta1/clusterbasemodels/{name}",
            {"metadata": {"finalizers": []}},
            content_type="application/merge-patch+json",
        )
        stopped.start()


def _quiet_for(env: Env, seconds: float) -> Callable[[], bool]:
    """A condition true once the controller's write count stayed put for ``seconds``."""
    seen = {"writes": -1.0, "since": time.monotonic()}

    def quiet() -> bool:
        writes = env.metric("ome_agent_controller_writes_total")
        if writes != seen["writes"]:
            seen.update(writes=writes, since=time.monotonic())
        return time.monotonic() - seen["since"] >= seconds

    return quiet


def test_config_map_of_a_deleted_node_is_collected(env: Env) -> None:
    node = unique_name("gone")
    env.cluster.make_node(node, {})
    env.cluster.core.create_namespaced_config_map(
        env.namespace,
        {
            "metadata": {
                "name": node,
                "labels": {"models.ome/basemodel-status": "true", "node": node},
            },
            "data": {},
        },
    )
    time.sleep(0.5)
    assert env.cluster.core.read_namespaced_config_map(node, env.namespace) is not None
    env.cluster.core.delete_node(node)

    def collected() -> bool:
        cms = env.cluster.core.list_namespaced_config_map(env.namespace).items
        return node not in {cm.metadata.name for cm in cms}

    wait_for(collected, 10, f"ConfigMap collected:\n{env.controller.log()[-2000:]}")


def test_fine_tuned_weight_placed_where_its_base_is(env: Env) -> None:
    base, ftw = unique_name("base"), unique_name("ftw")
    manifest = {
        "apiVersion": API,
        "kind": "FineTunedWeight",
        "metadata": {"name": ftw},
        "spec": {"baseModelRef": {"name": base}, "storage": {"storageUri": "hf://org/lora"}},
    }
    env.cluster.apply(manifest)

    def ftw_status() -> dict[str, Any]:
        return dict(status_of(env.cluster, "FineTunedWeight", ftw))

    missing = wait_for(lambda: (s := ftw_status()).get("state") and s, 15, env.logs())
    assert condition(missing, "Ready")["reason"] == "BaseModelNotFound"
    # the base appears (selecting node a only): the weights' eligibility follows it
    env.cluster.apply(env.model(base, "hf://org/none-such", role="a"))
    placed = wait_for(
        lambda: (s := ftw_status()).get("eligibleNodeCount") == 1 and s, 15, env.logs()
    )
    assert condition(placed, "Ready")["reason"] != "BaseModelNotFound"
    for kind, name in (("FineTunedWeight", ftw), ("ClusterBaseModel", base)):
        env.cluster.delete(API, kind, name)
