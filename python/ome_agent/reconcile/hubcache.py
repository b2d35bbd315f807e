"""``spec.storage.parameters.cache_dir``: an ``hf://`` model kept in the Hugging Face
cache layout (reconcile core, layer 4; beside ``layout``, which places every other model).

The layout is huggingface_hub's (``transfer.hub_cache``): ``{cache_dir}/models--{org}--
{name}/`` with ``blobs/{etag}``, ``snapshots/{commit}/`` of relative links to the blobs
and ``refs/{revision}``, so huggingface_hub, transformers, vLLM and SGLang load the model
with ``HF_HUB_OFFLINE=1``. The model's directory, as the node reports it and as its
manifest records it, is the snapshot folder. ``reconcile.hubfill`` fills it.

Where a cache may be: ``cache_dir`` comes from a model's author, so it must be an
absolute path, without ``.`` or ``..`` segments, that lies strictly inside a
``--models-root-dir`` once symbolic links are followed (and outside the agent's own
state), the rule ``storage.path`` follows. The trade-off: a cache the serving pods
already mount elsewhere on the host must be mounted under a models root (or its
parent added as one with another ``--models-root-dir``), and every model author may
use any cache inside the roots. Sharing one is safe: a blob is named by its digest, and
one the agent did not write is hashed before any model is Ready with it
(``reconcile.hubfill``). ``storage.path`` says where a model's files
go, and so does ``cache_dir``: giving both is refused.

What is shared and what is removed: models of one cache share blobs (a blob another
repo of the cache holds is hard-linked, not fetched) and models of one repo and
commit share the snapshot. Removing a model removes its snapshot unless another
model's manifest names it, the refs naming that commit, and those of its blobs no
snapshot of the repo links to any more (blobs of a fill in progress are kept:
:func:`busy`); then the folders left empty, the repo's last. Blobs the model never
linked stay: another writer of the cache may be about to link them.

Checks: a restart and the scrub look at the cache through :func:`blob_view`, the
manifest with the blobs as its files, so ``reconcile.localcheck`` stats and hashes the
blobs themselves (regular files inside the repo folder), and :func:`links_intact`
checks that each snapshot link still names its blob.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from ome_agent.api import StorageSpec
from ome_agent.errors import BadInput, Interrupted
from ome_agent.reconcile import layout
from ome_agent.reconcile.manifest import FileRecord, Identity, Manifest, record_files
from ome_agent.reconcile.options import STATE_DIR_NAME
from ome_agent.sources import HfRef
from ome_agent.transfer.hub_cache import HubCache

log = logging.getLogger("ome_agent.reconcile")

FIELD = "spec.storage.parameters.cache_dir"
COMMIT = re.compile(r"[0-9a-f]{40}")  # what huggingface_hub names snapshots after
# the staging place of a download whose revision is not a commit yet (its parent,
# ``snapshots/``, is what matters: links in staging are at the snapshot's depth)
_PENDING = "pending"

# fills and removals of one process touch the same repo folders from worker threads
_LOCK = threading.Lock()
_BUSY: dict[Path, Counter[str]] = {}  # repo folder -> blob names a fill is using
_FILLING: dict[Path, threading.Lock] = {}  # repo folder -> held by the fill running there


def requested(storage: StorageSpec | None) -> bool:
    """The model asks for the cache layout."""
    return bool(storage is not None and storage.parameters.get("cache_dir"))


def only_hf(storage: StorageSpec | None, what: str) -> None:
    """BadInput when ``cache_dir`` is given for a source that is not ``hf://``."""
    if requested(storage):
        raise BadInput(
            f"{FIELD} applies to hf:// models (the Hugging Face cache layout), not to "
            f"{what}: drop it"
        )


def parse(storage: StorageSpec) -> Path | None:
    """The cache folder as written (checked for form; :func:`home` confines it)."""
    raw = storage.parameters.get("cache_dir") or ""
    if not raw:
        return None
    if storage.path:
        raise BadInput(
            f"{FIELD} and spec.storage.path both say where the files go: drop "
            "spec.storage.path (the model's folder is the cache's snapshot) or cache_dir"
        )
    if not raw.startswith("/"):
        raise BadInput(
            f"{FIELD} {raw!r} is relative: give an absolute folder inside a "
            "--models-root-dir, e.g. /mnt/models/hf_cache"
        )
    if any(seg in (".", "..") for seg in raw.split("/")):
        raise BadInput(
            f"{FIELD} {raw!r} has '.' or '..' segments: give the folder's plain absolute "
            "path inside a --models-root-dir"
        )
    return Path(raw)


