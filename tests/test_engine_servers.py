"""The engine tests' servers, checked with the standard library's HTTP client.

A fault server that got Range or If-Range wrong would make engine tests prove
nothing; these tests pin its protocol behaviour, and the nginx fixture's
start/stop and access-log accounting, without the engine.
"""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.servers import fault_server as faults
from tests.servers.fault_server import FaultServer
from tests.servers.nginx import NginxServer

BODY = os.urandom(500_000)


def _get(
    server: FaultServer, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[http.client.HTTPResponse, bytes]:
    c = http.client.HTTPConnection(server.host, server.port, timeout=5)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r, data


def test_range_forms(fault_server: FaultServer) -> None:
    fault_server.add("/a", BODY)
    r, d = _get(fault_server, "/a", {"Range": "bytes=10-19"})
    assert (r.status, r.getheader("Content-Range"), d) == (206, "bytes 10-19/500000", BODY[10:20])
    r, d = _get(fault_server, "/a", {"Range": "bytes=499990-"})
    assert (r.status, d) == (206, BODY[-10:])
    r, d = _get(fault_server, "/a", {"Range": "bytes=-7"})
    assert (r.status, d) == (206, BODY[-7:])
    r, d = _get(fault_server, "/a", {"Range": "bytes=0-999999"})
    assert (r.status, r.getheader("Content-Range"), d) == (206, "bytes 0-499999/500000", BODY)
    r, _ = _get(fault_server, "/a", {"Range": "bytes=500000-"})
    assert (r.status, r.getheader("Content-Range")) == (416, "bytes */500000")
    r, d = _get(fault_server, "/a")
    assert (r.status, r.getheader("Accept-Ranges"), d) == (200, "bytes", BODY)


def test_if_range_and_head(fault_server: FaultServer) -> None:
    fault_server.add("/a", BODY)
    etag = fault_server.etag("/a")
    r, d = _get(fault_server, "/a", {"Range": "bytes=0-9", "If-Range": etag})
    assert (r.status, d) == (206, BODY[:10])
    r, d = _get(fault_server, "/a", {"Range": "bytes=0-9", "If-Range": '"other"'})
    assert (r.status, d) == (200, BODY)
    lm = fault_server.last_modified("/a")
    r, d = _get(fault_server, "/a", {"Range": "bytes=0-9", "If-Range": lm})
    assert r.status == 206
    r, d = _get(fault_server, "/a", method="HEAD")
    assert (r.status, r.getheader("Content-Length"), r.getheader("ETag"), d) == (
        200,
        "500000",
        etag,
        b"",
    )
    fault_server.add("/a", BODY)  # re-upload: same bytes, new validators
    assert fault_server.etag("/a") != etag
    r, _ = _get(fault_server, "/a", {"Range": "bytes=0-9", "If-Range": etag})
    assert r.status == 200


def test_file_bodies_are_read_in_place(fault_server: FaultServer, tmp_path: Path) -> None:
    p = tmp_path / "sparse.bin"
    with p.open("wb") as f:
        f.truncate(10_000_000)
        f.seek(9_000_000)
        f.write(b"needle")
    fault_server.add("/s", p)
    r, d = _get(fault_server, "/s", {"Range": "bytes=8999999-9000006"})
    assert (r.status, d) == (206, b"\0needle\0")


def test_status_faults_count_and_retry_after(fault_server: FaultServer) -> None:
    fault_server.add("/a", BODY)
    fault_server.set_faults(
        "/a", faults.Status(code=429, times=2, retry_after=3), faults.Reset(times=1)
    )
    assert [(_get(fault_server, "/a")[0].status) for _ in range(2)] == [429, 429]
    assert fault_server.requests[0].status == 429
    # The Reset was not used up by the 429s.
    with pytest.raises((ConnectionError, http.client.HTTPException)):
        _get(fault_server, "/a")
    r, d = _get(fault_server, "/a")
    assert (r.status, d) == (200, BODY)


def test_body_cuts(fault_server: FaultServer) -> None:
    fault_server.add("/t", BODY)
    fault_server.set_faults("/t", faults.Truncate(after_bytes=1000, times=1))
    with pytest.raises(http.client.IncompleteRead) as ei:
        _get(fault_server, "/t")
    assert len(ei.value.partial) == 1000
    assert fault_server.requests[-1].bytes_sent == 1000

    fault_server.add("/r", BODY)
    fault_server.set_faults("/r", faults.Reset(after_bytes=1000, times=1))
    with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
        _get(fault_server, "/r")

    fault_server.add("/s", BODY)
    fault_server.set_faults("/s", faults.Stall(after_bytes=1000, seconds=30, times=1))
    c = http.client.HTTPConnection(fault_server.host, fault_server.port, timeout=0.5)
    c.request("GET", "/s")
    resp = c.getresponse()
    assert resp.read(1000) == BODY[:1000]
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        resp.read(1)
    assert time.monotonic() - t0 >= 0.4
    c.close()


def test_wrong_bytes_ignore_range_no_length(fault_server: FaultServer) -> None:
    fault_server.add("/w", BODY)
    fault_server.set_faults("/w", faults.WrongBytes(offset=100, count=2))
    _, d = _get(fault_server, "/w", {"Range": "bytes=50-149"})
    assert [i + 50 for i in range(100) if d[i] != BODY[50 + i]] == [100, 101]

    fault_server.add("/i", BODY)
    fault_server.set_faults("/i", faults.IgnoreRange())
    r, d = _get(fault_server, "/i", {"Range": "bytes=0-9"})
    assert (r.status, r.getheader("Accept-Ranges"), d) == (200, None, BODY)

    fault_server.add("/n", BODY)
    fault_server.set_faults("/n", faults.NoContentLength())
    r, d = _get(fault_server, "/n", {"Range": "bytes=0-9"})
    assert (r.status, r.getheader("Content-Length"), d) == (200, None, BODY)
    fault_server.set_faults("/n", faults.NoContentLength(chunked=True))
    r, d = _get(fault_server, "/n")
    assert (r.getheader("Transfer-Encoding"), d) == ("chunked", BODY)


def test_change_object_and_redirect(fault_server: FaultServer, fault_server_b: FaultServer) -> None:
    fault_server.add("/c", BODY)
    fault_server.set_faults("/c", faults.ChangeObject(after_requests=1, body=b"new"))
    _, d1 = _get(fault_server, "/c")
    _, d2 = _get(fault_server, "/c")
    assert (d1, d2) == (BODY, b"new")

    fault_server.set_faults("/c", faults.Redirect(target=fault_server_b.base_url, code=307))
    r, _ = _get(fault_server, "/c?x=1")
    assert (r.status, r.getheader("Location")) == (307, fault_server_b.base_url + "/c?x=1")
    assert fault_server_b.host == "127.0.0.2"


def test_keep_alive(fault_server: FaultServer) -> None:
    fault_server.add("/a", BODY)
    c = http.client.HTTPConnection(fault_server.host, fault_server.port, timeout=5)
    for i in range(3):
        c.request("GET", "/a", headers={"Range": f"bytes={i}-{i}"})
        r = c.getresponse()
        assert r.read() == BODY[i : i + 1]
    c.close()


def test_nginx_fixture(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f.bin").write_bytes(BODY)
    with NginxServer(root, limit_rate="1m", workdir=tmp_path / "w") as n:
        pid = n._proc.pid if n._proc else 0
        c = http.client.HTTPConnection("127.0.0.1", n.port, timeout=5)
        c.request("GET", "/f.bin", headers={"Range": "bytes=0-99"})
        assert c.getresponse().read() == BODY[:100]
        c.request("GET", "/slow/f.bin")
        assert c.getresponse().read() == BODY
        c.close()
        time.sleep(0.1)  # the access log line is written when the request ends
        recs = n.records()
        assert [(r.path, r.status, r.range) for r in recs] == [
            ("/f.bin", 206, "bytes=0-99"),
            ("/slow/f.bin", 200, None),
        ]
        assert recs[0].connection == recs[1].connection  # keep-alive
        assert n.bytes_sent() == 100 + len(BODY)
        assert n.slow_url.endswith("/slow/")
    out = subprocess.run(["ps", "-o", "pid=", "-g", str(pid)], capture_output=True, text=True)
    assert out.stdout.strip() == "", "nginx processes left behind"


def test_peak_concurrency(fault_server: FaultServer) -> None:
    fault_server.add("/a", BODY)
    fault_server.set_faults("/a", faults.Throttle(bytes_per_sec=2_000_000))  # 0.25 s per GET
    _get(fault_server, "/a")
    _get(fault_server, "/a")
    assert fault_server.peak_concurrency() == 1
    threads = [threading.Thread(target=_get, args=(fault_server, "/a")) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fault_server.peak_concurrency() == 3
