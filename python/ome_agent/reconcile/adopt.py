"""Adoption: files another agent already put at a model's path, checked against the
source and kept (reconcile core, start-up path; blocking code run in a worker thread).

A node migrated from OME's model agent holds each model's files directly at its
``storage.path`` and an entry saying Ready in the node's ConfigMap, but no manifest of
ours. Instead of downloading terabytes again, the core lists the source (the listing
only, no file bytes), and :func:`check_local` hashes each listed file found on disk and
compares it with what the listing gives: the Hub's LFS sha256 or git blob sha1, an
object store's MD5, multipart MD5 or CRC32C, else the size. A file missing, of
another size or with another digest is returned for download (alone); every other
file is kept as it is, with the digests that were checked.

Why not the engine's resume: a resume continues from a ``.partial`` file and its
journal; a complete file has neither, so the engine would fetch it again from byte 0.
Hashing here reads the disk only. ``hashlib`` and ``crc32c`` release the GIL on large
buffers, so files are hashed in parallel threads.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ome_agent.errors import BadInput, Interrupted
from ome_agent.reconcile.download import Digests, Fetch, resolve
from ome_agent.reconcile.sources import SourcePlan
from ome_agent.sources import ResolvedSource, StorageAuth
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer.pull import confined_jobs
from ome_agent.transfer.runner import Job

log = logging.getLogger("ome_agent.reconcile")

READ_BLOCK = 8 * 1024 * 1024  # large reads: few syscalls, and hashlib drops the GIL


@dataclass(frozen=True)
class Mismatch:
    """A listed file that cannot be kept: ``reason`` says why, for the log."""

    job: Job
    reason: str


@dataclass(frozen=True)
class LocalCheck:
    """What :func:`check_local` found under the model's path."""

    kept: Digests  # files that match the listing
    mismatches: list[Mismatch]  # files to download again
    checked_bytes: int  # bytes read and hashed
    seconds: float


class _Hashes:
    """The digests one listed file must match, computed in one pass over its bytes."""

    def __init__(self, f: RemoteFile, size: int) -> None:
        self.file = f
        self._algos: dict[str, Any] = {}
        if f.sha256:
            self._algos["sha256"] = hashlib.sha256()
        if f.md5:
            self._algos["md5"] = hashlib.md5(usedforsecurity=False)
        if f.git_sha1:
            blob = hashlib.sha1(usedforsecurity=False)
            blob.update(b"blob %d\0" % size)  # git hashes a header, then the content
            self._algos["git-sha1"] = blob
        if f.crc32c:
            import crc32c  # installed with oci; releases the GIL like hashlib

            self._algos["crc32c"] = crc32c.CRC32CHash()
        if not self._algos:  # nothing to compare: a sha256 of record for the manifest
            self._algos["sha256"] = hashlib.sha256()
        self._parts: list[bytes] = []
        self._part: Any = None
        self._part_left = 0
        if f.md5_multipart is not None:
            self._part = hashlib.md5(usedforsecurity=False)
            self._part_left = f.md5_multipart.part_size

    def update(self, chunk: memoryview) -> None:
        for h in self._algos.values():
            h.update(chunk)
        if self._part is not None:
            self._update_parts(chunk)

    def _update_parts(self, chunk: memoryview) -> None:
        assert self.file.md5_multipart is not None
        while chunk:
            take = chunk[: self._part_left]
            self._part.update(take)
            self._part_left -= len(take)
            chunk = chunk[len(take) :]
            if self._part_left == 0:
                self._parts.append(self._part.digest())
                self._part = hashlib.md5(usedforsecurity=False)
                self._part_left = self.file.md5_multipart.part_size

    def results(self) -> tuple[dict[str, str], list[str], str | None]:
        """(digests, algorithms compared with the listing, the first that differs)."""
        f = self.file
        found = {name: h.hexdigest() for name, h in self._algos.items()}
        expected = {"sha256": f.sha256, "md5": f.md5, "git-sha1": f.git_sha1, "crc32c": f.crc32c}
        if f.md5_multipart is not None:
            if self._part_left != f.md5_multipart.part_size or not self._parts:
                self._parts.append(self._part.digest())
            whole = hashlib.md5(b"".join(self._parts), usedforsecurity=False).hexdigest()
            found["md5-multipart"] = f"{whole}-{len(self._parts)}"
            expected["md5-multipart"] = f.md5_multipart.digest
        verified: list[str] = []
        for name, want in expected.items():
            if want is None:
                continue
            if found[name].lower() != want.lower():
                return found, verified, name
            verified.append(name)
        return found, verified, None


