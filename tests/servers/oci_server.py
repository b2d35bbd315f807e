"""A protocol-faithful OCI Object Storage server on loopback, for tests and benchmarks.

Where it sits: stands in for ``https://objectstorage.<region>.oraclecloud.com`` (no
OCI emulator exists). The oci SDK lists through it and the engine downloads from it,
both unchanged: only ``parameters.endpoint`` points here.

What it speaks, as the real service does (REST API 20160918):
- ``GET /n/`` → the tenancy's namespace as a JSON string (GetNamespace);
- ``GET /n/{ns}/b/{bucket}/o`` (ListObjects): ``prefix``, ``start``, ``end``,
  ``limit`` (≤ 1000), ``delimiter=/``, ``fields``; objects in lexicographic order;
  ``{"objects": [...], "nextStartWith": ...}`` (``prefixes`` with a delimiter);
  ``name`` always, other fields only when asked; ``md5`` is the base64 MD5 for
  single-part objects and ``<base64>-<parts>`` for multipart ones;
- ``HEAD``/``GET /n/{ns}/b/{bucket}/o/{object}`` (object name percent-decoded, "/"
  allowed either way): ``ETag``, ``Last-Modified``, ``Content-Length``,
  ``Accept-Ranges: bytes``, ``Content-MD5`` (base64) for single-part objects only,
  ``opc-multipart-md5`` (``<base64>-<parts>``) for multipart ones,
  ``opc-content-crc32c`` (base64 CRC32C of the whole object, multipart included)
  when the object has one; ``Range`` → 206 + ``Content-Range``, unsatisfiable →
  416; ``If-Match`` → 412 ``IfMatchFailed`` on another ETag (documented for
  GetObject); ``If-Range`` is not in the service's documented API and is ignored
  unless ``honor_if_range`` is set (then RFC 9110: a stale validator gets 200);
- every answer carries ``opc-request-id``; errors are ``{"code", "message"}``
  JSON with the service's codes (404 ``BucketNotFound`` / ``ObjectNotFound``,
  401 ``NotAuthenticated``, 416 ``InvalidRange``, 412 ``IfMatchFailed``, 429
  ``TooManyRequests`` with ``Retry-After``, 503 ``ServiceUnavailable``).

Authentication, checked on EVERY request like the service: an HTTP Signature
(draft-cavage-http-signatures, OCI's version "1", rsa-sha256) over at least
``date`` (or ``x-date``), ``(request-target)`` and ``host``, plus
``content-length``, ``content-type`` and ``x-content-sha256`` (checked against
the body) for PUT/POST. ``keyId`` is ``tenancy/user/fingerprint`` (API keys,
:meth:`OciServer.add_user`) or ``ST$<token>`` (security tokens of the principals,
:meth:`OciServer.add_session_token`). A date more than 5 minutes off → 401.

GetObject bodies leave with ``os.sendfile`` from the object's file, so the server is
not the bottleneck of a benchmark on loopback (one stream of 16 MiB ranges reached
0.6-0.8 GB/s here with curl and with a raw-socket client). For benchmarks run it in
a process of its own: in the client's process its handler threads compete with the
client for the GIL. Faults (:meth:`OciServer.set_faults`):
``Status`` (429/503 with Retry-After, 401/403/404/500, per operation), and
``ChangeObject`` (the object is replaced after N GETs: a new ETag mid-download).
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import json
import os
import re
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import google_crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.servers.background import BackgroundServer
from tests.servers.s3_fast import part_md5s

MAX_SKEW = 300.0  # seconds, as the service
MAX_LIMIT = 1000
# what ListObjects' `fields` may name (archivalState: asked by oci-cli's bulk-download;
# the service leaves it out for Standard-tier objects, as this server does)
LIST_FIELDS = (
    "name", "size", "etag", "md5", "timeCreated", "timeModified", "storageTier", "archivalState",
)  # fmt: skip
READ_CHUNK = 8 * 1024 * 1024
_SIG_PARAM = re.compile(r'(\w+)="([^"]*)"')
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def http_date(ts: float) -> str:
    return email.utils.formatdate(ts, usegmt=True)


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(ts))


def key_fingerprint(public_key_pem: bytes | str) -> str:
    """OCI's API key fingerprint: MD5 of the DER public key, colon-separated hex."""
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    key = serialization.load_pem_public_key(pem)
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashlib.md5(der).hexdigest()  # noqa: S324 - OCI's fingerprint format
    return ":".join(digest[i : i + 2] for i in range(0, 32, 2))


