"""A full disk: the pull fails with a one-line error naming the cause, never a
traceback, and nothing appears under the final name.

The destination is a real 8 MiB tmpfs mounted for the test (root only), so the
kernel itself answers ENOSPC in the middle of the download.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.pull_helpers import pull_process
from tests.servers.fault_server import FaultServer

DATA = os.urandom(24 * 1024 * 1024)


def test_full_disk_is_a_clear_transfer_failure(fault_server: FaultServer, tiny_fs: Path) -> None:
    url = fault_server.add("/big/model.bin", DATA)
    run = pull_process(url, f"{tiny_fs}/", "--connections", "2")
    assert run.code == 1, (run.code, run.stderr)
    assert "No space left on device" in run.stderr
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert not (tiny_fs / "model.bin").exists()
