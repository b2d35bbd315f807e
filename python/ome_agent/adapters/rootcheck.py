"""Can the agent keep models in each models root? Checked at start-up (adapter, layer 5).

``ome-agent run`` checks every ``--models-root-dir`` before it locks one
(:mod:`ome_agent.adapters.rootlock`) or starts any download, so a root it cannot use
is one line at start-up naming the flag and the fix, instead of every model failing
later with a disk error:

- in a Pod, the root must lie on a volume of the Pod (the chart's hostPath): on the
  container's own filesystem the files vanish with the container, and with a
  read-only root filesystem nothing can be written at all. A root is on the
  container's filesystem when the mount it lies under is ``/``;
- the root (or, when it does not exist yet, the folder it would be created in) must
  not be on a read-only mount (``readOnly: true`` on the volumeMount, ``mount -o
  ro``), and must be writable by the agent's user.

A root that does not exist yet is fine: the lock creates it.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from pathlib import Path

from ome_agent.errors import BadInput

MOUNTINFO = Path("/proc/self/mountinfo")


class RootProblem(enum.StrEnum):
    """Why a models root cannot hold models."""

    NOT_MOUNTED = "not-mounted"  # in a Pod, on the container's own filesystem
    READ_ONLY = "read-only"  # on a read-only mount
    NOT_WRITABLE = "not-writable"  # the agent's user may not write there


class RootUnusable(BadInput):
    """A ``--models-root-dir`` the agent cannot keep models in."""

    def __init__(self, message: str, problem: RootProblem) -> None:
        super().__init__(message)
        self.problem = problem


def check_roots(roots: Sequence[Path], *, in_pod: bool, mounts: Sequence[Path]) -> None:
    """Raise :class:`RootUnusable` for the first root that cannot hold models.

    ``in_pod``: running in a Kubernetes Pod; ``mounts``: the mount points of this
    process's mount namespace (:func:`mount_points`), needed only in a Pod.
    """
    for root in roots:
        _check(root.absolute(), in_pod=in_pod, mounts=mounts)


def _check(root: Path, *, in_pod: bool, mounts: Sequence[Path]) -> None:
    flag = f"--models-root-dir {root}"
    # the root, or the nearest folder above it that exists: where it will be created
    present = next((p for p in (root, *root.parents) if p.exists()), Path("/"))
    if in_pod and mounts and mount_of(present.resolve(), mounts) == Path("/"):
        raise RootUnusable(
            f"{flag} is not on a volume of this pod: files written there would vanish "
            f"with the container; mount a hostPath volume at {root} (chart: list it in "
            "agent.modelsRootDirs)",
            RootProblem.NOT_MOUNTED,
        )
    try:
        read_only = bool(os.statvfs(present).f_flag & os.ST_RDONLY)
    except OSError:
        return  # not readable as a filesystem: the lock's open says why
    if read_only:
        raise RootUnusable(
            f"{flag} is on a read-only mount: the agent writes the models there; mount it "
            "read-write (in a pod: remove readOnly from its volumeMount)",
            RootProblem.READ_ONLY,
        )
    if present.is_dir() and not os.access(present, os.W_OK | os.X_OK):
        what = "" if present == root else f" (it would be created in {present})"
        raise RootUnusable(
            f"{flag} is not writable by user {os.geteuid()}{what}: give that user write "
            "access to it, or run the agent as its owner",
            RootProblem.NOT_WRITABLE,
        )


def mount_of(path: Path, mounts: Sequence[Path]) -> Path:
    """The mount point ``path`` lies under: the longest of ``mounts`` containing it."""
    under = [m for m in mounts if path.is_relative_to(m)]
    return max(under, key=lambda m: len(m.parts), default=Path("/"))


def mount_points(mountinfo: Path = MOUNTINFO) -> list[Path]:
    """Every mount point of this process's mount namespace (``/proc/self/mountinfo``,
    field 5, with the kernel's octal escapes of space, tab, newline and backslash
    undone); empty when the file cannot be read (no ``/proc``)."""
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        fields = line.split(" ")
        if len(fields) > 4:
            out.append(Path(_unescape(fields[4])))
    return out


def _unescape(field: str) -> str:
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


__all__ = ["RootProblem", "RootUnusable", "check_roots", "mount_of", "mount_points"]
