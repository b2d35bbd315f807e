"""``ome-agent pull hf://org/name[@rev]`` against the local Hub + CDN: every file
verified by the right digest, revisions, globs, private repos, hostile listings."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.pull_helpers import pull_cli, pull_process
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

MB = 1000 * 1000


def _repo() -> dict[str, bytes]:
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
        "tokenizer/tokenizer_config.json": b'{"model_max_length": 4096}',
        "model-00001-of-00002.safetensors": os.urandom(5 * MB),
        "model-00002-of-00002.safetensors": os.urandom(3 * MB + 3),
    }


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_pull_repo_verifies_every_file(hf_env: HubServer, tmp_path: Path) -> None:
    files = _repo()
    commit = hf_env.add_repo("org/model", files)
    dest = tmp_path / "model"
    run = pull_cli("hf://org/model", str(dest), "--json")
    assert run.code == 0, run.stderr
    assert _tree(dest) == files
    summary = run.json()
    assert summary["source"] == "hf://org/model"
    assert summary["commit"] == commit
    assert summary["revision"] is None
    assert summary["dest"] == str(dest)
    assert summary["total_bytes"] == sum(map(len, files.values()))
    assert summary["verify"] is True
    assert summary["seconds"] > 0
    assert summary["throughput_bytes_per_sec"] > 0
    by_path = {f["path"]: f for f in summary["files"]}
    assert set(by_path) == set(files)
    for name, data in files.items():
        f = by_path[name]
        assert f["size"] == len(data)
        if name.endswith(".safetensors"):
            assert "sha256" in f["verified"]
            assert f["sha256"] == hashlib.sha256(data).hexdigest()
        else:
            assert "git-sha1" in f["verified"]
    # LFS bytes came from the CDN, with no credentials (none were configured)
    cdn = hf_env.requests("cdn")
    assert cdn
    assert all("Authorization" not in r["headers"] for r in cdn + hf_env.requests("hub"))


def test_revision_in_uri_and_flag(hf_env: HubServer, tmp_path: Path) -> None:
    hf_env.add_repo("org/model", {"a.txt": b"main"})
    v1 = hf_env.add_repo("org/model", {"a.txt": b"version one", "b.txt": b"b"}, revision="v1")
    run = pull_cli("hf://org/model@v1", str(tmp_path / "at"), "--json")
    assert run.code == 0, run.stderr
    assert _tree(tmp_path / "at") == {"a.txt": b"version one", "b.txt": b"b"}
    assert run.json()["revision"] == "v1"
    assert run.json()["commit"] == v1
    run = pull_cli("hf://org/model", str(tmp_path / "flag"), "--revision", v1)
    assert run.code == 0, run.stderr
    assert _tree(tmp_path / "flag") == {"a.txt": b"version one", "b.txt": b"b"}
    run = pull_cli("hf://org/model@v1", str(tmp_path / "x"), "--revision", "main")
    assert run.code == 2
    assert "give only one" in run.stderr


def test_include_exclude(hf_env: HubServer, tmp_path: Path) -> None:
    files = _repo()
    hf_env.add_repo("org/model", files)
    dest = tmp_path / "d"
    run = pull_cli(
        "hf://org/model", str(dest), "--include", "*.json", "--exclude", "tokenizer/", "--json"
    )
    assert run.code == 0, run.stderr
    assert _tree(dest) == {"config.json": files["config.json"]}
    run = pull_cli("hf://org/model", str(tmp_path / "none"), "--include", "*.gguf")
    assert run.code == 2
    assert "matches --include/--exclude" in run.stderr
    assert not (tmp_path / "none").exists()


def test_private_repo_with_and_without_token(
    hf_env: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _repo()
    hf_env.add_repo("org/private", files, private=True)
    run = pull_process("hf://org/private", str(tmp_path / "no"), env={"HF_TOKEN": ""})
    assert run.code == 2
    assert "set HF_TOKEN" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "no").exists()

    hf_env.clear_requests()
    run = pull_process(
        "hf://org/private", str(tmp_path / "yes"), "--json", env={"HF_TOKEN": HF_TEST_TOKEN}
    )
    assert run.code == 0, run.stderr
    assert _tree(tmp_path / "yes") == files
    assert HF_TEST_TOKEN not in run.stdout + run.stderr
    hub = hf_env.requests("hub")
    assert all(r["headers"].get("Authorization") == f"Bearer {HF_TEST_TOKEN}" for r in hub)
    cdn = hf_env.requests("cdn")
    assert len(cdn) >= 2
    assert all("Authorization" not in r["headers"] for r in cdn)

    run = pull_process("hf://org/private", str(tmp_path / "bad"), env={"HF_TOKEN": "hf_wrong_1"})
    assert run.code == 2
    assert "hf_wrong_1" not in run.stdout + run.stderr


def test_corrupt_lfs_bytes_fail_with_both_digests(hf_env: HubServer, tmp_path: Path) -> None:
    files = _repo()
    hf_env.add_repo("org/model", files)
    shard = hf_env.repos["org/model"].revisions["main"].files["model-00002-of-00002.safetensors"]
    good = shard.sha256
    assert shard.data is not None
    shard.data = b"\0" + shard.data[1:]  # the CDN now serves one wrong byte
    run = pull_cli("hf://org/model", str(tmp_path / "d"))
    assert run.code == 1
    assert f"expected {good}" in run.stderr
    assert hashlib.sha256(shard.data).hexdigest() in run.stderr
    assert not (tmp_path / "d" / "model-00002-of-00002.safetensors").exists()


@pytest.mark.parametrize(
    "hostile", ["../evil.txt", "/tmp/evil.txt", "a\\..\\evil.txt", "sub/../../evil.txt", "x\0y"]
)
def test_hostile_listing_is_rejected(hf_env: HubServer, tmp_path: Path, hostile: str) -> None:
    hf_env.add_repo("org/evil", {"config.json": b"{}", hostile: b"pwned"})
    dest = tmp_path / "a" / "dest"
    run = pull_cli("hf://org/evil", str(dest))
    assert run.code == 2
    assert repr(hostile) in run.stderr
    assert not list(tmp_path.rglob("evil.txt"))
    assert not dest.exists()  # rejected before anything was written
    assert hf_env.requests("cdn") == []


def test_symlink_escape_is_rejected(hf_env: HubServer, tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    os.symlink(outside, dest / "link")
    hf_env.add_repo("org/evil", {"config.json": b"{}", "link/evil.txt": b"pwned"})
    run = pull_cli("hf://org/evil", str(dest))
    assert run.code == 2
    assert "'link/evil.txt'" in run.stderr
    assert "outside DEST" in run.stderr
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize(
    ("source", "expect"),
    [
        ("hf://org/nope", "repository org/nope not found"),
        ("hf://org/model@nope", "revision 'nope' not found"),
        ("hf://org/na..me", "not a valid repo id"),
        ("hf:/org/model", "has no scheme"),
        ("ftp://bucket/model", "'ftp://' is not supported"),
        ("gs://b", "is not a bucket name"),
    ],
)
def test_bad_sources_exit_2_with_one_line(
    hf_env: HubServer, tmp_path: Path, source: str, expect: str
) -> None:
    hf_env.add_repo("org/model", {"a.txt": b"a"})
    run = pull_process(source, str(tmp_path / "d"))
    assert run.code == 2, run.stderr
    assert expect in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert run.stderr.startswith("error: ")
    assert run.stdout == ""


def test_no_verify_is_marked_unsafe(hf_env: HubServer, tmp_path: Path) -> None:
    hf_env.add_repo("org/model", {"a.txt": b"a", "w.safetensors": os.urandom(MB)})
    run = pull_cli("hf://org/model", str(tmp_path / "d"), "--no-verify", "--json")
    assert run.code == 0, run.stderr
    assert "NOT checked" in run.stderr
    summary = run.json()
    assert summary["verify"] is False
    for f in summary["files"]:
        assert not set(f["verified"]) - {"size"}


def test_names_needing_url_quoting_and_empty_files(hf_env: HubServer, tmp_path: Path) -> None:
    files = {
        "empty.txt": b"",
        "space name.txt": b"s",
        "unicodé/ü.json": b"{}",
        "q?#%.txt": b"q",
    }
    hf_env.add_repo("org/odd", files)
    run = pull_cli("hf://org/odd", str(tmp_path / "d"), "--json")
    assert run.code == 0, run.stderr
    assert _tree(tmp_path / "d") == files
    assert all("git-sha1" in f["verified"] for f in run.json()["files"])


def test_unusable_dest_is_bad_input(hf_env: HubServer, tmp_path: Path) -> None:
    hf_env.add_repo("org/model", {"a.txt": b"a"})
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    run = pull_cli("hf://org/model", str(blocker))
    assert run.code == 2
    assert "is a file" in run.stderr
    run = pull_cli("hf://org/model", str(blocker / "sub"))
    assert run.code == 2
    assert "cannot create" in run.stderr
