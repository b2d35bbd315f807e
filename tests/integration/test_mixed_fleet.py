"""A fleet half on OME's model agent, half on ours, and entries no agent wrote, with
``ome-agent controller`` on the real API server.

Node A reports as OME's agent does: the test writes its entries in OME's shape, built
to validate against docs/ome-modelentry.schema.json with only the members of OME's
Go struct (no kind, namespace, uid or message; progress only while downloading; a
model reusing another's files names it in ``artifact.parentPath``). Node B runs our
agent. The controller must count both alike. Both ConfigMaps also hold a value
another tool wrote that does not decode: the agent and the controller each log it
once, naming the ConfigMap and key, keep running, and leave it exactly as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from ome_agent.wire import naming
from tests.cluster.kube import Cluster, unique_name
from tests.conftest import WIRE_SCHEMA
from tests.data import hf_config
from tests.data.safetensors_fixtures import shard_bytes
from tests.integration.agent_process import Agent, agent_on, cluster_model, config_map, entry
from tests.integration.controller_process import (
    ControllerProcess,
    condition,
    controller_in,
    ready_node,
    release_finalizers,
    status_of,
    status_when,
    wait_for,
)
from tests.servers.hf_hub_server import HubServer

SEL = "ome-test/mixed"
CONFIG = hf_config("llama3_1")
JUNK_KEY = "other-tool.cache"
JUNK = "{written by another tool, not JSON"


def ome_entry(name: str, status: str, **members: Any) -> str:
    """One value as OME's agent writes it, checked against its schema and field set."""
    import jsonschema

    value = {"name": name, "status": status, **members}
    schema = json.loads(WIRE_SCHEMA.read_text())
    jsonschema.validate(value, schema)
    assert set(value) <= set(schema["properties"]), set(value) - set(schema["properties"])
    return json.dumps(value)


def ome_config(parent: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "modelType": "llama",
        "modelArchitecture": "LlamaForCausalLM",
        "modelFramework": {"name": "transformers", "version": "4.43.0"},
        "modelFormat": {"name": "safetensors", "version": "1.0.0"},
        "maxTokens": CONFIG["max_position_embeddings"],
        "artifact": {"sha": "a" * 40, "parentPath": parent or {}, "childrenPaths": []},
    }


@dataclass
class Env:
    cluster: Cluster
    namespace: str
    group: str
    ome_node: str  # reports written in OME's shape by the test
    our_node: str  # runs our agent
    agent: Agent
    controller: ControllerProcess

    def write_ome(self, key: str, value: str) -> None:
        self.cluster.core.patch_namespaced_config_map(
            self.ome_node, self.namespace, {"data": {key: value}}
        )

    def status(self, name: str) -> dict[str, Any]:
        return dict(status_of(self.cluster, "ClusterBaseModel", name))

    def logs(self) -> str:
        return (
            f"--- controller\n{self.controller.log()[-3000:]}\n"
            f"--- agent\n{self.agent.log()[-2000:]}"
        )


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("mixed")
    namespace = cluster.make_namespace()
    group = unique_name("grp")
    ome_node = ready_node(cluster, "ome-node", {SEL: group})
    our_node = ready_node(cluster, "our-node", {SEL: group})
    for node in (ome_node, our_node):
        # both ConfigMaps already hold a value another tool wrote
        cluster.core.create_namespaced_config_map(
            namespace,
            {
                "metadata": naming.config_map_metadata(node, namespace),
                "data": {JUNK_KEY: JUNK},
            },
        )
    hub = HubServer(lfs_threshold=1024).start()
    shard = shard_bytes({"model.embed_tokens.weight": ("BF16", (64, 32))})
    hub.add_repo(
        "org/tiny", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": shard}
    )
    (work / "models").mkdir()
    agent = agent_on(cluster, namespace, our_node, work, env={"HF_ENDPOINT": hub.endpoint})
    controller = controller_in(cluster, namespace, work)
    env = Env(cluster, namespace, group, ome_node, our_node, agent, controller)
    try:  # whatever fails from here, both processes are stopped
        agent.start(wait_ready=False)
        controller.start().wait_leading()
        agent.wait_ready()
        yield env
    finally:
        codes = {"controller": controller.stop(), "agent": agent.stop()}
        hub.stop()
        release_finalizers(cluster)
        assert set(codes.values()) == {0}, f"exit codes {codes}:\n{env.logs()}"


