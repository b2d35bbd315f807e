"""The Hugging Face cache layout for ``hf://`` pulls (transfer layer, beside ``pull``).

``{cache_dir}/models--{org}--{name}/`` as huggingface_hub writes it, so it,
transformers, vLLM and SGLang load the model from there with ``HF_HUB_OFFLINE=1``:

- ``blobs/{etag}``: each file's bytes once, named by the digest the Hub sends as its
  ETag (the LFS sha256, else the git blob sha1); revisions share them, and a blob
  another model of the same cache already holds is hard-linked instead of fetched;
- ``snapshots/{commit}/{path}``: relative symbolic links to the blobs (a file the
  server gave no digest for stays a plain file there: it has no blob name);
- ``refs/{revision}``: the commit the revision resolved to (not for a commit sha).

Files are downloaded into the snapshot folder, verified there, then moved into
``blobs/`` and linked back: a blob exists only once its bytes were verified.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from ome_agent.errors import BadInput
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer.confine import check_name, confine


def blob_key(f: RemoteFile) -> str | None:
    """huggingface_hub's blob name for the file: the ETag the Hub gives it."""
    return f.sha256 or f.git_sha1


@dataclass(frozen=True)
class HubCache:
    cache_dir: Path
    repo_id: str

    @property
    def repo_dir(self) -> Path:
        return self.cache_dir / ("models--" + self.repo_id.replace("/", "--"))

    def snapshot(self, commit: str) -> Path:
        return self.repo_dir / "snapshots" / commit

    def blob(self, key: str) -> Path:
        return self.repo_dir / "blobs" / key

    def prepare(self, files: list[RemoteFile], commit: str) -> list[RemoteFile]:
        """Create the folders, reuse blobs already in the cache; return what to fetch."""
        try:
            (self.repo_dir / "blobs").mkdir(parents=True, exist_ok=True)
            self.snapshot(commit).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInput(
                f"--cache-dir {self.cache_dir}: cannot create {e.filename}: {e.strerror}"
            ) from None
        todo: list[RemoteFile] = []
        wanted: set[str] = set()
        for f in files:
            link = self._link_path(commit, f.path)
            key = blob_key(f)
            if key is not None and (key in wanted or self._have(key, f.size)):
                continue
            if link.is_symlink():
                link.unlink()  # a link to a blob that is gone: fetch the file again
            if key is not None:
                wanted.add(key)
            todo.append(f)
        return todo

    def publish(self, files: list[RemoteFile], commit: str, revision: str | None) -> Path:
        """Move fetched files into ``blobs/``, link every file, write the ref."""
        for f in files:
            key = blob_key(f)
            if key is None:
                continue
            link = self._link_path(commit, f.path)
            blob = self.blob(key)
            if link.is_file() and not link.is_symlink():
                if blob.exists():
                    link.unlink()  # the same bytes under two names of the listing
                else:
                    os.replace(link, blob)
            with contextlib.suppress(FileNotFoundError):
                link.unlink()
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        ref = revision or "main"
        if ref != commit:
            refs = self.repo_dir / "refs" / ref
            refs.parent.mkdir(parents=True, exist_ok=True)
            refs.write_text(commit)
        return self.snapshot(commit)

    def _have(self, key: str, size: int | None) -> bool:
        """The blob is here, or in another model of this cache (then hard-linked)."""
        mine = self.blob(key)
        if mine.is_file():
            return size is None or mine.stat().st_size == size
        return borrow_blob(self.cache_dir, key, size, mine)

    def _link_path(self, commit: str, name: str) -> Path:
        """Where the file's link goes; its folders are confined like any remote name
        (the link itself points out of the snapshot, into ``blobs/``, on purpose)."""
        segments = check_name(name)
        root = self.snapshot(commit)
        parent = root if len(segments) == 1 else confine(root, "/".join(segments[:-1]))
        return parent / segments[-1]


def borrow_blob(cache_dir: Path, key: str, size: int | None, mine: Path) -> bool:
    """Hard-link ``mine`` to blob ``key`` of another repo of the cache, a regular file
    of the listed size; False when there is none that can be linked (another
    filesystem, no hard links there): the caller fetches it then."""
    for other in sorted(cache_dir.glob(f"models--*/blobs/{key}")):
        if other.is_symlink() or not other.is_file():
            continue
        if size is not None and other.stat().st_size != size:
            continue
        try:
            os.link(other, mine)
        except OSError:
            continue
        return True
    return False
