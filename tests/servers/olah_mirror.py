"""olah, an open-source Hugging Face Hub mirror from PyPI, serving local git repos offline.

Where it sits: one of the Hub look-alikes ``tests/test_hf_mirrors.py`` runs every
``hf://`` path against, and the one this project did not write. olah needs
huggingface_hub ≥ 1.x, so it lives in the second venv ``.venv-hub-latest`` that
``scripts/bootstrap.sh test`` builds (``OME_AGENT_OLAH`` overrides the path).

A repo is a real git repository under ``<mirrors>/models/<org>/<name>``; files at
or above ``lfs_threshold`` (and weights) are committed as git-lfs pointers with
their bytes in ``.git/lfs/objects/``, as ``git lfs`` leaves them. olah then answers
what it answers for any mirrored repo: ``/api/models/{repo}/revision/{rev}`` with
bare ``siblings``, 401 on ``/api/models/{repo}`` while offline, a tree API behind a
307, HEAD on ``resolve`` with an unquoted ETag and no ``X-Linked-*``, and GETs as a
chunked stream without ``Content-Length`` that ignore ``Range``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

from tests.servers.managed import Managed
from tests.servers.nginx import _free_port
from tests.servers.process import connects, spawn, stop_group, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OLAH = REPO_ROOT / ".venv-hub-latest" / "bin" / "olah-cli"
_WEIGHTS = (".safetensors", ".bin", ".gguf")


def olah_binary() -> Path:
    path = Path(os.environ.get("OME_AGENT_OLAH") or DEFAULT_OLAH)
    if not os.access(path, os.X_OK):
        raise FileNotFoundError(
            f"olah not found at {path}: install it with scripts/bootstrap.sh test "
            "(or point OME_AGENT_OLAH at an olah-cli)"
        )
    return path


def _git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
    }
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout.strip()


class OlahMirror(Managed):
    """``olah-cli`` offline on 127.0.0.1, its mirrors folder in a temp dir."""

    def __init__(self, *, lfs_threshold: int = 1024 * 1024) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="olah-"))
        self.mirrors = self.workdir / "mirrors"
        self.lfs_threshold = lfs_threshold
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_repo(self, repo_id: str, files: dict[str, bytes]) -> str:
        """Commit ``files`` as a new git repo; return the commit sha."""
        repo = self.mirrors / "models" / repo_id
        repo.mkdir(parents=True)
        _git(repo, "init", "-q", "-b", "main")
        for name, data in files.items():
            target = repo / name
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(data) < self.lfs_threshold and not name.endswith(_WEIGHTS):
                target.write_bytes(data)
                continue
            sha = hashlib.sha256(data).hexdigest()
            obj = repo / ".git" / "lfs" / "objects" / sha[:2] / sha[2:4] / sha
            obj.parent.mkdir(parents=True, exist_ok=True)
            obj.write_bytes(data)
            target.write_text(
                f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {len(data)}\n"
            )
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "-m", "upload")
        return _git(repo, "rev-parse", "HEAD")

    def start(self) -> OlahMirror:
        binary = olah_binary()
        self.mirrors.mkdir(parents=True, exist_ok=True)
        self.port = _free_port("127.0.0.1")
        config = self.workdir / "olah.toml"
        # upstream is a closed loopback port: offline, olah answers from the mirrors only
        config.write_text(
            f"""[basic]
host = "127.0.0.1"
port = {self.port}
repos-path = "{self.workdir / "cache"}"
mirrors-path = ["{self.mirrors}"]
hf-scheme = "http"
hf-netloc = "127.0.0.1:9"
hf-lfs-netloc = "127.0.0.1:9"
mirror-netloc = "127.0.0.1:{self.port}"
mirror-lfs-netloc = "127.0.0.1:{self.port}"
[accessibility]
offline = true
"""
        )
        log = self.workdir / "olah.out"
        self._proc = spawn(
            [str(binary), "-c", str(config), "--log-path", str(self.workdir / "logs")],
            log,
            cwd=self.workdir,
        )
        if not wait_until(self._proc, lambda: connects("127.0.0.1", self.port), 60.0):
            self.stop()
            raise RuntimeError(f"olah did not start: {log.read_text(errors='replace')[-2000:]}")
        return self

    def stop(self) -> None:
        stop_group(self._proc)
        self._proc = None
