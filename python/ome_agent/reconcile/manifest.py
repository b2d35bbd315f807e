"""The local manifest: what the agent put on this node for one model (reconcile core, layer 4).

One JSON file per model under ``<first models root>/.ome-agent/manifests/`` (never inside
the model directory, which holds exactly the model's files). It records the source
identity (redacted storage URI, requested revision, resolved commit), the path, and
every file with its size, mtime and the digests the engine verified, and, for a model
that reused another's files, which manifest it linked. A restarted agent compares the
manifest with the spec and ``stat``s the files: if all match, the model is Ready again
with no network call. A second file, ``<model>_staging.json``, names the staging
directory of a download in progress, so leftovers of a model deleted while the agent
was down can be found and removed. Both record their
``owner``, the agent that wrote them (``AgentOptions.owner``): an agent removes only
what it owns, so another agent's models on a shared root are never taken for
leftovers. Records without an owner predate it and belong to whoever finds them.

The files are named ``<kind>.<namespace or _>.<name>`` and ``.json`` or
``_staging.json``: ``_`` is in no Kubernetes name, so a marker never takes the name
of another model's manifest (``.staging.json``, as earlier versions wrote, is the
manifest of a model named ``<name>.staging``). A name too long for a file name (see
:mod:`ome_agent.names`) is shortened there, never in the file's content, which is
what identifies the model. Files of earlier versions (full names however long,
``.staging.json`` markers) are renamed at start (:meth:`ManifestStore.migrate`).

Written atomically: temporary file, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ome_agent.api import ModelKey
from ome_agent.discovery.sizes import ome_counts
from ome_agent.durable import fsync_dir, write_json
from ome_agent.names import NAME_BUDGET, fit

# 2: the config in OME's exact types (artifact maps, human parameter_count); a version-1
# manifest's config is upgraded on reading, so a restart reports OME-decodable entries.
VERSION = 2

MANIFEST_SUFFIX = ".json"
STAGING_SUFFIX = "_staging.json"


@dataclass(frozen=True)
class FileRecord:
    path: str  # relative, "/"-separated
    size: int
    mtime_ns: int
    digests: dict[str, str] = field(default_factory=dict)  # algorithm -> hex, as computed
    verified: list[str] = field(default_factory=list)  # compared against the listing


@dataclass(frozen=True)
class Identity:
    """What the files are a copy of; a change of any field means a new download."""

    source: str  # storage URI, redacted
    revision: str | None  # as requested (hf branch, tag or sha)
    path: str  # the model directory on the node

    def text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


@dataclass(frozen=True)
class ReuseRecord:
    """The manifest whose files a model hard-linked instead of downloading
    (``downloadPolicy: ReuseIfExists``, see ``reconcile.reuse``)."""

    key: ModelKey
    digest: str  # that manifest's digest then (its path included): another one now means
    # the parent moved or holds other files, so the two no longer share them

    def to_json(self) -> dict[str, Any]:
        return {"key": list(self.key), "digest": self.digest}

    @classmethod
    def from_json(cls, data: Any) -> ReuseRecord | None:
        if not isinstance(data, dict):
            return None
        kind, namespace, name = data["key"]
        return cls(ModelKey(kind, namespace, name), str(data["digest"]))


@dataclass(frozen=True)
class Manifest:
    key: ModelKey
    uid: str
    generation: int
    identity: Identity
    commit: str | None  # resolved revision
    files: list[FileRecord]
    config: dict[str, Any] | None = None  # discovered config (OME format)
    parameter_count: int | None = None
    parent: ReuseRecord | None = None  # not part of the digest: the files are the same
    owner: str = ""  # the agent that wrote it (AgentOptions.owner); "" before owners
    # a snapshot of the Hugging Face cache layout: each file's blob (reconcile.hubcache)
    blobs: dict[str, str] | None = None

    @property
    def digest(self) -> str:
        body: dict[str, Any] = {
            "identity": asdict(self.identity),
            "commit": self.commit,
            "files": [asdict(f) for f in self.files],
        }
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "key": list(self.key),
            "uid": self.uid,
            "generation": self.generation,
            "identity": asdict(self.identity),
            "commit": self.commit,
            "files": [asdict(f) for f in self.files],
            "digest": self.digest,
            "config": self.config,
            "parameterCount": self.parameter_count,
            "parent": self.parent.to_json() if self.parent else None,
            "owner": self.owner,
            **({"blobs": self.blobs} if self.blobs is not None else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        kind, namespace, name = data["key"]
        return cls(
            key=ModelKey(kind, namespace, name),
            uid=str(data.get("uid") or ""),
            generation=int(data.get("generation") or 0),
            identity=Identity(**data["identity"]),
            commit=data.get("commit"),
            files=[FileRecord(**f) for f in data["files"]],
            config=_upgrade_config(data.get("config"), data.get("parameterCount"))
            if int(data.get("version") or 1) < 2
            else data.get("config"),
            parameter_count=data.get("parameterCount"),
            parent=ReuseRecord.from_json(data.get("parent")),
            owner=str(data.get("owner") or ""),
            blobs=data.get("blobs"),
        )

    def intact(self) -> bool:
        """Every recorded file is present, a regular file (not a link to one: its
        target's size and mtime say nothing of ours) with its recorded size and mtime."""
        root = Path(self.identity.path)
        for f in self.files:
            try:
                st = os.lstat(root / f.path)
            except OSError:
                return False
            if not stat.S_ISREG(st.st_mode):
                return False
            if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
                return False
        return True


def _upgrade_config(config: Any, parameters: Any) -> dict[str, Any] | None:
    """A version-1 config in OME's types: its artifact wrote ``parentPath`` as the
    model's own path and ``childrenPaths`` as its files, and its decoded configuration
    held the exact count and the bytes on disk."""
    if not isinstance(config, dict):
        return None
    upgraded: dict[str, Any] = {str(k): v for k, v in config.items()}
    artifact = upgraded.get("artifact")
    if isinstance(artifact, dict):
        upgraded["artifact"] = {"sha": artifact.get("sha"), "parentPath": {}, "childrenPaths": []}
    decoded = upgraded.get("decodedModelConfiguration")
    if isinstance(decoded, dict):
        decoded = dict(decoded)
        on_disk = decoded.pop("model_size_bytes", None)
        if isinstance(on_disk, int):
            upgraded["sizeOnDiskBytes"] = on_disk
        if isinstance(parameters, int) and not isinstance(parameters, bool):
            decoded.update(ome_counts(parameters, decoded.get("torch_dtype")))
            upgraded["parameterCount"] = parameters
        else:
            decoded.pop("parameter_count", None)
        upgraded["decodedModelConfiguration"] = decoded
    return upgraded


def record_files(
    root: Path,
    digests: dict[str, tuple[dict[str, str], list[str]]],
    *,
    through_links: bool = False,
) -> list[FileRecord]:
    """Stat every file under ``root`` (after the switch: mtimes are final); with
    ``through_links``, every link too, as the file it names (a cache's snapshot)."""
    records = []
    for p in sorted(root.rglob("*")):
        link = p.is_symlink()
        if (through_links and link) or (p.is_file() and not link):
            rel = p.relative_to(root).as_posix()
            st = p.stat()
            found, verified = digests.get(rel, ({}, []))
            records.append(FileRecord(rel, st.st_size, st.st_mtime_ns, found, verified))
    return records


class ManifestStore:
    """The manifests directory of this node.

    :meth:`load` and :meth:`all` read the disk; :meth:`neighbours` answers from a
    copy in memory (filled by the first :meth:`all` or on first use, then kept by
    :meth:`save` and :meth:`delete`), indexed by parent, so the sharing relations of
    one model cost the same however many models the node holds: reading every
    manifest for each report made a start-up of N models read N² files."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir / "manifests"
        self._lock = threading.Lock()  # saves and deletes run in worker threads
        self._cache: dict[ModelKey, Manifest] | None = None
        self._children: dict[ModelKey, dict[ModelKey, None]] = {}  # parent -> children

    def _remember(self, manifest: Manifest) -> None:
        assert self._cache is not None
        self._forget(manifest.key)
        self._cache[manifest.key] = manifest
        if manifest.parent is not None:
            self._children.setdefault(manifest.parent.key, {})[manifest.key] = None

    def _forget(self, key: ModelKey) -> None:
        assert self._cache is not None
        old = self._cache.pop(key, None)
        if old is not None and old.parent is not None:
            children = self._children.get(old.parent.key, {})
            children.pop(key, None)
            if not children:
                self._children.pop(old.parent.key, None)

    def neighbours(self, key: ModelKey) -> list[Manifest]:
        """``key``'s manifest, its parent's and its children's (what
        :func:`ome_agent.reconcile.reuse.links` and ``related`` look at)."""
        if self._cache is None:
            self.all()
        with self._lock:
            assert self._cache is not None
            keys = [key, *self._children.get(key, ())]
            own = self._cache.get(key)
            if own is not None and own.parent is not None:
                keys.append(own.parent.key)
            return [m for k in dict.fromkeys(keys) if (m := self._cache.get(k)) is not None]

    def _file(self, key: ModelKey, suffix: str = MANIFEST_SUFFIX) -> Path:
        prefix = f"{key.kind}.{key.namespace or '_'}."
        budget = NAME_BUDGET - len(prefix) - len(STAGING_SUFFIX)  # the longer suffix
        return self.dir / f"{prefix}{fit(key.name, budget)}{suffix}"

    def load(self, key: ModelKey) -> Manifest | None:
        try:
            manifest = Manifest.from_json(json.loads(self._file(key).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # missing or unreadable: the model is simply not confirmed
        # a shortened file name is unique only up to its hash: the content decides
        return manifest if manifest.key == key else None

    def save(self, manifest: Manifest) -> None:
        write_json(self._file(manifest.key), manifest.to_json(), indent=1, sort_keys=True)
        with self._lock:
            if self._cache is not None:
                self._remember(manifest)

    def delete(self, key: ModelKey) -> None:
        for suffix in (MANIFEST_SUFFIX, STAGING_SUFFIX):
            with contextlib.suppress(FileNotFoundError):
                self._file(key, suffix).unlink()
        with self._lock:
            if self._cache is not None:
                self._forget(key)

    def known(self) -> list[Manifest]:
        """Every manifest, from the copy in memory (read from disk on first use, then
        kept by :meth:`save` and :meth:`delete`: this agent alone writes them)."""
        if self._cache is None:
            return self.all()
        with self._lock:
            assert self._cache is not None
            return list(self._cache.values())

    def all(self) -> list[Manifest]:
        """Every manifest on disk (and the copy in memory refreshed from them)."""
        out = []
        for p in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            if p.name.endswith(STAGING_SUFFIX):
                continue
            try:
                out.append(Manifest.from_json(json.loads(p.read_text())))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        with self._lock:
            self._cache, self._children = {}, {}
            for manifest in out:
                self._remember(manifest)
        return out

    # ------------------------------------------------------------ staging records
    def save_staging(self, key: ModelKey, staging: Path, owner: str = "") -> None:
        write_json(
            self._file(key, STAGING_SUFFIX),
            {"key": list(key), "staging": str(staging), "owner": owner},
            indent=1,
            sort_keys=True,
        )

    def staging_of(self, key: ModelKey) -> Path | None:
        try:
            return Path(json.loads(self._file(key, STAGING_SUFFIX).read_text())["staging"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def clear_staging(self, key: ModelKey) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._file(key, STAGING_SUFFIX).unlink()

    def staging_owner(self, key: ModelKey) -> str:
        """The agent that recorded ``key``'s staging directory ("" before owners)."""
        try:
            return str(json.loads(self._file(key, STAGING_SUFFIX).read_text()).get("owner") or "")
        except (OSError, ValueError, TypeError, AttributeError):
            return ""

    def staging(self) -> dict[ModelKey, Path]:
        out: dict[ModelKey, Path] = {}
        for p in sorted(self.dir.glob("*" + STAGING_SUFFIX)) if self.dir.is_dir() else []:
            try:
                data = json.loads(p.read_text())
                kind, namespace, name = data["key"]
                out[ModelKey(kind, namespace, name)] = Path(data["staging"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out

    def migrate(self) -> int:
        """Rename the files of this directory to the names :meth:`_file` gives their
        models (earlier versions used the full name however long, and ``.staging.json``
        for markers); returns how many. A file whose content is unreadable, or whose new
        name is taken, stays."""
        moved = 0
        for p in sorted(self.dir.glob("*.json")) if self.dir.is_dir() else []:
            try:
                data = json.loads(p.read_text())
                kind, namespace, name = data["key"]
                # by content: an earlier marker's name may be a model's manifest
                suffix = STAGING_SUFFIX if "staging" in data else MANIFEST_SUFFIX
                wanted = self._file(ModelKey(kind, namespace, name), suffix)
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if wanted != p and not wanted.exists():
                os.rename(p, wanted)
                moved += 1
        if moved:
            fsync_dir(self.dir)
        return moved
