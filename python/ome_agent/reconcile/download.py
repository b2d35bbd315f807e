"""One model's bytes into its staging directory (reconcile core → sources → transfer).

Blocking code, run by the reconcile core in a worker thread (the event loop never
waits on the network or the disk). :class:`Fetch` lists the source, checks free
space, and hands the files to the transfer :class:`~ome_agent.transfer.runner.Runner`;
under ``--require-digest`` a listing with a file that has no digest to check is refused
before any byte is fetched, linked or adopted (:meth:`Fetch.resolve`);
``cancel()`` may be called from any thread and stops the transfers at once (partial
files and their journals stay, so a later fetch of the same spec resumes).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from ome_agent import _core
from ome_agent.errors import BadInput, FailureReason, Interrupted
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile.sources import SourcePlan
from ome_agent.sources import ResolvedSource, StorageAuth, resolve_hf, resolve_http, resolve_object
from ome_agent.transfer.progress import RetryNotice
from ome_agent.transfer.pull import confined_jobs, require_digests
from ome_agent.transfer.runner import Job, Runner
from ome_agent.transfer.settings import TransferSettings

log = logging.getLogger(__name__)

# per file: digests computed by the engine, and which were compared to the listing
Digests = dict[str, tuple[dict[str, str], list[str]]]
# given the listing, fill the staging directory from files already on the node and
# return their digests, or None to download (``reconcile.reuse``)
ReuseFn = Callable[[ResolvedSource, Path], Digests | None]


# what the owner of a model refused by --require-digest can do
_HTTP_FIX = (
    "serve the model from hf:// or an object store that records digests, or run the "
    "agent without --require-digest"
)
_LISTED_FIX = "store the file with a digest, or run the agent without --require-digest"


class NoSpace(BadInput):
    """The files known from the listing do not fit on the target filesystem."""

    reason = FailureReason.DISK_FULL


class Fetch:
    def __init__(
        self, engine: _core.Engine, settings: TransferSettings, metrics: AgentMetrics | None = None
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._metrics = metrics  # counts each retry (the runner logs it)
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self._runner: Runner | None = None
        self.phase = "Listing"
        self.total_bytes = 0
        self.total_files = 0
        self.fetched_bytes = 0

    def _metrics_retried(self, notice: RetryNotice) -> None:
        if self._metrics is not None:
            self._metrics.retried(notice.kind)

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._runner is not None:
                self._runner.cancel()

    @property
    def cancelled(self) -> threading.Event:
        """Set by :meth:`cancel`: long checks (hashing) poll it."""
        return self._cancelled

    def _check(self) -> None:
        if self._cancelled.is_set():
            raise Interrupted("cancelled")

    def progress(self) -> tuple[int, int, int, float]:
        """(completed bytes, completed files, total files, bytes/s) right now."""
        with self._lock:
            runner = self._runner
        if runner is None:
            return 0, 0, self.total_files, 0.0
        snap = runner.snapshot()
        if snap.total_bytes is not None:
            self.total_bytes = snap.total_bytes
        return snap.done_bytes, snap.files_done, snap.files_total, snap.rate

    def run(
        self,
        plan: SourcePlan,
        staging: Path,
        token: str | None,
        auth: StorageAuth,
        reuse: ReuseFn | None = None,
    ) -> tuple[str | None, Digests]:
        """Fill ``staging``; return the resolved commit and the per-file digests.

        ``token``: the Hub token (hf); ``auth``: an object store's parameters and Secret;
        ``reuse``: asked first, once the listing is known."""
        if plan.scheme == "local":
            assert plan.local is not None
            return None, self._copy_local(plan.local, staging)
        resolved = self.resolve(plan, token, auth)
        self._check()
        if reuse is not None:
            self.phase = "Linking"
            linked = reuse(resolved, staging)
            if linked is not None:
                self.phase = "Verified"
                return resolved.commit, linked
            self.phase = "Listing"
        return resolved.commit, self.fetch_jobs(confined_jobs(staging, resolved), staging)

    def resolve(self, plan: SourcePlan, token: str | None, auth: StorageAuth) -> ResolvedSource:
        """The listing (:func:`resolve`), refused by ``--require-digest`` when a file has
        no digest to check."""
        resolved = resolve(plan, token, auth)
        fix = _HTTP_FIX if plan.http is not None else _LISTED_FIX
        require_digests(resolved, self._settings, fix)
        return resolved

    def fetch_jobs(self, jobs: list[Job], root: Path) -> Digests:
        """Download ``jobs`` (their paths confined under ``root``); the per-file digests."""
        sizes = [j.file.size for j in jobs]
        self.total_files = len(jobs)
        if all(s is not None for s in sizes):
            self.total_bytes = sum(s for s in sizes if s is not None)
            check_space(root, self.total_bytes)
        root.mkdir(parents=True, exist_ok=True)
        self.phase = "Downloading"
        with self._lock:
            self._check()
            on_retry = None if self._metrics is None else self._metrics_retried
            self._runner = Runner(self._engine, jobs, self._settings, on_retry=on_retry)
        outcomes = self._runner.run()
        digests: Digests = {}
        for o in outcomes:
            r = o.result
            found = {
                k: v
                for k, v in (
                    ("sha256", r.sha256),
                    ("md5", r.md5),
                    ("git-sha1", r.git_sha1),
                    ("xxh3-128", r.xxh3_128),
                    ("crc32c", r.crc32c),
                    ("crc64nvme", r.crc64nvme),
                )
                if v
            }
            verified = list(r.verified)
            size_checked = o.job.file.size is not None and r.size == o.job.file.size
            if size_checked and "size" not in verified:  # the engine may list it already
                verified.append("size")
            if o.job.file.unverified:  # what the store could not give us, said in the manifest
                found["unverified"] = o.job.file.unverified
            digests[o.job.file.path] = (found, verified)
            self.fetched_bytes += r.fetched_bytes
        self.phase = "Verified"
        return digests

    def _copy_local(self, source: Path, staging: Path) -> Digests:
        """Hard links when possible (no extra space, instant), else copies."""
        if not source.exists():
            raise BadInput(
                f"spec.storage.storageUri: local path {source} does not exist on this node"
            )
        files = (
            [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
        )
        base = source.parent if source.is_file() else source
        for p in files:  # a link inside the folder must not reach outside it
            if p.is_symlink() and base.resolve() not in p.resolve().parents:
                raise BadInput(
                    f"spec.storage.storageUri: {p} is a symbolic link out of {source}: "
                    "copy the file it points to into the folder instead"
                )
        self.total_files = len(files)
        self.total_bytes = sum(p.stat().st_size for p in files)
        staging.mkdir(parents=True, exist_ok=True)
        self.phase = "Copying"
        digests: Digests = {}
        for p in files:
            self._check()
            rel = p.relative_to(base)
            dest = staging / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if dest.exists():
                dest.unlink()
            try:
                os.link(p, dest)
            except OSError:
                shutil.copy2(p, dest)
            if dest.stat().st_size != p.stat().st_size:
                raise BadInput(f"{rel}: copy from {source} is incomplete")
            digests[rel.as_posix()] = ({}, ["size"])
        return digests


def resolve(plan: SourcePlan, token: str | None, auth: StorageAuth) -> ResolvedSource:
    """The listing of a remote source (names, sizes, digests; no file bytes)."""
    if plan.hf is not None:
        resolved = resolve_hf(plan.hf, token=token)
    elif plan.objects is not None:
        resolved = resolve_object(plan.objects.ref, auth)
    else:
        assert plan.http is not None
        assert plan.http.file_name is not None
        return resolve_http(plan.http, file_name=plan.http.file_name)
    if not resolved.files:
        at = f" at commit {resolved.commit}" if resolved.commit else ""
        raise BadInput(f"spec.storage.storageUri: {plan.display} has no files{at}")
    for warning in resolved.warnings:  # e.g. a mirror without the tree API: said once here
        log.warning("%s: %s", plan.display, warning)
    return resolved


def check_space(staging: Path, needed: int) -> None:
    """Fail fast when the listing's bytes (minus what a resume already has) do not fit."""
    have = 0
    if staging.is_dir():
        for p in staging.rglob("*"):
            if p.is_file():
                have += p.stat().st_blocks * 512
    probe = staging
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    missing = needed - have
    if missing > free:
        raise NoSpace(
            f"not enough disk space: the model needs {missing / 1e9:.2f} GB more, "
            f"{free / 1e9:.2f} GB free on the filesystem of {probe}: free space or move "
            "spec.storage.path to a larger --models-root-dir"
        )
