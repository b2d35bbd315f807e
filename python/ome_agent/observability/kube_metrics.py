"""API request counters of the Kubernetes adapter (docs/architecture.md, layer 5: observability).

Every request the adapter makes goes through ``ome_agent.adapters.kube.client`` and is
counted here by verb, resource and response code, in prometheus_client's default
registry, so ``/metrics`` shows what the agent costs the API server ("0 writes per
minute in steady state" is read from these counters).
"""

from __future__ import annotations

from prometheus_client import Counter

WRITE_VERBS = frozenset({"create", "update", "patch", "delete"})

API_REQUESTS = Counter(
    "ome_agent_kube_requests",
    "Requests to the Kubernetes API server, by verb, resource and response code "
    "(code 'error' when no response came)",
    ["verb", "resource", "code"],
)
WATCH_EVENTS = Counter(
    "ome_agent_kube_watch_events",
    "Watch events received, by resource and event type (BOOKMARK included)",
    ["resource", "type"],
)
RELISTS = Counter(
    "ome_agent_kube_relists",
    "Full relists of a resource after its watch expired (410 Gone)",
    ["resource"],
)
INVALID_RESOURCES = Counter(
    "ome_agent_invalid_resources",
    "Model resources that could not be parsed and were skipped, by kind",
    ["kind"],
)


def count_request(verb: str, resource: str, code: int | str) -> None:
    API_REQUESTS.labels(verb=verb, resource=resource, code=str(code)).inc()


def requests_made(verbs: frozenset[str] | None = None) -> int:
    """Requests counted so far (all verbs, or only ``verbs``), whatever their code."""
    total = 0.0
    for metric in API_REQUESTS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and (verbs is None or sample.labels["verb"] in verbs):
                total += sample.value
    return int(total)
