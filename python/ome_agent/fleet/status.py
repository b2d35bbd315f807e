"""A resource's ``.status`` from its nodes' reports (controller, docs/architecture.md, layer 4).

Input: the entries the node agents wrote into their ConfigMaps (wire format,
docs/wire.md) and what the controller knows of each Node. Output: the whole
``.status`` object of a BaseModel / ClusterBaseModel / FineTunedWeight, with the
field names of ``deploy/crds``.

Rules
- ``state`` keeps OME's rule so OME's readers see what they expect: ``Ready`` if any
  node is ready, else ``Failed`` if any failed, else ``In_Transit``. We add
  ``Disabled`` (``spec.disabled``, wins over everything) and ``NoEligibleNodes`` (no
  live node matches the selector and no node has it ready: waiting would be forever).
- ``lifecycle`` says where the model is in its life, more precisely than ``state``:
  ``Pending`` (eligible nodes, none reported yet), ``Downloading`` (a node is
  downloading), ``Ready`` (every eligible node ready — the reference doc's word),
  ``PartiallyReady`` (some ready, the rest failed or silent, nothing downloading),
  ``Failed`` (failures, nothing ready or downloading), ``NoEligibleNodes``,
  ``Disabled``, ``Deleting`` (deletion requested; the finalizer waits for the nodes).
- Entries of nodes the controller does not know (deleted Nodes) are ignored, and so
  are entries naming another ``uid`` (an earlier resource of the same name). A known
  node that is not live (NotReady, being deleted) still lists its entry — the files
  are there — but does not count as eligible: eligibility is over live nodes only.
- ``nodesReady`` / ``nodesFailed`` sorted; ``readyNodeCount`` / ``failedNodeCount``
  their lengths; ``eligibleNodeCount`` the live nodes that should hold the model.
- conditions: ``Ready`` is True only when every eligible node is ready ("3/5 nodes
  ready") — OME calls a model Ready at 1 of 50, our ``state`` keeps that for
  compatibility, the condition tells the truth; ``Progressing`` (downloads running,
  with bytes); ``Degraded`` (failed nodes, up to 3 distinct errors with their
  node counts). ``lastTransitionTime`` moves only when a condition's status changes.
- FineTunedWeight: eligible where its base model is (the caller passes the base).

:func:`status_changed` ignores ``lastReconcileTime``, so a steady state writes nothing.
Pure: no I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ome_agent.api import ModelResource
from ome_agent.reconcile.eligibility import eligibility
from ome_agent.reconcile.ports import NodeState, Progress
from ome_agent.wire.entry import decode_entry, rfc3339
from ome_agent.wire.naming import config_map_key

log = logging.getLogger(__name__)

# state values (CRD: deploy/crds, status.state)
READY = "Ready"
FAILED = "Failed"
IN_TRANSIT = "In_Transit"
DISABLED = "Disabled"
NO_ELIGIBLE_NODES = "NoEligibleNodes"

# lifecycle values (documented above)
LC_PENDING = "Pending"
LC_DOWNLOADING = "Downloading"
LC_READY = "Ready"
LC_PARTIALLY_READY = "PartiallyReady"
LC_FAILED = "Failed"
LC_NO_ELIGIBLE_NODES = "NoEligibleNodes"
LC_DISABLED = "Disabled"
LC_DELETING = "Deleting"

# condition types
COND_READY = "Ready"
COND_PROGRESSING = "Progressing"
COND_DEGRADED = "Degraded"

MAX_ERRORS_SHOWN = 3  # distinct error messages in the Degraded condition
MAX_ERROR_CHARS = 300  # each one clipped: a condition is read in `kubectl describe`
MAX_NODES_SHOWN = 3  # node names listed per error / per message


@dataclass(frozen=True)
class NodeView:
    """What the controller knows of one Node."""

    name: str
    labels: Mapping[str, str]
    live: bool  # Ready condition True and not being deleted


@dataclass(frozen=True)
class NodeEntry:
    """One model's entry in one node's ConfigMap."""

    node: str
    state: str  # Ready | Updating | Failed
    error: str | None
    progress: Progress | None
    config: Mapping[str, Any] | None
    uid: str | None = None  # the resource's metadata.uid, when the agent wrote it (ours do)
    path: str | None = None  # where the files are on the node (ours write it)


def node_view(node: Mapping[str, Any]) -> NodeView:
    """A Node object (as the API server returns it) → :class:`NodeView`. Live: its
    ``Ready`` condition is True and it is not being deleted."""
    meta = node.get("metadata") or {}
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(
        isinstance(c, Mapping) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in conditions
    )
    labels = meta.get("labels") or {}
    return NodeView(
        name=str(meta.get("name", "")),
        labels={str(k): str(v) for k, v in labels.items()},
        live=ready and not meta.get("deletionTimestamp"),
    )


def entry_key(resource: ModelResource) -> str:
    """The data key of ``resource`` in every node's ConfigMap."""
    return config_map_key(resource.key)


