"""``ome-agent controller`` refuses bad input with one line naming the flag and exit
code 2, before it touches any cluster."""

from __future__ import annotations

import subprocess

import pytest

from tests.integration.agent_process import OME_AGENT


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--kubeconfig", "/no/such/kubeconfig"], "--kubeconfig /no/such/kubeconfig: no such file"),
        (["--lease-duration", "15"], "--lease-duration '15': not a duration"),
        (["--lease-duration", "500ms"], "--lease-duration 500ms: must be at least 1s"),
        (["--finalizer-timeout", "ten minutes"], "--finalizer-timeout 'ten minutes'"),
        (["--workers", "0"], "--workers 0: must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args: list[str], says: str) -> None:
    done = subprocess.run(
        [str(OME_AGENT), "controller", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert says in lines[0]
