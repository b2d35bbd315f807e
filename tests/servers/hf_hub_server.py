"""A local Hugging Face Hub for tests and benchmarks (never used in production).

It speaks the HTTP paths huggingface_hub 0.36 calls, on loopback:

- ``GET /api/models/{repo}[/revision/{rev}]`` (model_info / repo_info, ``blobs=1``
  adds sizes, blob ids and LFS sha256),
- ``GET /api/models/{repo}/tree/{rev}[/{path}]`` (list_repo_tree; ``recursive``,
  ``expand``; pages linked by a ``Link: <...>; rel="next"`` header),
- ``GET|HEAD /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag``,
  ``X-Linked-Etag``, ``X-Linked-Size`` and ``Range``; LFS files answer with a 302 to a
  second "CDN" server on another loopback host (127.0.0.2 by default) that serves the
  bytes with ``Range``, as the real Hub redirects to its CDN.

Repos come from a directory tree or from ``{path: bytes}`` mappings (hostile names
included, to test path confinement). Small files are plain git blobs (ETag = git
blob sha1); files at or above ``lfs_threshold`` or with a weights extension are LFS
(ETag-linked = sha256). Private repos need ``Authorization: Bearer <token>``.
Request headers are recorded per server so tests can assert, for example, that the
CDN never saw ``Authorization``.

``xet=True`` serves every LFS file as a Xet-backed one, as the Hub does for most new
large files: ``xetHash`` in the tree, ``X-Xet-Hash`` and a ``Link: <...>; rel="xet-auth"``
on resolve, and the redirect going to a "bridge" path of the CDN that serves the
bytes over plain HTTP (``X-Linked-Etag`` and ``X-Linked-Size`` stay as for LFS).

``quirks`` make it behave like the partial Hubs companies run (mirrors, proxies):
see :class:`Quirk`. Each one changes only what its name says.

Standalone: ``python -m tests.servers.hf_hub_server --root DIR --port P`` serves every
``DIR/org/name`` directory as repo ``org/name`` at revision ``main`` (a directory
``DIR/org/name@rev`` adds revision ``rev``).
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.servers.managed import Managed, command_line, wait_for_interrupt

LFS_EXTENSIONS = frozenset(
    {".safetensors", ".bin", ".gguf", ".pt", ".pth", ".onnx", ".h5", ".msgpack", ".ckpt"}
)
_HASH_BLOCK = 8 * 1024 * 1024
_DATE = "2025-01-01T00:00:00.000Z"


class Quirk(enum.Enum):
    """How a partial Hub (a mirror, a proxy, an artifact manager) differs from the Hub."""

    NO_TREE = "no-tree"  # the tree API answers 404
    NO_LINKED = "no-linked"  # no X-Linked-Etag / X-Linked-Size on resolve
    INFO_NEEDS_REVISION = "info-needs-revision"  # 401 on /api/models/{repo} alone
    IGNORE_RANGE = "ignore-range"  # Range ignored (200, whole body), no Accept-Ranges
    # bad input, for the error paths
    HTML_INFO = "html-info"  # /api/models/{repo}/revision/{rev} answers a 200 HTML page
    HTML_TREE = "html-tree"  # the tree API answers a 200 HTML page
    TREE_403 = "tree-403"  # the tree API answers 403
    TRUNCATED_TREE = "truncated-tree"  # the tree API leaves out the last file
    RESOLVE_403 = "resolve-403"  # resolve answers 403 (HEAD and GET)
    NO_SIZE = "no-size"  # resolve sends neither X-Linked-Size nor a usable Content-Length
    WRONG_SIZE = "wrong-size"  # X-Linked-Size contradicts the bytes served
    OTHER_COMMIT = "other-commit"  # X-Repo-Commit names another commit
    NO_ETAG = "no-etag"  # resolve sends no ETag at all


_HTML = b"<!DOCTYPE html><html><body><h1>Sign in</h1></body></html>"


@dataclass
class HubFile:
    """One file of one revision: bytes in memory or a path on disk."""

    path: str
    size: int
    blob_oid: str  # git blob sha1 of what git stores (the pointer file for LFS)
    sha256: str | None  # set for LFS files only, like the Hub
    pointer_size: int | None
    data: bytes | None = None
    disk: Path | None = None

    @property
    def lfs(self) -> bool:
        return self.sha256 is not None

    def open_range(self, start: int, length: int) -> Iterator[bytes | memoryview]:
        if self.data is not None:
            yield memoryview(self.data)[start : start + length]
            return
        assert self.disk is not None
        with self.disk.open("rb") as fh:
            fh.seek(start)
            left = length
            while left > 0:
                block = fh.read(min(left, 1024 * 1024))
                if not block:
                    return
                left -= len(block)
                yield block


@dataclass
class HubRevision:
    commit: str
    files: dict[str, HubFile]


@dataclass
class HubRepo:
    repo_id: str
    private: bool = False
    revisions: dict[str, HubRevision] = field(default_factory=dict)  # branch/tag -> rev

    def find(self, rev: str) -> HubRevision | None:
        if rev in self.revisions:
            return self.revisions[rev]
        for candidate in self.revisions.values():
            if candidate.commit == rev:
                return candidate
        return None


def _git_blob_sha1(size: int, chunks: Iterator[bytes | memoryview]) -> str:
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    for c in chunks:
        h.update(c)
    return h.hexdigest()


def _lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _read_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            yield block


def make_file(path: str, content: bytes | Path, *, lfs_threshold: int) -> HubFile:
    """Describe one file as the Hub would (blob oid, LFS sha256 and pointer size)."""
    if isinstance(content, bytes):
        size, data, disk = len(content), content, None

        def chunks() -> Iterator[bytes | memoryview]:
            yield content
    else:
        size, data, disk = content.stat().st_size, None, content

        def chunks() -> Iterator[bytes | memoryview]:
            yield from _read_chunks(content)

    is_lfs = size >= lfs_threshold or os.path.splitext(path)[1] in LFS_EXTENSIONS
    if not is_lfs:
        return HubFile(path, size, _git_blob_sha1(size, chunks()), None, None, data, disk)
    h = hashlib.sha256()
    for c in chunks():
        h.update(c)
    pointer = _lfs_pointer(h.hexdigest(), size)
    oid = _git_blob_sha1(len(pointer), iter([pointer]))
    return HubFile(path, size, oid, h.hexdigest(), len(pointer), data, disk)


class HubServer(Managed):
    """The Hub (``endpoint``) and its CDN, each a threaded HTTP/1.1 server.

    Use as a context manager; ``add_repo`` works before or after start.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        cdn_host: str = "127.0.0.2",
        cdn_port: int = 0,
        token: str | None = None,
        lfs_threshold: int = 10 * 1000 * 1000,
        page_size: int = 1000,
        throttle: float | None = None,
        external_cdn: str | None = None,
        quirks: frozenset[Quirk] = frozenset(),
        xet: bool = False,
    ) -> None:
        self.token = token
        self.quirks = quirks
        self.xet = xet
        # LFS redirects go to ``{external_cdn}/{sha256}`` instead of the built-in
        # CDN: the benchmarks put nginx there so the server is not the bottleneck
        self.external_cdn = external_cdn.rstrip("/") if external_cdn else None
        # bytes/s per connection for file bodies: lets tests interrupt a pull midway
        self.throttle = throttle
        self.lfs_threshold = lfs_threshold
        self.page_size = page_size
        self.repos: dict[str, HubRepo] = {}
        self._lock = threading.Lock()
        self._requests: dict[str, list[dict[str, Any]]] = {"hub": [], "cdn": []}
        self._lfs: dict[str, HubFile] = {}
        self._hub = _Server((host, port), _HubHandler, self, "hub")
        self._cdn = _Server((cdn_host, cdn_port), _CdnHandler, self, "cdn")
        self._threads: list[threading.Thread] = []
        if root is not None:
            self.add_tree(Path(root))

    # ------------------------------------------------------------ repos
    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path] | str | Path,
        *,
        revision: str = "main",
        private: bool = False,
    ) -> str:
        """Add (or replace) one revision of a repo; return its commit sha.

        ``files`` is a directory or a ``{path in repo: bytes | Path}`` mapping whose
        keys are served verbatim (hostile names allowed)."""
        if isinstance(files, str | Path):
            base = Path(files)
            mapping: dict[str, bytes | Path] = {
                p.relative_to(base).as_posix(): p
                for p in sorted(base.rglob("*"))
                if p.is_file() and ".git" not in p.relative_to(base).parts
            }
        else:
            mapping = dict(files)
        described = {
            name: make_file(name, content, lfs_threshold=self.lfs_threshold)
            for name, content in sorted(mapping.items())
        }
        listing = "".join(f"{f.path}\0{f.blob_oid}\n" for f in described.values())
        commit = hashlib.sha1(
            f"{repo_id}\0{revision}\0{listing}".encode(), usedforsecurity=False
        ).hexdigest()
        with self._lock:
            repo = self.repos.setdefault(repo_id, HubRepo(repo_id))
            repo.private = repo.private or private
            repo.revisions[revision] = HubRevision(commit, described)
            for f in described.values():
                if f.sha256 is not None:
                    self._lfs[f.sha256] = f
        return commit

    def add_tree(self, root: Path) -> None:
        """Serve ``root/org/name`` as ``org/name`` (``name@rev`` adds revision rev)."""
        for org in sorted(p for p in root.iterdir() if p.is_dir()):
            for repo_dir in sorted(p for p in org.iterdir() if p.is_dir()):
                name, _, rev = repo_dir.name.partition("@")
                self.add_repo(f"{org.name}/{name}", repo_dir, revision=rev or "main")

    def commit(self, repo_id: str, revision: str = "main") -> str:
        return self.repos[repo_id].revisions[revision].commit

    # ------------------------------------------------------------ lifecycle
    @property
    def endpoint(self) -> str:
        host, port = self._hub.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def cdn_endpoint(self) -> str:
        host, port = self._cdn.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> HubServer:
        for srv in (self._hub, self._cdn):
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1})
            t.daemon = True
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        for srv in (self._hub, self._cdn):
            srv.shutdown()
            srv.server_close()
        for t in self._threads:
            t.join(timeout=5)

    # ------------------------------------------------------------ request log
    def record(self, which: str, method: str, path: str, headers: Mapping[str, str]) -> None:
        with self._lock:
            self._requests[which].append(
                {"method": method, "path": path, "headers": _title_case(headers)}
            )

    def requests(self, which: str = "hub") -> list[dict[str, Any]]:
        """Requests seen by ``"hub"`` or ``"cdn"``: method, path, headers."""
        with self._lock:
            return list(self._requests[which])

    def clear_requests(self) -> None:
        with self._lock:
            for log in self._requests.values():
                log.clear()

    # ------------------------------------------------------------ helpers for handlers
    def authorized(self, repo: HubRepo, headers: Mapping[str, str]) -> bool:
        if not repo.private:
            return True
        return self.token is not None and headers.get("Authorization") == f"Bearer {self.token}"

    def lfs_file(self, sha256: str) -> HubFile | None:
        with self._lock:
            return self._lfs.get(sha256)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        addr: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        hub: HubServer,
        which: str,
    ) -> None:
        self.hub = hub
        self.which = which
        super().__init__(addr, handler)


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        return

    def do_GET(self) -> None:
        self._handle()

    do_HEAD = do_GET

    def _handle(self) -> None:
        """Answer a GET or HEAD: the routes of each server."""
        raise NotImplementedError

    @property
    def hub(self) -> HubServer:
        return self.server.hub

    def _record(self) -> None:
        self.hub.record(self.server.which, self.command, self.path, self.headers)

    def send_json(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_html(self) -> None:
        """What a login portal or a misrouted proxy answers: a web page, status 200."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(_HTML)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(_HTML)

    def send_error_code(self, status: int, code: str, message: str) -> None:
        self.send_json(
            status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}
        )

    def send_file(self, f: HubFile, headers: dict[str, str]) -> None:
        """200 or 206 with Range / If-Range, keep-alive friendly (always a length)."""
        start, end, status = 0, f.size - 1, 200
        ignore_range = Quirk.IGNORE_RANGE in self.hub.quirks
        rng = None if ignore_range else self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        if rng and (
            if_range is None or if_range in (headers.get("ETag"), headers.get("X-Linked-Etag"))
        ):
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", rng.strip())
            if m is None or (m.group(1) == "" and m.group(2) == ""):
                self._unsatisfiable(f.size)
                return
            if m.group(1) == "":
                start, end = max(0, f.size - int(m.group(2))), f.size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), f.size - 1) if m.group(2) else f.size - 1
            if start >= f.size or start > end:
                self._unsatisfiable(f.size)
                return
            status = 206
        length = end - start + 1 if f.size else 0
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        if not ignore_range:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        if Quirk.NO_SIZE not in self.hub.quirks or self.command != "HEAD":
            self.send_header("Content-Length", str(length))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{f.size}")
        self.end_headers()
        if self.command == "HEAD" or length == 0:
            return
        if self.hub.throttle:
            self._send_slowly(f, start, length, self.hub.throttle)
            return
        if f.disk is not None:
            # sendfile keeps the benchmark's server side cheap (it shares 2 cores)
            with f.disk.open("rb") as fh:
                self.connection.sendfile(fh, start, length)
            return
        for block in f.open_range(start, length):
            self.wfile.write(block)

    def _send_slowly(self, f: HubFile, start: int, length: int, rate: float) -> None:
        step = 64 * 1024
        for offset in range(start, start + length, step):
            for block in f.open_range(offset, min(step, start + length - offset)):
                self.wfile.write(block)
            time.sleep(step / rate)

    def _unsatisfiable(self, size: int) -> None:
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()


class _HubHandler(_Base):
    def _handle(self) -> None:
        self._record()
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        raw = url.path
        try:
            if raw.startswith("/api/models/"):
                self._api(raw[len("/api/models/") :], query)
            elif "/resolve/" in raw:
                repo_part, _, rest = raw.lstrip("/").partition("/resolve/")
                self._resolve(unquote(repo_part), rest)
            else:
                self.send_error_code(404, "NotFound", "no such route")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _repo(self, repo_id: str) -> HubRepo | None:
        repo = self.hub.repos.get(repo_id)
        if repo is None or not self.hub.authorized(repo, self.headers):
            # like the Hub: unknown and not-allowed look the same, so names don't leak
            self.send_error_code(401, "RepoNotFound", "Repository not found")
            return None
        return repo

    def _split_repo(self, segments: list[str]) -> tuple[str, list[str]]:
        """Repo ids have one segment (legacy, e.g. ``gpt2``) or two (``org/name``)."""
        one_segment = segments[0] in self.hub.repos and (
            len(segments) == 1 or segments[1] in ("revision", "tree")
        )
        if one_segment or len(segments) < 2:
            return segments[0], segments[1:]
        return f"{segments[0]}/{segments[1]}", segments[2:]

    def _api(self, rest: str, query: dict[str, list[str]]) -> None:
        segments = rest.split("/")
        repo_id, tail = self._split_repo([unquote(s) for s in segments])
        repo = self._repo(repo_id)
        if repo is None:
            return
        quirks = self.hub.quirks
        if not tail and Quirk.INFO_NEEDS_REVISION in quirks:
            self.send_error_code(401, "RepoNotFound", "Repository not found")
        elif not tail:
            self._model_info(repo, "main", query)
        elif tail[0] == "revision" and Quirk.HTML_INFO in quirks:
            self.send_html()
        elif tail[0] == "tree" and Quirk.NO_TREE in quirks:
            self.send_error_code(404, "NotFound", "no such route")
        elif tail[0] == "tree" and Quirk.HTML_TREE in quirks:
            self.send_html()
        elif tail[0] == "tree" and Quirk.TREE_403 in quirks:
            self.send_error_code(403, "Forbidden", "listing is not allowed here")
        elif tail[0] == "revision" and len(tail) >= 2:
            self._model_info(repo, "/".join(tail[1:]), query)
        elif tail[0] == "tree" and len(tail) >= 2:
            # the client quotes the revision with safe="" so it is one segment
            self._tree(repo, tail[1], "/".join(tail[2:]), query)
        else:
            self.send_error_code(404, "NotFound", "no such route")

    def _revision(self, repo: HubRepo, rev: str) -> HubRevision | None:
        found = repo.find(rev)
        if found is None:
            self.send_error_code(404, "RevisionNotFound", f"Invalid rev id: {rev}")
        return found

    def _model_info(self, repo: HubRepo, rev: str, query: dict[str, list[str]]) -> None:
        revision = self._revision(repo, rev)
        if revision is None:
            return
        blobs = query.get("blobs", ["false"])[0].lower() in ("1", "true")
        siblings = []
        for f in revision.files.values():
            entry: dict[str, Any] = {"rfilename": f.path}
            if blobs:
                entry["size"] = f.size
                entry["blobId"] = f.blob_oid
                if f.lfs:
                    entry["lfs"] = {
                        "size": f.size,
                        "sha256": f.sha256,
                        "pointerSize": f.pointer_size,
                    }
            siblings.append(entry)
        self.send_json(
            200,
            {
                "_id": hashlib.md5(repo.repo_id.encode(), usedforsecurity=False).hexdigest()[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0] if "/" in repo.repo_id else None,
                "sha": revision.commit,
                "lastModified": _DATE,
                "createdAt": _DATE,
                "private": repo.private,
                "gated": False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": None,
                "siblings": siblings,
            },
        )

    def _tree(self, repo: HubRepo, rev: str, under: str, query: dict[str, list[str]]) -> None:
        revision = self._revision(repo, rev)
        if revision is None:
            return
        recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = query.get("expand", ["false"])[0].lower() in ("1", "true")
        under = under.strip("/")
        prefix = f"{under}/" if under else ""
        entries: list[dict[str, Any]] = []
        seen_dirs: set[str] = set()
        for f in revision.files.values():
            if not f.path.startswith(prefix):
                continue
            rel = f.path[len(prefix) :]
            parts = rel.split("/")
            # directories on the way down, listed once, before their files
            for depth in range(1, len(parts)):
                d = prefix + "/".join(parts[:depth])
                if d not in seen_dirs and (recursive or depth == 1):
                    seen_dirs.add(d)
                    entries.append(self._dir_entry(d, revision, expand))
            if recursive or len(parts) == 1:
                entries.append(self._file_entry(f, revision, expand))
        if under and not entries:
            self.send_error_code(404, "EntryNotFound", f"{under} does not exist")
            return
        if Quirk.TRUNCATED_TREE in self.hub.quirks:
            last = max(i for i, e in enumerate(entries) if e["type"] == "file")
            del entries[last]
        cursor = int(query.get("cursor", ["0"])[0] or 0)
        page = entries[cursor : cursor + self.hub.page_size]
        extra = {}
        if cursor + self.hub.page_size < len(entries):
            nxt = dict(query)
            nxt["cursor"] = [str(cursor + self.hub.page_size)]
            qs = "&".join(f"{k}={quote(v[0])}" for k, v in nxt.items())
            extra["Link"] = f'<{self.hub.endpoint}{urlsplit(self.path).path}?{qs}>; rel="next"'
        self.send_json(200, page, extra)

    @staticmethod
    def _last_commit(revision: HubRevision) -> dict[str, str]:
        return {"id": revision.commit, "title": "Upload files", "date": _DATE}

    def _dir_entry(self, path: str, revision: HubRevision, expand: bool) -> dict[str, Any]:
        oid = hashlib.sha1(f"tree\0{path}".encode(), usedforsecurity=False).hexdigest()
        entry: dict[str, Any] = {"type": "directory", "oid": oid, "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = self._last_commit(revision)
        return entry

    def _file_entry(self, f: HubFile, revision: HubRevision, expand: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": f.blob_oid, "size": f.size, "path": f.path}
        if f.lfs:
            entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": f.pointer_size}
            if self.hub.xet:
                entry["xetHash"] = _xet_hash(f)
        if expand:
            entry["lastCommit"] = self._last_commit(revision)
        return entry

    def _resolve(self, repo_id: str, rest: str) -> None:
        repo = self._repo(repo_id)
        if repo is None:
            return
        rev, _, path = rest.partition("/")
        revision = self._revision(repo, unquote(rev))
        if revision is None:
            return
        f = revision.files.get(unquote(path))
        if f is None:
            self.send_error_code(404, "EntryNotFound", "Entry not found")
            return
        quirks = self.hub.quirks
        if Quirk.RESOLVE_403 in quirks:
            self.send_error_code(403, "Forbidden", "downloads are not allowed here")
            return
        commit = "0" * 40 if Quirk.OTHER_COMMIT in quirks else revision.commit
        headers = {"X-Repo-Commit": commit}
        if Quirk.NO_ETAG not in quirks:
            headers["ETag"] = f'"{f.blob_oid}"'
        if not f.lfs:
            if Quirk.WRONG_SIZE in quirks:
                headers["X-Linked-Size"] = str(f.size + 1)
            self.send_file(f, headers)
            return
        if Quirk.NO_LINKED not in quirks and Quirk.NO_ETAG not in quirks:
            headers["X-Linked-Etag"] = f'"{f.sha256}"'
        if Quirk.NO_LINKED not in quirks and Quirk.NO_SIZE not in quirks:
            headers["X-Linked-Size"] = str(f.size + (Quirk.WRONG_SIZE in quirks))
        # a signed-URL look-alike: the CDN needs no Authorization, and must never get one
        expires = int(time.time()) + 3600
        cdn = self.hub.external_cdn or f"{self.hub.cdn_endpoint}/repos"
        if self.hub.xet:
            headers["X-Xet-Hash"] = _xet_hash(f)
            token_route = f"{self.hub.endpoint}/api/models/{repo_id}/xet-read-token/{commit}"
            headers["Link"] = f'<{token_route}>; rel="xet-auth"'
            cdn = f"{self.hub.cdn_endpoint}/xet-bridge"
        headers["Location"] = f"{cdn}/{f.sha256}?Expires={expires}&Signature=t"
        self.send_response(302)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()


class _CdnHandler(_Base):
    def _handle(self) -> None:
        self._record()
        m = re.fullmatch(r"/(?:repos|xet-bridge)/([0-9a-f]{64})", urlsplit(self.path).path)
        f = self.hub.lfs_file(m.group(1)) if m else None
        try:
            if f is None:
                self.send_error_code(404, "NotFound", "no such object")
                return
            self.send_file(f, {"ETag": f'"{f.sha256}"', "Last-Modified": _http_date()})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


def _xet_hash(f: HubFile) -> str:
    """A stand-in for the file's Xet merkle hash: 64 hex digits, not its sha256."""
    assert f.sha256 is not None
    return hashlib.sha256(f"xet\0{f.sha256}".encode()).hexdigest()


def _title_case(headers: Mapping[str, str]) -> dict[str, str]:
    """Header names as ``Authorization``/``Range`` whatever case the client sent."""
    return {"-".join(p.capitalize() for p in k.split("-")): v for k, v in headers.items()}


def _http_date() -> str:
    return _dt.datetime(2025, 1, 1, tzinfo=_dt.UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")


def main(argv: list[str] | None = None) -> None:
    parser = command_line(
        "Local Hugging Face Hub look-alike for tests.", "DIR/org/name = repo org/name"
    )
    parser.add_argument("--cdn-host", default="127.0.0.2")
    parser.add_argument("--cdn-port", type=int, default=0)
    parser.add_argument("--token", default=None, help="bearer token private repos require")
    parser.add_argument("--lfs-threshold", type=int, default=10 * 1000 * 1000)
    parser.add_argument(
        "--external-cdn", default=None, help="redirect LFS files to URL/{sha256} instead"
    )
    options = vars(parser.parse_args(argv))  # HubServer's own names
    server = HubServer(options.pop("root"), **options)
    with server:
        print(f"HF_ENDPOINT={server.endpoint}", flush=True)
        for repo in server.repos.values():
            for rev, r in repo.revisions.items():
                print(f"  {repo.repo_id}@{rev} -> {r.commit} ({len(r.files)} files)", flush=True)
        wait_for_interrupt()


if __name__ == "__main__":
    main()
