"""Start-up checks of the models roots (``ome_agent.adapters.rootcheck``): in a Pod a
root on the container's own filesystem, a root on a read-only mount and a root the
agent's user may not write are refused with one line naming ``--models-root-dir`` and
the fix. Real mounts (a read-only tmpfs, as root), the process's real mountinfo and
real ``ome-agent run`` processes; the real-node tier (tests/node/test_bad_input.py)
runs the same through the chart's pods."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ome_agent.adapters.rootcheck import (
    RootProblem,
    RootUnusable,
    check_roots,
    mount_of,
    mount_points,
)
from tests.pull_helpers import REPO_ROOT, cli_process
from tests.servers.tmpfs import mounted_tmpfs

NO_CLUSTER = {"KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""}


@pytest.fixture
def read_only_fs(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs mounted read-only for one test."""
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        yield mount


def test_mount_points_are_this_process_mounts() -> None:
    mounts = mount_points()
    assert Path("/") in mounts
    assert Path("/proc") in mounts
    assert mount_of(Path("/proc/self"), mounts) == Path("/proc")


def test_mount_points_undo_the_kernels_escapes(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
        "30 22 8:2 / /mnt/my\\040models rw,relatime - ext4 /dev/sdb1 rw\n"
    )
    assert mount_points(info) == [Path("/"), Path("/mnt/my models")]
    assert mount_points(tmp_path / "missing") == []


def test_in_a_pod_a_root_on_the_containers_filesystem_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    with pytest.raises(RootUnusable) as caught:
        check_roots([root], in_pod=True, mounts=[Path("/")])
    assert caught.value.problem is RootProblem.NOT_MOUNTED
    assert str(caught.value) == (
        f"--models-root-dir {root} is not on a volume of this pod: files written there "
        f"would vanish with the container; mount a hostPath volume at {root} (chart: list "
        "it in agent.modelsRootDirs)"
    )
    # on a volume of the pod (its parent is a mount point), or outside a pod: fine
    check_roots([root], in_pod=True, mounts=[Path("/"), tmp_path.resolve()])
    check_roots([root], in_pod=False, mounts=[Path("/")])


@pytest.mark.parametrize("below", ["", "models", "deeper/models"])
def test_a_root_on_a_read_only_mount_is_refused(read_only_fs: Path, below: str) -> None:
    """The root itself, or a root still to be created under a read-only mount."""
    root = read_only_fs / below if below else read_only_fs
    with pytest.raises(RootUnusable) as caught:
        check_roots([root], in_pod=False, mounts=())
    assert caught.value.problem is RootProblem.READ_ONLY
    assert str(caught.value).startswith(f"--models-root-dir {root} is on a read-only mount")


def test_a_root_the_user_may_not_write_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    if os.geteuid() != 0:
        root.chmod(0o555)
        try:
            with pytest.raises(RootUnusable) as caught:
                check_roots([root], in_pod=False, mounts=())
            assert caught.value.problem is RootProblem.NOT_WRITABLE
        finally:
            root.chmod(0o755)
        return
    # root with every capability dropped, as the chart runs the agent, in a folder
    # another user owns: the permission bits apply
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux) to drop capabilities")
    os.chown(root, 65534, 65534)
    code = (
        "from pathlib import Path; from ome_agent.adapters.rootcheck import *\n"
        f"try: check_roots([Path({str(root)!r})], in_pod=False, mounts=())\n"
        "except RootUnusable as e: print(e.problem, e)"
    )
    out = subprocess.run(
        ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-c", code],
        capture_output=True, text=True, check=False, timeout=60, cwd=REPO_ROOT,
    )  # fmt: skip
    assert out.stdout.strip() == (
        f"not-writable --models-root-dir {root} is not writable by user 0: give that user "
        "write access to it, or run the agent as its owner"
    ), out.stderr


def test_run_refuses_a_read_only_root_in_one_line_before_any_work(
    read_only_fs: Path, tmp_path: Path
) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    done = cli_process(
        "run", "--standalone", "--manifests", str(manifests),
        "--state-file", str(tmp_path / "state.json"), "--node-name", "n",
        "--models-root-dir", str(read_only_fs / "models"), env=NO_CLUSTER,
    )  # fmt: skip
    assert done.code == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"error: --models-root-dir {read_only_fs / 'models'} is on a read-only mount: the "
        "agent writes the models there; mount it read-write (in a pod: remove readOnly "
        "from its volumeMount)"
    ]
    assert not (tmp_path / "state.json").exists()
