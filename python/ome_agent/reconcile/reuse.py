"""``storage.downloadPolicy: ReuseIfExists``: a model takes identical files another model
already holds on the node instead of downloading them (reconcile core, layer 4: between
the listing and the transfer).

The rule (:func:`find_parent`): a parent is another model's manifest, for the same
storage URI, whose recorded files are exactly the files the new listing names — same
relative paths, same sizes, and for every file at least one digest the listing gives
(sha256, git-sha1, md5, crc32c, crc64nvme) equal to the digest the engine computed from the bytes
it wrote, and none different; a Hugging Face repo must also have resolved to the same
commit. A file the listing gives no comparable digest for (a plain URL, a blob stored
without Content-MD5, a multipart object known only by its part digest) proves nothing,
so such a source is downloaded. The parent's files must still be on disk as recorded
(``Manifest.intact``).

Reuse is a hard link per file (:func:`link_into`) into the child's own staging
directory, which is then switched into place like any download. Each model's directory
holds its own names for the same inodes: deleting either model removes only its own
names, so the other keeps every byte, and no data is freed while any model still
names it. A symbolic link to the parent's directory (OME's way) would break the child
when the parent goes. Hard links need one filesystem: across filesystems, or when a
link fails (the parent being removed at that moment), the model is downloaded as usual
and the log says why.

The child's manifest records which manifest it linked (key and digest); OME's
artifact fields are derived from the manifests on every report (:func:`links`), so
they survive restarts and there is no second record to keep in step: a child's
``parentPath`` names the parent while the parent's manifest is still the one it
linked, and a parent's ``childrenPaths`` lists the paths of such children.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

from ome_agent.api import ModelKey
from ome_agent.reconcile.download import Digests
from ome_agent.reconcile.manifest import Manifest, ReuseRecord
from ome_agent.sources import RemoteFile, ResolvedSource

log = logging.getLogger("ome_agent.reconcile")

# listing attribute -> the manifest's digest name for the same algorithm
_DIGESTS = (
    ("sha256", "sha256"),
    ("git_sha1", "git-sha1"),
    ("md5", "md5"),
    ("crc32c", "crc32c"),
    ("crc64nvme", "crc64nvme"),
)


def same_files(resolved: ResolvedSource, manifest: Manifest) -> bool:
    """The manifest's files are exactly the listing's, by path, size and digests."""
    if resolved.commit != manifest.commit:
        return False
    recorded = {f.path: f for f in manifest.files}
    if set(recorded) != {f.path for f in resolved.files}:
        return False
    return all(
        _same_file(f, recorded[f.path].size, recorded[f.path].digests) for f in resolved.files
    )


def _same_file(listed: RemoteFile, size: int, digests: dict[str, str]) -> bool:
    if listed.size is None or listed.size != size:
        return False
    compared = 0
    for attribute, name in _DIGESTS:
        expected = getattr(listed, attribute)
        have = digests.get(name)
        if expected is None or have is None:
            continue
        if expected.lower() != have.lower():
            return False
        compared += 1
    return compared > 0


def origin(source: str, revision: str | None) -> str:
    """What a storage URI names regardless of the revision asked for: an hf display is
    ``hf://org/name@revision`` (``HfRef.display``), and ``main`` or the commit it
    resolves to hold the same files; the commit comparison pins the content."""
    return source.removesuffix(f"@{revision}") if revision else source


def find_parent(
    resolved: ResolvedSource, source: str, candidates: Iterable[Manifest]
) -> Manifest | None:
    """The manifest to reuse for ``resolved`` (listed from ``source``, an :func:`origin`),
    or None.

    A candidate that reuses nothing itself is preferred, so children hang off one
    parent; among equals, the first key in sort order (deterministic)."""
    found = [
        m
        for m in candidates
        if origin(m.identity.source, m.identity.revision) == source
        and same_files(resolved, m)
        and m.intact()
    ]
    found.sort(key=lambda m: (m.parent is not None, tuple(str(p) for p in m.key)))
    return found[0] if found else None


def link_into(parent: Manifest, staging: Path) -> Digests:
    """Hard-link every file of ``parent`` into an empty ``staging``; the digests carried
    over are the parent's (same inodes, same bytes). OSError when a link fails (another
    filesystem, the parent removed meanwhile): the caller downloads instead."""
    source = Path(parent.identity.path)
    staging.mkdir(parents=True, exist_ok=True)
    if os.stat(source).st_dev != os.stat(staging).st_dev:
        raise OSError(f"{source} is on another filesystem than {staging}")
    digests: Digests = {}
    for record in parent.files:
        dest = staging / record.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.link(source / record.path, dest)
        digests[record.path] = (dict(record.digests), list(record.verified))
    return digests


class Reuse:
    """The ``reuse`` step of one download (``Fetch.run``): after the listing, link the
    files of a matching parent among ``candidates``, or say to download. Runs in the
    download's thread; afterwards :attr:`parent` is what was linked, if anything."""

    def __init__(self, model: ModelKey, source: str, candidates: list[Manifest]) -> None:
        self._model = model
        self._source = source
        self._candidates = candidates
        self.parent: ReuseRecord | None = None

    def __call__(self, resolved: ResolvedSource, staging: Path) -> Digests | None:
        parent = find_parent(resolved, self._source, self._candidates)
        if parent is None:
            return None
        # a partial download of the same spec may be there: the links replace it whole
        shutil.rmtree(staging, ignore_errors=True)
        try:
            digests = link_into(parent, staging)
        except OSError as e:
            log.warning(
                "identical files not reused, downloading instead",
                extra={"model": str(self._model), "parent": str(parent.key), "reason": str(e)},
            )
            shutil.rmtree(staging, ignore_errors=True)
            return None
        self.parent = ReuseRecord(parent.key, parent.digest)
        log.info(
            "identical files reused",
            extra={"model": str(self._model), "parent": str(parent.key), "files": len(digests)},
        )
        return digests


