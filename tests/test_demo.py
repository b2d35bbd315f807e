"""``make demo``'s script end to end (``scripts/demo.py``, the real CLI and the local
Hub server): the interruption it causes on purpose is said to be part of the demo,
not shown as an error, and its folder is removed when it succeeds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.pull_helpers import REPO_ROOT


def test_demo_says_the_interruption_is_its_own_and_cleans_up(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.demo"],
        capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "interrupted on purpose, as part of the demo" in proc.stdout
    assert "error: interrupted" not in proc.stderr
    assert "demo: removed" in proc.stdout
    assert list(tmp_path.glob("ome-agent-demo-*")) == []
