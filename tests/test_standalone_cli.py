"""Standalone mode end to end: the real ``ome-agent run --standalone`` and
``ome-agent status`` processes against the local Hub and the fault server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.data import tiny_config
from tests.pull_helpers import REPO_ROOT, Run, cli_process
from tests.servers.fault_server import FaultServer
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

MiB = 1024 * 1024
CONFIG = json.dumps(
    tiny_config("Qwen2ForCausalLM", "qwen2", num_key_value_heads=2, max_position_embeddings=4096)
).encode()
CLI = [sys.executable, "-c", "from ome_agent.cli import main; main()"]


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> Run:
    return cli_process(*args, env=env, timeout=timeout)


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    out = {"manifests": tmp_path / "manifests", "models": tmp_path / "models"}
    out["manifests"].mkdir()
    out["state"] = tmp_path / "state.json"
    return out


def run_args(dirs: dict[str, Path], *extra: str) -> list[str]:
    return [
        "run", "--standalone", "--manifests", str(dirs["manifests"]),
        "--models-root-dir", str(dirs["models"]), "--state-file", str(dirs["state"]),
        "--node-labels", "gpu=a100,zone=z1", "--node-name", "box", "--progress-interval", "0.2",
        *extra,
    ]  # fmt: skip


def hub_env(hub: HubServer) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.endpoint, "HF_TOKEN": HF_TEST_TOKEN, "HF_HUB_DISABLE_TELEMETRY": "1"}


def simple(name: str, uri: str) -> str:
    return json.dumps(
        {
            "kind": "ClusterBaseModel",
            "metadata": {"name": name},
            "spec": {"storage": {"storageUri": uri}},
        }
    )


def write(path: Path, text: str) -> None:
    path.write_text(text)


MODELS = """
apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata:
  name: tiny-qwen
spec:
  vendor: qwen
  storage:
    storageUri: hf://org/tiny-qwen
    path: tiny-qwen
    nodeSelector:
      gpu: a100
---
apiVersion: ome.io/v1beta1
kind: BaseModel
metadata:
  name: other-zone
  namespace: team
spec:
  storage:
    storageUri: hf://org/tiny-qwen
    nodeSelector:
      zone: z2
