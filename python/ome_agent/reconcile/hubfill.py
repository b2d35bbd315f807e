"""A model's listing into the Hugging Face cache layout (reconcile core → transfer; blocking
code, run in the model's fetch thread between the listing and the switch into place).

Called by :class:`~ome_agent.reconcile.download.Fetch` in place of a download into
staging (its ``reuse`` step, see :func:`filler`): the staging directory, a sibling of
the snapshot folder inside ``snapshots/``, receives relative links to the blobs, at
the snapshot's depth, so they stay right once the reconcile core renames it into place.

1. Each listed file with a digest (the LFS sha256, else the git blob sha1: the ETag
   huggingface_hub names blobs after) needs ``blobs/{digest}``. A blob already there,
   or in another repo of the cache (then hard-linked), is used once proven: a blob a
   manifest of this agent records with its size and mtime is taken as a restart takes
   it (the engine verified it when it wrote it, the scrub re-hashes it); any other is
   hashed against its listed digest first, since anything that shares the cache may
   have written it. A blob that differs is removed and fetched.
2. The missing blobs are downloaded by the engine straight to ``blobs/{digest}``: it
   writes ``{digest}.partial``, verifies every byte, then renames, so a blob exists
   only once its bytes were checked, and an interrupted fill resumes from the journal.
   A file the Hub gave no digest for has no blob name: it is downloaded into staging as
   a regular file, as huggingface_hub keeps it.
3. Links: ``staging/{path}`` → ``../../blobs/{digest}`` (one more ``..`` per folder).

The blobs stay marked busy (``hubcache.busy``) until the links exist, so a model
removed meanwhile never takes them away, and one fill runs at a time per repo
(``hubcache.filling``), so a blob is downloaded once however many models want it.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import replace
from pathlib import Path

from ome_agent.errors import BadInput, FailureReason, OmeAgentError
from ome_agent.reconcile import hubcache
from ome_agent.reconcile.download import Digests, Fetch, ReuseFn
from ome_agent.reconcile.localcheck import check_local
from ome_agent.reconcile.manifest import ManifestStore
from ome_agent.sources import ResolvedSource
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer.hub_cache import HubCache, blob_key, borrow_blob
from ome_agent.transfer.pull import confined_jobs
from ome_agent.transfer.runner import Job


def filler(fetch: Fetch, cache: HubCache, manifests: ManifestStore) -> ReuseFn:
    """The ``reuse`` step of ``Fetch.run`` that fills ``cache`` instead of staging."""
    return lambda resolved, staging: fill(fetch, cache, resolved, staging, manifests)


def fill(
    fetch: Fetch,
    cache: HubCache,
    resolved: ResolvedSource,
    staging: Path,
    manifests: ManifestStore | None = None,
) -> Digests:
    """Blobs present and proven, the rest fetched, links in ``staging``; the per-file
    digests (see the module doc)."""
    if resolved.commit is None or not hubcache.COMMIT.fullmatch(resolved.commit):
        raise BadCommit(
            f"{resolved.source}: the Hub pinned the revision to {resolved.commit!r}, not a "
            "40-hex commit sha, and the cache names its snapshot folder after it: check HF_ENDPOINT"
        )
    dests = {j.file.path: j.dest for j in confined_jobs(staging, resolved)}
    by_key: dict[str, RemoteFile] = {}  # the first listed file of each blob
    for f in resolved.files:
        key = blob_key(f)
        if key is not None:
            by_key.setdefault(key, f)
    blobs = cache.repo_dir / "blobs"
    with hubcache.filling(cache.repo_dir, fetch.cancelled), hubcache.busy(cache.repo_dir, by_key):
        _real_folders(cache)
        blobs.mkdir(parents=True, exist_ok=True)
        staging.mkdir(parents=True, exist_ok=True)
        present = [k for k, f in by_key.items() if _present(cache, k, f.size)]
        known = hubcache.vouched(manifests.known(), cache.cache_dir) if manifests else {}
        kept: Digests = {
            k: (known[k].digests, known[k].verified)
            for k in present
            if k in known and hubcache.as_recorded(blobs / k, known[k])
        }
        fetch.phase = "Verifying"
        checked = check_local(
            blobs,
            replace(resolved, files=[replace(by_key[k], path=k) for k in present if k not in kept]),
            workers=os.cpu_count() or 1,
            cancelled=fetch.cancelled,
        )
        for wrong in checked.mismatches:  # anything may write a shared cache: fetch it
            wrong.job.dest.unlink()
        kept |= checked.kept
        todo = [Job(f, blobs / k) for k, f in by_key.items() if k not in kept]
        todo += [Job(f, dests[f.path]) for f in resolved.files if blob_key(f) is None]
        fetched = fetch.fetch_jobs(todo, staging) if todo else {}
        digests: Digests = {}
        for f in resolved.files:
            key = blob_key(f)
            if key is None:
                digests[f.path] = fetched[f.path]
                continue
            digests[f.path] = kept[key] if key in kept else fetched[by_key[key].path]
            link = dests[f.path]
            link.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()  # a link of an earlier attempt
            link.symlink_to(os.path.relpath(blobs / key, link.parent))
    return digests


class BadCommit(OmeAgentError):
    """The Hub's commit for the revision cannot name a snapshot folder."""

    reason = FailureReason.SOURCE


def _real_folders(cache: HubCache) -> None:
    """BadInput naming the field when a folder of the repo is a symbolic link: the cache
    folder was confined with links followed, its folders must not lead elsewhere."""
    repo = cache.repo_dir
    for folder in (repo, repo / "blobs", repo / "snapshots", repo / "refs"):
        if folder.is_symlink():
            raise BadInput(
                f"{hubcache.FIELD} {cache.cache_dir}: {folder} is a symbolic link (to "
                f"{os.readlink(folder)}); the agent writes only real folders of the cache: "
                "remove the link"
            )


def _present(cache: HubCache, key: str, size: int | None) -> bool:
    """``blobs/{key}`` is a regular file of the listed size, or is made one by a hard
    link to the same blob of another repo of the cache (to be hashed by the caller)."""
    mine = cache.blob(key)
    if mine.is_file() and not mine.is_symlink():
        return size is None or mine.stat().st_size == size
    with contextlib.suppress(FileNotFoundError):
        mine.unlink()  # a link, or anything else that is no blob
    return borrow_blob(cache.cache_dir, key, size, mine)
