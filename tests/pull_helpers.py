"""Helpers shared by the ``ome-agent pull`` tests: run the CLI in-process or as a
real process (for exit codes and TTY behaviour), and parse its JSON summary; fetch a
resolved source as a pull does, and the objects and digests the source tests upload."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ome_agent.cli import main
from ome_agent.sources.model import ResolvedSource
from ome_agent.transfer.engine import build_engine
from ome_agent.transfer.pull import confined_jobs
from ome_agent.transfer.runner import Outcome, Runner
from ome_agent.transfer.settings import TransferSettings
from tests.servers.http_fixtures import core

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def pull_cli(*args: str) -> Run:
    """In-process run (environment as set by monkeypatch)."""
    result = CliRunner().invoke(main, ["pull", *args], catch_exceptions=False)
    return Run(result.exit_code, result.stdout, result.stderr)


def pull_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """A real ``ome-agent pull`` process: stdout/stderr are pipes, not a terminal."""
    return cli_process("pull", *args, env=env, timeout=timeout)


def cli_process(
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 120,
    drop_env: tuple[str, ...] = (),
) -> Run:
    """A real ``ome-agent ARGS`` process, from the repository root; its environment is
    the runner's without the variables starting with ``drop_env``, then ``env``."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    proc = subprocess.run(
        [sys.executable, "-c", "from ome_agent.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**inherited, **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def download(
    resolved: ResolvedSource, dest: Path, settings: TransferSettings | None = None
) -> list[Outcome]:
    """``resolved`` through the transfer path of a pull: every name confined under
    ``dest``, then the Rust engine."""
    settings = settings or TransferSettings()
    return Runner(build_engine(settings), confined_jobs(dest, resolved), settings).run()


def by_path(outcomes: list[Outcome]) -> dict[str, Outcome]:
    return {o.job.file.path: o for o in outcomes}


def body_of(size: int, seed: int) -> bytes:
    """``size`` bytes that differ with ``seed``, cheaper than os.urandom for big bodies."""
    block = hashlib.sha256(seed.to_bytes(4, "little")).digest() * (1024 * 1024 // 32)
    return (block * (size // len(block) + 1))[:size]


def multipart_md5(data: bytes, part: int) -> str:
    """S3's (and OCI's) ETag of an object uploaded in parts of ``part`` bytes, computed
    independently of the service."""
    parts = [data[i : i + part] for i in range(0, len(data), part)] or [b""]
    joined = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"


def cancel_halfway(transfer: Any, size: int, fraction: float = 0.5) -> None:
    """Run ``transfer`` (throttled by the caller) on a thread and cancel it once about
    ``fraction`` (half) of its ``size`` bytes are done; it must end Cancelled."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            transfer.run()
        except BaseException as e:
            errors.append(e)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    deadline = time.monotonic() + 10
    while transfer.done_bytes < size * fraction:
        assert th.is_alive(), f"transfer ended early: {errors}"
        assert time.monotonic() < deadline, "transfer too slow to reach half"
        time.sleep(0.01)
    transfer.cancel()
    th.join(5)
    assert not th.is_alive()
    assert len(errors) == 1, errors
    assert isinstance(errors[0], core().Cancelled), errors