_Checked = tuple[dict[str, str], list[str], str, int]


def _check_file(job: Job, cancelled: threading.Event) -> _Checked:
    """(digests, verified, "", bytes read) when ``job.dest`` matches, else
    ({}, [], why not, bytes read)."""
    f = job.file
    try:
        fd = os.open(job.dest, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}, [], "missing", 0
    except OSError as e:
        return {}, [], f"unreadable ({e.strerror})", 0
    with os.fdopen(fd, "rb", buffering=0) as fh:
        size = os.fstat(fd).st_size
        if f.size is not None and size != f.size:
            return {}, [], f"{size} bytes, the source has {f.size}", 0
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        hashes = _Hashes(f, size)
        buf = bytearray(READ_BLOCK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            if cancelled.is_set():
                raise Interrupted("cancelled")
            hashes.update(view[:n])
    found, verified, differs = hashes.results()
    if differs is not None:
        return {}, [], f"its {differs} differs from the source's", size
    if f.size is not None:  # first, as the engine lists it
        verified.insert(0, "size")
    if f.unverified:  # what the store could not give us, said in the manifest
        found["unverified"] = f.unverified
    return found, verified, "", size


def check_local(
    target: Path,
    resolved: ResolvedSource,
    *,
    workers: int,
    cancelled: threading.Event | None = None,
) -> LocalCheck:
    """Hash every listed file under ``target`` against the listing (blocking; names
    are confined to ``target`` as for a download)."""
    stop = cancelled or threading.Event()
    jobs = confined_jobs(target, resolved)
    started = time.monotonic()
    kept: Digests = {}
    mismatches: list[Mismatch] = []
    checked = 0
    # largest first, as downloads: the long pole starts early
    ordered = sorted(jobs, key=lambda j: -(j.file.size or 0))
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ome-adopt") as pool:
        results = pool.map(lambda j: (j, _check_file(j, stop)), ordered)
        for job, (found, verified, why, read) in results:
            checked += read
            if why:
                mismatches.append(Mismatch(job, why))
            else:
                kept[job.file.path] = (found, verified)
    mismatches.sort(key=lambda m: m.job.file.path)
    return LocalCheck(kept, mismatches, checked, time.monotonic() - started)


class Adoption:
    """One model's adoption: list, check, download what differs. ``run`` blocks (a
    worker thread); ``cancel`` may be called from any thread."""

    def __init__(self, model: str, fetch: Fetch, *, workers: int) -> None:
        self.model = model  # for the log
        self._fetch = fetch
        self._workers = workers
        self._stop = threading.Event()

    def cancel(self) -> None:
        self._stop.set()
        self._fetch.cancel()

    def run(
        self, plan: SourcePlan, target: Path, token: str | None, auth: StorageAuth
    ) -> tuple[str | None, Digests]:
        """The resolved commit and the digests of every file now at ``target``."""
        resolved = resolve(plan, token, auth)
        check = check_local(target, resolved, workers=self._workers, cancelled=self._stop)
        if not check.kept:
            raise BadInput(
                f"spec.storage.path {target} holds none of the source's files at their "
                "paths (a Hugging Face cache layout is not adopted): remove it or choose "
                "another path"
            )
        digests = dict(check.kept)
        if check.mismatches:
            log.warning(
                "adopting: downloading again the files that do not match the source",
                extra={
                    "model": self.model,
                    "files": "; ".join(f"{m.job.file.path}: {m.reason}" for m in check.mismatches),
                },
            )
            digests |= self._fetch.fetch_jobs([m.job for m in check.mismatches], target)
        log.info(
            "model adopted",
            extra={
                "model": self.model,
                "path": str(target),
                "verified_bytes": check.checked_bytes,
                "seconds": round(check.seconds, 3),
                "downloaded_files": len(check.mismatches),
                "downloaded_bytes": self._fetch.fetched_bytes,
            },
        )
        return resolved.commit, digests
