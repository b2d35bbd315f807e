"""The reconcile core: from declared models and the node's labels to files on disk and
reports (docs/architecture.md, layer 4).

Adapters call :class:`Reconciler` from their event handlers (``apply``, ``forget``,
``replace_all``, ``set_node``); those calls only record the new state and put the
model's key on a keyed work queue, so no watch is ever blocked. The queue runs one
action per model at a time (delete before download before re-verification) and the
handler is level-triggered: it looks at the current resource, eligibility and local
manifest and does what is missing, whatever sequence of events led there.

Decisions documented here (and in the README):
- ``disabled: true``: nothing is downloaded and the node withdraws its report (entry
  and labels), but files already on disk are kept with their manifest, so enabling
  the model again makes it Ready at once without a download.
- two models whose paths are equal or nested: the model seen first keeps the path
  (a model with a manifest there always does); the other is Failed with a message
  naming both. Files are never shared silently, so deleting one never breaks the other.
- ``downloadPolicy: ReuseIfExists``: files another model already holds, identical to
  the listing, are hard-linked instead of downloaded (``reconcile.reuse``).
- ``vendor://``: the vendor's system provides the files; the model is reported Ready
  at its path with no download, and its path is never removed by the agent.
- ``pvc://``: the files live on a claim pods mount, not on nodes; the agent leaves
  such a model alone (no download, no entry) and the controller reports it.
- a FineTunedWeight goes where its base model goes: it is eligible on this node when
  its ``baseModelRef`` resolves to a model eligible here (and its own node selector,
  if any, matches). A single zip object is unpacked safely (``reconcile.peft_zip``).
- credentials come from the model's own namespace (``reconcile.credentials``).
- failures from the source, credentials, disk space or verification are retried with
  exponential backoff and jitter (``retry_base`` doubling to ``retry_cap``); a spec error, an
  unsupported scheme or a file ``--require-digest`` refuses is not retried until the
  resource changes.
- removal deletes only what a manifest records, only strictly inside a models root,
  never a path another live model uses, and only when this agent owns the manifest
  (``AgentOptions.owner``): another agent's models on the same root are left alone.
  A removal refused is an error that makes a ``--once`` run fail.
- adoption: a model the node's report already says Ready, with files at its path but
  no manifest of ours (OME's agent put them there), is checked against the source's
  listing and kept, its entry left as it is until then (``reconcile.adopt``).
- the scrub re-hashes Ready models at ``--scrub-rate``; a file that differs from the
  manifest is fetched again alone, Updating with the file and the reason in the
  message, then Ready (``reconcile.scrub``). A link out of a model directory is never
  Ready (``reconcile.localcheck``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput, FailureReason, OmeAgentError
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile import adopt, layout, localcheck, peft_zip, reuse, scrub, unverified
from ome_agent.reconcile.backoff import Backoff
from ome_agent.reconcile.credentials import model_credentials
from ome_agent.reconcile.download import Digests, Fetch
from ome_agent.reconcile.eligibility import eligibility
from ome_agent.reconcile.manifest import (
    Identity,
    Manifest,
    ManifestStore,
    ReuseRecord,
    record_files,
)
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.pathindex import PathIndex
from ome_agent.reconcile.ports import (
    NodeReport,
    NodeState,
    Progress,
    Reporter,
    SecretReader,
)
from ome_agent.reconcile.sources import SourcePlan, plan_source
from ome_agent.reconcile.workqueue import Priority, WorkQueue
from ome_agent.sources import StorageAuth
from ome_agent.transfer.engine import build_engine

log = logging.getLogger("ome_agent.reconcile")

NO_RETRY = (FailureReason.SPEC, FailureReason.UNSUPPORTED, FailureReason.NO_DIGEST)
FINE_TUNED = "FineTunedWeight"
T = TypeVar("T")


@dataclass(frozen=True)
class _Failure:
    reason: FailureReason
    message: str


def _classify(exc: BaseException) -> _Failure:
    """The reason each error carries (typed where it was raised), and its message."""
    if isinstance(exc, OmeAgentError):
        return _Failure(exc.reason, str(exc))
    if isinstance(exc, OSError):
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        return _Failure(
            FailureReason.DISK_FULL if full else FailureReason.DISK,
            f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "),
        )
    return _Failure(FailureReason.INTERNAL, f"unexpected {type(exc).__name__}: {exc}")


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
        self._reporter = reporter
        self._secrets = secrets
        self._metrics = metrics
        self._manifests = ManifestStore(options.state_dir)
        self._resources: dict[ModelKey, ModelResource] = {}
        self._seen: dict[ModelKey, int] = {}  # first-seen order: who keeps a shared path
        self._order = itertools.count()
        self._eligible: dict[ModelKey, bool] = {}
        self._states: dict[ModelKey, NodeState] = {}  # what this node reports now
        self._state_counts: dict[str, int] = {}  # of _states, kept as they change
        # indexes that keep each apply and each reconcile independent of the number of
        # models: FineTunedWeights by base model, model directories by path
        self._children: dict[ModelKey, dict[ModelKey, None]] = {}
        self._targets: PathIndex[ModelKey] = PathIndex()
        self._backoff = Backoff(base=options.retry_base, cap=options.retry_cap)
        self._fatal: set[ModelKey] = set()  # failed until the resource changes
        # reported Ready at start-up with no manifest of ours: files to adopt (module doc)
        self._adoptable: set[ModelKey] = set()
        self._unremoved: set[Path] = set()  # removals refused (run_until_idle fails)
        self._node_name = options.node_name
        self._labels: dict[str, str] = {}
        self._started = False
        self._engine: Any = None
        # downloads in flight, by source (reuse.origin): a ReuseIfExists model of the same
        # source waits for the event, then links instead of downloading it too
        self._fetching: dict[ModelKey, tuple[str, asyncio.Event]] = {}
        # downloads block a thread each for hours: their own pool, so the default
        # executor stays free for the short disk checks (manifests, stat, removal)
        self._fetch_pool = ThreadPoolExecutor(
            max_workers=options.download_workers, thread_name_prefix="ome-fetch"
        )
        self._queue: WorkQueue[ModelKey] = WorkQueue(self._handle, options.download_workers)
        # files the scrub found wrong, fetched again by the model's next handler
        self._damaged: dict[ModelKey, scrub.Damage] = {}
        self._size_only = unverified.SizeOnlyNotes()  # said on reports, warned once
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
        self._node_name = name
        self._labels = dict(labels)
        # base models first: a FineTunedWeight's eligibility follows its base's
        for key in sorted(self._resources, key=lambda k: k.kind == FINE_TUNED):
            self._evaluate(key)

    def apply(self, resource: ModelResource) -> None:
        key = resource.key
        if resource.deleting:
            self.forget(key)
            return
        previous = self._resources.get(key)
        self._resources[key] = resource
        if key not in self._seen:
            self._seen[key] = next(self._order)
        if previous is not None and previous.spec == resource.spec:
            return  # metadata only (resourceVersion, labels): nothing to do
        self._index(resource, previous)
        self._fatal.discard(key)
        self._backoff.reset(key)
        self._stop_scrub(key)
        if previous is not None and self._started:
            self._queue.cancel(key)  # a download of the old spec is now pointless
        self._evaluate(key, force=True)

    def forget(self, key: ModelKey) -> None:
        resource = self._resources.pop(key, None)
        if resource is not None:
            self._unindex(resource)
        self._seen.pop(key, None)  # re-created later, it queues behind current holders
        self._eligible.pop(key, None)
        self._fatal.discard(key)
        self._backoff.reset(key)
        self._stop_scrub(key)
        self._size_only.forget(key)
        if self._started:
            self._queue.cancel(key)
            self._queue.add(key, Priority.DELETE)
        for dependent in self._dependents(key):
            self._evaluate(dependent)

    def replace_all(self, kinds: Collection[str], resources: Iterable[ModelResource]) -> None:
        current = {r.key: r for r in resources}
        for key in [k for k in self._resources if k.kind in kinds and k not in current]:
            self.forget(key)
        for resource in current.values():
            self.apply(resource)

    def _index(self, resource: ModelResource, previous: ModelResource | None) -> None:
        if previous is not None:
            self._unindex(previous)
        base = resource.base_key
        if base is not None:
            self._children.setdefault(base, {})[resource.key] = None
        try:
            target: Path | None = layout.target_dir(
                resource.key, resource.storage, self.options.models_roots
            )
        except BadInput:
            target = None  # its own reconcile reports why
        self._targets.set(resource.key, target)

    def _unindex(self, resource: ModelResource) -> None:
        base = resource.base_key
        children = self._children.get(base) if base is not None else None
        if children is not None:
            children.pop(resource.key, None)
            if not children:
                del self._children[base]  # type: ignore[arg-type]
        self._targets.discard(resource.key)

    def _evaluate(self, key: ModelKey, *, force: bool = False) -> None:
        resource = self._resources[key]
        now = self._eligible_here(resource)
        before = self._eligible.get(key)
        self._eligible[key] = now
        if before == now and not force:
            return
        if self._started:
            if now:
                self._queue.add(key, Priority.DOWNLOAD)
            else:
                self._stop_scrub(key)
                self._queue.cancel(key)
                self._queue.add(key, Priority.DELETE)
        for dependent in self._dependents(key):
            self._evaluate(dependent)

    def _eligible_here(self, resource: ModelResource) -> bool:
        if resource.on_claim:
            return False  # the claim holds the files (module doc)
        own = eligibility(resource.storage, self._node_name, self._labels).eligible
        if resource.kind != FINE_TUNED:
            return own
        base = resource.base_key
        return own and base is not None and self._eligible.get(base, False)

    def _dependents(self, key: ModelKey) -> list[ModelKey]:
        """The FineTunedWeights whose base model is ``key``."""
        if key.kind == FINE_TUNED:
            return []
        return list(self._children.get(key, ()))

    # ------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Confirm what is on disk, clean leftovers, queue the rest (see module doc)."""
        self._started = True
        reported = await self._reporter.reported()
        wanted = {k for k, r in self._resources.items() if self._wanted(r)}
        for key in reported:
            if key not in wanted:
                await self._withdraw(key)
        await asyncio.to_thread(self._manifests.migrate)  # before any lookup by name
        for manifest in self._manifests.all():
            if manifest.key not in self._resources:
                await asyncio.to_thread(self._remove_files, manifest.key)
        for key, staging in self._manifests.staging().items():
            if key not in wanted and self._owns(self._manifests.staging_owner(key), staging):
                self._remove_path(staging)
                self._manifests.clear_staging(key)
        for key in sorted(wanted, key=lambda k: self._seen.get(k, 0)):
            if await self._confirm(self._resources[key]):
                self._schedule_verify(key)
            else:
                if reported.get(key) is NodeState.READY and self._manifests.load(key) is None:
                    self._adoptable.add(key)
                self._queue.add(key, Priority.DOWNLOAD)
        for key, resource in self._resources.items():
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
        return not self._unremoved and not any(s is NodeState.FAILED for s in self._states.values())

    def close(self) -> None:
        self._queue.close()
        self._fetch_pool.shutdown(wait=False)  # cancelled fetches end on their own

    @property
    def states(self) -> Mapping[ModelKey, NodeState]:
        return dict(self._states)

    # ------------------------------------------------------------ decisions
    def _wanted(self, resource: ModelResource) -> bool:
        # eligibility is kept current by _evaluate (on apply and on node label changes)
        return (
            not resource.deleting
            and not resource.disabled
            and self._eligible.get(resource.key, False)
        )

    def _target(self, resource: ModelResource, plan: SourcePlan) -> Path:
        """Where the model goes (a local source checked too); BadInput naming the field."""
        if plan.local is not None:
            layout.local_source(
                plan.local, self.options.models_roots, self.options.local_source_dirs
            )
        return layout.target_dir(resource.key, resource.storage, self.options.models_roots)

    async def _confirm(self, resource: ModelResource) -> bool:
        """Start-up: Ready from disk alone, or False to queue the model."""
        try:
            plan = plan_source(resource.storage)
            target = self._target(resource, plan)
        except BadInput:
            return False  # the queued reconcile reports the error
        identity = Identity(plan.display, plan.revision, str(target))
        return await self._ready_from_disk(resource, identity)

    async def _ready_from_disk(self, resource: ModelResource, identity: Identity) -> bool:
        """Publish Ready when the manifest matches the spec and the files; no network."""
        manifest = self._manifests.load(resource.key)
        if manifest is None or manifest.identity != identity:
            return False
        if not await asyncio.to_thread(localcheck.intact, manifest):  # lstat, no byte read
            return False
        await self._publish_ready(resource, manifest)
        return True

    async def _handle(self, key: ModelKey, priority: Priority) -> None:
        resource = self._resources.get(key)
        plan: SourcePlan | None = None  # planned once, also for the failure report
        try:
            if resource is not None and resource.disabled:
                await self._withdraw(key)  # disabled: files stay (module doc)
                return
            if resource is None or not self._wanted(resource):
                await self._withdraw(key)
                before = self._manifests.load(key)
                await asyncio.to_thread(self._remove_files, key)
                await self._refresh_related(key, before)
                return
            if key in self._fatal:
                return
            plan = plan_source(resource.storage)
            await self._reconcile(resource, plan)
            self._backoff.reset(key)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # every failure becomes a report, never a crash
            if resource is not None and key in self._resources:
                await self._fail(self._resources[key], _classify(exc), plan)

    async def _reconcile(self, resource: ModelResource, plan: SourcePlan) -> None:
        key = resource.key
        target = self._target(resource, plan)
        self._check_not_shared(key, target)
        identity = Identity(plan.display, plan.revision, str(target))
        damage = self._damaged.pop(key, None)
        if damage is not None and await self._repair(resource, plan, identity, damage):
            return
        if await self._ready_from_disk(resource, identity):
            self._schedule_verify(key)
            return
        damage = await asyncio.to_thread(scrub.damage_on_disk, self._manifests.load(key))
        if damage is not None and await self._repair(resource, plan, identity, damage):
            self._schedule_verify(key)
            return
        if plan.vendor is not None:  # the vendor's system provides the files (module doc)
            config = {**resource.user_fields(), "vendorSource": plan.vendor}
            await self._publish(
                NodeReport(
                    key, resource.uid, NodeState.READY, config=config, storage_uri=plan.display,
                    path=str(target),
                )
            )  # fmt: skip
            return
        await self._fetch_once(resource, plan, target, identity)
        self._schedule_verify(key)

    # ------------------------------------------------------------ scrub
    def _scrubbable(self, key: ModelKey) -> bool:
        return (
            self._states.get(key) is NodeState.READY
            and self._holds(key)
            and key not in self._damaged
        )

    def _on_damage(self, key: ModelKey, damage: scrub.Damage) -> None:
        self._damaged[key] = damage
        self._queue.add(key, Priority.DOWNLOAD)

    def _stop_scrub(self, key: ModelKey) -> None:
        self._damaged.pop(key, None)
        if self._scrubber is not None:
            self._scrubber.cancel(key)

    async def _repair(
        self, resource: ModelResource, plan: SourcePlan, identity: Identity, damage: scrub.Damage
    ) -> bool:
        """Fetch again only the files the scrub found wrong; False when the whole model
        is to be downloaded instead (the manifest changed, a local source, another commit)."""
        manifest = self._manifests.load(resource.key)
        if manifest is None or manifest.digest != damage.digest or manifest.identity != identity:
            return False
        if plan.local is not None:
            return False
        token, auth = await model_credentials(resource, plan, self._secrets, self.options.namespace)
        if self._engine is None:
            self._engine = build_engine(self.options.transfer)
        fetch = Fetch(self._engine, self.options.transfer, self._metrics)
        target = Path(identity.path)
        await self._publish_progress(resource, plan, target, fetch, damage.message)
        reporter = asyncio.create_task(
            self._progress_loop(resource, plan, target, fetch, damage.message)
        )
        try:
            digests = await self._in_thread(
                fetch.cancel, lambda: scrub.repair(fetch, plan, manifest, damage, token, auth)
            )
        finally:
            reporter.cancel()
        if digests is None:
            return False
        if self._metrics is not None:
            self._metrics.download_bytes.inc(fetch.fetched_bytes)
        repaired = await self._save_manifest(
            resource, identity, target, manifest.commit, digests, dict(manifest.config or {}),
            manifest.parameter_count, manifest.parent,
        )  # fmt: skip
        log.info(
            "model repaired",
            extra={"model": str(resource.key), "files": len(damage.files),
                   "bytes": fetch.fetched_bytes},
        )  # fmt: skip
        await self._publish_ready(resource, repaired)
        return True

    def _schedule_verify(self, key: ModelKey) -> None:
        if self.options.verify_interval is not None:
            self._queue.add(key, Priority.VERIFY, delay=self.options.verify_interval)

    def _check_not_shared(self, key: ModelKey, target: Path) -> None:
        mine = self._manifests.load(key)
        for other_key in self._targets.overlapping(target):
            other = self._resources.get(other_key)
            other_target = self._targets.get(other_key)
            if other_key == key or other is None or other_target is None:
                continue
            if not self._wanted(other):
                continue
            theirs = self._manifests.load(other_key)
            they_hold = theirs is not None and layout.overlaps(Path(theirs.identity.path), target)
            i_hold = mine is not None and layout.overlaps(Path(mine.identity.path), target)
            if (they_hold and not i_hold) or (
                they_hold == i_hold and self._seen.get(other_key, 0) < self._seen.get(key, 0)
            ):
                raise BadInput(
                    f"spec.storage.path {target} is already used by {other_key} "
                    f"(at {other_target}): give each model its own path"
                )

    # ------------------------------------------------------------ download
    async def _fetch_once(
        self, resource: ModelResource, plan: SourcePlan, target: Path, identity: Identity
    ) -> None:
        """Download, or with ``ReuseIfExists`` link identical files (``reconcile.reuse``).
        Such a model first waits for a download of the same source in flight, so two
        models declared together cost one download."""
        key = resource.key
        wants_reuse = resource.storage is not None and resource.storage.reuse_if_exists
        source = reuse.origin(plan.display, plan.revision)
        while wants_reuse and (
            busy := [
                done
                for other, (theirs, done) in self._fetching.items()
                if other != key and theirs == source
            ]
        ):
            await busy[0].wait()
        done = asyncio.Event()
        self._fetching[key] = (source, done)  # no await since the check: one registers first
        try:
            step: reuse.Reuse | None = None
            if wants_reuse:
                manifests = await asyncio.to_thread(self._manifests.all)
                wanted = [m for m in manifests if m.key != key and self._holds(m.key)]
                step = reuse.Reuse(key, source, wanted)
            await self._download(resource, plan, target, identity, self._manifests.load(key), step)
        finally:
            del self._fetching[key]
            done.set()

    def _holds(self, key: ModelKey) -> bool:
        """``key`` is a model this node keeps (its files are not about to go)."""
        resource = self._resources.get(key)
        return resource is not None and self._wanted(resource)

    async def _download(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        target: Path,
        identity: Identity,
        old: Manifest | None,
        step: reuse.Reuse | None,
    ) -> None:
        key = resource.key
        token, auth = await model_credentials(resource, plan, self._secrets, self.options.namespace)
        ours = old is not None and Path(old.identity.path) == target
        if not ours and target.is_dir() and any(target.iterdir()):
            if key in self._adoptable and plan.local is None:
                await self._adopt(resource, plan, target, identity, token, auth)
                return
            raise BadInput(
                f"spec.storage.path {target} already exists and was not written by this "
                "agent for this model: remove it or choose another path"
            )
        staging = layout.staging_dir(target, key, identity.text())
        outdated = self._manifests.staging_of(key)
        if outdated is not None and outdated != staging:  # a download of an older spec
            await asyncio.to_thread(self._remove_path, outdated)
        await asyncio.to_thread(self._manifests.save_staging, key, staging, self.options.owner)
        if self._engine is None:
            self._engine = build_engine(self.options.transfer)
        fetch = Fetch(self._engine, self.options.transfer, self._metrics)
        started = time.monotonic()
        await self._publish_progress(resource, plan, target, fetch)
        reporter = asyncio.create_task(self._progress_loop(resource, plan, target, fetch))
        try:
            commit, digests = await self._in_thread(
                fetch.cancel, lambda: fetch.run(plan, staging, token, auth, step)
            )
            if key.kind == FINE_TUNED:
                digests = await asyncio.to_thread(peft_zip.unpack_single_zip, staging, digests)
        except asyncio.CancelledError:
            self._count_download("cancelled")
            raise
        except BaseException:
            self._count_download("failure")
            raise
        finally:
            reporter.cancel()
        fetch.phase = "Discovering"
        await self._publish_progress(resource, plan, target, fetch)
        config, parameters = await asyncio.to_thread(self._discover, resource, staging)
        previous = await asyncio.to_thread(layout.switch_into_place, staging, target)
        if previous is not None:
            await asyncio.to_thread(self._remove_path, previous)
        if old is not None and Path(old.identity.path) != target:
            await asyncio.to_thread(self._remove_unused, Path(old.identity.path), key)
        parent = step.parent if step is not None else None
        manifest = await self._save_manifest(
            resource, identity, target, commit, digests, config, parameters, parent
        )
        self._manifests.clear_staging(key)
        await self._refresh_related(key, old)
        self._count_download("success" if parent is None else "reused")
        if self._metrics is not None and parent is None:  # a reuse moves no byte
            self._metrics.download_bytes.inc(fetch.fetched_bytes)
            self._metrics.download_duration.observe(time.monotonic() - started)
        log.info(
            "model ready",
            extra={"model": str(key), "path": str(target), "bytes": manifest.total_bytes},
        )
        await self._publish_ready(resource, manifest)

    async def _save_manifest(
        self,
        resource: ModelResource,
        identity: Identity,
        target: Path,
        commit: str | None,
        digests: Digests,
        config: dict[str, Any],
        parameters: int | None,
        parent: ReuseRecord | None,
    ) -> Manifest:
        """Record the files now at ``target`` (after a download or an adoption)."""
        files = await asyncio.to_thread(record_files, target, digests)
        manifest = Manifest(
            resource.key, resource.uid, resource.generation, identity, commit, files, config,
            parameters, parent,
            owner=self.options.owner,
        )  # fmt: skip
        # OME's Artifact: parentPath is a {parent key: path} map and childrenPaths the
        # paths of models reusing this one's files; both are derived from the manifests
        # when reported (reuse.links). With no revision the manifest digest (files,
        # not config) names it.
        config["artifact"] = {
            "sha": commit if commit is not None else manifest.digest,
            "parentPath": {},
            "childrenPaths": [],
        }
        await asyncio.to_thread(self._manifests.save, manifest)  # fsyncs: off the loop
        return manifest

    async def _adopt(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        target: Path,
        identity: Identity,
        token: str | None,
        auth: StorageAuth,
    ) -> None:
        """Keep the files another agent put at ``target`` (``reconcile.adopt``). Nothing
        is published until they are checked: the entry and labels that agent wrote say
        Ready meanwhile, so the node does not flap to Updating."""
        if self._engine is None:
            self._engine = build_engine(self.options.transfer)
        fetch = Fetch(self._engine, self.options.transfer, self._metrics)
        adoption = adopt.Adoption(str(resource.key), fetch, workers=os.cpu_count() or 1)
        commit, digests = await self._in_thread(
            adoption.cancel, lambda: adoption.run(plan, target, token, auth)
        )
        self._adoptable.discard(resource.key)  # the manifest decides from now on
        if self._metrics is not None:
            self._metrics.download_bytes.inc(fetch.fetched_bytes)
        config, parameters = await asyncio.to_thread(self._discover, resource, target)
        manifest = await self._save_manifest(
            resource, identity, target, commit, digests, config, parameters, None
        )
        await self._publish_ready(resource, manifest)

    async def _in_thread(self, cancel: Callable[[], None], call: Callable[[], T]) -> T:
        """Run ``call`` in a fetch thread; on cancellation stop it with ``cancel`` and
        wait until it has stopped, so the caller may clean the staging directory safely."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._fetch_pool, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel()
            await asyncio.wait({future})
            if not future.cancelled():
                future.exception()  # consumed: the cancel is what matters
            raise

    def _discover(
        self, resource: ModelResource, model_dir: Path
    ) -> tuple[dict[str, Any], int | None]:
        if resource.kind == FINE_TUNED:
            return peft_zip.fine_tuned_config(resource, model_dir), None
        user = resource.user_fields()
        if resource.skip_config_parsing:
            return dict(user), None
        from ome_agent.discovery import discover  # the heavier metadata parsing, on demand

        storage = resource.storage
        found = discover(model_dir, storage.schema_path if storage else None)
        found = found.merge_user_spec(user)
        for problem in found.errors:
            log.warning("discovery", extra={"model": str(resource.key), "problem": problem})
        return dict(found.to_ome_config()), found.parameter_count

    async def _progress_loop(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        target: Path,
        fetch: Fetch,
        message: str | None = None,
    ) -> None:
        while True:
            await asyncio.sleep(self.options.progress_interval)
            await self._publish_progress(resource, plan, target, fetch, message)

    async def _publish_progress(
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
        await self._publish(
            NodeReport(
                resource.key, resource.uid, NodeState.UPDATING, progress=progress,
                error=message, storage_uri=plan.display, path=str(target),
            )
        )  # fmt: skip

    # ------------------------------------------------------------ reports
    async def _publish_ready(self, resource: ModelResource, manifest: Manifest) -> None:
        config = dict(manifest.config or {})
        links = reuse.Links(None, [])
        artifact = config.get("artifact")
        if isinstance(artifact, dict):  # a manifest upgraded from version 1 may have none
            nearby = await asyncio.to_thread(self._manifests.neighbours, manifest.key)
            links = reuse.links(manifest, nearby)
            config["artifact"] = {**artifact, "parentPath": {}, "childrenPaths": links.children}
        size_only = self._size_only.note(manifest)
        if size_only is not None:
            config["unverified"] = size_only
        await self._publish(
            NodeReport(
                resource.key, resource.uid, NodeState.READY, config=config,
                storage_uri=manifest.identity.source, path=manifest.identity.path,
                revision=manifest.commit, manifest_digest=manifest.digest, parent=links.parent,
            )
        )  # fmt: skip

    async def _publish(self, report: NodeReport) -> None:
        await self._reporter.publish(report)
        self._count_state(self._states.get(report.key), report.state)
        self._states[report.key] = report.state

    async def _withdraw(self, key: ModelKey) -> None:
        resource = self._resources.get(key)
        await self._reporter.withdraw(key, resource.uid if resource else None)
        before = self._states.pop(key, None)
        if before is not None:
            self._count_state(before, None)

    async def _fail(
        self, resource: ModelResource, failure: _Failure, plan: SourcePlan | None
    ) -> None:
        key = resource.key
        if self._metrics is not None:
            self._metrics.failed(failure.reason.category)
        path = None
        with contextlib.suppress(BadInput):
            path = str(layout.target_dir(key, resource.storage, self.options.models_roots))
        await self._publish(
            NodeReport(key, resource.uid, NodeState.FAILED, error=failure.message,
                       reason=failure.reason, storage_uri=plan.display if plan else None,
                       path=path)
        )  # fmt: skip
        if failure.reason in NO_RETRY:
            self._fatal.add(key)
            log.warning(
                "model failed",
                extra={"model": str(key), "reason": failure.reason.value, "error": failure.message},
            )
            return
        delay = self._backoff.next_delay(key)
        log.warning(
            "model failed, retrying",
            extra={
                "model": str(key),
                "reason": failure.reason.value,
                "error": failure.message,
                "retry_in_s": delay,
            },
        )
        self._queue.add(key, Priority.DOWNLOAD, delay=delay)

    def _count_download(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.downloads.labels(result).inc()

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

    async def _refresh_related(self, key: ModelKey, before: Manifest | None) -> None:
        """``key``'s manifest was saved anew or removed: the models it reused or that
        reused it report again, each from its own handler, with artifact fields derived
        from the manifests now on disk (a parent's childrenPaths, a child's parentPath)."""
        manifests = await asyncio.to_thread(self._manifests.neighbours, key)
        for other in sorted(reuse.related(key, before, manifests), key=str):
            if self._holds(other):
                self._queue.add(other, Priority.VERIFY)

    # ------------------------------------------------------------ removal
    def _remove_files(self, key: ModelKey) -> None:
        """Staging and model files of a model that left the node (blocking)."""
        manifest = self._manifests.load(key)
        if manifest is not None and not self._owns(manifest.owner, Path(manifest.identity.path)):
            return
        staging = self._manifests.staging_of(key)
        if staging is not None:
            self._remove_path(staging)
        if manifest is not None:
            self._remove_unused(Path(manifest.identity.path), key)
        self._manifests.delete(key)

    def _owns(self, owner: str, path: Path) -> bool:
        """Whether files recorded by ``owner`` are this agent's to remove (module doc)."""
        if not owner or owner == self.options.owner:
            return True
        log.info("kept: recorded by another agent", extra={"path": str(path), "owner": owner})
        return False

    def _remove_unused(self, path: Path, owner: ModelKey) -> None:
        for other_key in self._targets.overlapping(path):
            other = self._resources.get(other_key)
            if other_key == owner or other is None or not self._wanted(other):
                continue
            log.info("kept: used by another model", extra={"path": str(path)})
            return
        self._remove_path(path)

    def _remove_path(self, path: Path) -> None:
        try:
            layout.remove_tree(path, self.options.models_roots)
        except BadInput as e:
            self._unremoved.add(path)
            log.error("not removed", extra={"path": str(path), "error": str(e)})
        except FileNotFoundError:
            pass


__all__ = ["Reconciler"]
