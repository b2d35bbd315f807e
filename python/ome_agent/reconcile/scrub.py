"""The scrub: Ready models re-hashed in the background at a bounded rate (reconcile
core; the hashing runs in one worker thread, the loop on the event loop).

A restart confirms a model from ``stat`` alone (sizes, mtimes), which is what keeps
it fast, and which a flipped byte with its mtime put back, or a same-size file with
the same mtime, passes. The scrub closes that gap: model after model, it hashes every
file against the digest its manifest records (``reconcile.localcheck``), reading at
most ``--scrub-rate`` bytes per second over all models (one :class:`TokenBucket`), so
a node serving inference is not starved of disk bandwidth. A model is left alone, and
Ready, while it is read; a file that differs is handed to the reconcile core, which
fetches that file alone again (:func:`repair`) with the model Updating and the file
and the reason in the entry's message. Removing or changing a model stops its scrub
at once (the thread checks an event between blocks and while it waits for tokens).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ome_agent.api import ModelKey
from ome_agent.errors import Interrupted
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile import hubcache
from ome_agent.reconcile.download import Digests, Fetch
from ome_agent.reconcile.localcheck import FileCheck, Status, check_manifest, stat_damage
from ome_agent.reconcile.manifest import Manifest, ManifestStore
from ome_agent.reconcile.sources import SourcePlan
from ome_agent.sources import StorageAuth
from ome_agent.transfer.pull import confined_jobs

log = logging.getLogger("ome_agent.reconcile")

PASS_PAUSE = 1.0  # seconds between two passes over the Ready models (and when none is)


class TokenBucket:
    """Bytes per second shared by every caller (thread-safe). A taker may overdraw by one
    block and then waits the debt off, so the long-run rate is bounded whatever the
    block size, and a burst is at most one second's worth."""

    def __init__(self, rate: float) -> None:
        self._rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n: int, cancelled: threading.Event) -> None:
        """Take ``n`` tokens, waiting for them; Interrupted as soon as ``cancelled``."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self._rate, self._tokens + (now - self._stamp) * self._rate)
            self._stamp = now
            self._tokens -= n
            wait = -self._tokens / self._rate
        if wait > 0 and cancelled.wait(wait):
            raise Interrupted("cancelled")
        if cancelled.is_set():
            raise Interrupted("cancelled")


@dataclass(frozen=True)
class Damage:
    """Files of one model the scrub found wrong, for the core to fetch again."""

    digest: str  # of the manifest they were checked against
    files: list[FileCheck]

    @property
    def message(self) -> str:
        """For the entry's message and the log: each file and why."""
        listed = "; ".join(f"{c.path}: {c.reason}" for c in self.files)
        return f"fetching again files that no longer match the manifest: {listed}"


