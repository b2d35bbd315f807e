"""A loopback HTTP server on a thread of its own, as a context manager (test servers).

Shared by the in-process protocol stand-ins (fault server, fault proxy, OCI and S3
stand-ins, the OCI identity endpoints, the GCS token endpoint): they hand over a
bound server, or just a handler class for :func:`loopback`, and get the bound port,
``start``/``__enter__`` serving on a daemon thread and ``stop``/``__exit__`` a clean
shutdown, which also ends the connections their handlers registered (a keep-alive
handler thread would otherwise wait on its client).
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

from tests.servers.managed import Managed


def loopback(
    handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1", port: int = 0
) -> ThreadingHTTPServer:
    """A threaded HTTP server on ``host`` (a free port unless ``port`` is given)."""
    httpd = ThreadingHTTPServer((host, port), handler)
    httpd.daemon_threads = True
    return httpd


class BackgroundServer(Managed):
    def __init__(self, httpd: socketserver.TCPServer) -> None:
        self._httpd = httpd
        self.port = int(httpd.server_address[1])
        # a short poll: shutdown() waits for the serving loop to look, 0.5 s by default
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()

    def _register_conn(self, sock: socket.socket, add: bool) -> None:
        """Handlers call this from ``setup`` (add) and ``finish`` (remove)."""
        with self._conns_lock:
            if add:
                self._conns.add(sock)
            else:
                self._conns.discard(sock)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        with self._conns_lock:
            conns = list(self._conns)
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._httpd.server_close()
        self._thread.join(timeout=5)
