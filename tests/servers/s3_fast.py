"""A fast, protocol-faithful S3 read server for tests and benchmarks (never production).

Where it sits: beside moto's server (tests/servers/moto_server.py), in front of the
S3 source (``ome_agent.sources.s3``) and of the peers in ``benches/objectstore.py``.
moto serves ≈110 MB/s on this machine, so a benchmark through it measures moto;
this server moves object bytes with ``sendfile`` from files on disk and does the
rest in a few lines, so the clients are what is measured.

It speaks the read side of the S3 REST API as boto3, the AWS CLI and presigned
URLs use it, path-style (``/bucket/key``):

- ``GET /bucket?list-type=2`` (ListObjectsV2: ``prefix``, ``delimiter``,
  ``max-keys``, ``continuation-token``, ``start-after``, ``encoding-type=url``),
  ``GET /bucket?location``, ``HEAD /bucket``;
- ``GET|HEAD /bucket/key`` with ``Range`` (one range; 206, ``Content-Range``, 416
  ``InvalidRange``), ``partNumber`` (the bytes of one upload part, with
  ``x-amz-mp-parts-count``), ``If-Range``, ``If-Match`` / ``If-None-Match``;
- ETags as S3 computes them: ``md5`` of the object for a single-part upload,
  ``md5(md5(part 1) ‖ … ‖ md5(part N))-N`` for an object registered as uploaded in
  parts of ``part_size``;
- writes, kept in memory: ``PUT /bucket/key`` (PutObject) and the multipart upload
  (``POST ?uploads``, ``PUT ?partNumber&uploadId``, ``POST ?uploadId`` with the
  CompleteMultipartUpload XML; parts below 5 MiB but the last are ``EntityTooSmall``,
  parts the XML names wrongly ``InvalidPart`` / ``InvalidPartOrder``). Bodies need a
  ``Content-Length`` and an ``x-amz-content-sha256`` that matches them
  (``XAmzContentSHA256Mismatch``) or ``UNSIGNED-PAYLOAD``; aws-chunked bodies, which
  botocore sends only over TLS, are ``NotImplemented``, and so are uploads whose
  parts but the last differ in size (served parts are cut at one part size);
- S3's full-object CRC64NVME (tests/servers/s3_checksums.py): stored on a PUT or a
  completed upload when the client sends ``x-amz-checksum-crc64nvme`` (checked
  against the bytes: ``BadDigest`` when it differs, on each part too) or
  ``x-amz-sdk-checksum-algorithm: CRC64NVME`` / ``x-amz-checksum-algorithm`` on the
  upload's creation (computed here), or when registered with ``crc64nvme=True``;
  answered as ``x-amz-checksum-crc64nvme`` and ``x-amz-checksum-type: FULL_OBJECT``
  on the upload's answer and on HEAD/GET with ``x-amz-checksum-mode: ENABLED``, never
  on a ranged or ``partNumber`` read (S3 has no part-level CRC64NVME). Other
  algorithms (boto3 sends CRC32 by default) are accepted and not stored;
- errors as S3's XML ``<Error><Code>…`` bodies: ``NoSuchBucket``, ``NoSuchKey``,
  ``NoSuchUpload``, ``AccessDenied``, ``InvalidAccessKeyId``, ``SignatureDoesNotMatch``,
  ``RequestTimeTooSkewed``, ``PreconditionFailed``, ``BadDigest``, ``NotImplemented``.

Every request must be signed with Signature Version 4, in the ``Authorization``
header or as a presigned URL's query. The server recomputes the signature with
botocore's own signers (``S3SigV4Auth`` / ``S3SigV4QueryAuth``) over the headers the
client lists as signed: no SigV4 code of its own to get subtly wrong. Not served:
object versions, SSE, checksums other than CRC64NVME, and virtual-host addressing.

Standalone (the benchmarks run it in its own process so it never shares the
harness's interpreter): ``python -m tests.servers.s3_fast --root DIR --access-key
AK --secret-key SK [--part-size BYTES] [--crc64nvme]`` serves every directory ``DIR/b`` as bucket
``b`` and prints ``AWS_ENDPOINT_URL=http://127.0.0.1:PORT`` once ready.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import collections
import datetime as dt
import hashlib
import hmac
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, quote_plus, unquote, urlsplit
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.servers import s3_checksums
from tests.servers.background import BackgroundServer
from tests.servers.managed import command_line, wait_for_interrupt

_HASH_BLOCK = 8 * 1024 * 1024
_SIGV4_FORMAT = "%Y%m%dT%H%M%SZ"
# S3 refuses a header-signed request whose date is more than 15 minutes off.
_MAX_SKEW = 15 * 60
_MAX_PRESIGN = 7 * 24 * 3600  # a presigned URL lives at most a week
_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
_MIN_PART = 5 * 1024 * 1024  # S3's smallest part but the last
_UNSIGNED = "UNSIGNED-PAYLOAD"


class S3Error(Exception):
    """An S3 error answer: status, code and message as S3 spells them."""

    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass
class S3Object:
    """One object: bytes in memory or a file on disk, with its S3 ETag."""

    key: str
    size: int
    etag: str  # without quotes, as S3 computes it ("hex" or "hex-N")
    part_size: int | None  # set when registered as a multipart upload
    last_modified: float
    path: Path | None = None
    data: bytes | None = None
    crc64nvme: str | None = None  # base64, full-object, as S3 answers it

    @property
    def parts(self) -> int:
        if self.part_size is None:
            return 1
        return max(1, -(-self.size // self.part_size))


@dataclass
class _Upload:
    """A multipart upload in progress."""

    bucket: str
    key: str
    crc64nvme: bool  # created with x-amz-checksum-algorithm: CRC64NVME
    parts: dict[int, bytes]


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it (for tests: what was asked, how it was signed)."""

    method: str
    path: str
    query: str
    status: int
    auth: str  # "header" | "query" | "none"
    range: str | None
    error: str | None  # the S3 error code answered, if any


