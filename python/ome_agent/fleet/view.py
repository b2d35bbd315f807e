"""Models by nodes, for people: what ``ome-agent status`` shows in cluster mode
(controller mode's read side, docs/architecture.md, layers 4/6).

Each model's overall state is computed here with :func:`status.aggregate` from the
same inputs the controller uses, so the view is current even when no controller runs
(or it lags); a pvc:// model shows the status the controller wrote from its claim.
Below each model, one line per existing node that reports it: state,
progress (percent, bytes, speed) or the error, or the files checked by their size only
(``config.unverified``).
Pure: builds rows and a rich Table, prints nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.table import Table
from rich.text import Text

from ome_agent.api import ModelKey, ModelResource
from ome_agent.fleet.status import NodeEntry, NodeView, aggregate, entry_key, human_bytes

_STYLE = {"Ready": "green", "Failed": "red", "Updating": "yellow"}


def rows(
    models: Sequence[ModelResource],
    entries: Mapping[str, Mapping[str, NodeEntry]],
    nodes: Mapping[str, NodeView],
    *,
    stored: Mapping[ModelKey, Mapping[str, Any]] | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """One JSON-ready row per model: its aggregated state and its nodes' reports.

    ``entries``: node name → that node's ConfigMap entries by data key (as
    :func:`status.entries_of_configmap` returns them). ``stored``: each resource's
    ``.status`` as written, used for pvc:// models, whose state comes from their claim
    (which only the controller inspects), not from nodes."""
    now = now or datetime.now(UTC)
    by_key = {m.key: m for m in models}
    out = []
    for model in sorted(models, key=lambda m: (m.kind, m.namespace or "", m.name)):
        key = entry_key(model)
        # as in the controller, entries of Nodes that no longer exist are left out
        mine = {n: found[key] for n, found in entries.items() if key in found and n in nodes}
        if model.on_claim:
            status = dict((stored or {}).get(model.key) or {})
            status.setdefault("state", "Unknown")
            status.setdefault("lifecycle", "Unknown")
        else:
            status = aggregate(
                model,
                mine,
                nodes,
                None,
                now,
                base=by_key.get(model.base_key) if model.base_key else None,
            )
        out.append(
            {
                "kind": model.kind,
                "namespace": model.namespace,
                "name": model.name,
                "state": status["state"],
                "lifecycle": status["lifecycle"],
                "eligibleNodeCount": status.get("eligibleNodeCount", 0),
                "readyNodeCount": status.get("readyNodeCount", 0),
                "failedNodeCount": status.get("failedNodeCount", 0),
                "nodes": [_node_row(node, mine[node], nodes) for node in sorted(mine)],
            }
        )
    return out


def table(model_rows: Sequence[Mapping[str, Any]]) -> Table:
    """The rows of :func:`rows` as a table: a model line, then one line per node."""
    grid = Table(title_justify="left")
    for column in ("MODEL", "STATE", "READY", "NODE", "NODE STATE", "PROGRESS", "SPEED"):
        grid.add_column(column, no_wrap=True)
    grid.add_column("DETAIL", max_width=72, overflow="fold")
    for row in model_rows:
        scope = f"{row['namespace']}/" if row["namespace"] else ""
        name = f"{row['kind']}/{scope}{row['name']}"
        ready = f"{row['readyNodeCount']}/{row['eligibleNodeCount']}"
        first = [Text(name), Text(row["state"]), Text(ready)]
        if not row["nodes"]:
            grid.add_row(*first, Text("-"), Text(""), Text(""), Text(""), Text(row["lifecycle"]))
            continue
        for index, node in enumerate(row["nodes"]):
            lead = first if index == 0 else [Text(""), Text(""), Text("")]
            grid.add_row(
                *lead,
                Text(node["node"]),
                Text(node["state"], style=_STYLE.get(node["state"], "")),
                Text(_progress_cell(node)),
                Text(
                    f"{human_bytes(node['speedBytesPerSec'])}/s" if node["speedBytesPerSec"] else ""
                ),
                Text(
                    node["error"]
                    or ("" if node["live"] else "node not ready")
                    or node["unverified"]
                    or ""
                ),
            )
    return grid


def _node_row(node: str, entry: NodeEntry, nodes: Mapping[str, NodeView]) -> dict[str, Any]:
    progress = entry.progress
    view = nodes.get(node)
    row: dict[str, Any] = {
        "node": node,
        "live": bool(view and view.live),
        "state": entry.state,
        "percent": None,
        "completedBytes": None,
        "totalBytes": None,
        "speedBytesPerSec": 0,
        "phase": None,
        "error": entry.error,
        "unverified": _unverified(entry.config),
    }
    if progress is not None and entry.state == "Updating":
        total = progress.total_bytes
        row.update(
            percent=round(100 * progress.completed_bytes / total, 1) if total > 0 else None,
            completedBytes=progress.completed_bytes,
            totalBytes=total,
            speedBytesPerSec=round(progress.speed_bytes_per_sec),
            phase=progress.phase or None,
        )
    return row


def _unverified(config: Mapping[str, Any] | None) -> str | None:
    note = (config or {}).get("unverified")  # the agent's reconcile.unverified
    return note if isinstance(note, str) else None


def _progress_cell(node: Mapping[str, Any]) -> str:
    if node["percent"] is None:
        return node["phase"] or ""
    done, total = human_bytes(node["completedBytes"]), human_bytes(node["totalBytes"])
    return f"{node['phase'] or ''} {node['percent']:.0f}% ({done} of {total})".strip()
