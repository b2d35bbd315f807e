"""``ome-agent verify``: models on disk hashed against their manifests, run as the
real command (in a subprocess, as an operator runs it) on a models root the agent's
own manifest code wrote."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ome_agent.api import ModelKey
from ome_agent.reconcile.manifest import Identity, Manifest, ManifestStore, record_files
from ome_agent.reconcile.options import STATE_DIR_NAME

FILES = {"model.safetensors": os.urandom(256 * 1024), "config.json": b'{"model_type": "x"}'}


def _model(root: Path, name: str) -> Path:
    target = root / name
    target.mkdir(parents=True)
    for rel, body in FILES.items():
        (target / rel).write_bytes(body)
    digests = {
        r: ({"sha256": hashlib.sha256(b).hexdigest()}, ["size", "sha256"]) for r, b in FILES.items()
    }
    manifest = Manifest(
        ModelKey("ClusterBaseModel", None, name), f"uid-{name}", 1,
        Identity(f"hf://org/{name}", None, str(target)), "abc", record_files(target, digests),
    )  # fmt: skip
    ManifestStore(root / STATE_DIR_NAME).save(manifest)
    return target


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from ome_agent.cli import main; main()", "verify", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "models"
    r.mkdir()
    return r


def test_intact_model_is_ok_and_exits_zero(root: Path) -> None:
    target = _model(root, "a")
    done = _verify(str(target))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "  OK config.json" in lines
    assert "  OK model.safetensors" in lines
    assert lines[-1].startswith("all match: 1 models, 2 files, 2 ok, 0 mismatched, 0 missing")
    assert done.stderr == ""


def test_flipped_byte_with_mtime_restored_is_a_mismatch(root: Path) -> None:
    target = _model(root, "a")
    weights = target / "model.safetensors"
    st = weights.stat()
    body = bytearray(weights.read_bytes())
    body[1000] ^= 0x80
    weights.write_bytes(bytes(body))
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns))
    (target / "config.json").unlink()
    done = _verify(str(target), "--models-root-dir", str(root))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "  MISMATCH model.safetensors: its sha256 differs from the manifest's" in lines
    assert "  MISSING config.json" in lines
    assert lines[-1].startswith("MISMATCH: 1 models, 2 files, 0 ok, 1 mismatched, 1 missing")


def test_all_and_state_file_cover_every_model_and_a_link_out(root: Path, tmp_path: Path) -> None:
    _model(root, "a")
    b = _model(root, "b")
    (tmp_path / "foreign").write_bytes(FILES["config.json"])
    (b / "config.json").unlink()
    (b / "config.json").symlink_to(tmp_path / "foreign")
    done = _verify("--all", "--models-root-dir", str(root))
    assert done.returncode == 1
    assert "  MISMATCH config.json: a symbolic link out of the model directory" in done.stdout
    assert "2 models, 4 files, 3 ok, 1 mismatched" in done.stdout.splitlines()[-1]

    state = tmp_path / "state.json"
    state.write_text(json.dumps({"node": "n", "models": {
        "ClusterBaseModel//a": {"path": str(root / "a"), "state": "Ready", "manifestDigest": "x"},
        "ClusterBaseModel//v": {"path": "/vendor/v", "state": "Ready"},  # a vendor's: none
    }}))  # fmt: skip
    done = _verify("--state-file", str(state))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("all match: 1 models, 2 files, 2 ok")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ((), "give exactly one of PATH, --state-file FILE or --all"),
        (("--all", "--state-file", "s.json"), "give exactly one of"),
        (("{root}/nowhere",), "not a directory"),
        (("{root}/stray",), "no manifest under"),
        (("--state-file", "{root}/none.json"), "--state-file"),
        (("--all", "--models-root-dir", "{root}/empty"), "--all: no manifest under"),
    ],
)
def test_bad_input_is_one_error_line(root: Path, args: tuple[str, ...], says: str) -> None:
    _model(root, "a")
    (root / "stray").mkdir()
    done = _verify(*(a.format(root=root) for a in args))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.splitlines()) == 1
    assert says in done.stderr
