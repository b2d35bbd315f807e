"""Ctrl-C during a pull: transfers are cancelled, the process exits 130, no file
appears under its final name (partial files stay for a resume)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.pull_helpers import REPO_ROOT
from tests.servers.hf_hub_server import HubServer


def test_sigint_cancels_and_exits_130(tmp_path: Path) -> None:
    big = os.urandom(20 * 1024 * 1024)
    with HubServer(lfs_threshold=1024 * 1024, throttle=512 * 1024) as hub:
        hub.add_repo("org/slow", {"w.safetensors": big, "config.json": b"{}"})
        dest = tmp_path / "d"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from ome_agent.cli import main; main()",
                "pull",
                "hf://org/slow",
                str(dest),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": ""},
        )
        deadline = time.monotonic() + 30
        while not any(r["method"] == "GET" for r in hub.requests("cdn")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the pull never reached the CDN"
            time.sleep(0.05)
        time.sleep(0.5)
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert time.monotonic() - started < 10
        assert "interrupted" in err
        assert "Traceback" not in err
        assert out == ""
        assert not (dest / "w.safetensors").exists()