def config_profile(
    name: str, *, user: str, tenancy: str, fingerprint: str, region: str, key_file: object
) -> str:
    """One profile of an OCI SDK config file, as ``oci setup config`` writes it."""
    return (
        f"[{name}]\nuser={user}\nfingerprint={fingerprint}\ntenancy={tenancy}\n"
        f"region={region}\nkey_file={key_file}\n"
    )


@dataclass
class ApiKey:
    """A generated RSA API signing key, as a user uploads it to OCI."""

    private_pem: str
    public_pem: str
    fingerprint: str

    @classmethod
    def generate(cls, passphrase: str | None = None) -> ApiKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        enc: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase.encode())
            if passphrase
            else serialization.NoEncryption()
        )
        private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, enc
        ).decode()
        public_pem = (
            key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )
        return cls(private_pem, public_pem, key_fingerprint(public_pem))


# ---------------------------------------------------------------- signatures
def verify_signature(
    method: str,
    target: str,
    headers: Mapping[str, str],
    body: bytes,
    lookup: Callable[[str], Any | None],
    now: float | None = None,
    must_sign: tuple[str, ...] = ("(request-target)", "host"),
) -> tuple[str | None, str | None]:
    """(keyId, None) when the request's HTTP signature holds, else (keyId, reason).

    ``headers`` lower-cased; ``target`` the request-target as sent (path + query);
    ``lookup`` maps a keyId to an RSA public key object (None: unknown key);
    ``must_sign``: headers every request signs besides the date (the auth service's
    federation leaves ``host`` out)."""
    auth = headers.get("authorization", "")
    if not auth.startswith("Signature "):
        return None, "no Signature authorization header"
    params = dict(_SIG_PARAM.findall(auth))
    key_id = params.get("keyId")
    if not key_id or "signature" not in params or "headers" not in params:
        return key_id, "authorization lacks keyId, headers or signature"
    if params.get("algorithm", "rsa-sha256") != "rsa-sha256":
        return key_id, "algorithm is not rsa-sha256"
    signed = params["headers"].split()
    required = list(must_sign)
    if method in ("POST", "PUT", "PATCH"):
        required += ["content-length", "content-type", "x-content-sha256"]
        declared = headers.get("x-content-sha256", "")
        if base64.b64encode(hashlib.sha256(body).digest()).decode() != declared:
            return key_id, "x-content-sha256 does not match the body"
    missing = [h for h in required if h not in signed]
    if "date" not in signed and "x-date" not in signed:
        missing.append("date")
    if missing:
        return key_id, f"headers not signed: {' '.join(missing)}"
    date_text = headers.get("x-date") or headers.get("date")
    try:
        sent = email.utils.parsedate_to_datetime(date_text or "").timestamp()
    except (TypeError, ValueError):
        return key_id, "date header missing or malformed"
    if abs((now if now is not None else time.time()) - sent) > MAX_SKEW:
        return key_id, "date more than 5 minutes off"
    lines = []
    for h in signed:
        if h == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        elif h in headers:
            lines.append(f"{h}: {headers[h]}")
        else:
            return key_id, f"signed header {h} is absent"
    public = lookup(key_id)
    if public is None:
        return key_id, "unknown keyId"
    try:
        public.verify(
            base64.b64decode(params["signature"]),
            "\n".join(lines).encode(),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, ValueError):
        return key_id, "signature does not verify"
    return key_id, None


# ---------------------------------------------------------------- objects, faults
@dataclass
class StoredObject:
    name: str
    path: Path
    size: int
    etag: str
    created: float
    md5_b64: str | None  # single-part objects
    multipart_md5: str | None  # "<base64>-<parts>"
    crc32c_b64: str | None

    @property
    def listed_md5(self) -> str | None:
        return self.md5_b64 or self.multipart_md5


@dataclass
class Fault:
    """Shapes the first ``times`` matching requests (None: all). ``on``: operations
    among "namespace", "list", "head", "get"; ``name``: only this object."""

    times: int | None = 1
    on: tuple[str, ...] = ("get",)
    name: str | None = None
    hits: int = field(default=0, init=False)

    def matches(self, op: str, name: str | None) -> bool:
        return (
            op in self.on
            and (self.name is None or self.name == name)
            and (self.times is None or self.hits < self.times)
        )


@dataclass
class Status(Fault):
    """Answer ``code`` with the service's error body (Retry-After when given)."""

    code: int = 429
    retry_after: float | None = None


@dataclass
class ChangeObject(Fault):
    """After ``after_gets`` GETs of object ``name``, replace it with ``body``."""

    after_gets: int = 1
    body: bytes = b""
    bucket: str = ""


