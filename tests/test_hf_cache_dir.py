"""``pull --cache-dir``: the Hugging Face cache layout, read back by huggingface_hub's
own offline functions (what transformers, vLLM and SGLang call with HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from huggingface_hub import snapshot_download, try_to_load_from_cache

from tests.pull_helpers import pull_cli
from tests.servers.hf_hub_server import HubServer, Quirk

REPO = "org/m"


def _files() -> dict[str, bytes]:
    return {
        "config.json": b'{"model_type": "llama"}',
        "tokenizer/tokenizer_config.json": b"{}",
        "model.safetensors": os.urandom(2_000_000),
    }


def _cdn_gets(hub: HubServer) -> int:
    """GET requests the CDN (LFS bytes) has answered so far."""
    return sum(1 for r in hub.requests("cdn") if r["method"] == "GET")


def test_layout_loads_offline_with_huggingface_hub(hf_env: HubServer, tmp_path: Path) -> None:
    files = _files()
    commit = hf_env.add_repo(REPO, files)
    cache = tmp_path / "hf_cache"
    run = pull_cli(f"hf://{REPO}", "--cache-dir", str(cache), "--json")
    assert run.code == 0, run.stderr
    snapshot = cache / "models--org--m" / "snapshots" / commit
    assert run.json()["dest"] == str(snapshot)
    assert (cache / "models--org--m" / "refs" / "main").read_text() == commit
    for name, data in files.items():
        link = snapshot / name
        assert link.is_symlink(), name
        assert not os.path.isabs(os.readlink(link)), "links are relative, like huggingface_hub's"
        assert link.read_bytes() == data
    assert snapshot_download(REPO, cache_dir=cache, local_files_only=True) == str(snapshot)
    found = try_to_load_from_cache(REPO, "model.safetensors", cache_dir=cache)
    assert isinstance(found, str)
    assert Path(found).read_bytes() == files["model.safetensors"]

    # HF_HUB_OFFLINE=1 is read when huggingface_hub is imported: a fresh process
    code = (
        "import sys; from huggingface_hub import snapshot_download as s; "
        f"print(s({REPO!r}, cache_dir=sys.argv[1]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "-c", code, str(cache)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == str(snapshot)


def test_revisions_and_models_share_blobs(hf_env: HubServer, tmp_path: Path) -> None:
    files = _files()
    hf_env.add_repo(REPO, files)
    cache = tmp_path / "c"
    assert pull_cli(f"hf://{REPO}", "--cache-dir", str(cache)).code == 0
    first = _cdn_gets(hf_env)
    assert first >= 1

    # a new revision changing one small file: the weights are not fetched again
    v2 = {**files, "config.json": b'{"model_type": "llama", "v": 2}'}
    commit2 = hf_env.add_repo(REPO, v2, revision="v2")
    run = pull_cli(f"hf://{REPO}@v2", "--cache-dir", str(cache), "--json")
    assert run.code == 0, run.stderr
    assert _cdn_gets(hf_env) == first
    reused = {f["path"] for f in run.json()["files"] if f["reused"]}
    assert reused == {"model.safetensors", "tokenizer/tokenizer_config.json"}
    assert (cache / "models--org--m" / "refs" / "v2").read_text() == commit2
    blobs = list((cache / "models--org--m" / "blobs").iterdir())
    assert len(blobs) == 4  # 3 files + the changed config

    # another model with the same weights: hard-linked from the first, not fetched
    hf_env.add_repo("org/copy", files)
    assert pull_cli("hf://org/copy", "--cache-dir", str(cache)).code == 0
    assert _cdn_gets(hf_env) == first
    found = try_to_load_from_cache("org/copy", "model.safetensors", cache_dir=cache)
    assert isinstance(found, str)
    assert os.stat(found).st_nlink == 2


def test_file_without_digest_stays_a_plain_file(hf_env: HubServer, tmp_path: Path) -> None:
    files = _files()
    commit = hf_env.add_repo(REPO, files)
    hf_env.quirks = frozenset({Quirk.NO_TREE, Quirk.NO_ETAG})
    cache = tmp_path / "c"
    assert pull_cli(f"hf://{REPO}", "--cache-dir", str(cache)).code == 0
    snapshot = cache / "models--org--m" / "snapshots" / commit
    for name, data in files.items():
        assert not (snapshot / name).is_symlink()
        assert (snapshot / name).read_bytes() == data
    assert snapshot_download(REPO, cache_dir=cache, local_files_only=True) == str(snapshot)


def test_cache_dir_misuse_is_one_line(hf_env: HubServer, tmp_path: Path) -> None:
    for args in (
        ["https://example.invalid/x.bin", "--cache-dir", str(tmp_path)],
        [f"hf://{REPO}", str(tmp_path / "d"), "--cache-dir", str(tmp_path)],
        [f"hf://{REPO}"],
    ):
        run = pull_cli(*args)
        assert run.code == 2, (args, run.stderr)
        assert run.stderr.startswith("error: ")
        assert run.stderr.count("\n") == 1
