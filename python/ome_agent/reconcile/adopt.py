"""Adoption: files another agent already put at a model's path, checked against the
source and kept (reconcile core, start-up path; blocking code run in a worker thread).

A node migrated from OME's model agent holds each model's files directly at its
``storage.path`` and an entry saying Ready in the node's ConfigMap, but no manifest of
ours. Instead of downloading terabytes again, the core lists the source (the listing
only, no file bytes), and :func:`~ome_agent.reconcile.localcheck.check_local` hashes
each listed file found on disk and compares it with what the listing gives. A file
missing, of another size or with another digest is downloaded again (alone); every
other file is kept as it is, with the digests that were checked.

Why not the engine's resume: a resume continues from a ``.partial`` file and its
journal; a complete file has neither, so the engine would fetch it again from byte 0.
Hashing here reads the disk only.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ome_agent.errors import BadInput
from ome_agent.reconcile.download import Digests, Fetch
from ome_agent.reconcile.localcheck import check_local, refuse_links_out
from ome_agent.reconcile.sources import SourcePlan
from ome_agent.sources import StorageAuth

log = logging.getLogger("ome_agent.reconcile")


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
        refuse_links_out(target)  # hashed through, a link out would vouch for foreign bytes
        resolved = self._fetch.resolve(plan, token, auth)
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
