"""Cluster mode on the real API server: `ome-agent status` reads resources, the
per-node ConfigMaps written as agents write them, and Nodes; the status objects the
controller core builds are accepted by the CRDs' status schema unchanged."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ome_agent.api import ModelResource, parse_resource
from ome_agent.fleet.pvc import pvc_status
from ome_agent.fleet.status import (
    NodeEntry,
    aggregate,
    entries_of_configmap,
    entry_key,
    node_view,
)
from ome_agent.reconcile.ports import NodeReport, NodeState, Progress
from ome_agent.wire.entry import encode_entry
from ome_agent.wire.naming import config_map_key, config_map_metadata
from tests.cluster.kube import Cluster, unique_name
from tests.integration.controller_process import mark_node_ready
from tests.pull_helpers import cli_process

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
API = "ome.io/v1beta1"


def live_node(cluster: Cluster, name: str, labels: dict[str, str], ready: bool = True) -> None:
    """A Node with the Ready condition a kubelet would post."""
    cluster.make_node(name, labels)
    mark_node_ready(cluster, name, ready)


def write_configmap(cluster: Cluster, namespace: str, node: str, reports: list[NodeReport]) -> None:
    """The node's ConfigMap exactly as an agent writes it."""
    cluster.create(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": config_map_metadata(node, namespace),
            "data": {config_map_key(r.key): encode_entry(r) for r in reports},
        },
        namespace=namespace,
    )


@pytest.fixture
def scene(cluster: Cluster, kube_namespace: str) -> dict[str, Any]:
    tag = unique_name("t")  # nodes of other tests never match this selector
    names = {k: unique_name(k) for k in ("ready", "busy", "cpu", "down")}
    live_node(cluster, names["ready"], {"pool": tag})
    live_node(cluster, names["busy"], {"pool": tag})
    live_node(cluster, names["cpu"], {"pool": "cpu"})
    live_node(cluster, names["down"], {"pool": tag}, ready=False)
    model_name = unique_name("llama")
    stored = cluster.create(
        {
            "apiVersion": API,
            "kind": "ClusterBaseModel",
            "metadata": {"name": model_name},
            "spec": {"storage": {"storageUri": "hf://meta/llama", "nodeSelector": {"pool": tag}}},
        }
    )
    model = parse_resource(stored)
    progress = Progress("Downloading", 4_000_000_000, 1_000_000_000, 4, 1, 200_000_000.0, NOW)
    config = {"modelType": "llama", "maxTokens": 8192}
    write_configmap(
        cluster,
        kube_namespace,
        names["ready"],
        [NodeReport(key=model.key, uid=model.uid, state=NodeState.READY, config=config)],
    )
    write_configmap(
        cluster,
        kube_namespace,
        names["busy"],
        [NodeReport(key=model.key, uid=model.uid, state=NodeState.UPDATING, progress=progress)],
    )
    # an agent whose Node object is gone: its entry must be ignored
    write_configmap(
        cluster,
        kube_namespace,
        unique_name("gone"),
        [NodeReport(key=model.key, uid=model.uid, state=NodeState.FAILED, error="disk full")],
    )
    return {"model": model, "names": names, "stored": stored}


def run_status(cluster: Cluster, namespace: str, *extra: str) -> Any:
    return cli_process(
        "status", "--kubeconfig", str(cluster.admin_kubeconfig), "--namespace", namespace, *extra
    )


def test_status_json_models_by_nodes(
    cluster: Cluster, kube_namespace: str, scene: dict[str, Any]
) -> None:
    done = run_status(cluster, kube_namespace, "--json")
    assert done.code == 0, done.stderr
    (row,) = [r for r in json.loads(done.stdout) if r["name"] == scene["model"].name]
    names = scene["names"]
    assert row["state"] == "Ready"
    assert row["lifecycle"] == "Downloading"
    assert (row["eligibleNodeCount"], row["readyNodeCount"], row["failedNodeCount"]) == (2, 1, 0)
    by_node = {n["node"]: n for n in row["nodes"]}
    assert set(by_node) == {names["ready"], names["busy"]}  # the gone node's entry is ignored
    busy = by_node[names["busy"]]
    assert (busy["state"], busy["percent"], busy["speedBytesPerSec"]) == (
        "Updating",
        25.0,
        200_000_000,
    )
    assert by_node[names["ready"]]["state"] == "Ready"


