"""Files checked by their size only say so, and ``--require-digest`` refuses them.

A plain http(s) URL gives no digest: a 27-byte error page served with status 200 is
"the file" as far as any check can tell. ``pull`` says "size only, unverified" in its
line and its ``--json``; the node agent in the manifest, the entry's
``config.unverified``, the state file and ``status``, and warns once per model;
``--require-digest`` (``pull`` and ``run``) fails instead, with a typed reason. The fault
server plays the origin; the CLI and the agent are the real ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from pathlib import Path

import pytest
from rich.console import Console

from ome_agent.api import ModelKey
from ome_agent.errors import FailureReason
from ome_agent.fleet.status import NodeEntry, NodeView, entry_key
from ome_agent.fleet.view import rows, table
from ome_agent.reconcile.manifest import FileRecord, Identity, Manifest
from ome_agent.reconcile.ports import NodeState
from ome_agent.reconcile.unverified import describe
from ome_agent.transfer.settings import TransferSettings
from tests.pull_helpers import Run, cli_process, pull_cli
from tests.servers.fault_server import FaultServer
from tests.test_reconcile_core import MemoryReporter, aio, model, running, until

PAGE = b"<html>Service moved</html>\n"  # 27 bytes: what a portal answers with 200
WARNING = "model files checked by their size only"


# ---------------------------------------------------------------- pull
def test_pull_without_a_digest_says_size_only(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", PAGE)
    as_json = pull_cli(url, f"{tmp_path}/a/", "--json")
    assert as_json.code == 0, as_json.stderr
    [f] = as_json.json()["files"]
    assert f["unverified"] == "the server gave no digest: size only, unverified"
    line = pull_cli(url, f"{tmp_path}/b/")
    assert line.code == 0, line.stderr
    assert "0/1 verified by digest, 1 size only, unverified" in line.stdout


def test_pull_with_a_digest_is_not_size_only(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", PAGE)
    sha = hashlib.sha256(PAGE).hexdigest()
    run = pull_cli(url, f"{tmp_path}/", "--sha256", sha, "--require-digest", "--json")
    assert run.code == 0, run.stderr
    [f] = run.json()["files"]
    assert f["unverified"] is None
    assert "sha256" in f["verified"]


def test_require_digest_fails_before_any_request(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", PAGE)
    run = pull_cli(url, f"{tmp_path}/", "--require-digest")
    assert run.code == 2
    [line] = run.stderr.splitlines()
    assert line.startswith("error: model.bin: the server gave no digest")
    assert line.endswith("give --sha256 or --md5, or drop --require-digest")
    assert fault_server.requests_for("/files/model.bin") == []
    assert not (tmp_path / "model.bin").exists()


def test_require_digest_contradicts_no_verify(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", PAGE)
    run = pull_cli(url, f"{tmp_path}/", "--require-digest", "--no-verify")
    assert run.code == 2
    assert "--require-digest and --no-verify" in run.stderr
    assert fault_server.requests_for("/files/model.bin") == []


# ---------------------------------------------------------------- the node agent
def _standalone(tmp_path: Path, url: str, *extra: str) -> tuple[Run, Path]:
    manifests, state = tmp_path / "manifests", tmp_path / "state.json"
    manifests.mkdir()
    (manifests / "web.json").write_text(
        json.dumps(
            {
                "kind": "ClusterBaseModel",
                "metadata": {"name": "web"},
                "spec": {"storage": {"storageUri": url, "path": "web"}},
            }
        )
    )
    run = cli_process(
        "run", "--standalone", "--once", "--manifests", str(manifests),
        "--models-root-dir", str(tmp_path / "models"), "--state-file", str(state),
        "--node-name", "box", *extra, timeout=90,
    )  # fmt: skip
    return run, state


def test_agent_reports_size_only_and_warns_once(fault_server: FaultServer, tmp_path: Path) -> None:
    run, state = _standalone(tmp_path, fault_server.add("/w/model.bin", PAGE))
    assert run.code == 0, run.stderr
    record = json.loads(state.read_text())["models"]["ClusterBaseModel/web"]
    assert record["state"] == "Ready"
    note = "size only, unverified: 1 of 1 files (model.bin)"
    assert record["unverified"] == note
    assert json.loads(record["entry"])["config"]["unverified"] == note  # schema-checked
    [manifest] = (tmp_path / "models" / ".ome-agent" / "manifests").glob("*.json")
    [f] = json.loads(manifest.read_text())["files"]
    assert f["digests"]["unverified"] == "the server gave no digest: size only, unverified"
    warnings = [line for line in run.stderr.splitlines() if WARNING in line]
    assert len(warnings) == 1, run.stderr
    assert "model=ClusterBaseModel/web" in warnings[0]
    assert "size_only_files=1" in warnings[0]

    shown = cli_process("status", "--state-file", str(state))
    assert shown.code == 0, shown.stderr
    assert note in shown.stdout


def test_agent_require_digest_fails_the_model(fault_server: FaultServer, tmp_path: Path) -> None:
    run, state = _standalone(tmp_path, fault_server.add("/w/model.bin", PAGE), "--require-digest")
    assert run.code == 1, run.stderr
    record = json.loads(state.read_text())["models"]["ClusterBaseModel/web"]
    assert record["state"] == "Failed"
    assert record["message"].startswith("model.bin: the server gave no digest")
    assert "without --require-digest" in record["message"]
    assert json.loads(record["entry"])["message"] == record["message"]
    assert fault_server.requests_for("/w/model.bin") == []
    assert not (tmp_path / "models" / "web").exists()


@aio
async def test_agent_require_digest_reason_is_typed_and_not_retried(
    fault_server: FaultServer, root: Path
) -> None:
    url = fault_server.add("/w/model.bin", PAGE)
    reporter = MemoryReporter()
    strict = TransferSettings(require_digest=True)
    async with running(root, reporter, model("m", url, path="m"), transfer=strict):
        await until(lambda: reporter.state("m") is NodeState.FAILED)
        await asyncio.sleep(1.0)  # retry_base 0.3: a retry would have come by now
    report = reporter.report("m")
    assert report.reason is FailureReason.NO_DIGEST
    assert FailureReason.NO_DIGEST.category == "verify"
    assert sum(r.state is NodeState.FAILED for r in reporter.history) == 1
    assert fault_server.requests_for("/w/model.bin") == []


@aio
async def test_one_warning_per_model_across_reconciles(
    fault_server: FaultServer, root: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = fault_server.add("/w/model.bin", PAGE)
    reporter = MemoryReporter()
    caplog.set_level(logging.WARNING, logger="ome_agent.reconcile")
    async with running(root, reporter, model("m", url, path="m"), verify_interval=0.1):
        await until(lambda: reporter.state("m") is NodeState.READY)
        await asyncio.sleep(1.0)  # re-verified from disk about ten times
    ready = [r for r in reporter.history if r.state is NodeState.READY]
    assert len(ready) > 2, "the model was not reconciled again"
    assert all(r.config and r.config["unverified"] for r in ready)
    assert sum(WARNING in r.getMessage() for r in caplog.records) == 1


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "models"
    r.mkdir()
    return r


def _manifest(*files: FileRecord) -> Manifest:
    identity = Identity("https://h/model.bin", None, "/models/m")
    return Manifest(ModelKey("ClusterBaseModel", None, "m"), "u", 1, identity, None, list(files))


def test_which_recorded_files_are_size_only() -> None:
    checked = FileRecord("config.json", 2, 0, {"git-sha1": "a" * 40}, ["size", "git-sha1"])
    reason = FileRecord("a.bin", 2, 0, {"sha256": "b" * 64, "unverified": "x"}, ["size"])
    # written before reasons were recorded: a digest of record, nothing compared
    older = FileRecord("b.bin", 2, 0, {"sha256": "c" * 64}, [])
    copied = FileRecord("c.bin", 2, 0, {}, ["size"])  # a local copy: not a download
    assert describe(_manifest(checked, copied)) is None
    assert describe(_manifest(checked, reason, older, copied)) == (
        "size only, unverified: 2 of 4 files (a.bin, b.bin)"
    )


def test_cluster_status_shows_size_only_per_node() -> None:
    note = "size only, unverified: 1 of 1 files (model.bin)"
    resource = model("m", "https://h/model.bin", kind="ClusterBaseModel")
    key = entry_key(resource)
    entries = {
        "a": {key: NodeEntry("a", "Ready", None, None, {"unverified": note})},
        "b": {key: NodeEntry("b", "Ready", None, None, {"modelType": "llama"})},
    }
    nodes = {n: NodeView(n, {}, True) for n in entries}
    [row] = rows([resource], entries, nodes)
    assert [n["unverified"] for n in row["nodes"]] == [note, None]
    out = Console(width=300, record=True)
    out.print(table([row]))
    assert note in out.export_text()
