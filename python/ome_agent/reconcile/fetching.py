"""Running a model's download (reconcile core, layer 4: the download action of the work
queue, between the decision and the Ready report).

One transfer engine per agent, built on first use (``transfer.engine``); downloads run
in their own thread pool (each blocks a thread for hours, so the default executor stays
free for the short disk checks) and publish progress while they run. A download lands
in a staging directory and is switched into place (``reconcile.layout``); the files are
then described and recorded (``reconcile.recording``) and reported Ready.

- ``downloadPolicy: ReuseIfExists``: files another model already holds, identical to
  the listing, are hard-linked instead of downloaded (``reconcile.reuse``); such a model
  first waits for a download of the same source in flight, so two models declared
  together cost one download.
- ``parameters.cache_dir``: the listing fills the Hugging Face cache instead
  (``reconcile.hubfill``), the staging directory holding links to its blobs, and the
  model's directory is the snapshot the listing names (``reconcile.hubcache``).
- a FineTunedWeight's single zip object is unpacked safely (``reconcile.peft_zip``).
- adoption: a model the node's report already says Ready, with files at its path but
  no manifest of ours (OME's agent put them there), is checked against the source's
  listing and kept, its entry left as it is until then (``reconcile.adopt``).
- repair: a file the scrub found different from the manifest is fetched again alone,
  Updating with the file and the reason in the message, then Ready (``reconcile.scrub``).
- credentials come from the model's own namespace (``reconcile.credentials``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput
from ome_agent.reconcile import adopt, hubcache, hubfill, layout, peft_zip, recording, reuse, scrub
from ome_agent.reconcile.credentials import model_credentials
from ome_agent.reconcile.desired import FINE_TUNED, Desired
from ome_agent.reconcile.download import Digests, Fetch, ReuseFn
from ome_agent.reconcile.manifest import Identity, Manifest, ManifestStore, ReuseRecord
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import SecretReader
from ome_agent.reconcile.removal import Removal
from ome_agent.reconcile.reports import Reports
from ome_agent.reconcile.sources import SourcePlan
from ome_agent.sources import StorageAuth
from ome_agent.transfer.engine import build_engine

log = logging.getLogger("ome_agent.reconcile")
T = TypeVar("T")
# a manifest was saved anew or removed: the models related by reuse report again
Related = Callable[[ModelKey, Manifest | None], Awaitable[None]]


@dataclass(eq=False)  # one per agent: compared by identity
class Downloads:
    """Runs downloads, adoptions and repairs for the core; one per agent."""

    options: AgentOptions
    manifests: ManifestStore
    desired: Desired
    reports: Reports
    removal: Removal
    secrets: SecretReader
    related: Related
    # reported Ready at start-up with no manifest of ours: files to adopt (module doc)
    adoptable: set[ModelKey] = field(default_factory=set)
    _engine: Any = None
    # downloads in flight, by source (reuse.origin): a ReuseIfExists model of the same
    # source waits for the event, then links instead of downloading it too
    _fetching: dict[ModelKey, tuple[str, asyncio.Event]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._pool = ThreadPoolExecutor(
            max_workers=self.options.download_workers, thread_name_prefix="ome-fetch"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False)  # cancelled fetches end on their own

    def _fetch(self) -> Fetch:
        if self._engine is None:
            self._engine = build_engine(self.options.transfer)
        return Fetch(self._engine, self.options.transfer, self.reports.metrics)

    async def _credentials(
        self, resource: ModelResource, plan: SourcePlan
    ) -> tuple[str | None, StorageAuth]:
        return await model_credentials(resource, plan, self.secrets, self.options.namespace)

    async def _in_thread(self, cancel: Callable[[], None], call: Callable[[], T]) -> T:
        """Run ``call`` in a fetch thread; on cancellation stop it with ``cancel`` and
        wait until it has stopped, so the caller may clean the staging directory safely."""
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._pool, call)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel()
            await asyncio.wait({future})
            if not future.cancelled():
                future.exception()  # consumed: the cancel is what matters
            raise

    # ------------------------------------------------------------ a whole model
    async def once(self, resource: ModelResource, plan: SourcePlan, identity: Identity) -> None:
        """Download, or with ``ReuseIfExists`` link identical files (module doc)."""
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
                manifests = await asyncio.to_thread(self.manifests.all)
                wanted = [m for m in manifests if m.key != key and self.desired.holds(m.key)]
                step = reuse.Reuse(key, source, wanted)
            await self._download(resource, plan, identity, self.manifests.load(key), step)
        finally:
            del self._fetching[key]
            done.set()

    async def _download(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        identity: Identity,
        old: Manifest | None,
        step: reuse.Reuse | None,
    ) -> None:
        key = resource.key
        target = Path(identity.path)
        token, auth = await self._credentials(resource, plan)
        ours = old is not None and Path(old.identity.path) == target
        cache = hubcache.home(plan.cache_dir, plan.hf, self.options.models_roots)
        if cache is None and not ours and target.is_dir() and any(target.iterdir()):
            if key in self.adoptable and plan.local is None:
                await self._adopt(resource, plan, identity, token, auth)
                return
            raise BadInput(
                f"spec.storage.path {target} already exists and was not written by this "
                "agent for this model: remove it or choose another path"
            )
        staging = await self._prepare_staging(key, target, identity)
        fetch = self._fetch()
        started = time.monotonic()
        fill = hubfill.filler(fetch, cache, self.manifests) if cache is not None else step
        # a cache model reports its repo folder until the listing names the snapshot
        shown = cache.repo_dir if cache is not None else target
        commit, digests = await self._transfer(
            resource, plan, shown, fetch, staging, fill, token, auth
        )
        if cache is not None and commit is not None:  # the snapshot is known now
            target = cache.snapshot(commit)
            identity = Identity(identity.source, identity.revision, str(target))
        fetch.phase = "Discovering"
        await self.reports.progress(resource, plan, target, fetch)
        parent = step.parent if step is not None else None
        manifest = await asyncio.to_thread(
            self._finish, resource, identity, staging, old, commit, digests, parent
        )
        await self.related(key, old)
        self.reports.count_download("success" if parent is None else "reused")
        if parent is None:  # a reuse moves no byte
            self.reports.count_fetched(fetch.fetched_bytes, time.monotonic() - started)
        log.info(
            "model ready",
            extra={"model": str(key), "path": str(target), "bytes": manifest.total_bytes},
        )
        await self.reports.ready(resource, manifest)

    async def _prepare_staging(self, key: ModelKey, target: Path, identity: Identity) -> Path:
        """This spec's staging directory, recorded; an older spec's one removed."""
        staging = layout.staging_dir(target, key, identity.text())
        outdated = self.manifests.staging_of(key)
        if outdated is not None and outdated != staging:  # a download of an older spec
            await asyncio.to_thread(self.removal.path, outdated)
        await asyncio.to_thread(self.manifests.save_staging, key, staging, self.options.owner)
        return staging

    async def _transfer(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        target: Path,
        fetch: Fetch,
        staging: Path,
        step: ReuseFn | None,
        token: str | None,
        auth: StorageAuth,
    ) -> tuple[str | None, Digests]:
        """The files into ``staging``, reporting progress meanwhile; the commit and digests."""
        await self.reports.progress(resource, plan, target, fetch)
        reporter = asyncio.create_task(self.reports.progress_loop(resource, plan, target, fetch))
        try:
            commit, digests = await self._in_thread(
                fetch.cancel, lambda: fetch.run(plan, staging, token, auth, step)
            )
            if resource.kind == FINE_TUNED:
                digests = await asyncio.to_thread(peft_zip.unpack_single_zip, staging, digests)
        except asyncio.CancelledError:
            self.reports.count_download("cancelled")
            raise
        except BaseException:
            self.reports.count_download("failure")
            raise
        finally:
            reporter.cancel()
        return commit, digests

    def _finish(
        self,
        resource: ModelResource,
        identity: Identity,
        staging: Path,
        old: Manifest | None,
        commit: str | None,
        digests: Digests,
        parent: ReuseRecord | None,
    ) -> Manifest:
        """The downloaded files described, switched into place (what they replaced and
        an old path go), recorded, the staging record cleared: one worker-thread call,
        as each step is short and each hop to a thread and back costs about as much
        (blocking)."""
        key, target = resource.key, Path(identity.path)
        found = recording.discover(resource, staging)
        previous = layout.switch_into_place(staging, target)
        if previous is not None:
            self.removal.path(previous)
        if old is not None and Path(old.identity.path) != target:
            self.removal.unused(Path(old.identity.path), key, old)
        manifest = recording.record_manifest(
            self.manifests, self.options.owner, resource, identity, commit, digests, found, parent
        )
        self.manifests.clear_staging(key)
        return manifest

    async def _adopt(
        self,
        resource: ModelResource,
        plan: SourcePlan,
        identity: Identity,
        token: str | None,
        auth: StorageAuth,
    ) -> None:
        """Keep the files another agent put at the model's path (``reconcile.adopt``).
        Nothing is published until they are checked: the entry and labels that agent
        wrote say Ready meanwhile, so the node does not flap to Updating."""
        target = Path(identity.path)
        fetch = self._fetch()
        adoption = adopt.Adoption(str(resource.key), fetch, workers=os.cpu_count() or 1)
        commit, digests = await self._in_thread(
            adoption.cancel, lambda: adoption.run(plan, target, token, auth)
        )
        self.adoptable.discard(resource.key)  # the manifest decides from now on
        self.reports.count_fetched(fetch.fetched_bytes)
        found = await asyncio.to_thread(recording.discover, resource, target)
        manifest = await asyncio.to_thread(
            recording.record_manifest,
            self.manifests, self.options.owner, resource, identity, commit, digests, found, None,
        )  # fmt: skip
        await self.reports.ready(resource, manifest)

    # ------------------------------------------------------------ files the scrub found
    async def repair(
        self, resource: ModelResource, plan: SourcePlan, identity: Identity, damage: scrub.Damage
    ) -> bool:
        """Fetch again only the files the scrub found wrong; False when the whole model
        is to be downloaded instead (the manifest changed, a local source, another commit)."""
        manifest = self.manifests.load(resource.key)
        if manifest is None or manifest.digest != damage.digest or manifest.identity != identity:
            return False
        if plan.local is not None:
            return False
        token, auth = await self._credentials(resource, plan)
        fetch = self._fetch()
        target = Path(identity.path)
        await self.reports.progress(resource, plan, target, fetch, damage.message)
        reporter = asyncio.create_task(
            self.reports.progress_loop(resource, plan, target, fetch, damage.message)
        )
        try:
            digests = await self._in_thread(
                fetch.cancel, lambda: scrub.repair(fetch, plan, manifest, damage, token, auth)
            )
        finally:
            reporter.cancel()
        if digests is None:
            return False
        self.reports.count_fetched(fetch.fetched_bytes)
        found = (dict(manifest.config or {}), manifest.parameter_count)
        repaired = await asyncio.to_thread(
            recording.record_manifest,
            self.manifests, self.options.owner, resource, identity, manifest.commit, digests,
            found, manifest.parent,
        )  # fmt: skip
        log.info(
            "model repaired",
            extra={"model": str(resource.key), "files": len(damage.files),
                   "bytes": fetch.fetched_bytes},
        )  # fmt: skip
        await self.reports.ready(resource, repaired)
        return True
