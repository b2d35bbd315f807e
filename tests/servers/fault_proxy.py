"""A reverse proxy on 127.0.0.1 that answers some requests with an error, for tests.

Where it sits: in front of a real store's emulator (moto, the GCS emulator) when a
test needs throttling the emulator cannot produce: the first ``times`` requests
matching a method and path get ``status`` with ``Retry-After`` (and S3's
``x-amz-retry-after`` in milliseconds); every other request is forwarded as is,
``Host`` header included, so signatures made for the proxy's address still verify
upstream. GET and HEAD only (what sources and the engine send); bodies are
streamed. Every request is recorded (time, method, path, status, headers).

``page_gcs_listings()`` makes it split the GCS JSON API's object listings into
pages the way GCS does (``maxResults`` items, ``nextPageToken``, the token sent
back as ``pageToken``), which the emulator never does: it fetches the whole
listing upstream and answers with the requested page.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.servers.background import BackgroundServer, loopback

CHUNK = 256 * 1024
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade", "te"}


@dataclass
class Throttle:
    method: str
    path: str  # without query string
    times: int
    status: int = 503
    retry_after: int = 1  # seconds
    # S3's error code: botocore backs off from 1 s for "SlowDown" (a throttling
    # code) and from 50 ms for "ServiceUnavailable" (a transient one)
    code: str = "SlowDown"
    hits: int = field(default=0, init=False)


@dataclass(frozen=True)
class Seen:
    time: float
    method: str
    path: str
    status: int
    headers: dict[str, str]  # lower-cased names, as the client sent them


class FaultProxy(BackgroundServer):
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.throttles: list[Throttle] = []
        self.seen: list[Seen] = []
        self.paging = False
        self.lock = threading.Lock()
        super().__init__(loopback(_handler(self)))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def throttle(
        self,
        method: str,
        path: str,
        times: int,
        *,
        status: int = 503,
        retry_after: int = 1,
        code: str = "SlowDown",
    ) -> Throttle:
        t = Throttle(method, path, times, status, retry_after, code)
        with self.lock:
            self.throttles.append(t)
        return t

    def page_gcs_listings(self) -> None:
        self.paging = True

    def requests(self, method: str, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.method == method and s.path == path]

    def _claim(self, method: str, path: str) -> Throttle | None:
        with self.lock:
            for t in self.throttles:
                if t.method == method and t.path == path and t.hits < t.times:
                    t.hits += 1
                    return t
        return None

    def _record(self, method: str, path: str, status: int, headers: dict[str, str]) -> None:
        with self.lock:
            self.seen.append(Seen(time.monotonic(), method, path, status, headers))


def _handler(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the tests read proxy.seen

        def do_GET(self) -> None:
            self._serve()

        do_HEAD = do_GET

        def _serve(self) -> None:
            path = urlsplit(self.path).path
            sent = {k.lower(): v for k, v in self.headers.items()}
            throttle = proxy._claim(self.command, path)
            if throttle is not None:
                body = f"<Error><Code>{throttle.code}</Code></Error>".encode()
                self.send_response(throttle.status)
                self.send_header("Retry-After", str(throttle.retry_after))
                self.send_header("x-amz-retry-after", str(throttle.retry_after * 1000))
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(body)))
                # recorded before the body: the client may act on it before we return
                proxy._record(self.command, path, throttle.status, sent)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                return
            if proxy.paging and self.command == "GET" and _GCS_LISTING.fullmatch(path):
                self._page(path, sent)
                return
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP:
                        conn.putheader(name, value)
                conn.endheaders()
                resp = conn.getresponse()
                self.send_response(resp.status, resp.reason)
                length = resp.getheader("Content-Length")
                for name, value in resp.getheaders():
                    if name.lower() not in _HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                if self.command == "HEAD" or length is not None:
                    self.send_header("Content-Length", length or "0")
                else:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                proxy._record(self.command, path, resp.status, sent)
                self.end_headers()
                if self.command != "HEAD":
                    while chunk := resp.read(CHUNK):
                        self.wfile.write(chunk)
            except OSError:
                self.close_connection = True
            finally:
                with contextlib.suppress(OSError):
                    conn.close()

        def _page(self, path: str, sent: dict[str, str]) -> None:
            query = dict(parse_qsl(urlsplit(self.path).query))
            start = int(query.pop("pageToken", "0"))
            size = int(query.pop("maxResults", "1000"))
            conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
            try:
                conn.request("GET", f"{path}?{urlencode(query)}", headers=dict(self.headers))
                resp = conn.getresponse()
                listing = json.loads(resp.read())
            finally:
                conn.close()
            if resp.status == 200:
                items = listing.get("items", [])
                listing["items"] = items[start : start + size]
                listing.pop("nextPageToken", None)
                if start + size < len(items):
                    listing["nextPageToken"] = str(start + size)
            body = json.dumps(listing).encode()
            self.send_response(resp.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            proxy._record(self.command, path, resp.status, sent)
            self.end_headers()
            self.wfile.write(body)

    return Handler


_GCS_LISTING = re.compile(r"/storage/v1/b/[^/]+/o")
