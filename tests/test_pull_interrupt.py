"""Ctrl-C during a pull: transfers are cancelled, the process exits 130, no file
appears under its final name (partial files stay for a resume)."""

from __future__ import annotations

import json
import os
import pty
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


def test_progress_bar_only_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a pseudo-terminal gets the rich bar; stdout still gets the result."""
    with HubServer(lfs_threshold=1024 * 1024, throttle=2 * 1024 * 1024) as hub:
        hub.add_repo("org/m", {"w.safetensors": os.urandom(3 * 1024 * 1024)})
        master, slave = pty.openpty()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from ome_agent.cli import main; main()",
                "pull",
                "hf://org/m",
                str(tmp_path / "d"),
            ],
            stdout=subprocess.PIPE,
            stderr=slave,
            text=True,
            cwd=REPO_ROOT,
            env={**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": "", "TERM": "xterm"},
        )
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        out, _ = proc.communicate(timeout=60)
        os.close(master)
    assert proc.returncode == 0, seen.decode(errors="replace")
    assert b"files" in seen  # the bar's "n/m files" label
    assert "verified by digest" in out


def test_rerun_after_interrupt_resumes(tmp_path: Path) -> None:
    big = os.urandom(16 * 1024 * 1024)
    with HubServer(lfs_threshold=1024 * 1024, throttle=1024 * 1024) as hub:
        hub.add_repo("org/slow", {"w.safetensors": big})
        dest = tmp_path / "d"
        args = ["pull", "hf://org/slow", str(dest), "--chunk-size", "256K", "--connections", "4"]
        env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_TOKEN": ""}
        cmd = [sys.executable, "-c", "from ome_agent.cli import main; main()"]
        proc = subprocess.Popen(
            [*cmd, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO_ROOT, env=env
        )
        # a new range request on one of 4 connections means an earlier range finished
        deadline = time.monotonic() + 60
        while sum(r["method"] == "GET" for r in hub.requests("cdn")) < 10:
            assert proc.poll() is None
            assert time.monotonic() < deadline, "the pull made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
        assert proc.returncode == 130
        hub.throttle = None
        rerun = subprocess.run(
            [*cmd, *args, "--json"], capture_output=True, text=True, cwd=REPO_ROOT, env=env
        )
        assert rerun.returncode == 0, rerun.stderr
        [f] = json.loads(rerun.stdout)["files"]
        assert f["resumed_bytes"] > 0
        assert f["fetched_bytes"] < len(big)
        assert f["fetched_bytes"] + f["resumed_bytes"] == len(big)
        assert (dest / "w.safetensors").read_bytes() == big
