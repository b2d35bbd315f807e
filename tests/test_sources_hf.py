"""hf:// resolution against the local Hub: revision → commit, listing with digests,
private repos and error messages (no engine needed)."""

from __future__ import annotations

import hashlib

import pytest

from ome_agent.errors import BadInput, SourceNotFound
from ome_agent.sources import HfRef, resolve_hf
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

FILES = {
    "config.json": b'{"model_type": "llama"}',
    "tokenizer/vocab.txt": b"a\nb\nc\n",
    "model.safetensors": b"\x01" * 4096,  # LFS by extension
    "big.dat": b"\x02" * (2 * 1024 * 1024),  # LFS by size (threshold 1 MiB in tests)
}


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def test_listing_pins_commit_and_carries_the_right_digest(hf_env: HubServer) -> None:
    commit = hf_env.add_repo("org/model", FILES)
    resolved = resolve_hf(HfRef("org/model", None))
    assert resolved.commit == commit
    by_path = {f.path: f for f in resolved.files}
    assert set(by_path) == set(FILES)
    for name, data in FILES.items():
        f = by_path[name]
        assert f.size == len(data)
        assert f.url == f"{hf_env.endpoint}/org/model/resolve/{commit}/{name}"
        if name in ("model.safetensors", "big.dat"):
            assert f.sha256 == hashlib.sha256(data).hexdigest()
            assert f.git_sha1 is None
        else:
            assert f.git_sha1 == _git_sha1(data)
            assert f.sha256 is None
        assert dict(f.headers) == {}


def test_revision_resolves_to_its_own_commit(hf_env: HubServer) -> None:
    main = hf_env.add_repo("org/model", {"a.txt": b"main"})
    v1 = hf_env.add_repo("org/model", {"a.txt": b"v1", "b.txt": b"only in v1"}, revision="v1")
    assert resolve_hf(HfRef("org/model", "v1")).commit == v1
    assert [f.path for f in resolve_hf(HfRef("org/model", v1)).files] == ["a.txt", "b.txt"]
    assert resolve_hf(HfRef("org/model", "main")).commit == main


def test_paginated_tree_is_followed(hf_env: HubServer) -> None:
    hf_env.page_size = 3
    files = {f"d{i % 3}/f{i}.txt": b"x%d" % i for i in range(20)}
    hf_env.add_repo("org/many", files)
    assert sorted(f.path for f in resolve_hf(HfRef("org/many", None)).files) == sorted(files)
    tree_calls = [r for r in hf_env.requests("hub") if "/tree/" in r["path"]]
    assert len(tree_calls) > 5


def test_missing_repo_and_revision(hf_env: HubServer) -> None:
    hf_env.add_repo("org/model", {"a.txt": b"a"})
    with pytest.raises(SourceNotFound, match=r"repository org/nope not found.*set HF_TOKEN"):
        resolve_hf(HfRef("org/nope", None))
    with pytest.raises(SourceNotFound, match="revision 'v9' not found in org/model"):
        resolve_hf(HfRef("org/model", "v9"))


def test_private_repo_needs_token_and_token_stays_secret(
    hf_env: HubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_env.add_repo("org/private", {"a.txt": b"a"}, private=True)
    with pytest.raises(SourceNotFound, match="if it is private, set HF_TOKEN"):
        resolve_hf(HfRef("org/private", None))
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_token")
    with pytest.raises(SourceNotFound, match="HF_TOKEN's account can read it") as info:
        resolve_hf(HfRef("org/private", None))
    assert "hf_wrong_token" not in str(info.value)
    assert "hf_wrong_token" not in repr(info.value.__context__)
    monkeypatch.setenv("HF_TOKEN", HF_TEST_TOKEN)
    resolved = resolve_hf(HfRef("org/private", None))
    assert dict(resolved.files[0].headers) == {"Authorization": f"Bearer {HF_TEST_TOKEN}"}
    assert HF_TEST_TOKEN not in repr(resolved)


def test_bad_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "ftp://mirror")
    with pytest.raises(BadInput, match="HF_ENDPOINT 'ftp://mirror' is not an http"):
        resolve_hf(HfRef("org/model", None))
