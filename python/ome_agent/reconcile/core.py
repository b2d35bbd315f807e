"""The reconcile core: from declared models and the node's labels to files on disk and
reports (docs/architecture.md, layer 4).

Adapters call :class:`Reconciler` from their event handlers (``apply``, ``forget``,
``replace_all``, ``set_node``); those calls only record the new state and put the
model's key on a keyed work queue, so no watch is ever blocked. The queue runs one
action per model at a time (delete before download before re-verification) and the
handler is level-triggered: it looks at the current resource, eligibility and local
manifest and does what is missing, whatever sequence of events led there.

This module orchestrates the concerns, in pipeline order: ``desired`` (which models
belong here, where), ``fetching`` (download, adoption, repair), ``removal``, ``reports``
(entry, labels, metrics); retries follow ``backoff.Retries``. Decided here (and in the
README): a ``disabled: true`` model's report is withdrawn but its files stay, so
enabling it again makes it Ready at once; a ``vendor://`` model is Ready at its path
with no download; a file the scrub found wrong is fetched again by the next handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile import reuse, scrub
from ome_agent.reconcile.backoff import Retries
from ome_agent.reconcile.desired import Desired
from ome_agent.reconcile.fetching import Downloads
from ome_agent.reconcile.manifest import Manifest, ManifestStore
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import NodeState, Reporter, SecretReader
from ome_agent.reconcile.removal import Removal
from ome_agent.reconcile.reports import Failure, Reports, classify
from ome_agent.reconcile.sources import SourcePlan, plan_source
from ome_agent.reconcile.workqueue import Priority, WorkQueue

log = logging.getLogger("ome_agent.reconcile")


class Reconciler:
    def __init__(
        self,
        options: AgentOptions,
        reporter: Reporter,
        secrets: SecretReader,
        *,
        metrics: AgentMetrics | None = None,
    ) -> None:
        self.options = options
        self._metrics = metrics
        self._manifests = ManifestStore(options.state_dir)
        self._desired = Desired(options, self._manifests)
        self._reports = Reports(options, reporter, self._manifests, metrics)
        self._removal = Removal(options, self._manifests, self._desired)
        self._downloads = Downloads(
            options, self._manifests, self._desired, self._reports, self._removal, secrets,
            self._refresh_related,
        )  # fmt: skip
        self._retries = Retries(options.retry_base, options.retry_cap)
        self._started = False
        self._queue: WorkQueue[ModelKey] = WorkQueue(self._handle, options.download_workers * 8)
        self._scrubber = (
            scrub.Scrubber(
                options.scrub_rate, self._manifests, self._scrubbable, self._on_damage, metrics
            )
            if options.scrub_rate > 0
            else None
        )
        if metrics is not None:
            metrics.track_queue(lambda: self._queue.depth, lambda: self._queue.in_flight)

    # ------------------------------------------------------------ adapter surface
    def set_node(self, name: str, labels: Mapping[str, str]) -> None:
        for key in self._desired.set_node(name, labels):
            self._evaluate(key)

    def apply(self, resource: ModelResource) -> None:
        key = resource.key
        if resource.deleting:
            self.forget(key)
            return
        known = key in self._desired.resources
        if not self._desired.record(resource):
            return
        self._retries.reset(key)
        self._stop_scrub(key)
        if known and self._started:
            self._queue.cancel(key)  # a download of the old spec is now pointless
        self._evaluate(key, force=True)

    def forget(self, key: ModelKey) -> None:
        self._desired.drop(key)
        self._retries.reset(key)
        self._stop_scrub(key)
        self._reports.forget(key)
        if self._started:
            self._queue.cancel(key)
            self._queue.add(key, Priority.DELETE)
        for dependent in self._desired.dependents(key):
            self._evaluate(dependent)

    def replace_all(self, kinds: Collection[str], resources: Iterable[ModelResource]) -> None:
        current = {r.key: r for r in resources}
        for key in [k for k in self._desired.resources if k.kind in kinds and k not in current]:
            self.forget(key)
        for resource in current.values():
            self.apply(resource)

    def _evaluate(self, key: ModelKey, *, force: bool = False) -> None:
        for changed, eligible in self._desired.evaluate(key, force=force):
            if not self._started:
                continue
            if eligible:
                self._queue.add(changed, Priority.DOWNLOAD)
            else:
                self._stop_scrub(changed)
                self._queue.cancel(changed)
                self._queue.add(changed, Priority.DELETE)

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Confirm what is on disk, clean leftovers, queue the rest (see module doc)."""
        self._started = True
        resources = self._desired.resources
        reported = await self._reports.reported()
        wanted = {k for k, r in resources.items() if self._desired.wanted(r)}
        for key in reported:
            if key not in wanted:
                await self._reports.withdraw(key, resources.get(key))
        await self._removal.leftovers(resources, wanted)
        for key in sorted(wanted, key=self._desired.seen):
            if await self._confirm(resources[key]):
                self._schedule_verify(key)
                continue
            if reported.get(key) is NodeState.READY and self._manifests.load(key) is None:
                self._downloads.adoptable.add(key)
            self._queue.add(key, Priority.DOWNLOAD)
        for key, resource in resources.items():
            if key not in wanted and not resource.disabled:
                self._queue.add(key, Priority.DELETE)

    async def run(self) -> None:
        scrubbing = asyncio.create_task(self._scrubber.run()) if self._scrubber else None
        try:
            await self._queue.run()
        finally:
            if scrubbing is not None:
                scrubbing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scrubbing

    async def run_until_idle(self) -> bool:
        """Work until nothing is left but delayed retries, then stop (``--once``: call
        it instead of :meth:`run`, once); True if no model failed."""
        runner = asyncio.create_task(self._queue.run())
        try:
            await self._queue.wait_idle(include_delayed=False)
        finally:
            self.close()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        failed = any(s is NodeState.FAILED for s in self._reports.states.values())
        return not self._removal.refused and not failed

    def close(self) -> None:
        self._queue.close()
        self._downloads.close()

    @property
    def states(self) -> Mapping[ModelKey, NodeState]:
        return dict(self._reports.states)

    # ------------------------------------------------------------ one model
    async def _confirm(self, resource: ModelResource) -> bool:
        """Start-up: Ready from disk alone, or False to queue the model."""
        try:
            identity = self._desired.identity(resource, plan_source(resource.storage))
        except BadInput:
            return False  # the queued reconcile reports the error
        return await self._reports.ready_from_disk(resource, identity)

    async def _handle(self, key: ModelKey, priority: Priority) -> None:
        resource = self._desired.resources.get(key)
        plan: SourcePlan | None = None  # planned once, also for the failure report
        try:
            if resource is not None and resource.disabled:
                await self._reports.withdraw(key, resource)  # disabled: files stay (module doc)
                return
            if resource is None or not self._desired.wanted(resource):
                await self._remove(key, resource)
                return
            if self._retries.waiting(key):
                return
            plan = plan_source(resource.storage)
            await self._reconcile(resource, plan)
            self._retries.succeeded(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure becomes a report, never a crash
            current = self._desired.resources.get(key)
            if resource is not None and current is not None:
                await self._fail(current, classify(exc), plan)

    async def _remove(self, key: ModelKey, resource: ModelResource | None) -> None:
        await self._reports.withdraw(key, resource)
        before = self._manifests.load(key)
        await asyncio.to_thread(self._removal.model, key)
        await self._refresh_related(key, before)

    async def _reconcile(self, resource: ModelResource, plan: SourcePlan) -> None:
        key = resource.key
        identity = self._desired.identity(resource, plan)
        self._desired.check_not_shared(key, Path(identity.path))
        damage = self._scrubber.take(key) if self._scrubber is not None else None
        if damage is not None and await self._downloads.repair(resource, plan, identity, damage):
            return
        if await self._reports.ready_from_disk(resource, identity):
            self._schedule_verify(key)
            return
        manifest = self._manifests.load(key)
        damage = None  # no manifest: nothing on disk to check, in a thread or not
        if manifest is not None:
            damage = await asyncio.to_thread(scrub.damage_on_disk, manifest)
        if damage is not None and await self._downloads.repair(resource, plan, identity, damage):
            self._schedule_verify(key)
            return
        if plan.vendor is not None:  # the vendor's system provides the files (module doc)
            await self._reports.vendor_ready(resource, plan, identity.path)
            return
        await self._downloads.once(resource, plan, identity)
        self._schedule_verify(key)

    async def _fail(
        self, resource: ModelResource, failure: Failure, plan: SourcePlan | None
    ) -> None:
        await self._reports.failed(resource, failure, plan)
        key = resource.key
        fields = {"model": str(key), "reason": failure.reason.value, "error": failure.message}
        delay = self._retries.after(key, failure.reason)
        if delay is None:
            log.warning("model failed", extra=fields)
            return
        log.warning("model failed, retrying", extra={**fields, "retry_in_s": delay})
        self._queue.add(key, Priority.DOWNLOAD, delay=delay)

    def _schedule_verify(self, key: ModelKey) -> None:
        if self.options.verify_interval is not None:
            self._queue.add(key, Priority.VERIFY, delay=self.options.verify_interval)

    async def _refresh_related(self, key: ModelKey, before: Manifest | None) -> None:
        """``key``'s manifest was saved anew or removed: the models it reused or that
        reused it report again, each from its own handler, with artifact fields derived
        from the manifests now on disk (a parent's childrenPaths, a child's parentPath)."""
        manifests = self._manifests.neighbours(key)  # from memory: no thread
        for other in sorted(reuse.related(key, before, manifests), key=str):
            if self._desired.holds(other):
                self._queue.add(other, Priority.VERIFY)

    # ------------------------------------------------------------ scrub
    def _scrubbable(self, key: ModelKey) -> bool:
        return self._reports.states.get(key) is NodeState.READY and self._desired.holds(key)

    def _on_damage(self, key: ModelKey) -> None:
        self._queue.add(key, Priority.DOWNLOAD)

    def _stop_scrub(self, key: ModelKey) -> None:
        if self._scrubber is not None:
            self._scrubber.cancel(key)


__all__ = ["Reconciler"]
