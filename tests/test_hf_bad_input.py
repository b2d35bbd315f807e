"""A Hub that answers badly: one clear line naming the call that failed, or a fallback
that says what it fell back from; never a traceback, never the token.

The local Hub plays each fault (``Quirk``): HTML where JSON belongs, 401/403 on some
endpoints, 404 or a truncated tree, missing or contradictory size headers, another
commit in ``X-Repo-Commit``, no ETag.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from ome_agent.errors import SourceNotFound, TransferFailed
from ome_agent.sources import HfRef, resolve_hf
from tests.pull_helpers import Run, pull_cli
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer, Quirk

REPO = "org/m"


def _files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "llama"}',
        "model.safetensors": os.urandom(300_000),
        "big.dat": os.urandom(1_200_000),  # LFS by size
    }


def _serve(hub: HubServer, *quirks: Quirk, private: bool = False) -> dict[str, bytes]:
    files = _files()
    hub.add_repo(REPO, files, private=private)
    hub.quirks = frozenset(quirks)
    return files


def _one_error_line(run: Run) -> str:
    assert run.code != 0
    lines = [line for line in run.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, run.stderr
    assert "Traceback" not in run.stderr
    return lines[0]


def _landed(dest: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (dest / name).read_bytes() == data, name


def _pulled(tmp_path: Path, files: dict[str, bytes]) -> Run:
    """``pull --json`` of the repo into ``tmp_path/d`` succeeds and every file lands."""
    run = pull_cli(f"hf://{REPO}", str(tmp_path / "d"), "--json")
    assert run.code == 0, run.stderr
    _landed(tmp_path / "d", files)
    return run


def _assert_verified_by_digest(run: Run, lfs_file: str) -> None:
    """The ``--json`` report: the LFS file checked by sha256, config.json by git-sha1."""
    verified = {f["path"]: f["verified"] for f in run.json()["files"]}
    assert "sha256" in verified[lfs_file]
    assert "git-sha1" in verified["config.json"]


def test_html_instead_of_the_revision_json(hf_env: HubServer, tmp_path: Path) -> None:
    _serve(hf_env, Quirk.HTML_INFO)
    line = _one_error_line(pull_cli(f"hf://{REPO}", str(tmp_path / "d")))
    assert f"GET /api/models/{REPO}/revision/main" in line
    assert "HTML" in line
    assert "HF_ENDPOINT" in line


@pytest.mark.parametrize(
    ("quirk", "said"),
    [
        (Quirk.TREE_403, "HTTP 403"),
        (Quirk.NO_TREE, "HTTP 404"),
        (Quirk.HTML_TREE, "not the Hub's JSON"),
        (Quirk.TRUNCATED_TREE, "1 fewer than the revision names"),
    ],
)
def test_unusable_tree_falls_back_and_says_so(
    hf_env: HubServer, tmp_path: Path, quirk: Quirk, said: str
) -> None:
    files = _serve(hf_env, quirk)
    run = _pulled(tmp_path, files)
    warning = [line for line in run.stderr.splitlines() if "/tree/" in line]
    assert len(warning) == 1, run.stderr
    assert said in warning[0]
    assert "siblings and a HEAD per file" in warning[0]
    _assert_verified_by_digest(run, "model.safetensors")


def test_403_on_resolve_names_the_head(hf_env: HubServer, tmp_path: Path) -> None:
    _serve(hf_env, Quirk.NO_TREE, Quirk.RESOLVE_403)
    line = _one_error_line(pull_cli(f"hf://{REPO}", str(tmp_path / "d")))
    assert f"HEAD /{REPO}/resolve/" in line
    assert "403" in line


def test_401_without_revision_is_not_asked(hf_env: HubServer, tmp_path: Path) -> None:
    files = _serve(hf_env, Quirk.INFO_NEEDS_REVISION)
    assert pull_cli(f"hf://{REPO}", str(tmp_path / "d")).code == 0
    _landed(tmp_path / "d", files)
    asked = [r["path"].partition("?")[0] for r in hf_env.requests("hub")]
    assert f"/api/models/{REPO}" not in asked
    assert f"/api/models/{REPO}/revision/main" in asked


def test_missing_sizes_still_verify_by_digest(hf_env: HubServer, tmp_path: Path) -> None:
    files = _serve(hf_env, Quirk.NO_TREE, Quirk.NO_SIZE)
    run = _pulled(tmp_path, files)
    _assert_verified_by_digest(run, "big.dat")


def test_contradictory_size_fails_naming_the_file(hf_env: HubServer, tmp_path: Path) -> None:
    _serve(hf_env, Quirk.NO_TREE, Quirk.WRONG_SIZE)
    line = _one_error_line(pull_cli(f"hf://{REPO}", str(tmp_path / "d")))
    assert "size" in line
    assert not (tmp_path / "d" / "config.json").exists()


def test_another_commit_in_the_head_is_refused(hf_env: HubServer) -> None:
    _serve(hf_env, Quirk.NO_TREE, Quirk.OTHER_COMMIT)
    with pytest.raises(TransferFailed, match=r"HEAD /org/m/resolve/.*X-Repo-Commit 0{40}"):
        resolve_hf(HfRef(REPO, None))


def test_no_etag_means_size_only_and_says_so(hf_env: HubServer, tmp_path: Path) -> None:
    files = _serve(hf_env, Quirk.NO_TREE, Quirk.NO_ETAG)
    run = _pulled(tmp_path, files)
    for f in run.json()["files"]:
        assert f["verified"] == ["size"], f
        assert f["unverified"].endswith(": size only, unverified"), f


def test_no_linked_etag_on_a_redirect_is_not_mistaken_for_a_digest(hf_env: HubServer) -> None:
    """The ETag of the Hub's redirect is the LFS pointer's blob id: checking the
    content against it would fail every download, so it is not used."""
    files = _serve(hf_env, Quirk.NO_TREE, Quirk.NO_LINKED)
    by_path = {f.path: f for f in resolve_hf(HfRef(REPO, None)).files}
    lfs = by_path["model.safetensors"]
    assert lfs.git_sha1 is None
    assert lfs.sha256 is None
    assert lfs.size is None
    assert lfs.unverified is not None
    assert "X-Linked-Etag" in lfs.unverified
    plain = by_path["config.json"]
    blob = b"blob %d\0" % len(files["config.json"]) + files["config.json"]
    assert plain.git_sha1 == hashlib.sha1(blob, usedforsecurity=False).hexdigest()


def test_token_stays_on_the_hub_in_the_fallback(
    hf_env: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = _serve(hf_env, Quirk.NO_TREE, private=True)
    monkeypatch.setenv("HF_TOKEN", HF_TEST_TOKEN)
    run = _pulled(tmp_path, files)
    heads = [r for r in hf_env.requests("hub") if r["method"] == "HEAD"]
    assert heads
    assert all(r["headers"].get("Authorization") == f"Bearer {HF_TEST_TOKEN}" for r in heads)
    assert hf_env.requests("cdn")
    assert all("Authorization" not in r["headers"] for r in hf_env.requests("cdn"))
    assert HF_TEST_TOKEN not in run.stdout + run.stderr


def test_wrong_token_on_a_private_repo_is_one_line_without_it(
    hf_env: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _serve(hf_env, private=True)
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_secret_value")
    run = pull_cli(f"hf://{REPO}", str(tmp_path / "d"))
    line = _one_error_line(run)
    assert f"GET /api/models/{REPO}/revision/main" in line
    assert "hf_wrong_secret_value" not in run.stdout + run.stderr
    with pytest.raises(SourceNotFound):
        resolve_hf(HfRef(REPO, None))