class Scrubber:
    """Walks the Ready models forever (``run``, a task); ``ready(key)`` says whether a
    model may be read now. What differs is kept until the model's handler takes it
    (:meth:`take`); ``damaged(key)`` asks for that handler."""

    def __init__(
        self,
        rate: float,
        manifests: ManifestStore,
        ready: Callable[[ModelKey], bool],
        damaged: Callable[[ModelKey], None],
        metrics: AgentMetrics | None = None,
    ) -> None:
        self._bucket = TokenBucket(rate)
        self._manifests = manifests
        self._is_ready = ready
        self._damaged = damaged
        self._metrics = metrics
        self._found: dict[ModelKey, Damage] = {}  # fetched again by the model's handler
        self._current: ModelKey | None = None
        self._stop = threading.Event()
        # one thread: the rate, not parallelism, bounds the scrub
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ome-scrub")

    def cancel(self, key: ModelKey) -> None:
        """``key`` was removed or changed: stop reading its files now, forget what was
        found wrong in them."""
        self._found.pop(key, None)
        if self._current == key:
            self._stop.set()

    def take(self, key: ModelKey) -> Damage | None:
        """What was found wrong in ``key``'s files, once."""
        return self._found.pop(key, None)

    def _ready(self, key: ModelKey) -> bool:
        return key not in self._found and self._is_ready(key)

    async def run(self) -> None:
        try:
            while True:
                for manifest in await asyncio.to_thread(self._manifests.all):
                    if self._ready(manifest.key):
                        await self._scrub(manifest)
                await asyncio.sleep(PASS_PAUSE)
        finally:
            self._stop.set()  # a cancelled task: the thread stops at its next block
            self._pool.shutdown(wait=False)

    async def _scrub(self, manifest: Manifest) -> None:
        key = manifest.key
        self._current = key
        self._stop = stop = threading.Event()
        loop = asyncio.get_running_loop()
        try:
            checks = await loop.run_in_executor(
                self._pool, lambda: check_manifest(manifest, cancelled=stop, pace=self._pace)
            )
        except Interrupted:
            return  # removed or changed meanwhile: the core handles it
        finally:
            self._current = None
        bad = [c for c in checks if c.status is not Status.OK]
        if not bad:
            return
        now = await asyncio.to_thread(self._manifests.load, key)
        if now is None or now.digest != manifest.digest or not self._ready(key):
            return  # replaced while read: what was read is no longer the model's
        if self._metrics is not None:
            self._metrics.scrub_mismatches.inc(len(bad))
        damage = Damage(manifest.digest, bad)
        log.warning("scrub: files differ from the manifest", extra={"model": str(key),
                    "files": "; ".join(f"{c.path}: {c.reason}" for c in bad)})  # fmt: skip
        self._found[key] = damage
        self._damaged(key)

    def _pace(self, n: int) -> None:
        self._bucket.take(n, self._stop)
        if self._metrics is not None:
            self._metrics.scrub_bytes.inc(n)


def damage_on_disk(manifest: Manifest | None) -> Damage | None:
    """What the restart's ``stat`` check finds wrong in a model directory that is still
    mostly there, to fetch again alone; None when nothing is, or nothing usable is left
    (the whole model is then downloaded, into staging as usual). Blocking."""
    if manifest is None:
        return None
    bad = stat_damage(manifest)
    if not bad or len({c.path for c in bad} & {f.path for f in manifest.files}) == len(
        manifest.files
    ):
        return None
    return Damage(manifest.digest, bad)


def repair(
    fetch: Fetch,
    plan: SourcePlan,
    manifest: Manifest,
    damage: Damage,
    token: str | None,
    auth: StorageAuth,
) -> Digests | None:
    """Fetch the damaged files of ``manifest``'s directory again, alone (blocking; the
    adopt path's ``Fetch.fetch_jobs``); the digests of every file now there, or None
    when the source moved to another commit (the caller downloads the whole model:
    one file of another commit would mix two versions)."""
    if manifest.blobs is not None:  # the next fill fetches what is gone (reconcile.hubfill)
        hubcache.drop(manifest, (c.path for c in damage.files))
        return None
    target = Path(manifest.identity.path)
    resolved = fetch.resolve(plan, token, auth)
    if resolved.commit != manifest.commit:
        return None
    wrong = {c.path for c in damage.files}
    recorded = {f.path: f.size for f in manifest.files}
    listed = {f.path: f.size for f in resolved.files}
    if any(listed.get(path, -1) != recorded[path] for path in wrong if path in recorded):
        return None  # the source no longer holds these files as recorded
    # parents first (sorted): a link out is removed before anything under its name is
    # touched, and a file is unlinked, never written through a link
    for path in sorted(wrong):
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            (target / path).unlink()
    jobs = [j for j in confined_jobs(target, resolved) if j.file.path in wrong]
    digests: Digests = {
        f.path: (f.digests, f.verified) for f in manifest.files if f.path not in wrong
    }
    return digests | fetch.fetch_jobs(jobs, target)
