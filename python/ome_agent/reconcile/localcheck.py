"""Files on disk hashed against the digests they must have (reconcile core; blocking
code, run in worker threads).

Two callers compare a model directory with a reference: adoption (``reconcile.adopt``)
against the source's listing, and the scrub (``reconcile.scrub``) and ``ome-agent
verify`` against the local manifest, whose digests the engine computed from the bytes
it wrote. The manifest's sizes and mtimes only say a file was not *visibly* touched: a
flipped byte with its mtime put back passes them, so only hashing proves the bytes.

A model directory holds regular files: a symbolic link out of it would make the agent
vouch for bytes it never wrote (and let a model's pods read any file of the node), so
such a link is refused wherever the directory is checked. A link that stays inside
the directory is allowed (an alias to one of the model's own files, which is hashed
under its own name); a file the manifest records must itself be a regular file.

A file is read once whatever the number of digests; ``hashlib``, ``crc32c`` and the
engine's ``Crc64Nvme`` release the GIL on large buffers, so files are hashed in
parallel threads.
"""

from __future__ import annotations

import enum
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ome_agent import _core
from ome_agent.errors import BadInput, Interrupted
from ome_agent.reconcile import hubcache
from ome_agent.reconcile.download import Digests
from ome_agent.reconcile.manifest import FileRecord, Manifest
from ome_agent.sources import ResolvedSource
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer.pull import confined_jobs
from ome_agent.transfer.runner import Job

# told the size of each block read before it is hashed; may block (a rate limit) or
# raise Interrupted
Pace = Callable[[int], None]

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
        if f.crc64nvme:
            self._algos["crc64nvme"] = _core.Crc64Nvme()
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
        expected = {
            "sha256": f.sha256,
            "md5": f.md5,
            "git-sha1": f.git_sha1,
            "crc32c": f.crc32c,
            "crc64nvme": f.crc64nvme,
        }
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


@dataclass(frozen=True)
class _Checked:
    found: dict[str, str]  # digests, when the file matches
    verified: list[str]
    reason: str  # why it does not match; "" when it does
    read: int  # bytes hashed
    missing: bool = False


