"""Files of a model checked by their size only (reconcile core: what its Ready reports
and its log say).

A source that gives no digest for a file (a plain http(s) URL, an object stored
without MD5 or CRC32C, a Hub mirror without the LFS sha256) leaves its size as the only
check: a short 200 or an error page served as the file would pass. The manifest
records why, per file (``unverified``, from ``RemoteFile.unverified``); every Ready
report of the model says it in ``config.unverified``, a member of ours that OME's
decoder ignores (docs/wire.md), and the agent warns once per model and source, not on
every reconcile.
"""

from __future__ import annotations

import logging

from ome_agent.api import ModelKey
from ome_agent.reconcile.manifest import FileRecord, Manifest
from ome_agent.sources.model import SIZE_ONLY

log = logging.getLogger("ome_agent.reconcile")

NAMES_SHOWN = 3  # file names in config.unverified; the manifest has them all


def size_only(record: FileRecord) -> bool:
    """Downloaded with no digest compared: the reason recorded, or (manifests written
    before reasons were) a digest of record with nothing verified but the size. A local
    copy records no digest at all: a copy of the node's own file, not a download."""
    if record.digests.get("unverified"):
        return True
    return bool(record.digests) and not set(record.verified) - {"size"}


def describe(manifest: Manifest) -> str | None:
    """``config.unverified``: "size only, unverified: 1 of 3 files (model.bin)"; None
    when every file was checked by a digest."""
    return _describe(manifest, [f for f in manifest.files if size_only(f)])


def _describe(manifest: Manifest, weak: list[FileRecord]) -> str | None:
    if not weak:
        return None
    names = [f.path for f in weak[:NAMES_SHOWN]]
    shown = ", ".join(names) + (", ..." if len(weak) > NAMES_SHOWN else "")
    return f"{SIZE_ONLY}: {len(weak)} of {len(manifest.files)} files ({shown})"


class SizeOnlyNotes:
    """What each Ready report adds, and the one warning per model and source."""

    def __init__(self) -> None:
        self._warned: dict[ModelKey, str] = {}  # model -> the identity warned about

    def note(self, manifest: Manifest) -> str | None:
        """``config.unverified`` for ``manifest``; the first time for this model and
        source (identity), a warning naming the model and how many files."""
        weak = [f for f in manifest.files if size_only(f)]
        text = _describe(manifest, weak)
        identity = manifest.identity.text()
        if weak and self._warned.get(manifest.key) != identity:
            self._warned[manifest.key] = identity
            first = weak[0]
            log.warning(
                "model files checked by their size only: a short or wrong body would pass",
                extra={
                    "model": str(manifest.key),
                    "size_only_files": len(weak),
                    "files": len(manifest.files),
                    "first": f"{first.path}: "
                    + first.digests.get("unverified", f"no digest compared: {SIZE_ONLY}"),
                },
            )
        return text

    def forget(self, key: ModelKey) -> None:
        self._warned.pop(key, None)
