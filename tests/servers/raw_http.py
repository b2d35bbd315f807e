"""A raw-socket HTTP/1.1 responder for answers no real server sends on purpose.

Where it sits: a test server beside ``fault_server`` (which speaks HTTP faithfully
through ``http.server`` and so cannot break the protocol). This one reads the
request head from the socket and writes exactly the bytes a test gives it: a
malformed status line, a negative or a conflicting duplicate ``Content-Length``, a
response head larger than any client accepts, a head dribbled at one byte per
second, silence, or an endless body without a length. It is a fake by necessity:
no real server misbehaves like this on demand, and these are the answers a broken
proxy or a hostile host gives. Everything else about the exchange (TCP, the
request the client sends) is real.

Each :class:`Reply` says what to send; ``hits`` counts the requests answered, so a
test asserts how often the client tried.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self


@dataclass(frozen=True)
class Reply:
    """What to answer: ``head`` (the bytes up to and including the blank line) sent
    at ``head_rate`` bytes/s (0: at once); then ``body`` at ``body_rate``; then, when
    ``endless``, zeros forever (chunked when ``chunked``); ``silent``: send nothing at
    all and hold the connection open until the server stops."""

    head: bytes = b""
    head_rate: float = 0.0
    body: bytes = b""
    body_rate: float = 0.0
    endless: bool = False
    chunked: bool = False
    silent: bool = False


def no_length_head(*, chunked: bool = False) -> bytes:
    """A 200 head with no ``Content-Length``: close-delimited, or chunked."""
    framing = b"Transfer-Encoding: chunked\r\n" if chunked else b"Connection: close\r\n"
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n" + framing + b"\r\n"


class RawServer:
    """Loopback TCP server answering every request with ``reply``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.hits = 0
        self.body_bytes_sent = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def url(self, path: str = "/weights.bin") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._sock.close()
        with self._lock:
            for c in self._conns:
                with contextlib.suppress(OSError):
                    c.close()
        self._thread.join(timeout=5)

    def _accept(self) -> None:
        # a short accept timeout: closing a socket does not wake a blocked accept()
        self._sock.settimeout(0.05)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            if not _read_head(conn):
                return
            with self._lock:
                self.hits += 1
            r = self.reply
            if r.silent:
                self._stop.wait()
                return
            self._send(conn, r.head, r.head_rate)
            self._send(conn, r.body, r.body_rate)
            for block in _zeros() if r.endless else ():
                if self._stop.is_set():
                    return
                conn.sendall(b"%x\r\n%s\r\n" % (len(block), block) if r.chunked else block)
                with self._lock:
                    self.body_bytes_sent += len(block)
            conn.shutdown(socket.SHUT_WR)

    def _send(self, conn: socket.socket, data: bytes, rate: float) -> None:
        if rate <= 0:
            conn.sendall(data)
            return
        for i in range(len(data)):
            conn.sendall(data[i : i + 1])
            if self._stop.wait(1 / rate):
                return


def _read_head(conn: socket.socket) -> bool:
    """Read the request head (up to the blank line); False if the client left."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return False
        data += chunk
    return True


def _zeros() -> Iterator[bytes]:
    block = bytes(256 * 1024)
    while True:
        yield block
        time.sleep(0)  # let the stop flag be seen between blocks


__all__ = ["RawServer", "Reply", "no_length_head"]
