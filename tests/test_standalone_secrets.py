"""Standalone credentials from Secret manifests: the reference doc's Secret + BaseModel
pair reconciles without a cluster, in the namespace rules of the API server."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path

import pytest

from ome_agent.adapters.standalone.manifests import load_manifests, parse_secret
from ome_agent.adapters.standalone.secrets import StandaloneSecretReader
from ome_agent.errors import BadInput
from ome_agent.reconcile.ports import CredentialError
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer
from tests.test_standalone_cli import CONFIG, cli, run_args

MiB = 1024 * 1024


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def reference_pair(token: str, namespace: str | None = None) -> str:
    """The reference doc's custom-secret-key example, pointed at a local repo."""
    ns = f"\n  namespace: {namespace}" if namespace else ""
    return f"""
apiVersion: v1
kind: Secret
metadata:
  name: hf-credentials{ns}
data:
  access-token: {b64(token)}
---
apiVersion: ome.io/v1beta1
kind: BaseModel
metadata:
  name: private-model
spec:
  storage:
    storageUri: "hf://my-org/private-model"
    storageKey: "hf-credentials"
    parameters:
      secretKey: "access-token"
"""


def hub_env_without_token(hub: HubServer) -> dict[str, str]:
    return {"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": ""}


def test_reference_secret_pair_downloads_a_private_repo(hf_hub: HubServer, tmp_path: Path) -> None:
    hf_hub.add_repo(
        "my-org/private-model",
        {"config.json": CONFIG, "model.safetensors": os.urandom(MiB)},
        private=True,
    )
    dirs = {"manifests": tmp_path / "m", "models": tmp_path / "models", "state": tmp_path / "s"}
    dirs["manifests"].mkdir()
    (dirs["manifests"] / "private.yaml").write_text(reference_pair(HF_TEST_TOKEN))
    done = cli(*run_args(dirs, "--once"), env=hub_env_without_token(hf_hub))
    assert done.code == 0, done.stderr
    assert HF_TEST_TOKEN not in done.stderr + done.stdout
    assert HF_TEST_TOKEN not in dirs["state"].read_text()
    assert b64(HF_TEST_TOKEN) not in dirs["state"].read_text()
    assert '"state": "Ready"' in dirs["state"].read_text()
    # the token went to the Hub's API (private repo) and never to the CDN host
    bearer = f"Bearer {HF_TEST_TOKEN}"
    assert any(r["headers"].get("Authorization") == bearer for r in hf_hub.requests("hub"))
    assert all("Authorization" not in r["headers"] for r in hf_hub.requests("cdn"))


def test_a_secret_in_another_namespace_is_not_readable(hf_hub: HubServer, tmp_path: Path) -> None:
    hf_hub.add_repo("my-org/private-model", {"config.json": CONFIG}, private=True)
    dirs = {"manifests": tmp_path / "m", "models": tmp_path / "models", "state": tmp_path / "s"}
    dirs["manifests"].mkdir()
    (dirs["manifests"] / "private.yaml").write_text(reference_pair(HF_TEST_TOKEN, "team-b"))
    done = cli(*run_args(dirs, "--once"), env=hub_env_without_token(hf_hub))
    assert done.code == 1
    assert "OME_SECRET_HF_CREDENTIALS_ACCESS_TOKEN" in done.stderr
    assert HF_TEST_TOKEN not in done.stderr
    assert all("Authorization" not in r["headers"] for r in hf_hub.requests("hub"))


def test_secret_documents_parse_like_the_api_server() -> None:
    ref, values = parse_secret(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"token": b64("from-data"), "other": b64("x")},
            "stringData": {"token": "from-string-data"},
        }
    )
    assert ref == ("default", "s")
    assert values == {"token": "from-string-data", "other": "x"}
    with pytest.raises(BadInput, match=r"data\.token is not base64") as caught:
        parse_secret({"kind": "Secret", "metadata": {"name": "s"}, "data": {"token": "hunter2!"}})
    assert "hunter2" not in str(caught.value)
    with pytest.raises(BadInput, match=r"metadata\.name"):
        parse_secret({"kind": "Secret", "metadata": {}})


def test_reader_prefers_manifests_and_names_a_missing_key(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(reference_pair("value-1", "team-a"))
    loaded = load_manifests(tmp_path)
    assert loaded.errors == []
    assert "value-1" not in repr(loaded)
    reader = StandaloneSecretReader()
    reader.update(loaded.secrets)
    assert "value-1" not in repr(reader)
    assert asyncio.run(reader.read("team-a", "hf-credentials", "access-token")) == "value-1"
    with pytest.raises(CredentialError, match="has no key 'token'"):
        asyncio.run(reader.read("team-a", "hf-credentials", "token"))
