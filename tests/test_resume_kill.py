"""kill -9 halfway through a 1 GiB download, then a rerun that resumes.

A child process downloads from nginx ``/slow/`` (rate-limited per connection,
fixed connection count, so the download lasts a few seconds) and prints its
progress counter; the test SIGKILLs it at about half. The rerun in this process
must finish with the right sha256 (computed here, independently) while nginx's
access log shows that less than 25 % of the file was sent twice.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.servers.http_fixtures import DataFile, core, file_sha256, make_random_file
from tests.servers.nginx import NginxServer

GiB = 1024 * 1024 * 1024
CONNECTIONS = 4
ROOT = Path(__file__).resolve().parent.parent

# The child prints done_bytes every 20 ms from the main thread while the transfer
# runs on another (run() releases the GIL).
CHILD = """
import sys, threading, time
from ome_agent._core import Engine, Transfer
url, dest, conns = sys.argv[1], sys.argv[2], int(sys.argv[3])
t = Transfer(Engine(), url, dest, connections=conns)
th = threading.Thread(target=t.run, daemon=True)
th.start()
while th.is_alive():
    print(t.done_bytes, flush=True)
    time.sleep(0.02)
print("finished", flush=True)
"""


@pytest.fixture(scope="module")
def gib_file(tmp_path_factory: pytest.TempPathFactory) -> DataFile:
    root = tmp_path_factory.mktemp("kill-root")
    return make_random_file(root / "one-gib.bin", GiB, seed=7)


@pytest.mark.timeout(120)
def test_kill_9_halfway_then_rerun_refetches_little(
    gib_file: DataFile, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    core()  # fail clearly if the engine is not built
    # 64 MB/s per connection x 4: the first half takes about 4 s.
    with NginxServer(
        gib_file.path.parent, limit_rate="64m", workdir=tmp_path_factory.mktemp("nginx-kill")
    ) as nginx:
        url = nginx.slow_url + gib_file.path.name
        dest = tmp_path / "model.bin"
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, str(dest), str(CONNECTIONS)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
        )
        killed_at = _kill_at_half(child, gib_file.size)
        assert killed_at >= gib_file.size // 2
        assert not dest.exists()
        assert dest.with_name(dest.name + ".partial").exists()

        rerun: Any = core().Transfer(
            core().Engine(),
            url,
            str(dest),
            sha256=gib_file.sha256,
            connections=CONNECTIONS,
        )
        res = rerun.run()
        # nginx logs a request when it ends: give the last lines a moment to land.
        time.sleep(0.2)
        sent = nginx.bytes_sent()

    refetched = sent - gib_file.size
    # Shown with `pytest -rP`: the numbers behind the 25 % bound.
    print(
        f"killed at {killed_at / gib_file.size:.1%}; rerun resumed {res.resumed_bytes} B, "
        f"fetched {res.fetched_bytes} B; nginx sent {sent} B in total, "
        f"{refetched / gib_file.size:.2%} of the file twice"
    )
    assert res.sha256 == gib_file.sha256
    assert file_sha256(dest) == gib_file.sha256
    assert res.resumed_bytes >= gib_file.size // 4, (
        f"rerun resumed only {res.resumed_bytes} bytes after a kill at {killed_at}"
    )
    assert refetched < gib_file.size // 4, (
        f"nginx sent {sent} bytes for a {gib_file.size}-byte file: "
        f"{refetched / gib_file.size:.1%} fetched twice"
    )
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def _kill_at_half(child: subprocess.Popen[bytes], size: int) -> int:
    """Read the child's progress lines; SIGKILL it once half the bytes are done."""
    assert child.stdout is not None
    deadline = time.monotonic() + 60
    done = 0
    buf = b""
    try:
        while done < size // 2:
            if time.monotonic() > deadline:
                pytest.fail(f"child too slow: {done} of {size} bytes after 60 s")
            ready, _, _ = select.select([child.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                err = child.stderr.read().decode(errors="replace") if child.stderr else ""
                pytest.fail(f"child exited early (rc={child.wait()}): {err[-2000:]}")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.strip().isdigit():
                    done = max(done, int(line))
                elif line.strip() == b"finished":
                    pytest.fail("child finished before it could be killed halfway")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        assert child.returncode == -signal.SIGKILL
        return done
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
