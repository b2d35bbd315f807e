"""What the node says about each model (reconcile core, layer 4: the last step of a
reconcile, before the adapter writes OME's entry and labels).

Every report goes out through the :class:`~ome_agent.reconcile.ports.Reporter` port;
this module builds the :class:`~ome_agent.reconcile.ports.NodeReport` for each state
(Ready from a manifest, Updating with progress, Failed with its typed reason), keeps
what the node reports now, and the metrics that follow from it (states, downloads,
failures).

- ``vendor://``: the vendor's system provides the files; the model is reported Ready
  at its path with no download.
- an exception becomes a Failed report with the reason it carries (typed where it was
  raised, :func:`classify`), never with text matched afterwards; a storage parameter's
  error names the CRD field (``ParameterError.in_spec``), not the command line's flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput, FailureReason, OmeAgentError, ParameterError
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile import hubcache, layout, localcheck, reuse, unverified
from ome_agent.reconcile.download import Fetch
from ome_agent.reconcile.manifest import Identity, Manifest, ManifestStore
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import NodeReport, NodeState, Progress, Reporter
from ome_agent.reconcile.sources import SourcePlan


@dataclass(frozen=True)
class Failure:
    reason: FailureReason
    message: str


def classify(exc: BaseException) -> Failure:
    """The reason each error carries (typed where it was raised), and its message, which
    names the resource's fields (a storage parameter as ``spec.storage.parameters.…``)."""
    if isinstance(exc, ParameterError):
        exc = exc.in_spec()
    if isinstance(exc, OmeAgentError):
        return Failure(exc.reason, str(exc))
    if isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return Failure(
            FailureReason.DISK_FULL if full else FailureReason.DISK,
            f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "),
        )
    return Failure(FailureReason.INTERNAL, f"unexpected {type(exc).__name__}: {exc}")


class Reports:
    """Publishes and withdraws node reports; keeps the states and their metrics."""

    def __init__(
        self,
        options: AgentOptions,
        reporter: Reporter,
        manifests: ManifestStore,
        metrics: AgentMetrics | None,
    ) -> None:
        self._options = options
        self._reporter = reporter
        self._manifests = manifests
        self._metrics = metrics
        self.states: dict[ModelKey, NodeState] = {}  # what this node reports now
        self._state_counts: dict[str, int] = {}  # of states, kept as they change
        self._size_only = unverified.SizeOnlyNotes()  # said on reports, warned once

    @property
    def metrics(self) -> AgentMetrics | None:
        """The agent's metrics, for the downloads that count their retries there."""
        return self._metrics

    async def reported(self) -> dict[ModelKey, NodeState]:
        """What the store held for this node before this agent started."""
        return dict(await self._reporter.reported())

    def forget(self, key: ModelKey) -> None:
        self._size_only.forget(key)

    async def publish(self, report: NodeReport) -> None:
        await self._reporter.publish(report)
        self._count_state(self.states.get(report.key), report.state)
        self.states[report.key] = report.state

    async def withdraw(self, key: ModelKey, resource: ModelResource | None) -> None:
        await self._reporter.withdraw(key, resource.uid if resource else None)
        before = self.states.pop(key, None)
        if before is not None:
            self._count_state(before, None)

    async def ready(self, resource: ModelResource, manifest: Manifest) -> None:
        config = dict(manifest.config or {})
        links = reuse.Links(None, [])
        artifact = config.get("artifact")
        if isinstance(artifact, dict):  # a manifest upgraded from version 1 may have none
            nearby = self._manifests.neighbours(manifest.key)  # from memory: no thread
            links = reuse.links(manifest, nearby)
            config["artifact"] = {**artifact, "parentPath": {}, "childrenPaths": links.children}
        size_only = self._size_only.note(manifest)
        if size_only is not None:
            config["unverified"] = size_only
        await self.publish(
            NodeReport(
                resource.key, resource.uid, NodeState.READY, config=config,
                storage_uri=manifest.identity.source, path=manifest.identity.path,
                revision=manifest.commit, manifest_digest=manifest.digest, parent=links.parent,
            )
        )  # fmt: skip

    async def ready_from_disk(self, resource: ModelResource, identity: Identity) -> bool:
        """Ready when the manifest matches the spec and the files (``reconcile.localcheck``:
        lstat, no byte read, no network); False when the model needs work."""
        manifest = self._manifests.load(resource.key)
        if manifest is None or manifest.identity != identity:
            return False
        if not await asyncio.to_thread(localcheck.intact, manifest):
            return False
        await self.ready(resource, manifest)
        return True

    async def vendor_ready(self, resource: ModelResource, plan: SourcePlan, path: str) -> None:
        """Ready at ``target`` with no download: the vendor's system provides the files."""
        config = {**resource.user_fields(), "vendorSource": plan.vendor}
        await self.publish(
            NodeReport(
                resource.key, resource.uid, NodeState.READY, config=config,
                storage_uri=plan.display, path=path,
            )
        )  # fmt: skip

    async def progress(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        target: Path,
        fetch: Fetch,
        message: str | None = None,  # why the model is Updating, when not obvious
    ) -> None:
        done, files_done, files_total, rate = fetch.progress()
        if fetch.phase in ("Verified", "Discovering"):
            done = fetch.total_bytes
        progress = Progress(
            phase=fetch.phase,
            total_bytes=fetch.total_bytes,
            completed_bytes=done,
            total_files=files_total,
            completed_files=files_done,
            speed_bytes_per_sec=rate,
            last_updated=datetime.now(UTC),
        )
        await self.publish(
            NodeReport(
                resource.key, resource.uid, NodeState.UPDATING, progress=progress,
                error=message, storage_uri=plan.display, path=str(target),
            )
        )  # fmt: skip

    async def progress_loop(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        target: Path,
        fetch: Fetch,
        message: str | None = None,
    ) -> None:
        """Updating every ``--progress-interval`` until cancelled."""
        while True:
            await asyncio.sleep(self._options.progress_interval)
            await self.progress(resource, plan, target, fetch, message)

    async def failed(
        self, resource: ModelResource, failure: Failure, plan: SourcePlan | None
    ) -> None:
        key = resource.key
        if self._metrics is not None:
            self._metrics.failed(failure.reason.category)
        path = None
        with contextlib.suppress(BadInput):
            if not hubcache.requested(resource.storage):  # a cache's snapshot needs the listing
                path = str(layout.target_dir(key, resource.storage, self._options.models_roots))
        await self.publish(
            NodeReport(key, resource.uid, NodeState.FAILED, error=failure.message,
                       reason=failure.reason, storage_uri=plan.display if plan else None,
                       path=path)
        )  # fmt: skip

    def count_download(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.downloads.labels(result).inc()

    def count_fetched(self, fetched_bytes: int, seconds: float | None = None) -> None:
        """Bytes a download moved (and how long it took, for a whole model)."""
        if self._metrics is None:
            return
        self._metrics.download_bytes.inc(fetched_bytes)
        if seconds is not None:
            self._metrics.download_duration.observe(seconds)

    def _count_state(self, before: NodeState | None, after: NodeState | None) -> None:
        """Keep the per-state counts as one model changes (a recount would make every
        report cost as much as the number of models)."""
        if before == after:
            return
        counts = self._state_counts
        if before is not None:
            counts[before.value] -= 1
            if not counts[before.value]:
                del counts[before.value]
        if after is not None:
            counts[after.value] = counts.get(after.value, 0) + 1
        if self._metrics is not None:
            self._metrics.set_states(counts)