def entries_of_configmap(
    node: str, data: Mapping[str, str], config_map: str | None = None
) -> dict[str, NodeEntry]:
    """The readable model entries of ``node``'s ConfigMap ``data``, by data key.

    An entry that cannot be read (not JSON, unknown status; another tool may write
    there) is skipped and logged with ``config_map`` (``namespace/name``) and its key:
    one bad value must not hide the node's other models. Callers pass only values that
    changed, so an entry is logged once, not on every resync; it is never rewritten."""
    entries: dict[str, NodeEntry] = {}
    for key, value in data.items():
        decoded = decode_entry(value) if isinstance(value, str) else None
        if decoded is None or decoded.state is None:
            reason = decoded.error if decoded is not None else "not a string"
            log.warning(
                "ConfigMap %s: entry %r is not a model entry (%s): skipped, left as it is",
                config_map or f"of node {node}",
                key,
                reason,
            )
            continue
        entries[key] = NodeEntry(
            node=node,
            state=decoded.state.value,
            error=decoded.message,
            progress=decoded.progress,
            config=decoded.config,
            uid=decoded.uid,
            path=decoded.path,
        )
    return entries


def eligible_nodes(
    resource: ModelResource,
    nodes: Mapping[str, NodeView],
    *,
    base: ModelResource | None = None,
) -> list[str]:
    """Sorted names of the live nodes that should hold ``resource``. A FineTunedWeight
    goes where its base model goes: without ``base``, nowhere."""
    placed_by = base if resource.kind == "FineTunedWeight" else resource
    if placed_by is None:
        return []
    storage = placed_by.storage
    return sorted(
        name
        for name, node in nodes.items()
        if node.live and eligibility(storage, name, node.labels).eligible
    )