def test_omes_entries_count_as_ours(env: Env) -> None:
    name, child = unique_name("tiny"), unique_name("reuse")
    key, child_key = f"clusterbasemodel.{name}", f"clusterbasemodel.{child}"
    # OME's node is downloading (progress, hf only) while ours finishes
    env.write_ome(
        key,
        ome_entry(
            name,
            "Updating",
            progress={
                "phase": "Downloading",
                "totalBytes": 1000,
                "completedBytes": 250,
                "totalFiles": 2,
                "completedFiles": 1,
                "speedBytesPerSec": 100.5,
                "lastUpdated": "2026-01-01T00:00:00Z",
            },
        ),
    )
    env.cluster.apply(cluster_model(name, "hf://org/tiny", nodeSelector={SEL: env.group}))
    wait_for(
        lambda: (
            (entry(env.cluster, env.namespace, env.our_node, key) or {}).get("status") == "Ready"
        ),
        120,
        f"our agent Ready:\n{env.logs()}",
    )
    # the controller may publish OME's Downloading before it has read our Ready entry:
    # wait for the status that has both, as a reader of the resource would
    downloading = wait_for(
        lambda: (
            (s := env.status(name)).get("lifecycle") == "Downloading"
            and s.get("nodesReady") == [env.our_node]
            and s
        ),
        90,
        f"Downloading on OME's node, Ready on ours:\n{env.logs()}",
    )
    progressing = condition(downloading, "Progressing")["message"]
    assert env.ome_node in progressing
    assert "25%" in progressing, progressing

    # OME's node is done: Ready on both, alike
    env.write_ome(key, ome_entry(name, "Ready", config=ome_config()))
    ready = status_when(
        env.status, name, "readyNodeCount", 2, 90, f"Ready on both nodes:\n{env.logs()}"
    )
    assert ready["nodesReady"] == sorted([env.ome_node, env.our_node])
    assert ready["lifecycle"] == "Ready"
    assert condition(ready, "Ready")["status"] == "True"

    # a model reusing the first one's files, reported by OME's agent on its node only
    env.write_ome(child_key, ome_entry(child, "Ready", config=ome_config({key: f"/models/{name}"})))
    env.cluster.label_node(env.ome_node, {"role": "ome"})
    env.cluster.apply(
        cluster_model(child, "hf://org/tiny", nodeSelector={SEL: env.group, "role": "ome"})
    )
    child_ready = status_when(
        env.status, child, "readyNodeCount", 1, 90, f"the reusing model Ready:\n{env.logs()}"
    )
    assert child_ready["nodesReady"] == [env.ome_node]

    # OME's agent failed there (its entries carry no message): counted as a failure
    env.write_ome(key, ome_entry(name, "Failed"))
    failed = status_when(
        env.status, name, "failedNodeCount", 1, 90, f"Failed on OME's node:\n{env.logs()}"
    )
    assert failed["nodesFailed"] == [env.ome_node]
    assert failed["nodesReady"] == [env.our_node]


def test_an_undecodable_entry_is_logged_once_and_left_alone(env: Env) -> None:
    # by now the agent and the controller have each written and read both ConfigMaps
    # many times (the test above); the value another tool wrote is untouched
    name = unique_name("more")
    env.cluster.apply(cluster_model(name, "hf://org/tiny", nodeSelector={SEL: env.group}))
    key = f"clusterbasemodel.{name}"
    wait_for(
        lambda: (
            (entry(env.cluster, env.namespace, env.our_node, key) or {}).get("status") == "Ready"
        ),
        120,
        f"our agent Ready:\n{env.logs()}",
    )
    for node in (env.ome_node, env.our_node):
        cm = config_map(env.cluster, env.namespace, node)
        assert cm.data[JUNK_KEY] == JUNK, node
    agent_lines = [line for line in env.agent.log().splitlines() if JUNK_KEY in line]
    assert len(agent_lines) == 1, agent_lines
    assert f"ConfigMap {env.namespace}/{env.our_node}" in agent_lines[0]
    assert "Traceback" not in env.agent.log()
    controller_lines = [line for line in env.controller.log().splitlines() if JUNK_KEY in line]
    assert len(controller_lines) == 2, controller_lines
    for node in (env.ome_node, env.our_node):
        assert sum(f"ConfigMap {env.namespace}/{node}:" in x for x in controller_lines) == 1
    assert "Traceback" not in env.controller.log()
    assert env.controller.get("/healthz") == (200, "ok: leading\n")
    assert env.agent.get("/healthz")[0] == 200