def linked(child: Manifest, manifests: dict[ModelKey, Manifest]) -> Manifest | None:
    """The parent ``child`` still shares its files with: the manifest it linked, as long
    as that model's manifest has not changed since (removed, or re-downloaded)."""
    if child.parent is None:
        return None
    parent = manifests.get(child.parent.key)
    if parent is None or parent.digest != child.parent.digest:
        return None
    return parent


@dataclass(frozen=True)
class Links:
    """What ``manifest``'s report says of sharing: the parent it shares its files with
    (key and path; the wire names it in ``parentPath``) and the paths of its children."""

    parent: tuple[ModelKey, str] | None
    children: list[str]


def links(manifest: Manifest, manifests: Iterable[Manifest]) -> Links:
    """From every manifest on the node (OME's ``parentPath`` and ``childrenPaths``)."""
    by_key = {m.key: m for m in manifests}
    by_key[manifest.key] = manifest
    parent = linked(manifest, by_key)
    children = sorted(
        m.identity.path
        for m in by_key.values()
        if m.key != manifest.key and m.parent is not None and m.parent.key == manifest.key
        and linked(m, by_key) is not None
    )  # fmt: skip
    return Links((parent.key, parent.identity.path) if parent else None, children)


def related(
    key: ModelKey, before: Manifest | None, manifests: Collection[Manifest]
) -> set[ModelKey]:
    """Models whose artifact fields may change when ``key``'s manifest changes (saved
    anew or removed; ``before`` is the manifest it had): its parent then and now, and
    the models that reused it."""
    out = {m.parent.key for m in manifests if m.key == key and m.parent is not None}
    if before is not None and before.parent is not None:
        out.add(before.parent.key)
    out.update(m.key for m in manifests if m.parent is not None and m.parent.key == key)
    out.discard(key)
    return out
