"""Fault-injection HTTP/1.1 server for the engine's integration tests.

Where it sits: a protocol-faithful stand-in for a real origin (object store, CDN,
Hub) used where nginx cannot inject faults. nginx covers throughput, Range and
keep-alive on the happy path; this server covers everything that goes wrong.

What it speaks, faithfully:
- GET and HEAD, keep-alive (HTTP/1.1), one thread per connection;
- ``Range: bytes=a-b | a- | -n`` → 206 + ``Content-Range``; unsatisfiable → 416
  with ``Content-Range: bytes */size``; a multi-range request gets the whole body
  (a server may ignore Range);
- ``ETag`` (strong), ``Last-Modified``, ``If-Range`` (a validator that does not
  match the current object → 200 with the full body, as RFC 9110 says);
- bodies registered as ``bytes`` or as a file path (sparse files work: the file
  is read with ``pread`` chunk by chunk, never loaded whole).

Faults are set per path by the tests (``set_faults``); each fault applies to the
first ``times`` matching requests (``None`` = every request):
- ``Status``: answer with a status (5xx burst, 408/429 with ``Retry-After`` in
  seconds or as an HTTP-date, 401/403/404);
- ``Reset``: send the headers and ``after_bytes`` of the body, then an RST;
- ``Truncate``: advertise the full ``Content-Length``, close after ``after_bytes``;
- ``Stall``: send ``after_bytes`` then go silent for ``seconds``;
- ``WrongBytes``: flip bytes at an absolute offset of the object;
- ``IgnoreRange``: always 200 with the whole body;
- ``NoContentLength``: close-delimited (or chunked) 200 body, no size anywhere;
- ``ChangeObject``: after ``after_requests`` requests the object gets new content
  and a new ETag/Last-Modified;
- ``Redirect``: 301/302/307 to the same path on another server (e.g. 127.0.0.2);
- ``Throttle``: cap the body rate per response (gives tests time to observe a
  running transfer: progress, cancel, kill);
- ``IgnoreIfRange``: serve ranges whatever If-Range says (as OCI and Azure do:
  their GetObject documents only If-Match/If-None-Match);
- ``HonorIfMatch``: evaluate ``If-Match`` (RFC 9110 strong comparison): 412
  unless it lists the current ETag or ``*``. By default If-Match is ignored.

Every request is recorded (``requests``): time, method, path, headers, status and
body bytes sent, so tests assert what the client really did.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import os
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from tests.servers.background import BackgroundServer

CHUNK = 256 * 1024


def http_date(ts: float) -> str:
    """RFC 9110 IMF-fixdate of a Unix timestamp."""
    return email.utils.formatdate(ts, usegmt=True)


# ---------------------------------------------------------------- faults
@dataclass
class Fault:
    """Base of the fault plans. ``times``: how many matching requests it hits
    (``None``: all). ``methods``: which request methods it matches."""

    times: int | None = None
    methods: tuple[str, ...] = ("GET",)
    hits: int = field(default=0, init=False)

    def matches(self, method: str) -> bool:
        return method in self.methods and (self.times is None or self.hits < self.times)


@dataclass
class Status(Fault):
    """Answer ``code`` instead of the object (no body beyond a short text)."""

    code: int = 503
    retry_after: float | str | None = None  # seconds, or a preformatted HTTP-date
    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class Reset(Fault):
    """Send ``after_bytes`` of the body, then reset the connection (RST)."""

    after_bytes: int = 0


@dataclass
class Truncate(Fault):
    """Advertise the full length, send ``after_bytes``, then close cleanly (FIN)."""

    after_bytes: int = 0


@dataclass
class Stall(Fault):
    """Send ``after_bytes`` then say nothing for ``seconds`` (then close)."""

    after_bytes: int = 0
    seconds: float = 60.0


@dataclass
class WrongBytes(Fault):
    """XOR ``count`` bytes at absolute object ``offset`` with 0xFF in every body
    that covers them."""

    offset: int = 0
    count: int = 1


@dataclass
class IgnoreRange(Fault):
    """Always 200 with the full body, no ``Accept-Ranges``."""

    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class NoContentLength(Fault):
    """200 full body without ``Content-Length``: close-delimited, or chunked."""

    chunked: bool = False
    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class ChangeObject(Fault):
    """After ``after_requests`` requests to the path, replace the object
    (new content ⇒ new ETag and Last-Modified)."""

    after_requests: int = 1
    body: bytes = b""
    times: int | None = 1
    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class Redirect(Fault):
    """Redirect to the same path on ``target`` (a base URL like
    ``http://127.0.0.2:1234``)."""

    target: str = ""
    code: int = 302
    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class Throttle(Fault):
    """Send the body at about ``bytes_per_sec`` per response."""

    bytes_per_sec: float = 10e6


@dataclass
class IgnoreIfRange(Fault):
    """Serve the requested range even when If-Range names another version."""

    methods: tuple[str, ...] = ("GET", "HEAD")


@dataclass
class HonorIfMatch(Fault):
    """Answer 412 when ``If-Match`` lists neither the current ETag nor ``*``."""

    methods: tuple[str, ...] = ("GET", "HEAD")


# ---------------------------------------------------------------- objects, records
@dataclass
class _Object:
    body: bytes | Path
    size: int
    etag: str
    last_modified: str
    version: int = 1

    def read(self, offset: int, length: int) -> bytes:
        if isinstance(self.body, bytes):
            return self.body[offset : offset + length]
        fd = os.open(self.body, os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)


@dataclass
class RequestRecord:
    """What the server saw and did for one request."""

    time: float  # time.monotonic() when the request line was read
    wall_time: float
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    server: str  # host:port that received it
    status: int = 0
    bytes_sent: int = 0  # body bytes written to the socket
    fault: str | None = None  # class name of the fault that shaped the answer
    end_time: float | None = None
    proxied: str | None = None  # absolute-form target when asked as a proxy

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _ResetConnection(Exception):
    """Raised inside the handler to drop the connection with an RST."""


# ---------------------------------------------------------------- server
class FaultServer(BackgroundServer):
    """Threaded HTTP/1.1 server on a loopback host with per-path fault plans."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.scheme = "https" if tls is not None else "http"
        self._objects: dict[str, _Object] = {}
        self._faults: dict[str, list[Fault]] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._stopping = threading.Event()
        httpd = _ThreadingServer((host, port), _Handler, self)
        if tls is not None:
            httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
        super().__init__(httpd)

    def stop(self) -> None:
        self._stopping.set()  # ends stalls and throttles
        super().stop()

    # ------------------------------------------------------------ test API
    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + _norm(path)

    def add(
        self,
        path: str,
        body: bytes | Path,
        *,
        etag: str | None = None,
        last_modified: float | None = None,
        faults: Sequence[Fault] | None = None,
    ) -> str:
        """Register (or replace) the object at ``path``, with ``faults`` also its fault
        plan (as ``set_faults``); returns its URL."""
        path = _norm(path)
        with self._lock:
            prev = self._objects.get(path)
            version = prev.version + 1 if prev else 1
            self._objects[path] = _make_object(body, etag, last_modified, version)
        if faults is not None:
            self.set_faults(path, *faults)
        return self.url(path)

    def set_faults(self, path: str, *faults: Fault) -> None:
        """Replace the fault plan of ``path`` (applied in the order given)."""
        with self._lock:
            self._faults[_norm(path)] = list(faults)

    def clear_faults(self, path: str | None = None) -> None:
        with self._lock:
            if path is None:
                self._faults.clear()
            else:
                self._faults.pop(_norm(path), None)

    def etag(self, path: str) -> str:
        return self._objects[_norm(path)].etag

    def last_modified(self, path: str) -> str:
        return self._objects[_norm(path)].last_modified

    def requests_for(self, path: str, method: str | None = None) -> list[RequestRecord]:
        p = _norm(path)
        with self._lock:
            return [
                r for r in self.requests if r.path == p and (method is None or r.method == method)
            ]

    def peak_concurrency(self, grace: float = 0.02) -> int:
        """Most requests in progress at once (the client's parallelism).

        Each request counts from its request line until ``grace`` seconds before
        the server finished it: a client may send its next request as soon as
        the last byte arrives, before this server's thread has noted the end."""
        with self._lock:
            events = []
            for r in self.requests:
                end = r.end_time if r.end_time is not None else float("inf")
                events.append((r.time, 1))
                events.append((max(r.time, end - grace), -1))
        # Ends sort before starts at the same instant.
        events.sort(key=lambda e: (e[0], e[1]))
        cur = peak = 0
        for _, d in events:
            cur += d
            peak = max(peak, cur)
        return peak

    def total_bytes_sent(self, path: str | None = None) -> int:
        with self._lock:
            return sum(r.bytes_sent for r in self.requests if path is None or r.path == path)

    # ------------------------------------------------------------ internals
    def _begin(
        self, method: str, path: str, headers: dict[str, str], proxied: str | None = None
    ) -> tuple[RequestRecord, _Object | None, list[Fault]]:
        """Record the request, count it, pick the faults that hit it."""
        with self._lock:
            rec = RequestRecord(
                time=time.monotonic(),
                wall_time=time.time(),
                method=method,
                path=path,
                headers=headers,
                server=f"{self.host}:{self.port}",
                proxied=proxied,
            )
            self.requests.append(rec)
            n = self._counts.get(path, 0) + 1
            self._counts[path] = n
            plan = self._faults.get(path, [])
            for f in plan:
                # Counts requests *before* this one: the (after_requests+1)-th
                # request is the first that sees the new object.
                if isinstance(f, ChangeObject) and f.matches(method) and n > f.after_requests:
                    f.hits += 1
                    prev = self._objects.get(path)
                    version = prev.version + 1 if prev else 1
                    self._objects[path] = _make_object(f.body, None, None, version)
            # A redirect or status answer replaces the body, so it alone uses up
            # a "time": a Reset planned after a 503 burst still hits a later body.
            for f in plan:
                if isinstance(f, Redirect | Status) and f.matches(method):
                    f.hits += 1
                    return rec, self._objects.get(path), [f]
            active: list[Fault] = []
            for f in plan:
                if not isinstance(f, ChangeObject | Redirect | Status) and f.matches(method):
                    # Cuts and corruptions count only when they really touch the
                    # body (see _claim): a Reset after 100 kB must not be used up
                    # by a 1-byte probe request.
                    if not isinstance(f, Reset | Truncate | Stall | WrongBytes):
                        f.hits += 1
                    active.append(f)
            return rec, self._objects.get(path), active

    def _claim(self, fault: Fault, method: str) -> bool:
        """Count one use of ``fault`` if it has uses left (atomic across threads)."""
        with self._lock:
            if not fault.matches(method):
                return False
            fault.hits += 1
            return True


class _ThreadingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(
        self,
        addr: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: FaultServer,
    ) -> None:
        self.owner = owner
        super().__init__(addr, handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # Clients dropping connections mid-body is the point of these tests.
        pass


def _norm(path: str) -> str:
    return path if path.startswith("/") else "/" + path


def _make_object(
    body: bytes | Path, etag: str | None, last_modified: float | None, version: int
) -> _Object:
    if isinstance(body, bytes):
        size = len(body)
        ident = hashlib.sha256(body).hexdigest()[:16]
    else:
        st = Path(body).stat()
        size = st.st_size
        ident = hashlib.sha256(f"{body}:{st.st_mtime_ns}:{size}".encode()).hexdigest()[:16]
    # The version goes into the validators so re-registering identical bytes is
    # still a "changed object" for If-Range purposes, like a re-upload.
    tag = etag if etag is not None else f'"{ident}-{version}"'
    lm = last_modified if last_modified is not None else 1_700_000_000 + version * 3600
    return _Object(body=body, size=size, etag=tag, last_modified=http_date(lm), version=version)


def _parse_range(value: str, size: int) -> tuple[int, int] | str | None:
    """``(start, end_inclusive)``, ``"unsatisfiable"``, or ``None`` (ignore header)."""
    v = value.strip()
    if not v.startswith("bytes="):
        return None
    spec = v[len("bytes=") :]
    if "," in spec:
        return None  # multi-range: answer with the whole body
    first, sep, last = spec.partition("-")
    if not sep:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            return (max(0, size - n), size - 1) if size > 0 else "unsatisfiable"
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start < 0 or (last and end < start):
        return None
    if start >= size:
        return "unsatisfiable"
    return start, min(end, size - 1)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ThreadingServer
    # Short so an idle keep-alive thread notices a stopped server.
    timeout = 30

    def setup(self) -> None:
        super().setup()
        self.server.owner._register_conn(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.owner._register_conn(self.connection, False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_HEAD(self) -> None:
        self._serve(head=True)

    # ------------------------------------------------------------ core
    def _serve(self, head: bool) -> None:
        owner = self.server.owner
        path = self.path.split("?", 1)[0]
        proxied = None
        if path.startswith(("http://", "https://")):
            # absolute-form request line: a client using this server as its HTTP
            # proxy; recorded as sent, served from this server's own store
            proxied = self.path
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        headers = {k.lower(): v for k, v in self.headers.items()}
        rec, obj, faults = owner._begin(self.command, path, headers, proxied)
        try:
            self._respond(rec, obj, faults, head)
        except _ResetConnection:
            # SO_LINGER 0 turns close() into an RST: the client sees ECONNRESET.
            with contextlib.suppress(OSError):
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.close()
        except OSError:
            self.close_connection = True
        finally:
            rec.end_time = time.monotonic()

    def _simple(self, rec: RequestRecord, code: int, extra: dict[str, str], head: bool) -> None:
        body = f"{code} {self.responses.get(code, ('',))[0]}\n".encode()
        self.send_response(code)
        for k, v in extra.items():
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        rec.status = code
        if not head:
            self.wfile.write(body)

    def _respond(
        self, rec: RequestRecord, obj: _Object | None, faults: list[Fault], head: bool
    ) -> None:
        for f in faults:
            if isinstance(f, Redirect):
                rec.fault = "Redirect"
                self._simple(rec, f.code, {"Location": f.target + self.path}, head)
                return
            if isinstance(f, Status):
                rec.fault = "Status"
                extra: dict[str, str] = {}
                if f.retry_after is not None:
                    ra = f.retry_after
                    extra["Retry-After"] = ra if isinstance(ra, str) else str(int(ra))
                self._simple(rec, f.code, extra, head)
                return
        if obj is None:
            self._simple(rec, 404, {}, head)
            return

        if_match = self.headers.get("If-Match")
        honor_if_match = any(isinstance(f, HonorIfMatch) for f in faults)
        if honor_if_match and if_match is not None and not _if_match_holds(if_match, obj.etag):
            rec.fault = "HonorIfMatch"
            self._simple(rec, 412, {}, head)
            return
        ignore_range = any(isinstance(f, IgnoreRange) for f in faults)
        ignore_if_range = any(isinstance(f, IgnoreIfRange) for f in faults)
        ncl = next((f for f in faults if isinstance(f, NoContentLength)), None)
        size = obj.size
        start, end = 0, size - 1
        status = 200
        rng = self.headers.get("Range")
        if rng is not None and not ignore_range and ncl is None:
            if_range = self.headers.get("If-Range")
            validator_ok = (
                if_range is None
                or ignore_if_range
                or if_range.strip() in (obj.etag, obj.last_modified)
            )
            parsed = _parse_range(rng, size) if validator_ok else None
            if parsed == "unsatisfiable":
                self._simple(rec, 416, {"Content-Range": f"bytes */{size}"}, head)
                return
            if isinstance(parsed, tuple):
                start, end = parsed
                status = 206

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("ETag", obj.etag)
        self.send_header("Last-Modified", obj.last_modified)
        if not ignore_range and ncl is None:
            self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        length = end - start + 1 if size > 0 else 0
        if ncl is None:
            self.send_header("Content-Length", str(length))
        elif ncl.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        rec.status = status
        if head:
            return
        self._send_body(rec, obj, start, length, faults, chunked=bool(ncl and ncl.chunked))

    def _send_body(
        self,
        rec: RequestRecord,
        obj: _Object,
        start: int,
        length: int,
        faults: list[Fault],
        *,
        chunked: bool,
    ) -> None:
        owner = self.server.owner
        stop = owner._stopping
        cut: Reset | Truncate | Stall | None = None
        for f in faults:
            if (
                isinstance(f, Reset | Truncate | Stall)
                and f.after_bytes < length
                and owner._claim(f, self.command)
            ):
                cut = f
                break
        cut_at = cut.after_bytes if cut is not None else length
        wrong = [
            f
            for f in faults
            if isinstance(f, WrongBytes)
            and f.offset < start + length
            and f.offset + f.count > start
            and owner._claim(f, self.command)
        ]
        throttle = next((f for f in faults if isinstance(f, Throttle)), None)
        applied = [f for f in faults if not isinstance(f, Reset | Truncate | Stall | WrongBytes)]
        applied += [*wrong, *([cut] if cut is not None else [])]
        rec.fault = ",".join(type(f).__name__ for f in applied) or None
        t0 = time.monotonic()
        sent = 0
        limit = min(cut_at, length)
        # Throttled bodies go out in small steps (~50 writes/s) so the client
        # sees a steady trickle, not bursts separated by silences that look
        # like stalls.
        step = (
            CHUNK if throttle is None else max(1024, min(CHUNK, int(throttle.bytes_per_sec / 50)))
        )
        for data in _chunks(obj, start, limit, step):
            data = _corrupt(data, start + sent, wrong)
            if chunked:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            else:
                self.wfile.write(data)
            sent += len(data)
            rec.bytes_sent = sent
            if throttle is not None:
                due = t0 + sent / throttle.bytes_per_sec
                delay = due - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    raise _ResetConnection
        if cut is not None and cut_at < length:
            if isinstance(cut, Reset):
                raise _ResetConnection
            if isinstance(cut, Stall):
                stop.wait(cut.seconds)
            # Truncate, or a stall that ran its course: the advertised length is
            # never reached, so the connection cannot be reused.
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def _if_match_holds(header: str, etag: str) -> bool:
    """RFC 9110 §13.1.1: ``*``, or a listed strong tag equal to the current one."""
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags


def _chunks(obj: _Object, start: int, length: int, step: int) -> Iterator[bytes]:
    pos = start
    end = start + length
    while pos < end:
        n = min(step, end - pos)
        data = obj.read(pos, n)
        if not data:
            return
        yield data
        pos += len(data)


def _corrupt(data: bytes, offset: int, wrong: list[WrongBytes]) -> bytes:
    if not wrong:
        return data
    buf: bytearray | None = None
    for w in wrong:
        lo = max(w.offset, offset)
        hi = min(w.offset + w.count, offset + len(data))
        if lo < hi:
            if buf is None:
                buf = bytearray(data)
            for i in range(lo - offset, hi - offset):
                buf[i] ^= 0xFF
    return bytes(buf) if buf is not None else data
