"""Controller status aggregation: OME's state rule, our additions, counts, conditions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from ome_agent.api import ModelKey, ModelResource, parse_resource
from ome_agent.fleet.status import (
    NodeEntry,
    NodeView,
    aggregate,
    entries_of_configmap,
    entry_key,
    node_view,
    set_condition,
    status_changed,
)
from ome_agent.fleet.view import rows, table
from ome_agent.reconcile.ports import NodeReport, NodeState, Progress
from ome_agent.wire.entry import encode_entry

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
GPU = {"gpu": "a100"}


def model(
    name: str = "llama",
    *,
    kind: str = "ClusterBaseModel",
    spec: dict[str, Any] | None = None,
    generation: int = 3,
    deleting: bool = False,
) -> ModelResource:
    meta: dict[str, Any] = {"name": name, "generation": generation, "uid": f"uid-{name}"}
    if kind == "BaseModel":
        meta["namespace"] = "team-a"
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T09:00:00Z"
    default = {"storage": {"storageUri": "hf://meta/llama", "nodeSelector": GPU}}
    return parse_resource({"kind": kind, "metadata": meta, "spec": spec or default})


def nodes(*names: str, labels: dict[str, str] = GPU, live: bool = True) -> dict[str, NodeView]:
    return {n: NodeView(n, labels, live) for n in names}


def entry(node: str, state: str, *, error: str | None = None, done: int = 0) -> NodeEntry:
    progress = None
    if state == "Updating":
        progress = Progress("Downloading", 1_000_000_000, done, 4, 1, 50_000_000.0, NOW)
    return NodeEntry(
        node, state, error, progress, {"modelType": "llama"} if state == "Ready" else None
    )


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [c for c in status["conditions"] if c["type"] == kind]
    assert len(found) == 1
    return found[0]


def test_ome_state_rule_ready_if_any_node_ready() -> None:
    all_nodes = nodes("n1", "n2", "n3")
    entries = {"n1": entry("n1", "Failed", error="disk full"), "n3": entry("n3", "Ready")}
    status = aggregate(model(), entries, all_nodes, None, NOW)
    assert status["state"] == "Ready"
    assert status["nodesReady"] == ["n3"]
    assert status["nodesFailed"] == ["n1"]
    assert (status["eligibleNodeCount"], status["readyNodeCount"], status["failedNodeCount"]) == (
        3,
        1,
        1,
    )
    # the condition tells the truth that OME's state hides
    ready = cond(status, "Ready")
    assert ready["status"] == "False"
    assert ready["message"] == "1/3 nodes ready: n3"  # the kubectl Nodes column
    assert status["lifecycle"] == "PartiallyReady"


def test_failed_when_none_ready_else_in_transit() -> None:
    all_nodes = nodes("n1", "n2")
    failed = aggregate(
        model(),
        {"n1": entry("n1", "Failed", error="x"), "n2": entry("n2", "Updating")},
        all_nodes,
        None,
        NOW,
    )
    assert failed["state"] == "Failed"
    assert failed["lifecycle"] == "Downloading"  # n2 is still at it
    transit = aggregate(model(), {"n2": entry("n2", "Updating")}, all_nodes, None, NOW)
    assert transit["state"] == "In_Transit"
    pending = aggregate(model(), {}, all_nodes, None, NOW)
    assert (pending["state"], pending["lifecycle"]) == ("In_Transit", "Pending")


def test_all_eligible_ready_sorted_and_condition_true() -> None:
    all_nodes = nodes("zeta", "alpha", "mid")
    entries = {n: entry(n, "Ready") for n in all_nodes}
    status = aggregate(model(), entries, all_nodes, None, NOW)
    assert status["nodesReady"] == ["alpha", "mid", "zeta"]
    assert status["lifecycle"] == "Ready"
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "True",
        "AllNodesReady",
        "3/3 nodes ready: alpha, mid, zeta",
    )
    assert status["observedGeneration"] == 3
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])


def test_entries_of_deleted_nodes_are_ignored() -> None:
    entries = {"gone": entry("gone", "Ready"), "n1": entry("n1", "Updating")}
    status = aggregate(model(), entries, nodes("n1"), None, NOW)
    assert status["state"] == "In_Transit"
    assert status["nodesReady"] == []
    assert status["readyNodeCount"] == 0


def test_not_live_node_lists_its_entry_but_is_not_eligible() -> None:
    all_nodes = {**nodes("n1"), **nodes("down", live=False)}
    status = aggregate(model(), {"down": entry("down", "Ready")}, all_nodes, None, NOW)
    assert status["nodesReady"] == ["down"]
    assert status["eligibleNodeCount"] == 1
    assert cond(status, "Ready")["message"] == "0/1 nodes ready"


def test_disabled_wins() -> None:
    spec = {"disabled": True, "storage": {"storageUri": "hf://a/b"}}
    status = aggregate(model(spec=spec), {"n1": entry("n1", "Ready")}, nodes("n1"), None, NOW)
    assert (status["state"], status["lifecycle"]) == ("Disabled", "Disabled")
    assert cond(status, "Ready")["reason"] == "Disabled"


def test_no_eligible_nodes() -> None:
    status = aggregate(model(), {}, nodes("cpu-1", labels={"gpu": "none"}), None, NOW)
    assert status["state"] == "NoEligibleNodes"
    assert status["eligibleNodeCount"] == 0
    ready = cond(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "NoEligibleNodes")
    # a live node that matches but is NotReady does not count either
    status = aggregate(model(), {}, nodes("gpu-1", live=False), None, NOW)
    assert status["state"] == "NoEligibleNodes"


def test_affinity_rules_are_the_reconcile_cores() -> None:
    spec = {
        "storage": {
            "storageUri": "hf://a/b",
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "disk", "operator": "Gt", "values": ["500Gi"]}
                            ]
                        }
                    ]
                }
            },
        }
    }
    all_nodes = {
        "big": NodeView("big", {"disk": "1Ti"}, True),
        "small": NodeView("small", {"disk": "100Gi"}, True),
    }
    assert aggregate(model(spec=spec), {}, all_nodes, None, NOW)["eligibleNodeCount"] == 1


def test_progressing_reports_bytes_and_speed() -> None:
    entries = {
        "n1": entry("n1", "Updating", done=250_000_000),
        "n2": entry("n2", "Updating", done=750_000_000),
    }
    status = aggregate(model(), entries, nodes("n1", "n2"), None, NOW)
    progressing = cond(status, "Progressing")
    assert progressing["status"] == "True"
    assert progressing["message"] == "2 nodes downloading (n1, n2): 50% of 2.0 GB"
    idle = aggregate(model(), {}, nodes("n1"), None, NOW)
    assert cond(idle, "Progressing")["status"] == "False"


def test_degraded_summarises_errors_with_counts_and_clips() -> None:
    many = [f"n{i}" for i in range(8)]
    huge = "x" * 5000
    errors = [huge, huge, huge, "disk full", "disk full", "timeout", "other", "token\nrejected"]
    entries = {n: entry(n, "Failed", error=e) for n, e in zip(many, errors, strict=True)}
    status = aggregate(model(), entries, nodes(*many), None, NOW)
    degraded = cond(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "NodesFailed")
    message = degraded["message"]
    # most widespread first, each clipped, with its node count and nodes
    clipped = "x" * 299 + "…"
    assert message.startswith(f"8/8 reporting nodes failed: {clipped} (3 nodes: n0, n1, n2); ")
    assert "; disk full (2 nodes: n3, n4); " in message
    assert message.endswith("(1 node: n6); and 2 other errors")  # 5 distinct, 3 shown
    assert len(message) < 1000
    assert cond(aggregate(model(), {}, nodes("n1"), None, NOW), "Degraded")["status"] == "False"


def test_degraded_lists_many_nodes_briefly() -> None:
    many = [f"n{i:02d}" for i in range(50)]
    entries = {n: entry(n, "Failed", error="disk full") for n in many}
    message = cond(aggregate(model(), entries, nodes(*many), None, NOW), "Degraded")["message"]
    assert (
        message == "50/50 reporting nodes failed: disk full (50 nodes: n00, n01, n02 and 47 more)"
    )


def test_transition_time_moves_only_on_status_change() -> None:
    all_nodes = nodes("n1", "n2")
    first = aggregate(model(), {"n1": entry("n1", "Updating")}, all_nodes, None, NOW)
    later = NOW + timedelta(minutes=5)
    second = aggregate(model(), {"n1": entry("n1", "Updating", done=10)}, all_nodes, first, later)
    assert cond(second, "Ready")["lastTransitionTime"] == "2026-11-27T10:00:00Z"
    third = aggregate(model(), {n: entry(n, "Ready") for n in all_nodes}, all_nodes, second, later)
    assert cond(third, "Ready")["lastTransitionTime"] == "2026-11-27T10:05:00Z"
    assert cond(third, "Degraded")["lastTransitionTime"] == "2026-11-27T10:00:00Z"


def test_steady_state_is_no_change() -> None:
    all_nodes = nodes("n1")
    first = aggregate(model(), {"n1": entry("n1", "Ready")}, all_nodes, None, NOW)
    again = aggregate(
        model(), {"n1": entry("n1", "Ready")}, all_nodes, first, NOW + timedelta(hours=1)
    )
    assert again["lastReconcileTime"] != first["lastReconcileTime"]
    assert not status_changed(first, again)
    assert status_changed(None, first)
    failed = aggregate(model(), {"n1": entry("n1", "Failed", error="e")}, all_nodes, first, NOW)
    assert status_changed(first, failed)


def test_finetunedweight_eligible_where_its_base_is() -> None:
    base = model("base")
    ftw = parse_resource(
        {
            "kind": "FineTunedWeight",
            "metadata": {"name": "lora", "generation": 1},
            "spec": {"baseModelRef": {"name": "base"}, "storage": {"storageUri": "hf://a/lora"}},
        }
    )
    all_nodes = {**nodes("g1", "g2"), **nodes("cpu", labels={})}
    status = aggregate(ftw, {"g1": entry("g1", "Ready")}, all_nodes, None, NOW, base=base)
    assert status["eligibleNodeCount"] == 2
    assert cond(status, "Ready")["message"] == "1/2 nodes ready: g1"
    orphan = aggregate(ftw, {}, all_nodes, None, NOW)
    assert orphan["state"] == "NoEligibleNodes"
    assert cond(orphan, "Ready")["reason"] == "BaseModelNotFound"


def test_deleting_lifecycle() -> None:
    status = aggregate(model(deleting=True), {"n1": entry("n1", "Ready")}, nodes("n1"), None, NOW)
    assert status["lifecycle"] == "Deleting"


def test_set_condition_keeps_transition_time() -> None:
    status = aggregate(model(), {}, nodes("n1"), None, NOW)
    extra = {"type": "Deleting", "status": "True", "reason": "WaitingForNodes", "message": "m"}
    once = set_condition(status, extra, NOW)
    twice = set_condition(once, {**extra, "message": "m2"}, NOW + timedelta(minutes=1))
    (deleting,) = [c for c in twice["conditions"] if c["type"] == "Deleting"]
    assert deleting["lastTransitionTime"] == "2026-11-27T10:00:00Z"
    assert deleting["message"] == "m2"
    assert [c["type"] for c in twice["conditions"]] == [
        "Degraded",
        "Deleting",
        "Progressing",
        "Ready",
    ]


def test_entries_of_configmap_reads_ours_and_omes_and_skips_garbage() -> None:
    cbm = model()
    bm = model("mistral", kind="BaseModel")
    ours = encode_entry(
        NodeReport(
            key=cbm.key,
            uid=cbm.uid,
            state=NodeState.FAILED,
            error="token rejected",
            path="/mnt/models/llama",
        )
    )
    omes = '{"name":"mistral","status":"Ready","config":{"modelType":"mistral"}}'
    data = {
        entry_key(cbm): ours,
        entry_key(bm): omes,
        "junk": "{not json",
        "old": '{"status":"Deleted"}',
    }
    found = entries_of_configmap("n1", data)
    assert set(found) == {"clusterbasemodel.llama", "team-a.basemodel.mistral"}
    mine = found["clusterbasemodel.llama"]
    assert (mine.node, mine.state, mine.error, mine.uid, mine.path) == (
        "n1",
        "Failed",
        "token rejected",
        "uid-llama",
        "/mnt/models/llama",
    )
    assert found["team-a.basemodel.mistral"].config == {"modelType": "mistral"}


def test_entry_key_is_the_wire_key() -> None:
    assert entry_key(model()) == "clusterbasemodel.llama"
    assert entry_key(model("m", kind="BaseModel")) == "team-a.basemodel.m"
    assert ModelKey("ClusterBaseModel", None, "llama") == model().key


def test_entry_of_an_earlier_resource_with_the_same_name_is_ignored() -> None:
    stale = NodeEntry("n1", "Ready", None, None, None, uid="uid-of-the-deleted-one")
    current = NodeEntry("n2", "Updating", None, None, None, uid="uid-llama")
    omes = NodeEntry("n3", "Failed", "x", None, None)  # OME writes no uid: taken as is
    status = aggregate(
        model(), {"n1": stale, "n2": current, "n3": omes}, nodes("n1", "n2", "n3"), None, NOW
    )
    assert status["nodesReady"] == []
    assert status["nodesFailed"] == ["n3"]
    assert status["state"] == "Failed"


def test_node_view_from_a_node_object() -> None:
    ready = {"type": "Ready", "status": "True"}
    obj = {"metadata": {"name": "n1", "labels": {"gpu": "a100"}}, "status": {"conditions": [ready]}}
    assert node_view(obj) == NodeView("n1", {"gpu": "a100"}, True)
    not_ready = {
        "metadata": {"name": "n2"},
        "status": {"conditions": [{**ready, "status": "Unknown"}]},
    }
    assert not node_view(not_ready).live
    deleting = {
        "metadata": {"name": "n3", "deletionTimestamp": "2026-11-27T10:00:00Z"},
        "status": {"conditions": [ready]},
    }
    assert not node_view(deleting).live
    assert not node_view({"metadata": {"name": "bare"}}).live


def test_view_rows_and_table() -> None:
    base = model("base")
    ftw = parse_resource(
        {
            "kind": "FineTunedWeight",
            "metadata": {"name": "lora"},
            "spec": {"baseModelRef": {"name": "base"}, "storage": {"storageUri": "hf://a/lora"}},
        }
    )
    all_nodes = {**nodes("n1", "n2"), **nodes("down", live=False)}
    by_node = {
        "n1": {entry_key(base): entry("n1", "Updating", done=500_000_000)},
        "down": {entry_key(base): entry("down", "Failed", error="disk [full]")},
        "gone": {entry_key(base): entry("gone", "Ready")},
    }
    model_rows = rows([ftw, base], by_node, all_nodes, now=NOW)
    assert [r["kind"] for r in model_rows] == ["ClusterBaseModel", "FineTunedWeight"]
    base_row, ftw_row = model_rows
    assert base_row["state"] == "Failed"
    assert [n["node"] for n in base_row["nodes"]] == ["down", "n1"]  # "gone" is left out
    n1 = base_row["nodes"][1]
    assert (n1["percent"], n1["completedBytes"], n1["speedBytesPerSec"]) == (
        50.0,
        500_000_000,
        50_000_000,
    )
    assert ftw_row["eligibleNodeCount"] == 2  # placed where its base is
    assert ftw_row["nodes"] == []
    console = Console(width=200, record=True)
    console.print(table(model_rows))
    text = console.export_text()
    assert "Downloading 50% (500.0 MB of 1.0 GB)" in text
    assert "50.0 MB/s" in text
    assert "disk [full]" in text  # shown verbatim, not as markup
    assert "FineTunedWeight/lora" in text


def test_view_pvc_model_shows_the_stored_status() -> None:
    pvc = model("on-claim", spec={"storage": {"storageUri": "pvc://models/llama"}})
    stored = {pvc.key: {"state": "Ready", "lifecycle": "Ready"}}
    (row,) = rows([pvc], {}, nodes("n1"), stored=stored, now=NOW)
    assert (row["state"], row["lifecycle"], row["eligibleNodeCount"]) == ("Ready", "Ready", 0)
    (unknown,) = rows([pvc], {}, nodes("n1"), now=NOW)
    assert unknown["state"] == "Unknown"


def test_small_progress_steps_write_nothing() -> None:
    all_nodes = nodes("n1")
    first = aggregate(
        model(), {"n1": entry("n1", "Updating", done=300_000_000)}, all_nodes, None, NOW
    )
    step = aggregate(
        model(), {"n1": entry("n1", "Updating", done=301_000_000)}, all_nodes, first, NOW
    )
    assert not status_changed(first, step)
    moved = aggregate(
        model(), {"n1": entry("n1", "Updating", done=400_000_000)}, all_nodes, first, NOW
    )
    assert status_changed(first, moved)
