"""Deletion: the finalizer waits for live nodes only, and never forever."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ome_agent.api import ModelResource, parse_resource
from ome_agent.fleet.deletion import FINALIZER, DeletionDecision, deletion_decision
from ome_agent.fleet.status import (
    NodeEntry,
    NodeView,
    aggregate,
    set_condition,
    status_changed,
)

SINCE = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
TIMEOUT = timedelta(minutes=10)


def resource() -> ModelResource:
    return parse_resource(
        {
            "kind": "ClusterBaseModel",
            "metadata": {
                "name": "llama",
                "generation": 4,
                "deletionTimestamp": "2026-11-27T10:00:00Z",
            },
            "spec": {"storage": {"storageUri": "hf://meta/llama", "path": "/mnt/models/llama"}},
        }
    )


def entry(node: str, path: str | None = None) -> NodeEntry:
    return NodeEntry(node, "Ready", None, None, None, path=path)


def view(name: str, live: bool = True) -> NodeView:
    return NodeView(name, {}, live)


def decide(
    entries: dict[str, NodeEntry], nodes: dict[str, NodeView], after: timedelta = timedelta(0)
) -> DeletionDecision:
    return deletion_decision(
        resource(), entries, nodes, deleting_since=SINCE, now=SINCE + after, timeout=TIMEOUT
    )


def test_finalizer_name() -> None:
    assert FINALIZER == "ome.io/model-agent-cleanup"


def test_waits_for_live_nodes_with_an_entry() -> None:
    nodes = {"a": view("a"), "b": view("b"), "c": view("c")}
    decision = decide({"b": entry("b"), "a": entry("a")}, nodes, timedelta(minutes=3))
    assert not decision.done
    assert decision.waiting_on == ("a", "b")
    assert not decision.timed_out
    condition = decision.condition
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "Deleting",
        "True",
        "WaitingForNodes",
    )
    assert (
        condition["message"]
        == "waiting for 2 nodes to remove the files: a, b (gives up at 2026-11-27T10:10:00Z)"
    )
    assert condition["observedGeneration"] == 4


def test_done_when_no_entry_left() -> None:
    decision = decide({}, {"a": view("a")})
    assert decision.done
    assert not decision.timed_out
    assert decision.waiting_on == ()
    assert decision.condition["reason"] == "Cleaned"


def test_not_live_and_gone_nodes_do_not_block() -> None:
    nodes = {"a": view("a"), "down": view("down", live=False)}
    entries = {"down": entry("down"), "gone": entry("gone", path="/data/llama")}
    decision = decide(entries, nodes)
    assert decision.done
    assert not decision.timed_out
    message = decision.condition["message"]
    # the nodes that could not confirm are named, with where the files are
    assert "files may remain on down, gone in /data/llama, /mnt/models/llama" in message


def test_timeout_is_done_anyway_and_names_the_nodes() -> None:
    nodes = {"a": view("a"), "b": view("b")}
    decision = decide({"b": entry("b")}, nodes, TIMEOUT)
    assert decision.done
    assert decision.timed_out
    assert decision.waiting_on == ("b",)
    condition = decision.condition
    assert (condition["status"], condition["reason"]) == ("False", "TimedOut")
    assert condition["message"].startswith(
        "gave up after 10m00s waiting for the agents: files may remain on b in /mnt/models/llama: "
        "remove them on each node"
    )
    assert condition["lastTransitionTime"] == "2026-11-27T10:10:00Z"


def test_just_before_timeout_still_waits() -> None:
    decision = decide({"b": entry("b")}, {"b": view("b")}, TIMEOUT - timedelta(seconds=1))
    assert not decision.done
    assert "(gives up at 2026-11-27T10:10:00Z)" in decision.condition["message"]


def test_repeated_deletion_reconcile_changes_nothing() -> None:
    """The controller's deletion path (aggregate, then the Deleting condition) gives
    the same status on the next reconcile while nothing changed: no write."""
    nodes = {"b": view("b")}
    entries = {"b": entry("b")}
    first_at = SINCE + timedelta(seconds=5)
    decision = decide(entries, nodes, timedelta(seconds=5))
    first = set_condition(
        aggregate(resource(), entries, nodes, None, first_at), decision.condition, first_at
    )
    later = SINCE + timedelta(minutes=4)
    decision = decide(entries, nodes, timedelta(minutes=4))
    second = set_condition(
        aggregate(resource(), entries, nodes, first, later), decision.condition, later
    )
    assert not status_changed(first, second)
    (deleting,) = [c for c in second["conditions"] if c["type"] == "Deleting"]
    assert deleting["lastTransitionTime"] == "2026-11-27T10:00:05Z"
