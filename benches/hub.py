"""The local HF Hub server in its own process, for the benchmarks (it hashes the repo at
start, so it runs outside the measured process)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def hub_server(root: Path, workdir: Path, cdn: str | None = None) -> Iterator[str]:
    """Yields the Hub's endpoint. With ``cdn`` (nginx), LFS files are redirected there,
    as the real Hub sends them to its CDN: the Python server answers the API calls,
    nginx moves the bytes."""
    argv = [sys.executable, "-m", "tests.servers.hf_hub_server", "--root", str(root)]
    if cdn is not None:
        argv += ["--external-cdn", cdn]
    log = (workdir / "hub.log").open("w")
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT, start_new_session=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("HF_ENDPOINT="):
            raise RuntimeError(f"HF hub server did not start: see {workdir / 'hub.log'}")
        yield line.strip().split("=", 1)[1]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
        log.close()