def home(cache_dir: Path | None, ref: HfRef | None, roots: tuple[Path, ...]) -> HubCache | None:
    """The repo's place in the cache (None without one); BadInput naming the field unless
    the folder, links followed, lies strictly inside a models root and outside the
    agent's state."""
    if cache_dir is None or ref is None:
        return None
    real = Path(os.path.realpath(cache_dir))
    for root in roots:
        if layout.inside(real, root):
            if STATE_DIR_NAME in real.relative_to(os.path.realpath(root)).parts:
                raise BadInput(f"{FIELD} {str(cache_dir)!r} is inside the agent's own state")
            return HubCache(real, ref.repo_id)
    via = f" (links followed: {real})" if real != cache_dir else ""
    listed = ", ".join(str(r) for r in roots)
    raise BadInput(
        f"{FIELD} {str(cache_dir)!r}{via} is outside the models roots ({listed}): give a "
        "folder inside one, or mount the cache under one, or add its parent with another "
        "--models-root-dir"
    )


def target(cache: HubCache, source: str, revision: str | None, manifest: Manifest | None) -> Path:
    """The model's directory: the snapshot its manifest recorded for this source and
    revision (a restart asks nothing of the Hub), else the snapshot of a revision given
    as a commit, else a place in ``snapshots/`` whose sibling stages the download."""
    if (
        manifest is not None
        and manifest.blobs is not None
        and manifest.commit is not None
        and (manifest.identity.source, manifest.identity.revision) == (source, revision)
        and Path(manifest.identity.path) == cache.snapshot(manifest.commit)
    ):
        return cache.snapshot(manifest.commit)
    wanted = revision or "main"
    return cache.snapshot(wanted if COMMIT.fullmatch(wanted) else _PENDING)


@contextlib.contextmanager
def filling(repo_dir: Path, cancelled: threading.Event) -> Iterator[None]:
    """One fill at a time per repo: two models of one repo declared together would
    otherwise both download each missing blob, into the same ``.partial`` file; the
    second waits, then finds the blobs there. Interrupted as soon as ``cancelled``."""
    with _LOCK:
        lock = _FILLING.setdefault(repo_dir, threading.Lock())
    while not lock.acquire(timeout=0.2):
        if cancelled.is_set():
            raise Interrupted("cancelled")
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def busy(repo_dir: Path, names: Iterable[str]) -> Iterator[None]:
    """Blobs a fill is checking, downloading or linking: a removal keeps them."""
    names = list(names)
    with _LOCK:
        _BUSY.setdefault(repo_dir, Counter()).update(names)
    try:
        yield
    finally:
        with _LOCK:
            held = _BUSY[repo_dir]
            held.subtract(names)
            if not +held:
                del _BUSY[repo_dir]


def record(
    storage: StorageSpec | None,
    target_dir: Path,
    identity: Identity,
    commit: str | None,
    digests: dict[str, tuple[dict[str, str], list[str]]],
) -> tuple[list[FileRecord], dict[str, str] | None]:
    """The manifest's files (and, for a snapshot, each file's blob), after the switch.

    A snapshot's files are recorded through their links (the blob's size and mtime),
    and its ref is written now that the snapshot is in place."""
    if not requested(storage):
        return record_files(target_dir, digests), None
    files = record_files(target_dir, digests, through_links=True)
    blobs = {
        f.path: os.path.basename(os.readlink(link))
        for f in files
        if (link := target_dir / f.path).is_symlink()
    }
    ref = identity.revision or "main"
    if commit is not None and ref != commit:
        refs = target_dir.parent.parent / "refs" / ref
        with _LOCK:
            refs.parent.mkdir(parents=True, exist_ok=True)
            refs.write_text(commit)
    return files, blobs


def _repo(manifest: Manifest) -> Path:
    return Path(manifest.identity.path).parent.parent


def vouched(manifests: Iterable[Manifest], cache_dir: Path) -> dict[str, FileRecord]:
    """Blobs of ``cache_dir`` that this agent's manifests record (written and verified
    by the engine, or hashed before use): blob name -> the record of a file it holds."""
    known: dict[str, FileRecord] = {}
    for m in manifests:
        if m.blobs is None or _repo(m).parent != cache_dir:
            continue
        for f in m.files:
            key = m.blobs.get(f.path)
            if key:
                known.setdefault(key, f)
    return known