def s3_etag(chunks: Iterable[bytes], part_size: int | None) -> str:
    """S3's ETag of an object whose bytes are ``chunks``: md5, or the multipart form."""
    if part_size is None:
        h = hashlib.md5(usedforsecurity=False)
        for c in chunks:
            h.update(c)
        return h.hexdigest()
    digests = part_md5s(chunks, part_size)
    combined = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return f"{combined}-{len(digests)}"


def part_md5s(chunks: Iterable[bytes], part_size: int) -> list[bytes]:
    """The md5 digest of each ``part_size`` bytes (the last part may be shorter; no bytes
    at all are one empty part) of the bytes ``chunks`` make: a multipart upload's parts."""
    digests: list[bytes] = []
    part = hashlib.md5(usedforsecurity=False)
    filled = 0
    for c in chunks:
        view = memoryview(c)
        while view:
            take = min(len(view), part_size - filled)
            part.update(view[:take])
            filled += take
            view = view[take:]
            if filled == part_size:
                digests.append(part.digest())
                part, filled = hashlib.md5(usedforsecurity=False), 0
    if filled or not digests:
        digests.append(part.digest())
    return digests


def _file_chunks(path: Path) -> Iterable[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            yield block


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class S3FastServer(BackgroundServer):
    """The server: buckets of registered objects, credentials, a request log."""

    def __init__(
        self,
        *,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.region = region
        self.credentials: dict[str, str] = {access_key: secret_key}
        self.buckets: dict[str, dict[str, S3Object]] = {}
        self.requests: collections.deque[Recorded] = collections.deque(maxlen=10000)
        self.uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()
        handler = type("_BoundHandler", (_Handler,), {"s3": self})
        super().__init__(_Server((host, port), handler))

    # ------------------------------------------------------------ set-up
    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def add_user(self, access_key: str, secret_key: str) -> None:
        self.credentials[access_key] = secret_key

    def add_bucket(self, bucket: str) -> None:
        self.buckets.setdefault(bucket, {})

    def add_object(
        self,
        bucket: str,
        key: str,
        source: Path | bytes,
        *,
        part_size: int | None = None,
        etag: str | None = None,
        crc64nvme: bool | str = False,
    ) -> S3Object:
        """Register ``key``; ``part_size`` makes it a multipart upload of such parts.
        ``etag`` skips hashing when the caller already knows it. ``crc64nvme``: True
        stores the object's CRC64NVME as S3 does for uploads that ask for one; a string
        is stored as given (base64), right or not."""
        if isinstance(source, bytes):
            obj = S3Object(key, len(source), "", part_size, time.time(), data=source)
        else:
            st = source.stat()
            obj = S3Object(key, st.st_size, "", part_size, st.st_mtime, path=source)
        chunks = [source] if isinstance(source, bytes) else _file_chunks(source)
        obj.etag = etag or s3_etag(chunks, part_size)
        if crc64nvme is True:
            chunks = [source] if isinstance(source, bytes) else _file_chunks(source)
            obj.crc64nvme = s3_checksums.crc64nvme_b64(chunks)
        elif crc64nvme:
            obj.crc64nvme = crc64nvme
        with self._lock:
            self.buckets.setdefault(bucket, {})[key] = obj
        return obj

    def add_tree(
        self, bucket: str, root: Path, *, part_size: int | None = None, crc64nvme: bool = False
    ) -> None:
        """Every file under ``root`` as an object keyed by its relative path."""
        self.add_bucket(bucket)
        for p in sorted(root.rglob("*")):
            if p.is_file():
                threshold = part_size is not None and p.stat().st_size > part_size
                self.add_object(
                    bucket,
                    p.relative_to(root).as_posix(),
                    p,
                    part_size=part_size if threshold else None,
                    crc64nvme=crc64nvme,
                )

    def remove_object(self, bucket: str, key: str) -> None:
        with self._lock:
            self.buckets.get(bucket, {}).pop(key, None)

    # ------------------------------------------------------------ auth
    def authenticate(
        self, method: str, raw_path: str, raw_query: str, headers: dict[str, list[str]]
    ) -> None:
        """Returns when the request is validly signed (SigV4); else raises S3Error."""
        auth = (headers.get("authorization") or [""])[0]
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        if auth.startswith("AWS4-HMAC-SHA256 "):
            fields = dict(
                part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 ") :].split(",")
            )
            try:
                credential, signed, given = (
                    fields["Credential"],
                    fields["SignedHeaders"],
                    fields["Signature"],
                )
            except KeyError as e:
                raise S3Error(400, "AuthorizationHeaderMalformed", f"missing {e}") from None
            stamp = (headers.get("x-amz-date") or [""])[0]
            if not stamp and headers.get("date"):
                parsed = dt.datetime.strptime(headers["date"][0], "%a, %d %b %Y %H:%M:%S GMT")
                stamp = parsed.strftime(_SIGV4_FORMAT)
            self._check_time(stamp, _MAX_SKEW, skew=True)
            signer_cls: type[S3SigV4Auth] = S3SigV4Auth
            query = raw_query
        elif "X-Amz-Signature" in params:
            if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256":
                raise S3Error(400, "AuthorizationQueryParametersError", "bad X-Amz-Algorithm")
            credential = params.get("X-Amz-Credential", "")
            signed = params.get("X-Amz-SignedHeaders", "")
            given = params["X-Amz-Signature"]
            stamp = params.get("X-Amz-Date", "")
            try:
                expires = int(params.get("X-Amz-Expires", ""))
            except ValueError:
                raise S3Error(
                    400, "AuthorizationQueryParametersError", "bad X-Amz-Expires"
                ) from None
            if not 1 <= expires <= _MAX_PRESIGN:
                raise S3Error(
                    400,
                    "AuthorizationQueryParametersError",
                    "X-Amz-Expires must be less than a week (in seconds) that is 604800",
                )
            self._check_time(stamp, expires, skew=False)
            signer_cls = S3SigV4QueryAuth
            query = "&".join(
                p for p in raw_query.split("&") if not p.startswith("X-Amz-Signature=")
            )
        elif "Signature" in params or auth.startswith("AWS "):
            # Signature Version 2: what S3 answers for buckets made since mid-2020
            raise S3Error(
                400,
                "InvalidRequest",
                "The authorization mechanism you have provided is not supported. "
                "Please use AWS4-HMAC-SHA256.",
            )
        else:
            raise S3Error(403, "AccessDenied", "Access Denied")
        try:
            access_key, date, region, service, terminal = credential.split("/")
        except ValueError:
            raise S3Error(400, "AuthorizationHeaderMalformed", "bad Credential") from None
        secret = self.credentials.get(access_key)
        if secret is None:
            raise S3Error(
                403,
                "InvalidAccessKeyId",
                "The AWS Access Key Id you provided does not exist in our records.",
            )
        if date != stamp[:8] or terminal != "aws4_request" or service != "s3":
            raise S3Error(400, "AuthorizationHeaderMalformed", "bad credential scope")
        host = (headers.get("host") or [""])[0]
        request = AWSRequest(method=method, url=f"http://{host}{raw_path}?{query}".rstrip("?"))
        for name in signed.split(";"):
            for value in headers.get(name, []):
                request.headers.add_header(name, value)
        request.context["timestamp"] = stamp
        signer = signer_cls(Credentials(access_key, secret), service, region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if signer.signed_headers(signer.headers_to_sign(request)) != signed or not (
            hmac.compare_digest(expected, given)
        ):
            raise S3Error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you "
                "provided. Check your key and signing method.",
            )

    @staticmethod
    def _check_time(stamp: str, window: int, *, skew: bool) -> None:
        try:
            signed_at = calendar.timegm(time.strptime(stamp, _SIGV4_FORMAT))
        except ValueError:
            raise S3Error(403, "AccessDenied", "missing or malformed X-Amz-Date") from None
        now = time.time()
        if skew and abs(now - signed_at) > window:
            raise S3Error(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
            )
        if not skew and now > signed_at + window:
            raise S3Error(403, "AccessDenied", "Request has expired")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # the default backlog of 5 drops the SYNs of a client opening dozens of
    # connections at once, which then waits a second to retransmit
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    s3: S3FastServer  # set on the bound subclass

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the request log is ``S3FastServer.requests``."""

    def do_GET(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # ------------------------------------------------------------ routing
    def _serve(self) -> None:
        url = urlsplit(self.path)
        self._code: str | None = None
        writes = self.command in ("PUT", "POST")
        try:
            # read before anything can fail: an unread body would be taken for the
            # next request on this connection
            self._payload = self._read_body() if writes else b""
            headers: dict[str, list[str]] = {}
            for name, value in self.headers.items():
                headers.setdefault(name.lower(), []).append(value)
            self.s3.authenticate(self.command, url.path, url.query, headers)
            if writes:
                self._check_payload()
            query = dict(parse_qsl(url.query, keep_blank_values=True))
            bucket_name, _, key = unquote(url.path).lstrip("/").partition("/")
            bucket = self.s3.buckets.get(bucket_name)
            if bucket is None:
                raise S3Error(
                    404,
                    "NoSuchBucket",
                    "The specified bucket does not exist",
                    BucketName=bucket_name,
                )
            if writes:
                if not key:
                    raise S3Error(501, "NotImplemented", "bucket writes are not served")
                self._write(bucket_name, key, query)
            elif not key:
                self._bucket(bucket_name, bucket, query)
            else:
                obj = bucket.get(key)
                if obj is None:
                    raise S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)
                self._object(obj, query)
        except S3Error as e:
            self._code = e.code
            self._error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # ------------------------------------------------------------ writes
    def _read_body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise S3Error(
                411, "MissingContentLength", "You must provide the Content-Length HTTP header."
            )
        return self.rfile.read(int(length))

    def _check_payload(self) -> None:
        declared = self.headers.get("x-amz-content-sha256", "")
        if declared.startswith("STREAMING-"):
            raise S3Error(501, "NotImplemented", "aws-chunked bodies are not served")
        if declared == _UNSIGNED:
            return
        if declared != hashlib.sha256(self._payload).hexdigest():
            raise S3Error(
                400,
                "XAmzContentSHA256Mismatch",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )

    def _write(self, bucket: str, key: str, query: dict[str, str]) -> int:
        if self.command == "PUT" and "uploadId" in query:
            return self._upload_part(query)
        if self.command == "PUT":
            return self._put(bucket, key)
        if "uploads" in query:
            return self._create_upload(bucket, key)
        if "uploadId" in query:
            return self._complete(bucket, key, query["uploadId"])
        raise S3Error(501, "NotImplemented", "only object and multipart uploads are served")

    def _crc64nvme(self, body: bytes, *, asked: bool = False) -> str | None:
        """The CRC64NVME to store for ``body``: when the client sent one (then it must
        match) or asked for one; None otherwise."""
        given = self.headers.get(s3_checksums.VALUE_HEADER)
        algorithm = (self.headers.get("x-amz-sdk-checksum-algorithm") or "").upper()
        if given is None and not asked and algorithm != s3_checksums.ALGORITHM:
            return None
        actual = s3_checksums.crc64nvme_b64([body])
        if given is not None and given != actual:
            raise S3Error(
                400,
                "BadDigest",
                "The CRC64NVME you specified did not match the calculated checksum.",
            )
        return actual

    def _store(self, bucket: str, obj: S3Object) -> None:
        with self.s3._lock:
            self.s3.buckets[bucket][obj.key] = obj

    def _put(self, bucket: str, key: str) -> int:
        body = self._payload
        crc = self._crc64nvme(body)
        etag = s3_etag([body], None)
        self._store(
            bucket, S3Object(key, len(body), etag, None, time.time(), data=body, crc64nvme=crc)
        )
        return self._send(200, b"", {"ETag": f'"{etag}"', **s3_checksums.response_headers(crc)})

    def _create_upload(self, bucket: str, key: str) -> int:
        algorithm = (self.headers.get("x-amz-checksum-algorithm") or "").upper()
        kind = (self.headers.get("x-amz-checksum-type") or "").upper()
        crc = algorithm == s3_checksums.ALGORITHM
        if crc and kind not in ("", s3_checksums.FULL_OBJECT):
            raise S3Error(
                400,
                "InvalidRequest",
                "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm.",
            )
        upload_id = uuid.uuid4().hex
        with self.s3._lock:
            self.s3.uploads[upload_id] = _Upload(bucket, key, crc, {})
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<InitiateMultipartUploadResult xmlns="{_XMLNS}">'
            f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
            f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>"
        )
        headers = {"Content-Type": "application/xml"}
        if crc:
            headers["x-amz-checksum-algorithm"] = s3_checksums.ALGORITHM
            headers["x-amz-checksum-type"] = s3_checksums.FULL_OBJECT
        return self._send(200, body.encode(), headers)

    def _upload(self, upload_id: str) -> _Upload:
        upload = self.s3.uploads.get(upload_id)
        if upload is None:
            raise S3Error(
                404,
                "NoSuchUpload",
                "The specified upload does not exist. The upload ID may be invalid, or the "
                "upload may have been aborted or completed.",
                UploadId=upload_id,
            )
        return upload

    def _upload_part(self, query: dict[str, str]) -> int:
        upload = self._upload(query["uploadId"])
        number = query.get("partNumber", "")
        if not number.isdigit() or not 1 <= int(number) <= 10000:
            raise S3Error(
                400,
                "InvalidArgument",
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        body = self._payload
        crc = self._crc64nvme(body)
        upload.parts[int(number)] = body
        etag = s3_etag([body], None)
        return self._send(200, b"", {"ETag": f'"{etag}"', **s3_checksums.response_headers(crc)})

    def _complete(self, bucket: str, key: str, upload_id: str) -> int:
        upload = self._upload(upload_id)
        try:
            listed = s3_checksums.completed_parts(self._payload)
        except ElementTree.ParseError:
            listed = []
        if not listed:
            raise S3Error(
                400,
                "MalformedXML",
                "The XML you provided was not well-formed or did not validate against our "
                "published schema",
            )
        numbers = [p.number for p in listed]
        if numbers != sorted(set(numbers)):
            raise S3Error(400, "InvalidPartOrder", "The list of parts was not in ascending order.")
        bodies = []
        for p in listed:
            body = upload.parts.get(p.number)
            if body is None or p.etag != s3_etag([body], None):
                raise S3Error(
                    400,
                    "InvalidPart",
                    "One or more of the specified parts could not be found. The part may not "
                    "have been uploaded, or the specified entity tag may not match the part's "
                    "entity tag.",
                )
            bodies.append(body)
        if any(len(b) < _MIN_PART for b in bodies[:-1]):
            raise S3Error(
                400,
                "EntityTooSmall",
                "Your proposed upload is smaller than the minimum allowed size",
            )
        part_size = len(bodies[0])
        if any(len(b) != part_size for b in bodies[:-1]) or len(bodies[-1]) > part_size:
            raise S3Error(501, "NotImplemented", "parts of different sizes are not served")
        data = b"".join(bodies)
        crc = self._crc64nvme(data, asked=upload.crc64nvme)
        etag = s3_etag([data], max(1, part_size))
        obj = S3Object(
            key, len(data), etag, max(1, part_size), time.time(), data=data, crc64nvme=crc
        )
        self._store(bucket, obj)
        with self.s3._lock:
            self.s3.uploads.pop(upload_id, None)
        checksum = (
            f"<ChecksumCRC64NVME>{crc}</ChecksumCRC64NVME><ChecksumType>FULL_OBJECT</ChecksumType>"
            if crc
            else ""
        )
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<CompleteMultipartUploadResult xmlns="{_XMLNS}">'
            f"<Location>{escape(self.s3.endpoint)}/{escape(bucket)}/{escape(key)}</Location>"
            f"<Bucket>{escape(bucket)}</Bucket><Key>{escape(key)}</Key>"
            f"<ETag>&quot;{etag}&quot;</ETag>{checksum}</CompleteMultipartUploadResult>"
        )
        return self._send(200, body.encode(), {"Content-Type": "application/xml"})

    def _record(self, status: int) -> None:
        """Logged before the answer leaves, so a client that has it finds it logged."""
        url = urlsplit(self.path)
        kind = "header" if "Authorization" in self.headers else "none"
        if kind == "none" and "Signature=" in url.query:
            kind = "query"
        self.s3.requests.append(
            Recorded(
                self.command,
                url.path,
                url.query,
                status,
                kind,
                self.headers.get("Range"),
                self._code,
            )
        )

    def _bucket(self, name: str, objects: dict[str, S3Object], query: dict[str, str]) -> int:
        if self.command == "HEAD":
            return self._send(200, b"", {"x-amz-bucket-region": self.s3.region})
        if "location" in query:
            body = f'<LocationConstraint xmlns="{_XMLNS}">{self.s3.region}</LocationConstraint>'
            return self._send(200, body.encode(), {"Content-Type": "application/xml"})
        if query.get("list-type") != "2":
            raise S3Error(501, "NotImplemented", "only ListObjectsV2 (list-type=2) is served")
        return self._send(200, _list_v2(name, objects, query), {"Content-Type": "application/xml"})

    def _object(self, obj: S3Object, query: dict[str, str]) -> int:
        quoted = f'"{obj.etag}"'
        if_match = self.headers.get("If-Match")
        if if_match is not None and quoted not in _etags(if_match) and "*" not in if_match:
            raise S3Error(412, "PreconditionFailed", "At least one of the pre-conditions failed")
        if_none = self.headers.get("If-None-Match")
        if if_none is not None and (quoted in _etags(if_none) or "*" in if_none):
            return self._send(304, b"", {"ETag": quoted})
        headers = {
            "ETag": quoted,
            "Last-Modified": formatdate(obj.last_modified, usegmt=True),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        start, end, status = 0, obj.size - 1, 200
        if "partNumber" in query:
            try:
                n = int(query["partNumber"])
            except ValueError:
                raise S3Error(400, "InvalidArgument", "partNumber must be an integer") from None
            if not 1 <= n <= obj.parts:
                raise S3Error(
                    416, "InvalidPartNumber", "The requested partnumber is not satisfiable"
                )
            size = obj.part_size or obj.size
            start, end = (n - 1) * size, min(n * size, obj.size) - 1
            status = 206 if obj.part_size is not None else 200
            if obj.part_size is not None:
                headers["x-amz-mp-parts-count"] = str(obj.parts)
        elif (rng := self.headers.get("Range")) and _if_range_holds(
            self.headers.get("If-Range"), quoted, headers["Last-Modified"]
        ):
            start, end = _parse_range(rng, obj.size)
            status = 206
        whole = status == 200 and "partNumber" not in query
        if whole and self.headers.get("x-amz-checksum-mode", "").upper() == "ENABLED":
            # S3 answers the full-object checksum for the whole object only
            headers.update(s3_checksums.response_headers(obj.crc64nvme))
        length = max(0, end - start + 1)
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{obj.size}"
        return self._send(status, obj, headers, start=start, length=length)

    # ------------------------------------------------------------ answers
    def _send(
        self,
        status: int,
        body: bytes | S3Object,
        headers: dict[str, str],
        *,
        start: int = 0,
        length: int | None = None,
    ) -> int:
        size = len(body) if isinstance(body, bytes) else (length or 0)
        self._record(status)
        self.send_response(status)
        self.send_header("x-amz-request-id", uuid.uuid4().hex[:16].upper())
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD" or status == 304 or size == 0:
            return status
        if isinstance(body, bytes):
            self.wfile.write(body)
        elif body.path is not None:
            # sendfile: the kernel copies page cache to socket, the server costs ~nothing
            with body.path.open("rb") as fh:
                self.connection.sendfile(fh, start, size)
        else:
            assert body.data is not None
            self.wfile.write(memoryview(body.data)[start : start + size])
        return status

    def _error(self, e: S3Error) -> None:
        request_id = uuid.uuid4().hex[:16].upper()
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in e.extra.items())
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{e.code}</Code><Message>{escape(e.message)}</Message>{extra}"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml"}
        if e.code == "InvalidRange":
            headers["Content-Range"] = f"bytes */{e.extra.get('ActualObjectSize', '')}"
        self._send(e.status, body, headers)


def _etags(header: str) -> list[str]:
    return [t.strip().removeprefix("W/") for t in header.split(",")]


def _if_range_holds(if_range: str | None, etag: str, last_modified: str) -> bool:
    """Serve the range only when If-Range is absent or still names this object."""
    return if_range is None or if_range.strip() in (etag, last_modified)


def _parse_range(header: str, size: int) -> tuple[int, int]:
    m = re.fullmatch(r"bytes=(\d*)-(\d*)", header.strip())
    if m is None or (m.group(1) == "" and m.group(2) == ""):
        raise S3Error(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
            ActualObjectSize=str(size),
        )
    if m.group(1) == "":
        return max(0, size - int(m.group(2))), size - 1
    start = int(m.group(1))
    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
    if start >= size or start > end:
        raise S3Error(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
            ActualObjectSize=str(size),
        )
    return start, end


def _list_v2(bucket: str, objects: dict[str, S3Object], q: dict[str, str]) -> bytes:
    """ListObjectsV2 over the sorted keys; the continuation token is the last key sent."""
    prefix, delimiter = q.get("prefix", ""), q.get("delimiter", "")
    url_encode = q.get("encoding-type") == "url"
    try:
        max_keys = min(1000, int(q.get("max-keys", "1000")))
    except ValueError:
        raise S3Error(400, "InvalidArgument", "max-keys must be an integer") from None
    token = q.get("continuation-token")
    after = q.get("start-after", "")
    if token is not None:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise S3Error(
                400, "InvalidArgument", "The continuation token provided is incorrect"
            ) from None

    def enc(s: str) -> str:
        return escape(quote_plus(s, safe="/") if url_encode else s)

    contents: list[str] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    for key in sorted(objects):
        if not key.startswith(prefix) or key <= after:
            continue
        if delimiter and (cut := key.find(delimiter, len(prefix))) >= 0:
            common = key[: cut + len(delimiter)]
            if common <= after or (prefixes and prefixes[-1] == common):
                continue
            entry = common
        else:
            entry = ""
        if len(contents) + len(prefixes) == max_keys:
            truncated = True
            break
        if entry:
            prefixes.append(entry)
            last = entry + "\U0010ffff"  # past every key under this common prefix
            continue
        obj = objects[key]
        contents.append(
            f"<Contents><Key>{enc(key)}</Key><LastModified>{_iso(obj.last_modified)}"
            f"</LastModified><ETag>&quot;{obj.etag}&quot;</ETag><Size>{obj.size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
        last = key
    parts = [
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult xmlns="{_XMLNS}">',
        f"<Name>{escape(bucket)}</Name><Prefix>{enc(prefix)}</Prefix>",
        f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount><MaxKeys>{max_keys}</MaxKeys>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    if url_encode:
        parts.append("<EncodingType>url</EncodingType>")
    parts.append(f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>")
    if token is not None:
        parts.append(f"<ContinuationToken>{escape(token)}</ContinuationToken>")
    if truncated:
        next_token = base64.urlsafe_b64encode(last.encode()).decode()
        parts.append(f"<NextContinuationToken>{next_token}</NextContinuationToken>")
    if "start-after" in q:
        parts.append(f"<StartAfter>{enc(q['start-after'])}</StartAfter>")
    parts += contents
    parts += [f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>" for p in prefixes]
    parts.append("</ListBucketResult>")
    return "".join(parts).encode()


def main(argv: list[str] | None = None) -> None:
    parser = command_line(
        "Fast S3 read server for tests and benchmarks.", "DIR/bucket/key... = objects"
    )
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--access-key", default=os.environ.get("AWS_ACCESS_KEY_ID"))
    parser.add_argument("--secret-key", default=os.environ.get("AWS_SECRET_ACCESS_KEY"))
    parser.add_argument(
        "--part-size",
        type=int,
        default=None,
        help="objects larger than this are multipart uploads of such parts (ETag hex-N)",
    )
    parser.add_argument(
        "--crc64nvme",
        action="store_true",
        help="store each object's full-object CRC64NVME, as S3 does for new uploads",
    )
    args = parser.parse_args(argv)
    if not args.access_key or not args.secret_key:
        parser.error("--access-key/--secret-key (or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)")
    server = S3FastServer(
        access_key=args.access_key,
        secret_key=args.secret_key,
        region=args.region,
        host=args.host,
        port=args.port,
    )
    for bucket in sorted(p for p in args.root.iterdir() if p.is_dir()):
        server.add_tree(bucket.name, bucket, part_size=args.part_size, crc64nvme=args.crc64nvme)
    with server:
        print(f"AWS_ENDPOINT_URL={server.endpoint}", flush=True)
        wait_for_interrupt()


if __name__ == "__main__":
    main()
