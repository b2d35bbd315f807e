"""Counters of the controller (docs/architecture.md, layer 5: observability), served on
``/metrics`` with the adapter's API request counters and the Lease gauge.

"Work proportional to what changed" is read from these: reconciles per key change,
status writes per changed status, none in a steady state.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RECONCILES = Counter(
    "ome_agent_controller_reconciles",
    "Reconciles of a model resource, by result (ok, error, gone)",
    ["result"],
)
QUEUE_DEPTH = Gauge(
    "ome_agent_controller_queue_depth", "Model keys due and waiting in the controller's queue"
)
EVENTS_RECORDED = Counter(
    "ome_agent_controller_events",
    "Kubernetes Events recorded on model resources, by reason",
    ["reason"],
)
