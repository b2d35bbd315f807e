"""Every command says what is wrong in one ``error:`` line, and says it fast: real
``ome-agent`` processes with files that are not what they claim to be."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests.pull_helpers import REPO_ROOT, Run, cli_process

NO_CLUSTER = {"KUBECONFIG": "", "KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""}


def one_error_line(done: Run) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: "), done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("just a string\n", "not a kubeconfig (a YAML str, not a mapping)"),
        ("clusters: {a: 1}\n", "clusters is not a list"),
        ("clusters: [{name: c}]\ncontexts: [{name: x}]\n", "no current-context"),
        ("clusters: [a\n", "not YAML at line 2, column 1"),
    ],
)
def test_status_names_what_is_wrong_with_the_kubeconfig(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "config"
    path.write_text(text)
    done = cli_process("status", "--kubeconfig", str(path))
    assert done.code == 2
    assert f"--kubeconfig {path}: {problem}" in one_error_line(done)


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ({"models": {"BaseModel/a/b": "Ready"}}, "models.BaseModel/a/b is not a model record"),
        ({"models": {"x": {"state": 3}}}, "models.x is not a model record"),
    ],
)
def test_status_names_what_is_wrong_with_the_state_file(
    tmp_path: Path, doc: object, problem: str
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(doc))
    for extra in ((), ("--json",)):
        done = cli_process("status", "--state-file", str(path), *extra)
        assert done.code == 2
        assert problem in one_error_line(done)


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("controller",),
        ("run", "--models-root-dir", "{tmp}/models", "--node-name", "n"),
    ],
)
def test_no_cluster_is_said_before_the_client_is_imported(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """The Kubernetes client takes seconds to import on a small machine: without a
    cluster configuration it must never be imported."""
    import subprocess

    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "from ome_agent.cli import main; main()",
         *argv],
        capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
        env={**os.environ, **NO_CLUSTER, "HOME": str(tmp_path)},
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    said = [line for line in proc.stderr.splitlines() if not line.startswith("import time:")]
    assert len(said) == 1, proc.stderr
    assert "no cluster configuration" in said[0]
    assert "kubernetes_asyncio" not in proc.stderr
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("bench",), "Missing argument 'SOURCE'"),
        (("bench", "s3://bucket/key"), "presigned"),
        (("bench", "http://127.0.0.1:9/f", "--connections", "many"), "--connections"),
        (("bench", "http://127.0.0.1:9/f", "--dest-dir", "/nonexistent/d"), "--dest-dir"),
        (("pull",), "Missing argument"),
        (("run", "--no-such-flag"), "No such option '--no-such-flag'. (see ome-agent run --help)"),
        (("inspect",), "Missing argument"),
    ],
)
def test_usage_errors_are_one_line(args: tuple[str, ...], expected: str) -> None:
    done = cli_process(*args)
    assert done.code == 2, done.stderr
    assert expected in one_error_line(done)


def test_bench_help_says_which_sources_it_takes() -> None:
    shown = cli_process("bench", "--help")
    assert shown.code == 0
    assert "Object stores (s3://, gs://, az://, oci://)" in " ".join(shown.stdout.split())
