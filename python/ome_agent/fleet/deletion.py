"""When a deleted resource's finalizer may go (controller mode, docs/architecture.md, layer 4).

The controller holds ``ome.io/model-agent-cleanup`` on every model resource so the
resource outlives its files: each node agent sees the deletion, removes the files
and its ConfigMap entry, and the finalizer goes once no node that can still act
holds an entry. Nodes that cannot act never block: a Node that is gone, NotReady or
being deleted has no agent to confirm (OME's finalizer waited for them forever).
A live node whose agent is down would still block, so after ``timeout`` the
decision is "done" anyway and the condition names the nodes where files may remain
and how to remove them.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ome_agent.api import ModelResource
from ome_agent.fleet.status import NodeEntry, NodeView, node_list
from ome_agent.wire.entry import rfc3339

FINALIZER = "ome.io/model-agent-cleanup"
CONDITION = "Deleting"  # the condition type written while the finalizer waits


@dataclass(frozen=True)
class DeletionDecision:
    done: bool  # remove the finalizer now
    waiting_on: tuple[str, ...]  # live nodes still holding an entry (sorted)
    timed_out: bool  # done only because the timeout passed
    condition: dict[str, Any]  # a status condition saying why (type "Deleting")


def deletion_decision(
    resource: ModelResource,
    entries: Mapping[str, NodeEntry],
    nodes: Mapping[str, NodeView],
    *,
    deleting_since: datetime,
    now: datetime,
    timeout: timedelta,
) -> DeletionDecision:
    """Whether ``resource`` (being deleted since ``deleting_since``) may lose its
    finalizer. ``entries``: node name → its entry of this resource."""
    waiting = tuple(sorted(n for n in entries if n in nodes and nodes[n].live))
    # entries on nodes that cannot confirm: gone from the API, or not live
    unconfirmed = sorted(n for n in entries if n not in waiting)
    elapsed = now - deleting_since
    where = resource.storage.path if resource.storage is not None else None

    if not waiting:
        if unconfirmed:
            message = f"no live node holds it; {_files_may_remain(unconfirmed, entries, where)}"
        else:
            message = "every node removed its files"
        condition = _condition("False", "Cleaned", message, resource, now)
        return DeletionDecision(True, (), False, condition)
    if elapsed >= timeout:
        stuck = sorted({*waiting, *unconfirmed})
        message = (
            f"gave up after {_duration(timeout)} waiting for the agents: "
            f"{_files_may_remain(stuck, entries, where)}"
        )
        condition = _condition("False", "TimedOut", message, resource, now)
        return DeletionDecision(True, waiting, True, condition)
    # an absolute deadline, not the time left: the message (and so the status) stays
    # the same from one reconcile to the next while nothing changes
    message = (
        f"waiting for {len(waiting)} node{'s' if len(waiting) != 1 else ''} to remove "
        f"the files: {node_list(waiting)} (gives up at {rfc3339(deleting_since + timeout)})"
    )
    condition = _condition("True", "WaitingForNodes", message, resource, now)
    return DeletionDecision(False, waiting, False, condition)


def _files_may_remain(
    nodes: list[str], entries: Mapping[str, NodeEntry], default_path: str | None
) -> str:
    paths = sorted({p for n in nodes if (p := entries[n].path or default_path)})
    where = f" in {', '.join(paths)}" if paths else ""
    return (
        f"files may remain on {node_list(nodes)}{where}: remove them on each node "
        f"(e.g. kubectl debug node/<node> -- rm -rf /host<path>), and delete the "
        f"model's entry from that node's ConfigMap"
    )


def _condition(
    status: str, reason: str, message: str, resource: ModelResource, now: datetime
) -> dict[str, Any]:
    return {
        "type": CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": resource.generation,
        "lastTransitionTime": rfc3339(now),
    }


def _duration(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