"""


def test_run_once_then_status(hf_hub: HubServer, dirs: dict[str, Path]) -> None:
    hf_hub.add_repo(
        "org/tiny-qwen", {"config.json": CONFIG, "model.safetensors": os.urandom(MiB)},
        private=True,
    )  # fmt: skip
    write(dirs["manifests"] / "models.yaml", MODELS)
    done = cli(*run_args(dirs, "--once"), env=hub_env(hf_hub))
    assert done.code == 0, done.stderr
    assert HF_TEST_TOKEN not in done.stderr
    state = json.loads(dirs["state"].read_text())
    assert set(state["models"]) == {"ClusterBaseModel/tiny-qwen"}, "the other zone is not ours"
    entry = state["models"]["ClusterBaseModel/tiny-qwen"]
    assert entry["state"] == "Ready"
    assert entry["path"] == str(dirs["models"] / "tiny-qwen")
    assert entry["sizeBytes"] == MiB + len(CONFIG)
    wire = json.loads(entry["entry"])
    assert wire["name"] == "tiny-qwen"
    assert wire["status"] == "Ready"
    assert wire["config"]["artifact"]["parentPath"] == {}  # OME's map: reuses no model
    assert wire["path"] == entry["path"]
    assert HF_TEST_TOKEN not in dirs["state"].read_text()

    table = cli("status", "--state-file", str(dirs["state"]))
    assert table.code == 0, table.stderr
    assert "ClusterBaseModel/tiny-qwen" in table.stdout
    assert "Ready" in table.stdout
    as_json = cli("status", "--state-file", str(dirs["state"]), "--json")
    assert json.loads(as_json.stdout)["models"]["ClusterBaseModel/tiny-qwen"]["state"] == "Ready"

    # a second run finds everything on disk: no request reaches the Hub or its CDN
    hf_hub.clear_requests()
    again = cli(*run_args(dirs, "--once"), env=hub_env(hf_hub))
    assert again.code == 0, again.stderr
    assert hf_hub.requests("hub") == []
    assert hf_hub.requests("cdn") == []


def test_bad_manifest_and_unsupported_scheme_exit_non_zero(
    fault_server: FaultServer, dirs: dict[str, Path]
) -> None:
    url = fault_server.add("/w/model.bin", os.urandom(MiB))
    write(
        dirs["manifests"] / "good.yaml",
        simple("web", url),
    )
    write(
        dirs["manifests"] / "typo.yaml",
        "kind: ClusterBaseModel\nmetadata: {name: t}\nspec: {disabled: maybe}\n",
    )
    write(
        dirs["manifests"] / "odd.json",
        json.dumps({"kind": "ClusterBaseModel", "metadata": {"name": "o"},
                    "spec": {"storage": {"storageUri": "weird://x/y"}}}),
    )  # fmt: skip
    done = cli(*run_args(dirs, "--once"))
    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "typo.yaml" in done.stderr
    assert "spec.disabled" in done.stderr
    state = json.loads(dirs["state"].read_text())["models"]
    assert state["ClusterBaseModel/web"]["state"] == "Ready"
    assert state["ClusterBaseModel/o"]["state"] == "Failed"
    assert "weird:// is not a storage scheme" in state["ClusterBaseModel/o"]["message"]
    shown = cli("status", "--state-file", str(dirs["state"]))
    assert "weird:// is" in shown.stdout
    assert "[@revision]" in shown.stdout  # messages are shown verbatim, not as markup


def test_usage_errors_are_one_line(dirs: dict[str, Path]) -> None:
    bad_labels = cli(*run_args(dirs, "--once")[:-3], "--node-labels", "novalue", "--once")
    assert bad_labels.code == 2
    assert "--node-labels" in bad_labels.stderr
    no_state = cli("status", "--state-file", str(dirs["state"]))
    assert no_state.code == 2
    assert "run `ome-agent run --standalone` first" in no_state.stderr
    # no --state-file and no cluster to read: one line pointing at both
    cluster = cli("status", env={"HOME": str(dirs["models"]), "KUBECONFIG": ""})
    assert cluster.code == 2
    assert "no cluster configuration" in cluster.stderr
    assert "--state-file" in cluster.stderr


def _wait_state(path: Path, check: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = json.loads(path.read_text())
            if check(data["models"]):
                return dict(data["models"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"state not reached: {path.read_text() if path.exists() else None}")


def test_polling_picks_up_new_and_removed_manifests(
    fault_server: FaultServer, dirs: dict[str, Path]
) -> None:
    url = fault_server.add("/p/model.bin", os.urandom(MiB))
    proc = subprocess.Popen(
        [*CLI, *run_args(dirs)], cwd=REPO_ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(0.5)
        write(
            dirs["manifests"] / "p.yaml",
            simple("p", url),
        )
        _wait_state(
            dirs["state"], lambda m: m.get("ClusterBaseModel/p", {}).get("state") == "Ready"
        )
        assert (dirs["models"] / "p" / "model.bin").exists()
        # a typo while editing keeps the model
        write(dirs["manifests"] / "p.yaml", "kind: ClusterBaseModel\nmetadata: [\n")
        time.sleep(3)
        assert (dirs["models"] / "p" / "model.bin").exists()
        (dirs["manifests"] / "p.yaml").unlink()
        _wait_state(dirs["state"], lambda m: "ClusterBaseModel/p" not in m)
        # the report is withdrawn first (nothing may use files being removed), then
        # the files go: wait for them, do not race the removal
        deadline = time.monotonic() + 20
        while (dirs["models"] / "p").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (dirs["models"] / "p").exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "p.yaml" in err  # the typo was reported


def test_longest_names_are_ready_and_a_name_kubernetes_refuses_is_one_line(
    fault_server: FaultServer, dirs: dict[str, Path]
) -> None:
    url = fault_server.add("/long/model.bin", os.urandom(MiB))
    cbm, ns, bm = "c" * 252 + "1", "n" * 63, "b" * 252 + "2"
    write(dirs["manifests"] / "long.json", simple(cbm, url))
    namespaced = {"kind": "BaseModel", "metadata": {"name": bm, "namespace": ns},
                  "spec": {"storage": {"storageUri": url}}}  # fmt: skip
    write(dirs["manifests"] / "namespaced.json", json.dumps(namespaced))
    write(dirs["manifests"] / "bad.json", simple("../Escape", url))
    done = cli(*run_args(dirs, "--once"))
    assert done.code == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "too long" not in done.stderr
    assert "bad.json" in done.stderr
    assert "metadata.name must be a DNS subdomain" in done.stderr
    state = json.loads(dirs["state"].read_text())["models"]
    assert set(state) == {f"ClusterBaseModel/{cbm}", f"BaseModel/{ns}/{bm}"}
    assert all(m["state"] == "Ready" for m in state.values()), state
    created = [n for _d, ds, fs in os.walk(dirs["models"]) for n in ds + fs]
    assert max(len(n) for n in created) <= 215
    assert not (dirs["models"].parent / "Escape").exists()
    # a second run confirms both from disk: their manifests are found under the short names
    fault_server.requests.clear()
    again = cli(*run_args(dirs, "--once"))
    assert again.code == 1, again.stderr  # bad.json is still there
    assert fault_server.requests == []
