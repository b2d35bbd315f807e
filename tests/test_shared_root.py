"""Two agents on one models root: the second refuses to start naming the first, the
lock goes with its holder (however it ends), state files are written under unique
temporary names, and an agent never removes a model another agent's manifest owns.
Real ``ome-agent run --standalone`` processes; local-folder models (no network)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ome_agent.durable import NAME_MAX, temporary_name, write_json
from tests.pull_helpers import REPO_ROOT, Run, cli_process


@pytest.fixture
def box(tmp_path: Path) -> dict[str, Path]:
    out = {"root": tmp_path / "models", "sources": tmp_path / "sources"}
    (out["sources"] / "weights").mkdir(parents=True)
    (out["sources"] / "weights" / "w.bin").write_bytes(b"w" * 1024)
    for agent in ("a", "b"):
        out[agent] = tmp_path / f"manifests-{agent}"
        out[agent].mkdir()
    return out


def add_model(manifests: Path, name: str, source: Path) -> None:
    doc = {"kind": "ClusterBaseModel", "metadata": {"name": name},
           "spec": {"storage": {"storageUri": str(source)}}}  # fmt: skip
    (manifests / f"{name}.json").write_text(json.dumps(doc))


def args(box: dict[str, Path], agent: str) -> list[str]:
    return [
        "run", "--standalone", "--manifests", str(box[agent]),
        "--models-root-dir", str(box["root"]), "--local-source-dir", str(box["sources"]),
        "--state-file", str(box[agent].parent / f"state-{agent}.json"), "--node-name", "n",
    ]  # fmt: skip


def once(box: dict[str, Path], agent: str) -> Run:
    return cli_process(*args(box, agent), "--once")


def start(box: dict[str, Path], agent: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ome_agent.cli import main; main()", *args(box, agent)],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    state = box[agent].parent / f"state-{agent}.json"
    deadline = time.monotonic() + 60
    try:
        while not state.exists():
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the agent never wrote its state"
            time.sleep(0.1)
    except BaseException:
        proc.kill()  # never leave it running
        proc.communicate()
        raise
    return proc


def test_second_agent_refuses_naming_the_holder_until_it_exits(box: dict[str, Path]) -> None:
    add_model(box["a"], "m", box["sources"] / "weights")
    first = start(box, "a")
    try:
        second = once(box, "b")
        assert second.code == 2, second.stderr
        (line,) = second.stderr.strip().splitlines()
        assert line.startswith(f"error: --models-root-dir {box['root']} is in use by ")
        assert f"process {first.pid} (" in line
        assert "one agent per models root" in line
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0
    assert once(box, "b").code == 0  # released on exit


def test_lock_of_a_killed_agent_is_taken_over(box: dict[str, Path]) -> None:
    first = start(box, "a")
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=30)
    add_model(box["b"], "m", box["sources"] / "weights")
    after = once(box, "b")
    assert after.code == 0, after.stderr
    assert (box["root"] / "m" / "w.bin").exists()


def test_an_agent_never_removes_models_another_agent_owns(box: dict[str, Path]) -> None:
    """Agent a downloads its model and stops; agent b, with its own manifests folder,
    runs on the same root: a's model is not "removed while the agent was down"."""
    add_model(box["a"], "mine", box["sources"] / "weights")
    assert once(box, "a").code == 0
    add_model(box["b"], "theirs", box["sources"] / "weights")
    run_b = once(box, "b")
    assert run_b.code == 0, run_b.stderr
    assert (box["root"] / "mine" / "w.bin").read_bytes() == b"w" * 1024
    assert "kept: recorded by another agent" in run_b.stderr
    # a still owns it and still removes it when its own manifest drops it
    (box["a"] / "mine.json").unlink()
    assert once(box, "a").code == 0
    assert not (box["root"] / "mine").exists()
    assert (box["root"] / "theirs" / "w.bin").exists()


def test_concurrent_writers_of_one_file_never_collide(tmp_path: Path) -> None:
    """The fixed temporary name made two writers rename each other's file away."""
    target = tmp_path / "state.json"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(200):
                write_json(target, {"writer": n, "i": i})
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert json.loads(target.read_text())["i"] == 199
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary left


def test_temporary_name_fits_a_path_component(tmp_path: Path) -> None:
    long = tmp_path / ("é" * 120 + ".json")  # 245 bytes
    tmp = temporary_name(long)
    assert len(os.fsencode(tmp.name)) <= NAME_MAX
    assert tmp.parent == long.parent
    assert tmp.name.endswith(".tmp")
    assert f".{os.getpid()}." in tmp.name
    write_json(long, {"ok": True})
    assert json.loads(long.read_text()) == {"ok": True}