_ERROR_CODES = {
    400: ("InvalidParameter", "A parameter of the request is invalid."),
    401: (
        "NotAuthenticated",
        "The required information to complete authentication was not provided or was incorrect.",
    ),
    403: ("NotAuthorized", "You do not have authorization to perform this request."),
    404: ("NotFound", "The resource was not found."),
    412: ("IfMatchFailed", "The If-Match precondition failed."),
    416: ("InvalidRange", "The requested range is not satisfiable."),
    429: ("TooManyRequests", "Too many requests for the tenancy."),
    500: ("InternalServerError", "Internal error."),
    503: ("ServiceUnavailable", "The service is unavailable."),
}


@dataclass
class RequestRecord:
    time: float
    method: str
    target: str
    headers: dict[str, str]
    op: str = ""
    key_id: str | None = None
    auth_error: str | None = None
    status: int = 0
    bytes_sent: int = 0


class OciServer(BackgroundServer):
    """Threaded HTTP/1.1 Object Storage stand-in (one tenancy namespace)."""

    def __init__(
        self, root_dir: str | os.PathLike[str], namespace: str = "testns", host: str = "127.0.0.1"
    ) -> None:
        self.root = Path(root_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        self.namespace = namespace
        self._buckets: dict[str, dict[str, StoredObject]] = {}
        self._keys: dict[str, Any] = {}
        self._faults: list[Fault] = []
        self._gets: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        super().__init__(_Server((host, 0), _Handler, self))
        self.host = host
        # GetObject documents If-Match and If-None-Match, not If-Range: by default a
        # stale If-Range is ignored (the answer is a 206 of the new object, only its
        # ETag tells the change); True gives RFC 9110's 200 with the whole object
        self.honor_if_range = False

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------ test API
    def add_user(self, tenancy: str, user: str, fingerprint: str, public_key_pem: str) -> None:
        """Register an API key: requests signed with keyId tenancy/user/fingerprint."""
        key = serialization.load_pem_public_key(public_key_pem.encode())
        with self._lock:
            self._keys[f"{tenancy}/{user}/{fingerprint}"] = key

    def add_session_token(self, token: str, public_key_pem: str) -> None:
        """Register a security token (keyId ``ST$<token>``) and its session key."""
        key = serialization.load_pem_public_key(public_key_pem.encode())
        with self._lock:
            self._keys[f"ST${token}"] = key

    def add_bucket(self, bucket: str) -> None:
        with self._lock:
            self._buckets.setdefault(bucket, {})

    def add_object(
        self,
        bucket: str,
        name: str,
        path_or_bytes: bytes | str | os.PathLike[str],
        multipart_part_size: int | None = None,
        *,
        crc32c: bool = True,
    ) -> StoredObject:
        """Store (or replace: new ETag) an object; a path is served in place, not copied.

        ``multipart_part_size``: the object counts as uploaded in parts of that size
        (no Content-MD5; ``opc-multipart-md5`` instead). ``crc32c=False``: an object
        without a stored CRC32C (uploaded before the service kept them)."""
        if isinstance(path_or_bytes, bytes):
            path = self.root / f"{uuid.uuid4().hex}.obj"
            path.write_bytes(path_or_bytes)
        else:
            path = Path(path_or_bytes)
        md5, multipart, crc = _digests(path, multipart_part_size, crc32c)
        obj = StoredObject(
            name=name,
            path=path,
            size=path.stat().st_size,
            etag=str(uuid.uuid4()),
            created=time.time(),
            md5_b64=md5,
            multipart_md5=multipart,
            crc32c_b64=crc,
        )
        with self._lock:
            self._buckets.setdefault(bucket, {})[name] = obj
            self._gets.pop((bucket, name), None)  # ChangeObject counts GETs of this one
        return obj

    def get_object(self, bucket: str, name: str) -> StoredObject:
        with self._lock:
            return self._buckets[bucket][name]

    def set_faults(self, *faults: Fault) -> None:
        with self._lock:
            self._faults = list(faults)

    def records(self, op: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if op is None or r.op == op]

    # ------------------------------------------------------------ internals
    def _lookup_key(self, key_id: str) -> Any | None:
        with self._lock:
            return self._keys.get(key_id)

    def _take_fault(self, op: str, bucket: str | None, name: str | None) -> Status | None:
        with self._lock:
            if op == "get" and bucket is not None and name is not None:
                n = self._gets.get((bucket, name), 0) + 1
                self._gets[(bucket, name)] = n
                for f in self._faults:
                    if (
                        isinstance(f, ChangeObject)
                        and f.matches(op, name)
                        and f.bucket in ("", bucket)
                        and n > f.after_gets
                    ):
                        f.hits += 1
                        path = self.root / f"{uuid.uuid4().hex}.obj"
                        path.write_bytes(f.body)
                        old = self._buckets[bucket][name]
                        md5, multipart, crc = _digests(path, None, old.crc32c_b64 is not None)
                        self._buckets[bucket][name] = StoredObject(
                            name, path, len(f.body), str(uuid.uuid4()), time.time(), md5,
                            multipart, crc,
                        )  # fmt: skip
            for f in self._faults:
                if isinstance(f, Status) and f.matches(op, name):
                    f.hits += 1
                    return f
        return None

    def _bucket(self, bucket: str) -> dict[str, StoredObject] | None:
        with self._lock:
            objs = self._buckets.get(bucket)
            return dict(objs) if objs is not None else None


def _digests(
    path: Path, part_size: int | None, with_crc: bool
) -> tuple[str | None, str | None, str | None]:
    crc = google_crc32c.Checksum()

    def chunks() -> Iterator[bytes]:
        with open(path, "rb") as f:
            while chunk := f.read(READ_CHUNK):
                if with_crc:
                    crc.update(chunk)
                yield chunk

    whole = hashlib.md5()  # noqa: S324 - the service's Content-MD5
    if part_size is None:
        for chunk in chunks():
            whole.update(chunk)
    else:
        part_digests = part_md5s(chunks(), part_size)
    crc_b64 = base64.b64encode(crc.digest()).decode() if with_crc else None
    if part_size is None:
        return base64.b64encode(whole.digest()).decode(), None, crc_b64
    combined = hashlib.md5(b"".join(part_digests)).digest()  # noqa: S324
    return None, f"{base64.b64encode(combined).decode()}-{len(part_digests)}", crc_b64


# ---------------------------------------------------------------- HTTP
class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    request_queue_size = 128

    def __init__(
        self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], owner: OciServer
    ) -> None:
        self.owner = owner
        super().__init__(addr, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is OciServer.requests

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.owner._register_conn(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner._register_conn(self.connection, False)

    def do_GET(self) -> None:
        self._serve()

    do_HEAD = do_POST = do_PUT = do_GET

    # ------------------------------------------------------------ dispatch
    def _serve(self) -> None:
        owner = self.server.owner
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        rec = RequestRecord(time.monotonic(), self.command, self.path, headers)
        with owner._lock:
            owner.requests.append(rec)
        self._rec = rec
        self._rid = uuid.uuid4().hex.upper()
        rec.key_id, rec.auth_error = verify_signature(
            self.command, self.path, headers, body, owner._lookup_key
        )
        route = self._route()
        rec.op = route[0]
        if rec.auth_error is not None:
            return self._error(401)
        op, bucket, name = route
        if op == "":
            return self._error(404, "NotFound", "No such API path.")
        if self.command not in ("GET", "HEAD") or (op != "head" and self.command == "HEAD"):
            return self._error(405, "MethodNotAllowed", "Method not allowed here.")
        fault = owner._take_fault(op, bucket, name)
        if fault is not None:
            extra = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after else {}
            return self._error(fault.code, extra=extra)
        if op == "namespace":
            return self._json(200, owner.namespace)
        assert bucket is not None
        ns = self._path_parts()[1]
        objs = owner._bucket(bucket) if ns == owner.namespace else None
        if objs is None:
            return self._error(
                404,
                "BucketNotFound",
                f"Either the bucket named '{bucket}' does not exist in the namespace '{ns}' "
                "or you are not authorized to access it",
            )
        if op == "list":
            return self._list(objs)
        assert name is not None
        obj = objs.get(name)
        if obj is None:
            return self._error(
                404, "ObjectNotFound", f"The object '{name}' was not found in the bucket '{bucket}'"
            )
        return self._object(obj)

    def _path_parts(self) -> list[str]:
        return urlsplit(self.path).path.split("/")[1:]

    def _route(self) -> tuple[str, str | None, str | None]:
        """(operation, bucket, object name); operation "" when no API path matches."""
        parts = self._path_parts()
        if parts in (["n"], ["n", ""]):
            return "namespace", None, None
        if len(parts) >= 5 and parts[0] == "n" and parts[2] == "b" and parts[4] == "o":
            bucket = unquote(parts[3])
            if len(parts) == 5:
                return "list", bucket, None
            name = unquote("/".join(parts[5:]))
            return ("head" if self.command == "HEAD" else "get"), bucket, name
        return "", None, None

    # ------------------------------------------------------------ answers
    def _send_head(self, status: int, headers: Mapping[str, str]) -> None:
        self._rec.status = status
        self.send_response(status)
        self.send_header("opc-request-id", self._rid)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()

    def _json(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self._send_head(
            status,
            {"Content-Type": "application/json", "Content-Length": str(len(data)), **(extra or {})},
        )
        if self.command != "HEAD":
            self.wfile.write(data)
            self._rec.bytes_sent = len(data)

    def _error(
        self,
        status: int,
        code: str | None = None,
        message: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        default_code, default_message = _ERROR_CODES.get(status, ("Error", "Error."))
        self._json(
            status, {"code": code or default_code, "message": message or default_message}, extra
        )

    def _list(self, objs: dict[str, StoredObject]) -> None:
        q = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
        prefix = q.get("prefix", "")
        start = q.get("start")
        end = q.get("end")
        delimiter = q.get("delimiter")
        try:
            limit = int(q.get("limit", MAX_LIMIT))
        except ValueError:
            return self._error(400, "InvalidParameter", "limit must be an integer")
        if not 1 <= limit <= MAX_LIMIT or (delimiter not in (None, "/")):
            return self._error(400, "InvalidParameter", "limit 1-1000; delimiter only '/'")
        fields = {"name"} | set((q.get("fields") or "name").split(","))
        unknown = fields - set(LIST_FIELDS)
        if unknown:
            return self._error(400, "InvalidParameter", f"unknown fields {sorted(unknown)}")
        names = sorted(
            n
            for n in objs
            if n.startswith(prefix) and (start is None or n >= start) and (end is None or n < end)
        )
        out: list[dict[str, Any]] = []
        prefixes: set[str] = set()
        next_start = None
        for n in names:
            if delimiter:
                rest = n[len(prefix) :]
                if delimiter in rest:
                    prefixes.add(prefix + rest.split(delimiter, 1)[0] + delimiter)
                    continue
            if len(out) == limit:
                next_start = n
                break
            o = objs[n]
            entry: dict[str, Any] = {"name": n}
            if "size" in fields:
                entry["size"] = o.size
            if "etag" in fields:
                entry["etag"] = o.etag
            if "md5" in fields and o.listed_md5:
                entry["md5"] = o.listed_md5
            if "timeCreated" in fields:
                entry["timeCreated"] = rfc3339(o.created)
            if "timeModified" in fields:
                entry["timeModified"] = rfc3339(o.created)
            if "storageTier" in fields:
                entry["storageTier"] = "Standard"
            out.append(entry)
        payload: dict[str, Any] = {"objects": out}
        if delimiter:
            payload["prefixes"] = sorted(prefixes)
        if next_start is not None:
            payload["nextStartWith"] = next_start
        self._json(200, payload)

    def _object(self, obj: StoredObject) -> None:
        h = {k.lower(): v for k, v in self.headers.items()}
        base = {
            "Content-Type": "application/octet-stream",
            "ETag": obj.etag,
            "Last-Modified": http_date(obj.created),
            "Accept-Ranges": "bytes",
            "storage-tier": "Standard",
        }
        if obj.md5_b64:
            base["Content-MD5"] = obj.md5_b64
        if obj.multipart_md5:
            base["opc-multipart-md5"] = obj.multipart_md5
        if obj.crc32c_b64:
            base["opc-content-crc32c"] = obj.crc32c_b64
        if_match = h.get("if-match")
        if if_match and if_match.strip('"') not in ("*", obj.etag):
            return self._error(412)
        start, end = 0, obj.size  # [start, end)
        status = 200
        range_header = h.get("range")
        if_range = h.get("if-range")
        stale = (
            if_range is not None
            and if_range.strip('"') != obj.etag
            and self.server.owner.honor_if_range
        )
        if range_header and not stale:
            m = _RANGE.match(range_header.strip())
            if m and (m.group(1) or m.group(2)):
                a, b = m.group(1), m.group(2)
                if a:
                    start, end = int(a), (min(int(b) + 1, obj.size) if b else obj.size)
                else:
                    start, end = max(0, obj.size - int(b)), obj.size
                if start >= obj.size or start >= end:
                    return self._error(416, extra={"Content-Range": f"bytes */{obj.size}"})
                status = 206
                base["Content-Range"] = f"bytes {start}-{end - 1}/{obj.size}"
        base["Content-Length"] = str(end - start)
        self._send_head(status, base)
        if self.command == "HEAD":
            return
        self.wfile.flush()
        with open(obj.path, "rb") as f:
            offset, left = start, end - start
            out = self.connection.fileno()
            while left > 0:
                try:
                    n = os.sendfile(out, f.fileno(), offset, min(left, 1 << 30))
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                if n == 0:
                    break
                offset += n
                left -= n
                self._rec.bytes_sent += n
