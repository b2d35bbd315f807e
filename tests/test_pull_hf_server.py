"""The local Hub is faithful enough for huggingface_hub itself: snapshot_download and
hf_hub_download (the benchmark's S4 peer) work against it and get the right bytes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from huggingface_hub import HfApi, hf_hub_download, snapshot_download

from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer


def _repo_files() -> dict[str, bytes]:
    return {
        "config.json": b"{}",
        "sub/readme.md": b"# hi\n",
        "model-00001-of-00002.safetensors": os.urandom(1_500_000),
        "model-00002-of-00002.safetensors": os.urandom(700_000),
    }


def test_snapshot_download_against_local_hub(hf_hub: HubServer, tmp_path: Path) -> None:
    files = _repo_files()
    commit = hf_hub.add_repo("org/model", files)
    out = snapshot_download(
        "org/model", endpoint=hf_hub.endpoint, local_dir=tmp_path / "snap", token=False
    )
    for name, data in files.items():
        assert (Path(out) / name).read_bytes() == data
    # LFS bytes came from the CDN host, small files from the Hub
    cdn_paths = [r["path"] for r in hf_hub.requests("cdn") if r["method"] == "GET"]
    assert len(cdn_paths) == 2
    info = HfApi(endpoint=hf_hub.endpoint, token=False).model_info("org/model")
    assert info.sha == commit


def test_hf_hub_download_private_with_token(hf_hub: HubServer, tmp_path: Path) -> None:
    data = os.urandom(2_000_000)
    hf_hub.add_repo("org/private", {"w.bin": data}, private=True)
    path = hf_hub_download(
        "org/private",
        "w.bin",
        endpoint=hf_hub.endpoint,
        cache_dir=tmp_path / "cache",
        token=HF_TEST_TOKEN,
    )
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    heads = [r for r in hf_hub.requests("hub") if r["method"] == "HEAD"]
    assert heads
    assert heads[0]["headers"]["Authorization"] == f"Bearer {HF_TEST_TOKEN}"


def test_resolve_headers_and_ranges(hf_hub: HubServer) -> None:
    data = os.urandom(3_000_000)
    commit = hf_hub.add_repo("org/m", {"w.safetensors": data, "a.txt": b"0123456789"})
    url = f"{hf_hub.endpoint}/org/m/resolve/main/a.txt"
    req = urllib.request.Request(url, headers={"Range": "bytes=2-4"})  # noqa: S310
    with urllib.request.urlopen(req) as r:  # noqa: S310 - loopback test server
        assert r.status == 206
        assert r.read() == b"234"
        assert r.headers["X-Repo-Commit"] == commit
        assert r.headers["Content-Range"] == "bytes 2-4/10"
    # LFS: the redirect is followed to the CDN, which serves ranges too
    url = f"{hf_hub.endpoint}/org/m/resolve/{commit}/w.safetensors"
    req = urllib.request.Request(url, headers={"Range": "bytes=-5"})  # noqa: S310
    with urllib.request.urlopen(req) as r:  # noqa: S310
        assert r.read() == data[-5:]
        assert r.url.startswith(hf_hub.cdn_endpoint)


def test_standalone_server_from_directory(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "org" / "tiny").mkdir(parents=True)
    (root / "org" / "tiny" / "config.json").write_bytes(b'{"a": 1}')
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.servers.hf_hub_server", "--root", str(root)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("HF_ENDPOINT=http://127.0.0.1:")
        endpoint = line.split("=", 1)[1]
        deadline = time.monotonic() + 10
        while True:
            try:
                info = HfApi(endpoint=endpoint, token=False).model_info("org/tiny")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        assert [s.rfilename for s in info.siblings or []] == ["config.json"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
