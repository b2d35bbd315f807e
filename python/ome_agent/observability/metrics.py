"""The node agent's Prometheus metrics (fed by the reconcile core; served elsewhere).

Download durations use buckets from one second to six hours: a 700 GB model takes
hours, and a histogram capped at a minute says nothing about it. Failure reasons are
a small fixed set so label cardinality stays bounded whatever the error text.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

FAILURE_REASONS = ("source", "credentials", "disk", "verify", "unsupported", "spec", "internal")
# why the engine retried a request (TransferError.kind of the failure it retried)
RETRY_REASONS = ("status", "connect", "timeout", "slow", "broken", "protocol", "other")
# "reused": files linked from an identical model on the node (downloadPolicy ReuseIfExists)
DOWNLOAD_RESULTS = ("success", "reused", "failure", "cancelled")
STATES = ("Ready", "Updating", "Failed")
DURATION_BUCKETS = (
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
    3600.0, 7200.0, 10800.0, 14400.0, 21600.0,
)  # fmt: skip


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.downloads = Counter(
            "ome_agent_downloads_total",
            "Model downloads finished, by result.",
            ["result"],
            registry=registry,
        )
        self.download_bytes = Counter(
            "ome_agent_download_bytes_total",
            "Bytes received over the network for model downloads.",
            registry=registry,
        )
        self.download_duration = Histogram(
            "ome_agent_download_duration_seconds",
            "Wall time of successful model downloads (listing to verified).",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            "ome_agent_queue_depth", "Models waiting in the work queue.", registry=registry
        )
        self.in_flight = Gauge(
            "ome_agent_in_flight", "Model actions running now.", registry=registry
        )
        self.failures = Counter(
            "ome_agent_failures_total",
            "Model actions that failed, by reason.",
            ["reason"],
            registry=registry,
        )
        self.scrub_bytes = Counter(
            "ome_agent_scrub_bytes_total",
            "Bytes of Ready models read and hashed by the background scrub.",
            registry=registry,
        )
        self.scrub_mismatches = Counter(
            "ome_agent_scrub_mismatches_total",
            "Files the scrub found differing from their manifest (each fetched again).",
            registry=registry,
        )
        self.retries = Counter(
            "ome_agent_transfer_retries_total",
            "Requests of model downloads retried, by the reason of the failure retried.",
            ["reason"],
            registry=registry,
        )
        self.models = Gauge(
            "ome_agent_models", "Models on this node, by state.", ["state"], registry=registry
        )
        # every label value exists from the start: a rate() over a missing series is empty
        for result in DOWNLOAD_RESULTS:
            self.downloads.labels(result)
        for reason in FAILURE_REASONS:
            self.failures.labels(reason)
        for reason in RETRY_REASONS:
            self.retries.labels(reason)
        for state in STATES:
            self.models.labels(state).set(0)

    def track_queue(self, depth: Callable[[], float], in_flight: Callable[[], float]) -> None:
        """Read the work queue's gauges at scrape time (always current, no updates to miss)."""
        self.queue_depth.set_function(depth)
        self.in_flight.set_function(in_flight)

    def failed(self, reason: str) -> None:
        self.failures.labels(reason if reason in FAILURE_REASONS else "internal").inc()

    def retried(self, kind: str) -> None:
        """One retry of the engine; ``kind`` is the failure's (``RetryNotice.kind``)."""
        self.retries.labels(kind if kind in RETRY_REASONS else "other").inc()

    def set_states(self, counts: dict[str, int]) -> None:
        for state in STATES:
            self.models.labels(state).set(counts.get(state, 0))
