"""Helpers shared by the ``ome-agent pull`` tests: run the CLI in-process or as a
real process (for exit codes and TTY behaviour), and parse its JSON summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from ome_agent.cli import main

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


def cli_process(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> Run:
    """A real ``ome-agent ARGS`` process, from the repository root."""
    proc = subprocess.run(
        [sys.executable, "-c", "from ome_agent.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=REPO_ROOT,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)