def _check_file(
    job: Job, cancelled: threading.Event, pace: Pace | None = None, against: str = "the source"
) -> _Checked:
    """Hash ``job.dest`` against ``job.file`` (``against`` names the reference in a
    reason); ``pace`` is told each block read (the scrub's rate)."""
    f = job.file
    try:
        fd = os.open(job.dest, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return _Checked({}, [], "missing", 0, missing=True)
    except OSError as e:
        return _Checked({}, [], f"unreadable ({e.strerror})", 0)
    with os.fdopen(fd, "rb", buffering=0) as fh:
        size = os.fstat(fd).st_size
        if f.size is not None and size != f.size:
            return _Checked({}, [], f"{size} bytes, {against} has {f.size}", 0)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        hashes = _Hashes(f, size)
        buf = bytearray(READ_BLOCK)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            if cancelled.is_set():
                raise Interrupted("cancelled")
            if pace is not None:
                pace(n)
            hashes.update(view[:n])
    found, verified, differs = hashes.results()
    if differs is not None:
        return _Checked({}, [], f"its {differs} differs from {against}'s", size)
    if f.size is not None:  # first, as the engine lists it
        verified.insert(0, "size")
    if f.unverified:  # what the store could not give us, said in the manifest
        found["unverified"] = f.unverified
    return _Checked(found, verified, "", size)


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
        for job, result in results:
            checked += result.read
            if result.reason:
                mismatches.append(Mismatch(job, result.reason))
            else:
                kept[job.file.path] = (result.found, result.verified)
    mismatches.sort(key=lambda m: m.job.file.path)
    return LocalCheck(kept, mismatches, checked, time.monotonic() - started)


# ------------------------------------------------------------ against the manifest
class Status(enum.StrEnum):
    OK = "OK"
    MISMATCH = "MISMATCH"
    MISSING = "MISSING"


@dataclass(frozen=True)
class FileCheck:
    """One path of a model directory against its manifest."""

    path: str  # relative, "/"-separated
    status: Status
    reason: str  # why not OK; "" when OK
    read: int  # bytes hashed


# the digest compared, in order of preference: one is enough to prove the bytes, and
# reading each file once for one digest keeps the scrub's rate all hashing
_PREFERRED = ("sha256", "git-sha1", "md5", "crc32c", "crc64nvme")


def _reference(record: FileRecord) -> RemoteFile:
    """The record as a listed file with one digest of record (size only if it has none)."""
    d = record.digests
    name = next((n for n in _PREFERRED if d.get(n)), None)
    return RemoteFile(
        record.path, "", size=record.size,
        sha256=d["sha256"] if name == "sha256" else None,
        git_sha1=d["git-sha1"] if name == "git-sha1" else None,
        md5=d["md5"] if name == "md5" else None,
        crc32c=d["crc32c"] if name == "crc32c" else None,
        crc64nvme=d["crc64nvme"] if name == "crc64nvme" else None,
    )  # fmt: skip


def check_record(
    root: Path,
    record: FileRecord,
    *,
    cancelled: threading.Event | None = None,
    pace: Pace | None = None,
) -> FileCheck:
    """Hash one recorded file under ``root`` against the manifest (blocking)."""
    dest = root / record.path
    try:
        st = os.lstat(dest)
    except FileNotFoundError:
        return FileCheck(record.path, Status.MISSING, "missing", 0)
    except OSError as e:
        return FileCheck(record.path, Status.MISMATCH, f"unreadable ({e.strerror})", 0)
    if stat.S_ISLNK(st.st_mode):
        to = os.readlink(dest)
        return FileCheck(record.path, Status.MISMATCH, f"a symbolic link to {to}", 0)
    if not stat.S_ISREG(st.st_mode):
        return FileCheck(record.path, Status.MISMATCH, "not a regular file", 0)
    reference = _reference(record)
    if not reference.has_digest:
        # no digest was recorded (a local copy): the size is all there is to compare
        if st.st_size != record.size:
            why = f"{st.st_size} bytes, the manifest has {record.size}"
            return FileCheck(record.path, Status.MISMATCH, why, 0)
        return FileCheck(record.path, Status.OK, "", 0)
    result = _check_file(Job(reference, dest), cancelled or threading.Event(), pace, "the manifest")
    if result.missing:  # gone since the lstat
        return FileCheck(record.path, Status.MISSING, result.reason, result.read)
    if result.reason:
        return FileCheck(record.path, Status.MISMATCH, result.reason, result.read)
    return FileCheck(record.path, Status.OK, "", result.read)


def links_out(root: Path) -> list[tuple[str, str]]:
    """(relative path, target) of every symbolic link under ``root`` that leads out of
    it (blocking; lstat only, links are not followed while walking)."""
    real = os.path.realpath(root)
    found: list[tuple[str, str]] = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                continue
            resolved = os.path.realpath(path)
            if os.path.commonpath([real, resolved]) != real:
                found.append((os.path.relpath(path, root).replace(os.sep, "/"), os.readlink(path)))
    return sorted(found)


def refuse_links_out(root: Path) -> None:
    """BadInput naming the first link out of ``root`` (see the module doc)."""
    for rel, to in links_out(root)[:1]:
        raise BadInput(
            f"{root}: {rel} is a symbolic link out of the model directory (to {to}): "
            "replace it with the file itself or remove it"
        )


def check_manifest(
    manifest: Manifest,
    *,
    workers: int = 1,
    cancelled: threading.Event | None = None,
    pace: Pace | None = None,
) -> list[FileCheck]:
    """Every recorded file hashed against the manifest, and every link out of the
    model directory (a MISMATCH, recorded or not), sorted by path (blocking)."""
    manifest = hubcache.blob_view(manifest)
    root = Path(manifest.identity.path)
    stop = cancelled or threading.Event()
    outside = {rel: to for rel, to in links_out(root)} if root.is_dir() else {}
    checks = [
        FileCheck(rel, Status.MISMATCH, f"a symbolic link out of the model directory (to {to})", 0)
        for rel, to in outside.items()
    ]
    records = []
    for r in manifest.files:
        via = _under(r.path, outside)
        if via is not None:  # never read through the link: its target is not ours
            checks.append(FileCheck(r.path, Status.MISMATCH, f"under {via}, a link out", 0))
        elif r.path not in outside:
            records.append(r)
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="ome-hash") as pool:
        checks += pool.map(lambda r: check_record(root, r, cancelled=stop, pace=pace), records)
    return sorted(checks, key=lambda c: c.path)


def stat_damage(manifest: Manifest) -> list[FileCheck]:
    """The restart's check, no byte read: each recorded file that is missing, not a
    regular file, or of another size or mtime, or under a link out, and each link out
    (blocking)."""
    manifest = hubcache.blob_view(manifest)
    root = Path(manifest.identity.path)
    outside = dict(links_out(root)) if root.is_dir() else {}
    damage = {}
    for f in manifest.files:
        via = _under(f.path, outside)
        if via is not None:
            damage[f.path] = FileCheck(f.path, Status.MISMATCH, f"under {via}, a link out", 0)
            continue
        try:
            st = os.lstat(root / f.path)
        except FileNotFoundError:
            damage[f.path] = FileCheck(f.path, Status.MISSING, "missing", 0)
            continue
        except OSError as e:
            damage[f.path] = FileCheck(f.path, Status.MISMATCH, f"unreadable ({e.strerror})", 0)
            continue
        if not stat.S_ISREG(st.st_mode):
            damage[f.path] = FileCheck(f.path, Status.MISMATCH, "not a regular file", 0)
        elif st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
            damage[f.path] = FileCheck(f.path, Status.MISMATCH, "size or mtime changed", 0)
    for rel, to in outside.items():
        why = f"a symbolic link out of the model directory (to {to})"
        damage[rel] = FileCheck(rel, Status.MISMATCH, why, 0)
    return sorted(damage.values(), key=lambda c: c.path)


def _under(path: str, links: dict[str, str]) -> str | None:
    """The link among ``links`` that ``path`` lies under (strictly), if any."""
    return next((link for link in links if path.startswith(link + "/")), None)


def intact(manifest: Manifest) -> bool:
    """Ready from ``stat`` alone (see :func:`stat_damage`)."""
    return not stat_damage(manifest) and hubcache.links_intact(manifest)
