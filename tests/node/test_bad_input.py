"""Bad input through the chart's pods, on a real kubelet: a ``--models-root-dir`` with
no volume in the pod, a models root on a read-only volumeMount and an unknown flag in
the agent's arguments (and in the controller's) each end the container at start-up
with exit code 2 and ONE line that names the flag and the fix: the container's whole
log, and the termination message the kubelet records (the chart's
``FallbackToLogsOnError``). The crash loop is not silent: the pod shows
``CrashLoopBackOff`` with that message, every run ends the same way, and the kubelet's
back-off keeps the restarts few. The release is then put back and its pods are Ready
again.

Where it sits: the real-node tier (marked ``node``), on the chart ``release`` of
``conftest``; the start-up checks are ``ome_agent.adapters.rootcheck`` (unit tests in
tests/test_rootcheck.py).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.cluster.kube import wait_until
from tests.node.conftest import NAMESPACE, Release, pods
from tests.node.realnode import pod_ready

pytestmark = pytest.mark.node

UNMOUNTED = "/var/lib/ome-models-unmounted"


# each case changes the chart's values and gives the component whose container must
# end with the line, and the line
Case = Callable[[Release, dict[str, Any]], tuple[str, str]]


def not_mounted(release: Release, values: dict[str, Any]) -> tuple[str, str]:
    values["agent"]["extraArgs"] = [f"--models-root-dir={UNMOUNTED}"]
    return "node-agent", (
        f"error: --models-root-dir {UNMOUNTED} is not on a volume of this pod: files "
        f"written there would vanish with the container; mount a hostPath volume at "
        f"{UNMOUNTED} (chart: list it in agent.modelsRootDirs)"
    )


def read_only(release: Release, values: dict[str, Any]) -> tuple[str, str]:
    ro = release.models_root.parent / "read-only-models"
    agent = values["agent"]
    agent["extraVolumes"] = [
        {"name": "ro-models", "hostPath": {"path": str(ro), "type": "DirectoryOrCreate"}}
    ]
    agent["extraVolumeMounts"] = [{"name": "ro-models", "mountPath": str(ro), "readOnly": True}]
    agent["extraArgs"] = [f"--models-root-dir={ro}"]
    return "node-agent", (
        f"error: --models-root-dir {ro} is on a read-only mount: the agent writes the "
        "models there; mount it read-write (in a pod: remove readOnly from its volumeMount)"
    )


def unknown_flag(release: Release, values: dict[str, Any]) -> tuple[str, str]:
    values["agent"]["extraArgs"] = ["--no-such-flag"]
    return "node-agent", "error: No such option '--no-such-flag'. (see ome-agent run --help)"


def controller_unknown_flag(release: Release, values: dict[str, Any]) -> tuple[str, str]:
    values["controller"]["extraArgs"] = ["--no-such-flag"]
    return (
        "controller",
        "error: No such option '--no-such-flag'. (see ome-agent controller --help)",
    )


CASES: dict[str, Case] = {
    "root-not-mounted": not_mounted,
    "root-read-only": read_only,
    "unknown-flag": unknown_flag,
    "controller-unknown-flag": controller_unknown_flag,
}
CONTAINER = {"node-agent": "agent", "controller": "controller"}


def container_status(pod: Any) -> Any:
    """The status of the chart's one container in ``pod``."""
    name = CONTAINER[pod.metadata.labels["app.kubernetes.io/component"]]
    (status,) = [c for c in pod.status.container_statuses or [] if c.name == name]
    return status


def ended(status: Any) -> Any:
    """The container's last run that ended (the current one, or the one before)."""
    if status.state.terminated is not None:
        return status.state.terminated
    return status.last_state.terminated


def run_log(release: Release, pod: str, container: str) -> str:
    """The log of the container's last run: the current one while it is terminated,
    the previous one once the kubelet waits to start it again."""
    for extra in ((), ("--previous",)):
        out = release.node.kubectl(
            "-n", NAMESPACE, "logs", pod, "-c", container, *extra, check=False
        )
        if out.strip():
            return out
    return ""


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_no_silent_crash_loop(release: Release, case: str) -> None:
    node = release.node
    values = copy.deepcopy(release.values)
    component, line = CASES[case](release, values)
    old = {p.metadata.uid for p in pods(release, component)}

    t0 = time.monotonic()
    release.upgrade(values, wait=False)
    try:
        pod = wait_until(
            lambda: next(
                (
                    p
                    for p in pods(release, component)
                    if p.metadata.uid not in old
                    and p.status.container_statuses
                    and ended(container_status(p)) is not None
                ),
                None,
            ),
            timeout=180,
            interval=0.5,
            what=f"the {component} pod of the {case} release ended its first run",
        )
        said = time.monotonic() - t0
        first = ended(container_status(pod))
        assert first.exit_code == 2, first
        # the kubelet's record of why: the one line, nothing else
        assert first.message.strip().splitlines() == [line], first.message
        log = run_log(release, pod.metadata.name, CONTAINER[component])
        assert log.strip().splitlines() == [line], log

        # the loop that follows: every run ends the same way, the kubelet backs off and
        # says so; the pod never passes for Ready
        name = pod.metadata.name
        status = wait_until(
            lambda: (
                (
                    s := container_status(node.core().read_namespaced_pod(name, NAMESPACE))
                ).state.waiting
                is not None
                and s.state.waiting.reason == "CrashLoopBackOff"
                and s
            ),
            timeout=120,
            interval=1,
            what=f"{name} in CrashLoopBackOff",
        )
        watched = time.monotonic() - t0
        assert status.last_state.terminated.exit_code == 2
        assert status.last_state.terminated.message.strip().splitlines() == [line]
        assert not pod_ready(node.core().read_namespaced_pod(name, NAMESPACE))
        # the kubelet's back-off doubles from at most 10 s (1 s where the kubelet starts
        # lower): after T seconds, no more restarts than that doubling allows
        assert 1 <= status.restart_count <= 2 + math.log2(watched + 1), status.restart_count
        print(
            f"{case}: the one line after {said:.1f}s; CrashLoopBackOff after "
            f"{watched:.1f}s, {status.restart_count} restart(s)"
        )
    finally:
        t1 = time.monotonic()
        release.upgrade(release.values)
        print(f"{case}: release put back, {component} Ready in {time.monotonic() - t1:.1f}s")
    assert all(pod_ready(p) for p in pods(release, component))
