"""Run one tool as a fresh subprocess and measure it (wall, CPU, peak RSS).

Where it sits: the lowest layer of the harness; ``benches.run`` calls it once
per (tool, round). CPU and memory come from the wait4 rusage of the tool,
which covers the tool and every descendant it waited for, so a tool that forks
helpers is charged for them too.

The tool is started by GNU ``time`` rather than forked from this process:
Linux carries a process's peak RSS across exec, so a child forked from the
harness (≈60 MB of Python) would report at least that much even for ``cp``.
``time`` is a 1 MB process, and it reports the same wait4 rusage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Run:
    """One measured subprocess run."""

    seconds: float
    cpu_seconds: float  # user + sys of the child tree
    max_rss_bytes: int  # ru_maxrss of the child tree
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


GNU_TIME = shutil.which("time", path="/usr/bin:/bin") or "/usr/bin/time"


def _read_usage(path: Path) -> tuple[float, int]:
    """(user+sys seconds, peak RSS bytes) from GNU time's last line; zeros if absent."""
    try:
        lines = path.read_text().strip().splitlines()
        _, user, sys_, maxrss_kib = lines[-1].split()
        return float(user) + float(sys_), int(maxrss_kib) * 1024
    except (OSError, ValueError, IndexError):
        return 0.0, 0


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def run_measured(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 900.0,
    then_sync: Path | None = None,
    logdir: Path,
) -> Run:
    """Start ``argv``, wait for it, and (when ``then_sync``) fsync that file with
    ``sync FILE`` inside the timed window: durable peers pay for durability like
    ours does (it fsyncs before renaming)."""
    logdir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logdir / "stdout", logdir / "stderr"
    usage_path = logdir / "rusage"
    timed_out = threading.Event()
    wrapped = [GNU_TIME, "-f", "%e %U %S %M", "-o", str(usage_path), "--", *argv]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            wrapped,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # own process group: a timeout kills helpers too
        )

        def on_timeout() -> None:
            timed_out.set()
            _kill_group(proc.pid)

        timer = threading.Timer(timeout, on_timeout)
        timer.start()
        try:
            _, status, _ru = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        cpu, rss = _read_usage(usage_path)
        if then_sync is not None and proc.returncode == 0:
            sync = subprocess.Popen(["sync", str(then_sync)], stdout=err, stderr=err)
            _, sstatus, sru = os.wait4(sync.pid, 0)
            sync.returncode = os.waitstatus_to_exitcode(sstatus)
            cpu += sru.ru_utime + sru.ru_stime
            if sync.returncode != 0:
                proc.returncode = sync.returncode
        seconds = time.perf_counter() - t0
    return Run(
        seconds=seconds,
        cpu_seconds=cpu,
        max_rss_bytes=rss,
        exit_code=proc.returncode,
        stdout=out_path.read_text(errors="replace")[-20000:],
        stderr=err_path.read_text(errors="replace")[-4000:],
        timed_out=timed_out.is_set(),
    )