def blob_view(manifest: Manifest) -> Manifest:
    """A snapshot's manifest as the repo folder holding its blobs (each once), so the
    restart's stat and the scrub's hashes read the blobs, never through a link; any
    other manifest as it is."""
    if manifest.blobs is None:
        return manifest
    snapshot = Path(manifest.identity.path).name
    files: dict[str, FileRecord] = {}
    for f in manifest.files:
        key = manifest.blobs.get(f.path)
        path = f"blobs/{key}" if key else f"snapshots/{snapshot}/{f.path}"
        files.setdefault(path, replace(f, path=path))
    identity = replace(manifest.identity, path=str(_repo(manifest)))
    return replace(manifest, identity=identity, files=list(files.values()))


def links_intact(manifest: Manifest) -> bool:
    """Every link of the snapshot still names its blob (True for other manifests)."""
    if manifest.blobs is None:
        return True
    snapshot = Path(manifest.identity.path)
    blobs = _repo(manifest) / "blobs"
    for path, key in manifest.blobs.items():
        link = snapshot / path
        try:
            if os.readlink(link) != os.path.relpath(blobs / key, link.parent):
                return False
        except OSError:
            return False
    return True


def drop(manifest: Manifest, paths: Iterable[str]) -> None:
    """Remove the blobs among ``paths`` (of :func:`blob_view`) that still have the size
    and mtime recorded, so the next fill, which would take them as they are, fetches
    them again: the scrub found their bytes wrong, for every snapshot linking them. A
    blob whose size or mtime changed is hashed by the next fill and kept if right."""
    view = blob_view(manifest)
    recorded = {f.path: f for f in view.files if f.path.startswith("blobs/")}
    for path in paths:
        record = recorded.get(path)
        if record is None:
            continue
        blob = Path(view.identity.path) / path
        with contextlib.suppress(FileNotFoundError):
            if as_recorded(blob, record):
                blob.unlink()


def as_recorded(blob: Path, record: FileRecord) -> bool:
    """The blob has the size and mtime a manifest of ours recorded: what a restart
    accepts (the scrub hashes it in the background)."""
    st = blob.stat()
    return st.st_size == record.size and st.st_mtime_ns == record.mtime_ns


def remove(manifest: Manifest, others: Iterable[Manifest], roots: tuple[Path, ...]) -> bool:
    """A model's snapshot leaves the cache (module doc); False when a path was refused
    (logged), the caller's cue that a removal failed."""
    snapshot = Path(manifest.identity.path)
    repo = _repo(manifest)
    try:
        with _LOCK:
            if not any(Path(m.identity.path) == snapshot for m in others):
                layout.remove_tree(snapshot, roots)
                _drop_refs(repo, snapshot.name)
            _collect(repo, set((manifest.blobs or {}).values()), roots)
    except BadInput as e:
        log.error("not removed", extra={"path": str(snapshot), "error": str(e)})
        return False
    return True


def _drop_refs(repo: Path, commit: str) -> None:
    refs = repo / "refs"
    for ref in sorted(refs.rglob("*")) if refs.is_dir() else []:
        with contextlib.suppress(OSError):
            if ref.is_file() and ref.read_text().strip() == commit:
                ref.unlink()


def _collect(repo: Path, candidates: set[str], roots: tuple[Path, ...]) -> None:
    """The blobs among ``candidates`` (the removed snapshot's) that no link under
    ``snapshots/`` names and no fill is using, then the folders left empty, the repo's
    last. Only the removed model's blobs are candidates: a blob no snapshot names yet
    may be one huggingface_hub, in a pod sharing the cache, is about to link. Under
    ``_LOCK``."""
    if repo.is_symlink():
        return  # planted since the fill checked it: nothing of ours is behind it
    blobs = repo / "blobs"
    real_blobs = os.path.realpath(blobs)
    linked: set[str] = set()
    for dirpath, dirs, files in os.walk(repo / "snapshots"):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                resolved = os.path.realpath(path)
                if os.path.dirname(resolved) == real_blobs:
                    linked.add(os.path.basename(resolved))
    held = _BUSY.get(repo, Counter())
    for key in sorted(candidates - linked):
        if held[key] or "/" in key:
            continue
        for name in (key, f"{key}.partial", f"{key}.partial.journal"):
            if (blobs / name).exists() or (blobs / name).is_symlink():
                layout.remove_tree(blobs / name, roots)
    for dirpath, _dirs, _files in sorted(os.walk(repo), key=lambda w: -len(w[0])):
        with contextlib.suppress(OSError):  # not empty: kept
            os.rmdir(dirpath)
