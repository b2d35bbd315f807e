"""Waiting for and stopping the test servers that run as processes of their own.

Where it sits: under nginx, Azurite, moto and the GCS emulator (tests/servers/).
Each starts its server in a session of its own (``start_new_session=True``, as
:func:`spawn` does), waits
with :func:`wait_until` (or :func:`wait_answering`) until it serves or has died,
and ends it with :func:`stop_group`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_until(proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float) -> bool:
    """True once ``ready()`` holds; False when ``proc`` exits first or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(0.05)
    return False


def connects(host: str, port: int) -> bool:
    """Whether a TCP connection to ``host:port`` is accepted now."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def wait_answering(
    proc: subprocess.Popen[bytes], url: str, name: str, log: Path, timeout: float = 20.0
) -> None:
    """Returns once a GET of ``url`` succeeds; else RuntimeError with the log's tail."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310 - loopback
                return True
        except OSError:
            return False

    if not wait_until(proc, answers, timeout):
        state = "exited" if proc.poll() is not None else f"did not answer within {timeout:g} s"
        raise RuntimeError(f"{name} {state}: {log.read_text(errors='replace')[-2000:]}")


def spawn(argv: list[str], log: Path, **popen: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own, its stdout and stderr written to ``log``;
    ``popen`` as ``subprocess.Popen`` takes it (``env``, ``cwd``)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **popen
        )


def stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM to the server's process group, SIGKILL if it lingers past 5 s; nothing
    for a server that never started (None)."""
    if proc is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    # Children (nginx workers) may outlive a killed leader for an instant: reap the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
