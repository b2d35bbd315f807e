"""Model paths, confinement, the atomic switch and the local manifest (no servers)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from ome_agent.adapters.standalone.secrets import StandaloneSecretReader, variable_name
from ome_agent.api import ModelKey, StorageSpec
from ome_agent.errors import BadInput
from ome_agent.reconcile import layout
from ome_agent.reconcile.manifest import FileRecord, Identity, Manifest, ManifestStore
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import CredentialError

KEY = ModelKey("ClusterBaseModel", None, "m")


def test_target_dir_rules(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    roots = (a, b)
    assert layout.target_dir(KEY, None, roots) == a / "m"
    ns_key = ModelKey("BaseModel", "team", "m")
    assert layout.target_dir(ns_key, StorageSpec(), roots) == a / "team" / "m"
    assert layout.target_dir(KEY, StorageSpec(path="x/y"), roots) == a / "x" / "y"
    assert layout.target_dir(KEY, StorageSpec(path=str(b / "z")), roots) == b / "z"
    for bad, why in [
        (str(b), "models root itself"),
        (str(tmp_path / "c"), "outside the models roots"),
        ("x/../../etc", "'..'"),
        (str(a / ".ome-agent" / "manifests"), "agent's own state"),
    ]:
        with pytest.raises(BadInput, match=r"spec\.storage\.path") as err:
            layout.target_dir(KEY, StorageSpec(path=bad), roots)
        assert why in str(err.value)


def test_symlink_out_of_the_root_is_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(BadInput, match="outside the models roots"):
        layout.target_dir(KEY, StorageSpec(path="link/elsewhere"), (root,))


def test_remove_tree_refuses_roots_and_outside(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "m").mkdir(parents=True)
    (root / "m" / "f").write_text("x")
    with pytest.raises(BadInput):
        layout.remove_tree(root, (root,))
    with pytest.raises(BadInput):
        layout.remove_tree(tmp_path, (root,))
    assert layout.remove_tree(root / "m", (root,))
    assert not (root / "m").exists()
    assert root.is_dir()


@pytest.mark.parametrize("exchange", [True, False])
def test_switch_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool) -> None:
    if not exchange:
        monkeypatch.setattr(layout, "_EXCHANGE", None)
    target, staging = tmp_path / "m", tmp_path / ".ome-staging-m-1"
    staging.mkdir()
    (staging / "f").write_text("new")
    assert layout.switch_into_place(staging, target) is None  # nothing there before
    again = tmp_path / ".ome-staging-m-2"
    again.mkdir()
    (again / "f").write_text("newer")
    old = layout.switch_into_place(again, target)
    assert (target / "f").read_text() == "newer"
    assert old is not None
    assert (old / "f").read_text() == "new"


def test_exchange_is_atomic_on_this_kernel(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").touch()
    assert layout.exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b" / "x").exists()


def test_manifest_round_trip_and_intact(tmp_path: Path) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    f = model_dir / "w.bin"
    f.write_bytes(b"12345")
    st = f.stat()
    manifest = Manifest(
        KEY, "uid", 3, Identity("hf://o/m", "main", str(model_dir)), "c0ffee",
        [FileRecord("w.bin", 5, st.st_mtime_ns, {"sha256": "ab"}, ["sha256", "size"])],
        {"modelType": "llama"}, 42,
    )  # fmt: skip
    store = ManifestStore(tmp_path / "state")
    store.save(manifest)
    loaded = store.load(KEY)
    assert loaded == manifest
    assert loaded.digest == manifest.digest
    assert loaded.intact()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size, touched
    assert not loaded.intact()
    store.delete(KEY)
    assert store.load(KEY) is None
    assert not list((tmp_path / "state" / "manifests").glob("*.tmp"))


def test_options_reject_bad_values(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="--node-name"):
        AgentOptions(node_name="", models_roots=(tmp_path,))
    with pytest.raises(BadInput, match="absolute"):
        AgentOptions(node_name="n", models_roots=(Path("rel"),))
    with pytest.raises(BadInput, match="--num-download-worker"):
        AgentOptions(node_name="n", models_roots=(tmp_path,), download_workers=0)


def test_env_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    reader = StandaloneSecretReader()
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert variable_name("hf-token", "token") == "OME_SECRET_HF_TOKEN_TOKEN"
    with pytest.raises(CredentialError, match="OME_SECRET_HF_TOKEN_TOKEN or HF_TOKEN"):
        asyncio.run(reader.read("ns", "hf-token", "token"))
    monkeypatch.setenv("HF_TOKEN", "generic")
    assert asyncio.run(reader.read("ns", "hf-token", "token")) == "generic"
    monkeypatch.setenv("OME_SECRET_HF_TOKEN_TOKEN", "specific")
    assert asyncio.run(reader.read("ns", "hf-token", "token")) == "specific"


def test_a_local_source_dir_may_be_the_model_itself_a_root_may_not(tmp_path: Path) -> None:
    root, allowed = tmp_path / "models", tmp_path / "llama"
    root.mkdir()
    allowed.mkdir()
    assert layout.local_source(allowed, (root,), (allowed,)) == allowed.resolve()
    assert layout.local_source(root / "m", (root,), (allowed,)) == (root / "m").resolve()
    with pytest.raises(BadInput, match="--local-source-dir"):
        layout.local_source(root, (root,), (allowed,))  # a root holds every model
    with pytest.raises(BadInput, match="--local-source-dir"):
        layout.local_source(tmp_path, (root,), (allowed,))