def test_status_table(cluster: Cluster, kube_namespace: str, scene: dict[str, Any]) -> None:
    done = run_status(cluster, kube_namespace)
    assert done.code == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if scene["names"]["busy"] in x)
    assert "Updating" in line
    assert "25% (1.0 GB of 4.0 GB)" in line
    assert "200.0 MB/s" in line
    assert f"ClusterBaseModel/{scene['model'].name}" in done.stdout


def test_status_bad_kubeconfig_is_one_line(tmp_path: Any) -> None:
    done = cli_process("status", "--kubeconfig", str(tmp_path / "nope"))
    assert done.code == 2
    assert done.stderr.strip().count("\n") == 0
    assert "--kubeconfig" in done.stderr


def test_aggregated_status_is_stored_unchanged(
    cluster: Cluster, kube_namespace: str, scene: dict[str, Any]
) -> None:
    """What the controller writes survives the CRD's structural schema (no pruning)."""
    model: ModelResource = scene["model"]
    maps = cluster.request(
        "GET",
        f"/api/v1/namespaces/{kube_namespace}/configmaps",
        query=[("labelSelector", "models.ome/basemodel-status=true")],
    )
    key = entry_key(model)
    entries: dict[str, NodeEntry] = {}
    for cm in maps["items"]:
        found = entries_of_configmap(cm["metadata"]["name"], cm.get("data") or {})
        if key in found:
            entries[cm["metadata"]["name"]] = found[key]
    nodes = {v.name: v for v in map(node_view, cluster.request("GET", "/api/v1/nodes")["items"])}
    assert not nodes[scene["names"]["down"]].live
    status = aggregate(model, entries, nodes, None, NOW)
    assert status["eligibleNodeCount"] == 2
    stored = write_status(cluster, scene["stored"], status)
    assert stored == status


def test_pvc_status_is_stored_unchanged(cluster: Cluster, kube_namespace: str) -> None:
    obj = cluster.create(
        {
            "apiVersion": API,
            "kind": "BaseModel",
            "metadata": {"name": unique_name("pvc"), "namespace": kube_namespace},
            "spec": {"storage": {"storageUri": "pvc://models/llama"}},
        },
        namespace=kube_namespace,
    )
    model = parse_resource(obj)
    status = pvc_status(model, None, None, None, None, None, NOW)
    assert write_status(cluster, obj, status) == status
    assert status["state"] == "Failed"


def write_status(cluster: Cluster, obj: dict[str, Any], status: dict[str, Any]) -> Any:
    meta = obj["metadata"]
    path = cluster.path(API, obj["kind"], meta.get("namespace"), meta["name"]) + "/status"
    written = cluster.request(
        "PATCH", path, {"status": status}, content_type="application/merge-patch+json"
    )
    return written["status"]


def test_status_with_the_agents_account_and_a_clear_forbidden(
    cluster: Cluster, kube_namespace: str, scene: dict[str, Any]
) -> None:
    """Run from inside an agent Pod, the agent's own account is enough; an account
    that may not list ConfigMaps gets one line saying what it needs."""
    agent = cluster.service_account_kubeconfig(kube_namespace, "agent")
    done = cli_process(
        "status", "--kubeconfig", str(agent), "--namespace", kube_namespace, "--json"
    )
    assert done.code == 0, done.stderr
    assert scene["model"].name in done.stdout
    limited = cluster.service_account_kubeconfig(
        kube_namespace, "limited", without=("configmaps", "list")
    )
    denied = cli_process("status", "--kubeconfig", str(limited), "--namespace", kube_namespace)
    assert denied.code == 1
    assert denied.stderr.count("\n") == 1
    assert "403 Forbidden" in denied.stderr
    assert f"configmaps in namespace {kube_namespace}" in denied.stderr
    assert "eyJ" not in denied.stderr  # no token in the message
