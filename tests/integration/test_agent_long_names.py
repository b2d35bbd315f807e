"""Names of every legal length on the real API server: a 253-character
ClusterBaseModel, a 253-character FineTunedWeight on it, and a BaseModel with a
253-character name in a 63-character namespace each become Ready under OME's
shortened ConfigMap key and node label, with every file and directory the agent
creates short enough for the kernel, and leave nothing behind when deleted.

The expected keys are computed here from OME's rule as the naming vectors
(tests/data/ome-naming-vectors.json) show it, not by the agent's own code.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.kube import Cluster
from tests.data.safetensors_fixtures import shard_bytes
from tests.integration.agent_process import (
    API,
    Agent,
    agent_on,
    cluster_model,
    entry,
    fine_tuned_weight,
    namespaced_model,
    node_labels,
    wait_for,
)
from tests.servers.fault_server import FaultServer

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "ome-naming-vectors.json").read_text())
SEL = "ome-test/node"
NAME_BUDGET = 255 - 40  # every name the agent creates leaves 40 bytes for a temp suffix
SHARD = shard_bytes({"model.embed_tokens.weight": ("BF16", (64, 32))})


# ---------------------------------------------------------------- OME's rule
def _short(part: str, budget: int) -> str:
    if len(part) <= budget:
        return part
    digest = hashlib.sha256(part.encode()).hexdigest()[:8]
    tail = budget - 9
    return digest[:budget] if tail <= 0 else f"{digest}-{part[-tail:]}"


def _qualified(kind_type: str, namespace: str | None, name: str, limit: int) -> str:
    if namespace is None:
        return f"{kind_type}.{_short(name, limit - len(kind_type) - 1)}"
    budget = limit - len(kind_type) - 2
    if len(namespace) + len(name) <= budget:
        return f"{namespace}.{kind_type}.{name}"
    ns_budget = min(len(namespace), 8)
    return f"{_short(namespace, ns_budget)}.{kind_type}.{_short(name, budget - ns_budget)}"


def ome_keys(kind_type: str, namespace: str | None, name: str) -> tuple[str, str]:
    """(ConfigMap key, node label) as OME writes them."""
    label = "models.ome.io/" + _qualified(kind_type, namespace, name, 49)
    return _qualified(kind_type, namespace, name, 253), label


def test_the_rule_here_is_the_vectors_rule() -> None:
    for v in VECTORS:
        assert ome_keys(v["kind"].lower(), v["namespace"], v["name"]) == (
            v["configMapKey"],
            v["nodeLabel"],
        )


# ---------------------------------------------------------------- the agent
def padded(prefix: str, length: int) -> str:
    """A unique DNS name of exactly ``length`` characters."""
    head = f"{prefix}-{secrets.token_hex(3)}-"
    return head + "x" * (length - len(head) - 1) + "z"


def created_names(root: Path) -> list[str]:
    return [n for _dir, dirs, files in os.walk(root) for n in dirs + files]


def manifest_keys(root: Path) -> list[list[Any]]:
    manifests = root / ".ome-agent" / "manifests"
    return [json.loads(p.read_text())["key"] for p in manifests.glob("*.json")]


@pytest.fixture(scope="module")
def agent_env(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Agent, FaultServer, str]]:
    work = tmp_path_factory.mktemp("long-names")
    namespace, node = cluster.make_namespace_and_node(SEL)
    fault = FaultServer("127.0.0.1").start()
    agent = agent_on(cluster, namespace, node, work)
    (work / "models").mkdir()
    agent.start()
    try:
        yield agent, fault, node
    finally:
        code = agent.stop()
        fault.stop()
        assert code == 0, f"agent exit code {code}:\n{agent.log()[-4000:]}"


def test_longest_names_ready_under_omes_keys_and_gone_when_deleted(
    cluster: Cluster, agent_env: tuple[Agent, FaultServer, str]
) -> None:
    agent, fault, node = agent_env
    root = agent.models_root
    selector = {"nodeSelector": {SEL: node}}
    weights = fault.add("/long/model.safetensors", SHARD)  # http: one file per model
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("adapter_config.json", json.dumps({"peft_type": "LORA", "r": 8}))
        z.writestr("adapter_model.safetensors", SHARD)
    adapter = fault.add("/long-adapter/adapter.zip", archive.getvalue())

    cbm = padded("cbm", 253)
    ftw = padded("ftw", 253)
    ns = cluster.make_namespace(padded("ns", 63))
    bm = padded("bm", 253)
    assert (len(cbm), len(ftw), len(ns), len(bm)) == (253, 253, 63, 253)
    created = [
        cluster.apply(cluster_model(cbm, weights, **selector)),
        cluster.apply(fine_tuned_weight(ftw, cbm, adapter)),
        cluster.apply(namespaced_model(ns, bm, weights, **selector)),
    ]
    uids = [c["metadata"]["uid"] for c in created]
    keys = [
        ome_keys("clusterbasemodel", None, cbm),
        ome_keys("finetunedweight", None, ftw),
        ome_keys("basemodel", ns, bm),
    ]
    # the shortened forms indeed (these are the names OME shortens)
    cbm_hash = hashlib.sha256(cbm.encode()).hexdigest()[:8]
    assert keys[0][0] == f"clusterbasemodel.{cbm_hash}-{cbm[-227:]}"
    assert keys[2][0].startswith(hashlib.sha256(ns.encode()).hexdigest()[:8] + ".basemodel.")

    def entry_of(key: str) -> dict[str, Any] | None:
        return entry(cluster, agent.namespace, node, key)

    for (cm_key, label), uid in zip(keys, uids, strict=True):
        wait_for(
            lambda k=cm_key: (e := entry_of(k)) is not None and e["status"] == "Ready",
            90,
            f"{cm_key[:40]}... Ready:\n{agent.log()[-3000:]}",
        )
        labels = wait_for(
            lambda lb=label: (got := node_labels(cluster, node)).get(lb) == "Ready" and got,
            20,
            f"label {label}",
        )
        assert labels[f"models.ome/{uid}"] == "Ready"
    paths = [Path(entry_of(k)["path"]) for k, _ in keys]
    assert (paths[0] / "model.safetensors").read_bytes() == SHARD
    assert (paths[1] / "adapter_model.safetensors").read_bytes() == SHARD
    assert (paths[2] / "model.safetensors").read_bytes() == SHARD
    assert paths[1].parent == root / "fine-tuned"
    assert paths[2].parent.name == ns
    assert sorted(k[0] for k in manifest_keys(root)) == sorted(
        ["ClusterBaseModel", "FineTunedWeight", "BaseModel"]
    )
    too_long = [n for n in created_names(root) if len(n.encode()) > NAME_BUDGET]
    assert too_long == []
    assert "too long" not in agent.log()

    # deletion, the adapter before its base: entry, labels, files and manifest go
    models = [
        ("ClusterBaseModel", cbm, None),
        ("FineTunedWeight", ftw, None),
        ("BaseModel", bm, ns),
    ]
    for i in (1, 0, 2):
        (kind, name, namespace), (cm_key, label), uid, path = models[i], keys[i], uids[i], paths[i]
        cluster.delete(API, kind, name, namespace)
        wait_for(lambda k=cm_key: entry_of(k) is None, 30, f"{kind} entry removed")
        wait_for(
            lambda lb=label, u=uid: not {lb, f"models.ome/{u}"} & set(node_labels(cluster, node)),
            20,
            f"{kind} labels removed",
        )
        wait_for(lambda p=path: not p.exists(), 20, f"{kind} files removed")
        wait_for(
            lambda k=kind: k not in [m[0] for m in manifest_keys(root)],
            20,
            f"{kind} manifest removed",
        )
    assert not [n for n in created_names(root) if n.startswith(".ome-staging-")]
