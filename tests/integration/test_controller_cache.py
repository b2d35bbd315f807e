"""The controller's informer caches: which model keys each watch event touches (pure,
no API server). The point is "work proportional to what changed": a report touches
only the models whose entry changed, a Node heartbeat touches nothing, the echo of
the controller's own write touches nothing.
"""

from __future__ import annotations

from typing import Any

from ome_agent.adapters.kube.controller.cache import Cache
from ome_agent.api import ModelKey, parse_resource
from ome_agent.fleet.pvc import LABEL_MODEL_UID
from ome_agent.fleet.status import entry_key
from ome_agent.reconcile.ports import NodeReport, NodeState
from ome_agent.wire.entry import encode_entry


def model(name: str, selector: dict[str, str] | None = None, uri: str = "hf://o/m", rv: str = "1",
          namespace: str | None = None) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "uid": f"uid-{name}", "resourceVersion": rv}
    if namespace:
        meta["namespace"] = namespace
    storage: dict[str, Any] = {"storageUri": uri}
    if selector:
        storage["nodeSelector"] = selector
    return {
        "kind": "BaseModel" if namespace else "ClusterBaseModel",
        "metadata": meta,
        "spec": {"storage": storage},
    }


def node(name: str, labels: dict[str, str], ready: bool = True, beat: str = "t0") -> dict[str, Any]:
    return {
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "status": {
            "conditions": [
                {"type": "Ready", "status": "True" if ready else "False", "lastHeartbeatTime": beat}
            ]
        },
    }


def report(obj: dict[str, Any], state: NodeState) -> tuple[str, str]:
    res = parse_resource(obj)
    return entry_key(res), encode_entry(NodeReport(key=res.key, uid=res.uid, state=state))


def config_map(node_name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"kind": "ConfigMap", "metadata": {"name": node_name, "labels": {"node": node_name}},
            "data": data}  # fmt: skip


def key(name: str) -> ModelKey:
    return ModelKey("ClusterBaseModel", None, name)


def test_a_report_touches_only_the_models_whose_entry_changed() -> None:
    cache = Cache()
    a, b = model("a"), model("b")
    cache.model_event("ADDED", a)
    cache.model_event("ADDED", b)
    ka, va = report(a, NodeState.UPDATING)
    kb, vb = report(b, NodeState.READY)
    assert cache.config_map_event("ADDED", config_map("n1", {ka: va, kb: vb})) == {
        key("a"),
        key("b"),
    }
    # the same ConfigMap again (a resync, another writer's no-op): nothing
    assert cache.config_map_event("MODIFIED", config_map("n1", {ka: va, kb: vb})) == set()
    _, va2 = report(a, NodeState.READY)
    assert cache.config_map_event("MODIFIED", config_map("n1", {ka: va2, kb: vb})) == {key("a")}
    assert cache.entries_of(parse_resource(a))["n1"].state == "Ready"
    # an entry removed touches its model, and leaves the index clean
    assert cache.config_map_event("MODIFIED", config_map("n1", {kb: vb})) == {key("a")}
    assert cache.entries_of(parse_resource(a)) == {}
    assert cache.config_map_event("DELETED", config_map("n1", {})) == {key("b")}
    assert cache.entries == {}


def test_node_heartbeats_touch_nothing_label_changes_touch_what_they_select() -> None:
    cache = Cache()
    gpu, cpu, anywhere = model("gpu", {"acc": "gpu"}), model("cpu", {"acc": "cpu"}), model("any")
    for m in (gpu, cpu, anywhere):
        cache.model_event("ADDED", m)
    assert cache.node_event("ADDED", node("n1", {"acc": "gpu"})) == {key("gpu"), key("any")}
    assert cache.node_event("MODIFIED", node("n1", {"acc": "gpu"}, beat="t1")) == set()
    # gpu → cpu: both selecting models change; the one selecting every node does not
    assert cache.node_event("MODIFIED", node("n1", {"acc": "cpu"})) == {key("gpu"), key("cpu")}
    # NotReady: whatever is eligible there
    assert cache.node_event("MODIFIED", node("n1", {"acc": "cpu"}, ready=False)) == {
        key("cpu"),
        key("any"),
    }
    assert not cache.nodes["n1"].live


def test_the_echo_of_an_own_write_touches_nothing() -> None:
    cache = Cache()
    obj = model("a")
    assert cache.model_event("ADDED", obj) == {key("a")}
    written = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "2"},
               "status": {"state": "Ready"}}  # fmt: skip
    cache.stored(written)
    echo = {**written, "metadata": {**written["metadata"], "resourceVersion": "3",
                                    "managedFields": [{"manager": "x"}]}}  # fmt: skip
    assert cache.model_event("MODIFIED", echo) == set()
    changed = {**echo, "spec": {"storage": {"storageUri": "hf://o/other"}}}
    assert cache.model_event("MODIFIED", changed) == {key("a")}


def test_pvc_job_and_pod_events_touch_their_model() -> None:
    cache = Cache(namespace="ome")
    on_claim = model("p", uri="pvc://team:models/llama")
    cache.model_event("ADDED", on_claim)
    cache.model_event("ADDED", model("other"))
    pvc = {"metadata": {"namespace": "team", "name": "models"}, "status": {"phase": "Pending"}}
    assert cache.pvc_event("ADDED", pvc) == {key("p")}
    assert cache.pvc_event("MODIFIED", {**pvc, "metadata": {**pvc["metadata"], "x": 1}}) == set()
    assert cache.pvc_event("MODIFIED", {**pvc, "status": {"phase": "Bound"}}) == {key("p")}
    labels = {LABEL_MODEL_UID: "uid-p", "job-name": "j"}
    pod = {"metadata": {"namespace": "team", "name": "j-1", "labels": labels}}
    assert cache.pod_event("ADDED", pod) == {key("p")}
    assert cache.pods_of_job("team", "j") == [pod]
    assert cache.pods_of_job("other", "j") == []


def test_relist_deletes_what_is_gone_and_orphans_are_found() -> None:
    cache = Cache()
    cache.node_event("ADDED", node("n1", {}))
    cache.node_event("ADDED", node("n2", {}))
    cache.config_map_event("ADDED", config_map("n2", {}))
    cache.config_map_event("ADDED", config_map("n3", {}))
    cache.replace(cache.nodes, [node("n1", {})], cache.node_event, lambda o: o["metadata"]["name"])
    assert set(cache.nodes) == {"n1"}
    assert cache.orphan_config_maps() == ["n2", "n3"]


def test_a_relist_of_one_model_kind_keeps_the_others() -> None:
    cache = Cache()
    cluster_scoped, namespaced = model("c"), model("b", namespace="team")
    cache.model_event("ADDED", cluster_scoped)
    cache.model_event("ADDED", namespaced)
    gone = cache.replace(
        cache.models_of_kind("ClusterBaseModel"), [], cache.model_event, lambda o: None
    )
    assert gone == {key("c")}
    assert list(cache.models) == [ModelKey("BaseModel", "team", "b")]
