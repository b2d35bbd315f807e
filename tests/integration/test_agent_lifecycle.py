"""The node agent on the real API server, one agent for the whole module: a model is
created, made Ready and reported in OME's format; eligibility follows the Node's
labels; a changed storageUri re-downloads and switches; a delete cancels a running
download and cleans up; tokens come from the model's own namespace and never leak;
a concurrent writer of the node's ConfigMap loses nothing; a FineTunedWeight goes
where its base model goes and leaves with it.

Every model here selects this module's node by a unique label, so agents of other
tests (and this one) never act on each other's models.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ome_agent.api import ModelKey
from ome_agent.wire import naming
from tests.cluster.kube import Cluster, unique_name
from tests.data import hf_config
from tests.data.safetensors_fixtures import shard_bytes
from tests.integration.agent_process import (
    API,
    Agent,
    agent_on,
    cluster_model,
    config_map,
    entry,
    fine_tuned_weight,
    namespaced_model,
    node_labels,
    wait_for,
)
from tests.servers.fault_server import FaultServer, Throttle
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer
from tests.servers.moto_server import MotoS3, moto_s3

__all__ = ["moto_s3"]  # the session fixture, used by name

SEL = "ome-test/node"  # every model selects its node by this label
CONFIG = hf_config("llama3_1")
SHARD = shard_bytes({"model.embed_tokens.weight": ("BF16", (64, 32))})


@dataclass
class Env:
    cluster: Cluster
    namespace: str  # the agent's
    node: str
    root: Path
    agent: Agent
    hub: HubServer
    fault: FaultServer

    def selector(self, **extra: str) -> dict[str, str]:
        return {SEL: self.node, **extra}

    def labels(self) -> dict[str, str]:
        return node_labels(self.cluster, self.node)

    def entry(self, key: str) -> dict[str, Any] | None:
        return entry(self.cluster, self.namespace, self.node, key)

    def status_of(self, key: str) -> str | None:
        e = self.entry(key)
        return e["status"] if e else None


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("agent-lifecycle")
    namespace, node = cluster.make_namespace_and_node(SEL, {"gpu": "a100"})
    hub = HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024).start()
    tiny = {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": SHARD}
    hub.add_repo("org/tiny", tiny)
    fault = FaultServer("127.0.0.1").start()
    agent = agent_on(cluster, namespace, node, work, env={"HF_ENDPOINT": hub.endpoint})
    (work / "models").mkdir()
    agent.start()
    try:
        yield Env(cluster, namespace, node, work / "models", agent, hub, fault)
    finally:
        code = agent.stop()
        hub.stop()
        fault.stop()
        assert code == 0, f"agent exit code {code}:\n{agent.log()[-4000:]}"


def test_create_ready_reported_in_ome_format(env: Env) -> None:
    name = unique_name("tiny")
    created = env.cluster.apply(cluster_model(name, "hf://org/tiny", nodeSelector=env.selector()))
    uid = created["metadata"]["uid"]
    key = f"clusterbasemodel.{name}"
    wait_for(lambda: env.status_of(key) == "Ready", 60, f"{key} Ready:\n{env.agent.log()[-3000:]}")
    e = env.entry(key)
    assert e is not None
    # docs/wire.md, field by field
    assert e["name"] == name
    assert e["status"] == "Ready"
    assert "progress" not in e
    config = e["config"]
    assert config["modelType"] == "llama"
    assert config["modelArchitecture"] == "LlamaForCausalLM"
    assert config["maxTokens"] == CONFIG["max_position_embeddings"]
    assert config["decodedModelConfiguration"]["model_type"] == "llama"
    assert config["modelFramework"]["name"] == "transformers"
    assert config["modelFormat"]["name"] == "safetensors"
    # files on disk, verified
    path = Path(e["path"])
    assert path.is_relative_to(env.root)
    assert (path / "model.safetensors").read_bytes() == SHARD
    assert json.loads((path / "config.json").read_text()) == CONFIG
    # labels: OME's key and models.ome/<uid>
    labels = wait_for(
        lambda: (lb := env.labels()).get(f"models.ome.io/{key}") == "Ready" and lb, 10, "labels"
    )
    assert labels[naming.uid_label_key(uid)] == "Ready"
    cm = config_map(env.cluster, env.namespace, env.node)
    assert cm.metadata.labels == {"models.ome/basemodel-status": "true", "node": env.node}
    assert cm.metadata.annotations == {
        "models.ome.io/node-name": env.node,
        "models.ome.io/managed-by": "model-agent",
    }
    # someone removes our label: the agent sees it on its Node watch and puts it back
    env.cluster.label_node(env.node, {f"models.ome.io/{key}": None})
    wait_for(lambda: env.labels().get(f"models.ome.io/{key}") == "Ready", 10, "label restored")
    # cleanup for the next tests: delete removes entry, labels and files
    env.cluster.delete(API, "ClusterBaseModel", name)
    wait_for(lambda: env.entry(key) is None, 30, "entry removed")
    wait_for(lambda: f"models.ome.io/{key}" not in env.labels(), 10, "label removed")
    assert naming.uid_label_key(uid) not in env.labels()
    wait_for(lambda: not path.exists(), 10, "files removed")


def test_ineligible_then_label_change_downloads_then_removes(env: Env) -> None:
    name = unique_name("h100")
    key = f"clusterbasemodel.{name}"
    env.cluster.apply(cluster_model(name, "hf://org/tiny", nodeSelector=env.selector(gpu="h100")))
    # proof of "nothing": a model created after it becomes Ready first
    marker = unique_name("marker")
    env.cluster.apply(cluster_model(marker, "hf://org/tiny", nodeSelector=env.selector()))
    wait_for(lambda: env.status_of(f"clusterbasemodel.{marker}") == "Ready", 60, "marker Ready")
    assert env.entry(key) is None
    assert f"models.ome.io/{key}" not in env.labels()
    assert not any(name in p.name for p in env.root.rglob("*"))

    env.cluster.label_node(env.node, {"gpu": "h100"})
    wait_for(lambda: env.status_of(key) == "Ready", 60, "Ready after the node was relabelled")
    path = Path(env.entry(key)["path"])  # type: ignore[index]
    assert (path / "model.safetensors").exists()
    # the marker does not select gpu: it stays
    assert env.status_of(f"clusterbasemodel.{marker}") == "Ready"

    env.cluster.label_node(env.node, {"gpu": "a100"})
    wait_for(lambda: env.entry(key) is None, 30, "entry removed when no longer eligible")
    wait_for(lambda: f"models.ome.io/{key}" not in env.labels(), 10, "label removed")
    wait_for(lambda: not path.exists(), 10, "files removed")
    for n in (name, marker):
        env.cluster.delete(API, "ClusterBaseModel", n)


def test_storage_uri_change_redownloads_and_switches(env: Env) -> None:
    name = unique_name("switch")
    key = f"clusterbasemodel.{name}"
    v1, v2 = b"version one " * 1000, b"version two " * 2000
    url1 = env.fault.add(f"/{name}/v1/weights.bin", v1)
    url2 = env.fault.add(f"/{name}/v2/weights.bin", v2)
    env.cluster.apply(cluster_model(name, url1, nodeSelector=env.selector()))
    wait_for(lambda: env.status_of(key) == "Ready", 60, "v1 Ready")
    path = Path(env.entry(key)["path"])  # type: ignore[index]
    assert (path / "weights.bin").read_bytes() == v1

    env.cluster.apply(cluster_model(name, url2, nodeSelector=env.selector()))

    def switched() -> bool:
        e = env.entry(key)
        return bool(e and e["status"] == "Ready" and e.get("storageUri") == url2)

    wait_for(switched, 60, "v2 Ready")
    path2 = Path(env.entry(key)["path"])  # type: ignore[index]
    assert (path2 / "weights.bin").read_bytes() == v2
    assert hashlib.sha256((path2 / "weights.bin").read_bytes()).digest() == (
        hashlib.sha256(v2).digest()
    )
    assert env.fault.requests_for(f"/{name}/v2/weights.bin", "GET")
    env.cluster.delete(API, "ClusterBaseModel", name)
    wait_for(lambda: env.entry(key) is None, 30, "entry removed")


def test_delete_during_download_cancels_and_cleans_up(env: Env) -> None:
    name = unique_name("slow")
    key = f"clusterbasemodel.{name}"
    size = 8 * 1024 * 1024
    url = env.fault.add(f"/{name}/big.bin", bytes(size))
    env.fault.set_faults(f"/{name}/big.bin", Throttle(bytes_per_sec=200_000))
    env.cluster.apply(cluster_model(name, url, nodeSelector=env.selector()))
    wait_for(lambda: env.fault.requests_for(f"/{name}/big.bin", "GET"), 30, "download started")
    wait_for(lambda: env.status_of(key) == "Updating", 30, "Updating reported")
    # the Node patch is a separate request from the ConfigMap write: it may land a beat later
    label = f"models.ome.io/{key}"
    wait_for(lambda: env.labels().get(label) == "Updating", 10, "Updating label")

    env.cluster.delete(API, "ClusterBaseModel", name)
    wait_for(lambda: env.entry(key) is None, 30, "entry removed after delete")
    wait_for(lambda: f"models.ome.io/{key}" not in env.labels(), 10, "label removed")
    # nothing of the model left: no model directory, no staging or partial file
    wait_for(lambda: not [p for p in env.root.rglob("*") if name in str(p)], 10, "files removed")
    # the download really stopped (the server sees no body still being sent)
    sent = env.fault.total_bytes_sent(f"/{name}/big.bin")
    assert sent < size
    env.fault.clear_faults(f"/{name}/big.bin")


def test_token_from_the_models_namespace_never_leaks(env: Env) -> None:
    model_ns = env.cluster.make_namespace()
    other_ns = env.cluster.make_namespace()
    env.hub.add_repo("org/private", {"config.json": json.dumps(CONFIG).encode()}, private=True)
    env.cluster.make_secret(model_ns, "hf-token", {"token": HF_TEST_TOKEN})
    env.hub.clear_requests()
    ok = unique_name("private")
    env.cluster.apply(
        namespaced_model(
            model_ns, ok, "hf://org/private", key="hf-token", nodeSelector=env.selector()
        )
    )
    # same Secret name, but the model lives in a namespace without it: not readable
    denied = unique_name("private")
    env.cluster.apply(
        namespaced_model(
            other_ns, denied, "hf://org/private", storageKey="hf-token", nodeSelector=env.selector()
        )
    )
    ok_key = f"{model_ns}.basemodel.{ok}"
    denied_key = f"{other_ns}.basemodel.{denied}"
    wait_for(lambda: env.status_of(ok_key) == "Ready", 60, "private model Ready")
    wait_for(lambda: env.status_of(denied_key) == "Failed", 60, "other namespace Failed")
    message = env.entry(denied_key)["message"]  # type: ignore[index]
    assert f"{other_ns}/hf-token" in message
    auth = [r["headers"].get("Authorization") for r in env.hub.requests("hub")]
    assert f"Bearer {HF_TEST_TOKEN}" in auth
    # never in the agent's logs, the ConfigMap or the Node
    assert HF_TEST_TOKEN not in env.agent.log()
    cm = config_map(env.cluster, env.namespace, env.node)
    assert HF_TEST_TOKEN not in json.dumps(cm.data)
    assert HF_TEST_TOKEN not in json.dumps(env.labels())
    env.cluster.delete(API, "BaseModel", ok, model_ns)
    env.cluster.delete(API, "BaseModel", denied, other_ns)
    wait_for(lambda: env.entry(ok_key) is None and env.entry(denied_key) is None, 30, "removed")


def test_concurrent_configmap_writer_loses_no_entry(env: Env) -> None:
    stop = threading.Event()
    writes = [0]

    def other_writer() -> None:
        while not stop.is_set():
            try:
                cm = env.cluster.core.read_namespaced_config_map(env.node, env.namespace)
                cm.data = {**(cm.data or {}), "tool.heartbeat": str(writes[0])}
                env.cluster.core.replace_namespaced_config_map(env.node, env.namespace, cm)
                writes[0] += 1
            except ApiException:
                pass

    writer = threading.Thread(target=other_writer, daemon=True)
    writer.start()
    names = [unique_name("busy") for _ in range(4)]
    try:
        for n in names:
            url = env.fault.add(f"/{n}/w.bin", n.encode() * 100)
            env.cluster.apply(cluster_model(n, url, nodeSelector=env.selector()))
        for n in names:
            wait_for(lambda n=n: env.status_of(f"clusterbasemodel.{n}") == "Ready", 60, n)
    finally:
        stop.set()
        writer.join()
    assert writes[0] > 0
    cm = config_map(env.cluster, env.namespace, env.node)
    assert "tool.heartbeat" in cm.data
    for n in names:
        assert json.loads(cm.data[f"clusterbasemodel.{n}"])["status"] == "Ready"
        env.cluster.delete(API, "ClusterBaseModel", n)


def test_fine_tuned_weight_is_placed_with_its_base_and_reported(env: Env) -> None:
    base = unique_name("base")
    env.cluster.apply(cluster_model(base, "hf://org/tiny", nodeSelector=env.selector()))
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("adapter_config.json", json.dumps({"peft_type": "LORA", "r": 8}))
        z.writestr("adapter_model.safetensors", SHARD)
    url = env.fault.add(f"/{base}/adapter.zip", archive.getvalue())
    name = unique_name("ftw")
    env.cluster.apply(fine_tuned_weight(name, base, url))
    key = naming.config_map_key(ModelKey("FineTunedWeight", None, name))
    wait_for(lambda: env.status_of(key) == "Ready", 60, f"{key}:\n{env.agent.log()[-3000:]}")
    e = env.entry(key)
    assert e is not None
    assert e["config"]["baseModelRef"] == {"kind": "ClusterBaseModel", "name": base}
    assert e["config"]["adapter"] == {"peft_type": "LORA", "r": 8}
    label = naming.node_label_key(ModelKey("FineTunedWeight", None, name))
    assert env.labels().get(label) == "Ready"
    files = sorted(p.name for p in (env.root / "fine-tuned" / name).iterdir())
    assert files == ["adapter_config.json", "adapter_model.safetensors"]
    # the base is deleted: the adapter leaves the node with it
    env.cluster.delete(API, "ClusterBaseModel", base)
    wait_for(lambda: env.entry(key) is None, 30, f"{key} withdrawn")
    wait_for(lambda: label not in env.labels(), 30, f"{label} removed")
    env.cluster.delete(API, "FineTunedWeight", name)


def test_object_store_key_material_comes_from_the_models_namespace(
    env: Env, moto_s3: MotoS3
) -> None:
    """s3:// against moto's real S3 server: the agent process has no AWS credentials of
    its own, so the only key is the Secret in the model's namespace."""
    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="m/config.json", Body=json.dumps(CONFIG))
    model_ns = env.cluster.make_namespace()
    other_ns = env.cluster.make_namespace()
    env.cluster.make_secret(model_ns, "s3-creds", moto_s3.secret())
    storage = {
        "storageKey": "s3-creds",
        "parameters": {"endpoint": moto_s3.endpoint, "region": "us-east-1"},
        "nodeSelector": env.selector(),
    }
    ok, denied = unique_name("s3"), unique_name("s3")
    env.cluster.apply(namespaced_model(model_ns, ok, f"s3://{bucket}/m", **storage))
    env.cluster.apply(namespaced_model(other_ns, denied, f"s3://{bucket}/m", **storage))
    ok_key, denied_key = f"{model_ns}.basemodel.{ok}", f"{other_ns}.basemodel.{denied}"
    wait_for(lambda: env.status_of(ok_key) == "Ready", 60, f"s3 model Ready:\n{env.agent.log()}")
    wait_for(lambda: env.status_of(denied_key) == "Failed", 60, "other namespace Failed")
    assert f"{other_ns}/s3-creds" in env.entry(denied_key)["message"]  # type: ignore[index]
    assert env.entry(ok_key)["config"]["modelArchitecture"] == "LlamaForCausalLM"  # type: ignore[index]
    secret = moto_s3.secret_access_key
    assert secret not in env.agent.log()
    assert secret not in json.dumps(config_map(env.cluster, env.namespace, env.node).data)
    env.cluster.delete(API, "BaseModel", ok, model_ns)
    env.cluster.delete(API, "BaseModel", denied, other_ns)
    wait_for(lambda: env.entry(ok_key) is None and env.entry(denied_key) is None, 30, "removed")