def aggregate(
    resource: ModelResource,
    entries: Mapping[str, NodeEntry],
    nodes: Mapping[str, NodeView],
    previous: Mapping[str, Any] | None,
    now: datetime,
    *,
    base: ModelResource | None = None,
) -> dict[str, Any]:
    """The full new ``.status`` of ``resource``.

    ``entries``: node name → this resource's entry on that node. ``previous``: the
    current ``.status`` (keeps each condition's ``lastTransitionTime``). ``base``: for a
    FineTunedWeight, its BaseModel / ClusterBaseModel (None when it does not exist)."""
    known = {n: e for n, e in entries.items() if n in nodes and same_resource(resource, e)}
    ready = sorted(n for n, e in known.items() if e.state == NodeState.READY)
    failed = sorted(n for n, e in known.items() if e.state == NodeState.FAILED)
    updating = sorted(n for n, e in known.items() if e.state == NodeState.UPDATING)
    eligible = eligible_nodes(resource, nodes, base=base)
    ready_eligible = [n for n in eligible if n in set(ready)]
    missing_base = resource.kind == "FineTunedWeight" and base is None

    if resource.disabled:
        state = DISABLED
    elif ready:
        state = READY
    elif not eligible:
        state = NO_ELIGIBLE_NODES
    elif failed:
        state = FAILED
    else:
        state = IN_TRANSIT

    conditions = [
        _ready_condition(resource, eligible, ready_eligible, missing_base),
        _progressing_condition(known, updating),
        _degraded_condition(known, failed, len(known)),
    ]
    return {
        "state": state,
        "lifecycle": _lifecycle(resource, state, eligible, ready_eligible, updating),
        "nodesReady": ready,
        "nodesFailed": failed,
        "eligibleNodeCount": len(eligible),
        "readyNodeCount": len(ready),
        "failedNodeCount": len(failed),
        "observedGeneration": resource.generation,
        "lastReconcileTime": rfc3339(now),
        "conditions": merge_conditions(previous, conditions, now, resource.generation),
    }


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether writing ``new`` over ``old`` changes anything but ``lastReconcileTime``."""
    if old is None:
        return True
    return _comparable(old) != _comparable(new)


def set_condition(
    status: Mapping[str, Any], condition: Mapping[str, Any], now: datetime
) -> dict[str, Any]:
    """``status`` with ``condition`` added or replacing the one of the same type (for
    the caller's own conditions, e.g. the deletion one); its ``lastTransitionTime``
    stays when its status did not change."""
    generation = condition.get("observedGeneration", status.get("observedGeneration", 0))
    return {**status, "conditions": merge_conditions(status, [condition], now, generation)}


def merge_conditions(
    previous: Mapping[str, Any] | None,
    conditions: Iterable[Mapping[str, Any]],
    now: datetime,
    generation: int,
) -> list[dict[str, Any]]:
    """``previous``'s conditions with ``conditions`` (type, status, reason, message)
    put in: each completed with ``observedGeneration`` and a ``lastTransitionTime`` that
    moves only on a status change. Conditions of other types are kept as they were
    (the caller's own, e.g. ``Deleting``). Sorted by type, so equal inputs give equal
    lists."""
    before = {
        c.get("type"): c for c in (previous or {}).get("conditions") or [] if isinstance(c, Mapping)
    }
    merged: dict[str, dict[str, Any]] = {
        str(kind): dict(c) for kind, c in before.items() if isinstance(kind, str)
    }
    for condition in conditions:
        old = before.get(condition["type"])
        since = (
            old["lastTransitionTime"]
            if old is not None
            and old.get("status") == condition["status"]
            and old.get("lastTransitionTime")
            else rfc3339(now)
        )
        merged[condition["type"]] = {
            "type": condition["type"],
            "status": condition["status"],
            "reason": condition["reason"],
            "message": condition["message"],
            "observedGeneration": generation,
            "lastTransitionTime": since,
        }
    return [merged[kind] for kind in sorted(merged)]


def human_bytes(n: float) -> str:
    """``40.0 GB``: decimal units, as download sizes are quoted."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def node_list(names: Iterable[str]) -> str:
    """``node-a, node-b, node-c and 4 more``: bounded however many nodes there are."""
    names = list(names)
    shown = ", ".join(names[:MAX_NODES_SHOWN])
    rest = len(names) - MAX_NODES_SHOWN
    return f"{shown} and {rest} more" if rest > 0 else shown


def same_resource(resource: ModelResource, entry: NodeEntry) -> bool:
    """False for an entry written for an earlier resource of the same name (deleted and
    recreated): until the agent reports the new one, it says nothing about it. OME's
    entries carry no uid and are taken as they are."""
    return not entry.uid or not resource.uid or entry.uid == resource.uid


def _comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "lastReconcileTime"}


def _lifecycle(
    resource: ModelResource,
    state: str,
    eligible: list[str],
    ready_eligible: list[str],
    updating: list[str],
) -> str:
    if resource.deleting:
        return LC_DELETING
    if state == DISABLED:
        return LC_DISABLED
    if updating:
        return LC_DOWNLOADING
    if eligible and len(ready_eligible) == len(eligible):
        return LC_READY
    if state == READY:
        return LC_PARTIALLY_READY
    if state == NO_ELIGIBLE_NODES:
        return LC_NO_ELIGIBLE_NODES
    if state == FAILED:
        return LC_FAILED
    return LC_PENDING  # eligible nodes, none has reported yet


def _ready_condition(
    resource: ModelResource,
    eligible: list[str],
    ready_eligible: list[str],
    missing_base: bool,
) -> dict[str, str]:
    counts = f"{len(ready_eligible)}/{len(eligible)} nodes ready"
    if resource.disabled:
        return _cond(COND_READY, False, "Disabled", "spec.disabled is true: no node keeps it")
    if missing_base:
        return _cond(
            COND_READY,
            False,
            "BaseModelNotFound",
            "spec.baseModelRef names no BaseModel or ClusterBaseModel: create it or fix the name",
        )
    if not eligible:
        return _cond(
            COND_READY,
            False,
            "NoEligibleNodes",
            "no live node matches storage.nodeSelector / storage.nodeAffinity",
        )
    # the message is the `kubectl get` Nodes column: how many, and where
    if ready_eligible:
        counts += f": {node_list(ready_eligible)}"
    if len(ready_eligible) == len(eligible):
        return _cond(COND_READY, True, "AllNodesReady", counts)
    return _cond(COND_READY, False, "NodesNotReady", counts)


def _progressing_condition(known: Mapping[str, NodeEntry], updating: list[str]) -> dict[str, str]:
    if not updating:
        return _cond(COND_PROGRESSING, False, "Idle", "no download running")
    total = done = 0
    for node in updating:
        progress = known[node].progress
        if progress is not None:
            total += progress.total_bytes
            done += progress.completed_bytes
    message = f"{len(updating)} node{'s' if len(updating) != 1 else ''} downloading"
    message += f" ({node_list(updating)})"
    # whole percents of the total and no speed: the message (so the status) changes at
    # most a hundred times per download, not on every progress report; `ome-agent
    # status` shows the bytes and speed of each node
    if total > 0:
        message += f": {100 * done // total}% of {human_bytes(total)}"
    return _cond(COND_PROGRESSING, True, "Downloading", message)


def _degraded_condition(
    known: Mapping[str, NodeEntry], failed: list[str], reporting: int
) -> dict[str, str]:
    if not failed:
        return _cond(COND_DEGRADED, False, "NoFailures", "no node reports a failure")
    by_error: dict[str, list[str]] = {}
    for node in failed:
        by_error.setdefault(clip(known[node].error or "no reason given"), []).append(node)
    # the most widespread errors first; ties by message, so the text is stable
    ranked = sorted(by_error.items(), key=lambda item: (-len(item[1]), item[0]))
    shown = [
        f"{message} ({len(nodes)} node{'s' if len(nodes) != 1 else ''}: {node_list(nodes)})"
        for message, nodes in ranked[:MAX_ERRORS_SHOWN]
    ]
    hidden = len(ranked) - MAX_ERRORS_SHOWN
    if hidden > 0:
        shown.append(f"and {hidden} other error{'s' if hidden != 1 else ''}")
    head = f"{len(failed)}/{reporting} reporting nodes failed: "
    return _cond(COND_DEGRADED, True, "NodesFailed", head + "; ".join(shown))


def _cond(kind: str, status: bool, reason: str, message: str) -> dict[str, str]:
    return {
        "type": kind,
        "status": "True" if status else "False",
        "reason": reason,
        "message": message,
    }


def clip(message: str, limit: int = MAX_ERROR_CHARS) -> str:
    """``message`` on one line (multi-line errors read badly in a table), at most
    ``limit`` characters."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"
