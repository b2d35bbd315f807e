"""One agent per models root: an exclusive lock held while the agent runs (adapter, layer 5).

``ome-agent run`` takes it on every ``--models-root-dir`` before it reads or writes
anything there; a second agent given the same root refuses to start, naming the
process that holds it. The lock is ``flock(2)`` on the root directory itself:

- nothing is written into the root for it, and the kernel releases it when the
  holder exits however it exits, so a lock of a dead agent (``kill -9``, a crash)
  is never stale: the next agent simply takes it;
- the holder is found in ``/proc/locks`` (its process id, then its command line).

A root that does not exist yet is created for the lock, and removed again on release
(with the parents created for it) when the agent left it empty: a run whose models all
failed leaves no new directories behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from ome_agent.errors import BadInput

LOCKS = Path("/proc/locks")


class RootInUse(BadInput):
    """Another process holds a models root."""


@contextlib.contextmanager
def hold_roots(roots: Sequence[Path]) -> Iterator[None]:
    """Hold every root (in a fixed order, so two agents never deadlock) until exit."""
    with contextlib.ExitStack() as stack:
        for root in sorted(set(roots)):
            stack.enter_context(_hold(root))
        yield


@contextlib.contextmanager
def _hold(root: Path) -> Iterator[None]:
    created = _create(root)
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        _remove_empty(created)
        raise BadInput(f"--models-root-dir {root}: cannot open it ({e.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RootInUse(
                f"--models-root-dir {root} is in use by {holder(fd)}: one agent per "
                "models root; stop that one or give this one another root"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock
        _remove_empty(created)


def holder(fd: int) -> str:
    """``process <pid> (<command line>)`` holding a lock on ``fd``'s file, or a
    vaguer phrase when ``/proc`` does not say (another PID namespace)."""
    st = os.fstat(fd)
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    try:
        lines = LOCKS.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF"; waiters carry "->"
        if len(fields) >= 6 and fields[1] != "->" and fields[5] == device:
            pid = fields[4]
            return f"process {pid}{_command(pid)}"
    return "another process"


def _command(pid: str) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    text = " ".join(part.decode(errors="replace") for part in raw.split(b"\0") if part)
    return f" ({text[:200]})" if text else ""


def _create(root: Path) -> list[Path]:
    """Make ``root`` and its missing parents; return those made, deepest first."""
    missing = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"--models-root-dir {root}: cannot create it ({e.strerror})") from None
    return missing


def _remove_empty(created: list[Path]) -> None:
    for path in created:
        try:
            path.rmdir()
        except OSError:
            return  # not empty (the agent used it), or gone: keep the rest


__all__ = ["RootInUse", "hold_roots", "holder"]
