"""One bad manifest never stops the others: the real ``ome-agent run --standalone
--once`` process over a folder holding one good model (a local folder, copied) and
hostile files beside it. Each bad input is one line naming the file and the field or
the limit; the good model is Ready; the run exits 1; nothing is a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ome_agent.adapters.standalone.documents import (
    MAX_DEPTH,
    MAX_DOCUMENTS,
    MAX_FILE_BYTES,
    MAX_NODES,
)
from tests.data import alias_bomb
from tests.pull_helpers import REPO_ROOT, Run, cli_process

GOOD = "ClusterBaseModel/good"


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    out = {
        "manifests": tmp_path / "manifests",
        "models": tmp_path / "models",
        "sources": tmp_path / "sources",  # --local-source-dir
        "source": tmp_path / "sources" / "good",
        "state": tmp_path / "state.json",
    }
    out["manifests"].mkdir()
    out["source"].mkdir(parents=True)
    (out["source"] / "weights.bin").write_bytes(b"w" * 4096)
    good = {
        "kind": "ClusterBaseModel",
        "metadata": {"name": "good"},
        "spec": {"storage": {"storageUri": str(out["source"])}},
    }
    (out["manifests"] / "good.json").write_text(json.dumps(good))
    return out


def run_once(node: dict[str, Path], *extra: str, timeout: float = 120) -> Run:
    return cli_process(
        "run", "--standalone", "--once", "--manifests", str(node["manifests"]),
        "--models-root-dir", str(node["models"]), "--local-source-dir", str(node["sources"]),
        "--state-file", str(node["state"]), "--node-name", "box", *extra,
        timeout=timeout,
    )  # fmt: skip


def models(node: dict[str, Path]) -> dict[str, dict[str, object]]:
    return dict(json.loads(node["state"].read_text())["models"])


def rejected_lines(done: Run, name: str) -> list[str]:
    return [line for line in done.stderr.splitlines() if name in line and "ERROR" in line]


def assert_good_ready_and_one_line(done: Run, node: dict[str, Path], *names: str) -> None:
    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "unexpected" not in done.stderr, done.stderr
    assert "\x00" not in done.stderr
    for name in names:
        assert len(rejected_lines(done, name)) == 1, (name, done.stderr)
    assert models(node)[GOOD]["state"] == "Ready"
    assert (node["models"] / "good" / "weights.bin").read_bytes() == b"w" * 4096


def test_deep_nesting_yaml_and_json(node: dict[str, Path]) -> None:
    depth = 100_000
    (node["manifests"] / "deep.yaml").write_text(
        "kind: ClusterBaseModel\nmetadata: {name: deep}\nspec: {x: " + "[" * depth + "]" * depth
        + "}\n"
    )  # fmt: skip
    (node["manifests"] / "deep.json").write_text("[" * depth + "]" * depth)
    block = "".join("  " * i + f"k{i}:\n" for i in range(200))  # block style: no flow limit
    (node["manifests"] / "block.yaml").write_text(block)
    done = run_once(node)
    assert_good_ready_and_one_line(done, node, "deep.yaml", "deep.json", "block.yaml")
    (yaml_line,) = rejected_lines(done, "deep.yaml")
    assert "exceeded maximum nesting depth" in yaml_line  # libyaml's own limit on flows
    assert "line 3, column" in yaml_line  # where the limit was passed
    (block_line,) = rejected_lines(done, "block.yaml")
    assert f"line {MAX_DEPTH}, column" in block_line
    assert f"nested deeper than {MAX_DEPTH} levels" in block_line
    (json_line,) = rejected_lines(done, "deep.json")
    assert f"nested deeper than {MAX_DEPTH} levels" in json_line


def test_nul_bytes_name_the_field(node: dict[str, Path]) -> None:
    (node["manifests"] / "nul-name.json").write_text(
        json.dumps({"kind": "ClusterBaseModel", "metadata": {"name": "a\x00b"}})
    )
    (node["manifests"] / "nul-path.yaml").write_text(
        "kind: ClusterBaseModel\nmetadata: {name: p}\nspec:\n  storage:\n"
        '    storageUri: hf://org/model\n    path: "models/x\\0y"\n'
    )
    done = run_once(node)
    assert_good_ready_and_one_line(done, node, "nul-name.json", "nul-path.yaml")
    assert "metadata.name holds a NUL byte" in rejected_lines(done, "nul-name.json")[0]
    assert "spec.storage.path holds a NUL byte" in rejected_lines(done, "nul-path.yaml")[0]


def test_alias_bomb_is_refused_before_it_expands(node: dict[str, Path]) -> None:
    bomb = alias_bomb("hf://org/model")
    assert len(bomb.encode()) < 700  # 9^9 = 387 million strings once expanded
    (node["manifests"] / "bomb.yaml").write_text(bomb)
    done = run_once(node, timeout=60)  # it took minutes and gigabytes
    assert_good_ready_and_one_line(done, node, "bomb.yaml")
    assert f"more than {MAX_NODES} nodes once its aliases are expanded" in done.stderr


def test_huge_binary_and_secret_files_are_refused_from_their_size(node: dict[str, Path]) -> None:
    with (node["manifests"] / "blob.yaml").open("wb") as f:
        f.truncate(1024**3)  # 1 GiB, sparse: costs no disk
    secret = "kind: Secret\nmetadata: {name: s}\nstringData:\n  token: " + "x" * (50 * 10**6)
    (node["manifests"] / "secret.yaml").write_text(secret + "\n")
    (node["manifests"] / "latin1.yaml").write_bytes(b"kind: ClusterBaseModel # caf\xe9\n")
    done = run_once(node, timeout=60)
    assert_good_ready_and_one_line(done, node, "blob.yaml", "secret.yaml", "latin1.yaml")
    assert f"{1024**3} bytes, more than the {MAX_FILE_BYTES}" in done.stderr
    assert "not UTF-8 text (byte 28)" in done.stderr
    assert "x" * 100 not in done.stderr


def test_unusable_gt_bounds_are_one_line_each(node: dict[str, Path]) -> None:
    bounds = {"abc": ["abc"], "huge": ["1e400"], "digits": ["9" * 100_000], "two": ["1", "2"]}
    for name, values in bounds.items():
        expression = {"key": "gpu-count", "operator": "Gt", "values": values}
        affinity = {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [expression]}]
            }
        }
        doc = {
            "kind": "ClusterBaseModel",
            "metadata": {"name": name},
            "spec": {"storage": {"storageUri": "hf://org/m", "nodeAffinity": affinity}},
        }
        (node["manifests"] / f"gt-{name}.json").write_text(json.dumps(doc))
    done = run_once(node, "--node-labels", "gpu-count=8")
    assert_good_ready_and_one_line(done, node, *(f"gt-{n}.json" for n in bounds))
    field = (
        "spec.storage.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
        ".nodeSelectorTerms[0].matchExpressions[0]"
    )
    assert all(field in rejected_lines(done, f"gt-{n}.json")[0] for n in bounds)
    assert "'abc' is not an integer or quantity" in done.stderr
    assert "'1e400' is out of range" in done.stderr
    assert "(100000 chars)" in done.stderr
    assert "Gt needs exactly one value" in done.stderr
    assert "9" * 1000 not in done.stderr


def test_long_directory_name_names_the_field(node: dict[str, Path]) -> None:
    long = "d" * 300
    doc = {
        "kind": "ClusterBaseModel",
        "metadata": {"name": "long"},
        "spec": {"storage": {"storageUri": str(node["source"]), "path": f"models/{long}"}},
    }
    (node["manifests"] / "long.json").write_text(json.dumps(doc))
    done = run_once(node)
    assert done.code == 1
    assert "Traceback" not in done.stderr
    record = models(node)["ClusterBaseModel/long"]
    assert record["state"] == "Failed"
    message = str(record["message"])
    assert message.startswith("spec.storage.path 'models/dddd")
    assert "has a segment of 300 bytes" in message
    assert models(node)[GOOD]["state"] == "Ready"


def test_once_fails_when_a_removal_is_refused(node: dict[str, Path], tmp_path: Path) -> None:
    """A model recorded under a root the agent no longer has cannot be removed: that
    is logged as an error, so ``--once`` must not exit 0."""
    other_root = tmp_path / "other-root"
    doc = {
        "kind": "ClusterBaseModel",
        "metadata": {"name": "elsewhere"},
        "spec": {"storage": {"storageUri": str(node["source"]), "path": f"{other_root}/m"}},
    }
    (node["manifests"] / "elsewhere.json").write_text(json.dumps(doc))
    first = run_once(node, "--models-root-dir", str(other_root))
    assert first.code == 0, first.stderr
    (node["manifests"] / "elsewhere.json").unlink()
    second = run_once(node)  # without other-root: the files are outside every root
    assert "not removed" in second.stderr
    assert second.code == 1, second.stderr
    assert (other_root / "m" / "weights.bin").exists()


def test_state_file_records_rejections_when_every_manifest_is_rejected(
    node: dict[str, Path],
) -> None:
    (node["manifests"] / "good.json").unlink()
    (node["manifests"] / "broken.yaml").write_text("kind: ClusterBaseModel\nmetadata: [\n")
    done = run_once(node)
    assert done.code == 1
    state = json.loads(node["state"].read_text())
    assert state["models"] == {}
    (line,) = state["rejected"]
    assert "broken.yaml: cannot read: line 3, column 1" in line
    shown = cli_process("status", "--state-file", str(node["state"]))
    assert shown.code == 0, shown.stderr
    assert "run `ome-agent run --standalone` first" not in shown.stderr
    assert "manifest rejected: " in shown.stdout
    assert "broken.yaml: cannot read: line 3, column 1" in shown.stdout


def test_no_root_is_created_when_no_model_uses_it(node: dict[str, Path]) -> None:
    (node["manifests"] / "good.json").unlink()
    doc = {"kind": "ClusterBaseModel", "metadata": {"name": "x"},
           "spec": {"storage": {"storageUri": "weird://x/y"}}}  # fmt: skip
    (node["manifests"] / "bad.json").write_text(json.dumps(doc))
    root = node["models"] / "deeper" / "root"
    done = run_once(node, "--models-root-dir", str(root))
    assert done.code == 1
    assert models(node)["ClusterBaseModel/x"]["state"] == "Failed"
    assert not node["models"].exists()


def test_secret_values_are_capped(node: dict[str, Path]) -> None:
    big = "y" * (2 * 1024 * 1024)
    secret = {"kind": "Secret", "metadata": {"name": "big"}, "stringData": {"token": big}}
    (node["manifests"] / "secret.json").write_text(json.dumps(secret))
    done = run_once(node)
    assert_good_ready_and_one_line(done, node, "secret.json")
    assert "Secret default/big: stringData.token: the Secret holds more than" in done.stderr


def test_many_documents_are_capped(node: dict[str, Path]) -> None:
    (node["manifests"] / "many.yaml").write_text("---\n{}\n" * (MAX_DOCUMENTS + 1))
    done = run_once(node)
    assert_good_ready_and_one_line(done, node, "many.yaml")
    assert f"more than {MAX_DOCUMENTS} documents (the limit, --max-documents)" in done.stderr


def test_the_operator_raises_the_caps_with_flags(node: dict[str, Path]) -> None:
    """--max-documents and --max-manifest-bytes move the caps; the refusal names the
    flag to raise."""
    (node["manifests"] / "many.yaml").write_text("---\n{}\n" * 30)
    done = run_once(node, "--max-documents", "20")
    assert_good_ready_and_one_line(done, node, "many.yaml")
    fix = "split the file, or raise --max-documents"
    assert f"more than 20 documents (the limit, --max-documents): {fix}" in done.stderr
    done = run_once(node, "--max-manifest-bytes", "100")
    assert done.code == 1
    cap = "more than the 100 a manifest file may hold (the limit, --max-manifest-bytes)"
    assert cap in done.stderr
    done = run_once(node, "--max-documents", "40")  # read: each empty document refused
    assert "--max-documents" not in done.stderr
    assert "(document 30): kind: None is not one of" in done.stderr


def test_agent_keeps_polling_after_a_deep_manifest_appears(node: dict[str, Path]) -> None:
    """The running agent used to exit 12 s after such a file appeared."""
    args = [
        "run", "--standalone", "--manifests", str(node["manifests"]),
        "--models-root-dir", str(node["models"]), "--local-source-dir", str(node["sources"]),
        "--state-file", str(node["state"]), "--node-name", "box",
    ]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ome_agent.cli import main; main()", *args],
        cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not node["state"].exists():
            time.sleep(0.1)
        (node["manifests"] / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
        time.sleep(6)  # three polls
        assert proc.poll() is None, "the agent exited"
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "deep.json" in err
    assert "RecursionError" not in err
