"""Small real tmpfs mounts, for tests of a full or read-only disk (the kernel's
ENOSPC and EROFS, not a fake).

Registered as a pytest plugin in tests/conftest.py; needs root to mount (a test
without it is skipped, saying why).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def mounted_tmpfs(mount: Path, options: str) -> Iterator[Path]:
    """A tmpfs with mount ``options`` (e.g. ``size=8m``, ``ro,size=1m``) at the new
    folder ``mount`` for the ``with`` block, unmounted after it."""
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for one test."""
    with mounted_tmpfs(tmp_path / "tiny", "size=8m") as mount:
        yield mount
