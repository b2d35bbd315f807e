"""Xet-backed files (most new large files on the Hub) over the plain HTTP path.

The Hub still serves them on ``resolve``: Xet headers (``X-Xet-Hash``, the
``xet-auth`` link) beside ``X-Linked-Etag``/``X-Linked-Size``, and a redirect to a
bridge host. ome-agent fetches the bytes from the bridge and checks the LFS sha256,
whether the tree API lists the repo or a HEAD per file does; the token stays on the Hub.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.pull_helpers import pull_cli
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer, Quirk


@pytest.mark.parametrize("quirks", [frozenset(), frozenset({Quirk.NO_TREE})], ids=["tree", "head"])
def test_xet_backed_files_download_and_verify(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, quirks: frozenset[Quirk]
) -> None:
    files = {"config.json": b"{}", "model.safetensors": os.urandom(3_000_000)}
    with HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024 * 1024, xet=True, quirks=quirks) as hub:
        hub.add_repo("org/x", files, private=True)
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        monkeypatch.setenv("HF_TOKEN", HF_TEST_TOKEN)
        run = pull_cli("hf://org/x", str(tmp_path / "d"), "--json")
        assert run.code == 0, run.stderr
        bridge = [r for r in hub.requests("cdn") if r["path"].startswith("/xet-bridge/")]
        assert bridge
        assert all("Authorization" not in r["headers"] for r in bridge)
    weights = next(f for f in run.json()["files"] if f["path"] == "model.safetensors")
    assert "sha256" in weights["verified"]
    assert weights["sha256"] == hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert (tmp_path / "d" / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert HF_TEST_TOKEN not in run.stdout + run.stderr
