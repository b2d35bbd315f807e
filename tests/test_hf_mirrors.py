"""``pull``, ``inspect`` and the node agent against every kind of Hub a company runs.

Each server answers only part of the Hub's API, the way real ones do:

- ``olah``: an open-source Hub mirror from PyPI serving a local git repo offline
  (401 on ``/api/models/{repo}``, tree behind a 307, ETag without quotes, no
  ``X-Linked-*``, chunked GETs that ignore Range);
- Debian's nginx with ``proxy_cache`` in front of the local Hub, once as deployed
  and once dropping ``X-Linked-*`` and ``Accept-Ranges`` before a Hub without tree;
- the local Hub without the tree API, without ``X-Linked-*``, answering 401 to
  ``model_info`` without a revision, and ignoring Range.

Every file must land byte for byte, verified by the strongest digest the server
gave, and what could not be verified is said in the summary and the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.data.safetensors_fixtures import count_of, llama_like_shards, shard_bytes
from tests.pull_helpers import Run, cli_process
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer, Quirk
from tests.servers.nginx_hub_proxy import NginxHubProxy
from tests.servers.olah_mirror import OlahMirror

CONFIG = (Path(__file__).parent / "data" / "hf-configs" / "qwen3_4b.json").read_bytes()
SHARDS = llama_like_shards(2, hidden=512, ff=1024)  # ~5 MB each: several ranges per file
REPO = "acme/tiny-llama"


def _files() -> dict[str, bytes]:
    files = {name: shard_bytes(t) for name, t in SHARDS.items()}
    files["config.json"] = CONFIG
    files["tokenizer_config.json"] = b'{"model_max_length": 4096}'
    files["notes/README.md"] = b"# tiny\n"
    return files


@dataclass
class Mirror:
    endpoint: str
    token: str | None
    # LFS files can only be checked by size (or not at all): the server gave no sha256
    weak_lfs: bool
    hub: HubServer | None  # the local Hub behind it, to read what its CDN was sent


@contextmanager
def _local(quirks: set[Quirk]) -> Iterator[tuple[HubServer, Mirror]]:
    with HubServer(token=HF_TEST_TOKEN, lfs_threshold=1024 * 1024, quirks=frozenset(quirks)) as hub:
        hub.add_repo(REPO, _files(), private=True)
        yield hub, Mirror(hub.endpoint, HF_TEST_TOKEN, Quirk.NO_LINKED in quirks, hub)


@pytest.fixture(
    params=[
        "olah",
        "nginx-cache",
        "nginx-cache-dropping-headers",
        "hub-no-tree",
        "hub-no-tree-no-linked",
        "hub-info-needs-revision",
        "hub-ignore-range",
    ]
)
def mirror(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Mirror]:
    kind = request.param
    if kind == "olah":
        with OlahMirror() as olah:
            olah.add_repo(REPO, _files())
            yield Mirror(olah.endpoint, None, weak_lfs=False, hub=None)
        return
    if kind.startswith("nginx"):
        dropping = kind == "nginx-cache-dropping-headers"
        quirks = {Quirk.NO_TREE} if dropping else set()
        hide = ("X-Linked-Etag", "X-Linked-Size", "Accept-Ranges") if dropping else ()
        (tmp_path / "nginx-root").mkdir()
        with (
            _local(quirks) as (hub, _),
            NginxHubProxy(hub.endpoint, tmp_path / "nginx-root", hide_headers=hide) as proxy,
        ):
            yield Mirror(proxy.endpoint, HF_TEST_TOKEN, weak_lfs=dropping, hub=hub)
        return
    quirks = {
        "hub-no-tree": {Quirk.NO_TREE},
        "hub-no-tree-no-linked": {Quirk.NO_TREE, Quirk.NO_LINKED},
        "hub-info-needs-revision": {Quirk.INFO_NEEDS_REVISION},
        "hub-ignore-range": {Quirk.IGNORE_RANGE},
    }[kind]
    with _local(quirks) as (_, m):
        yield m


def _env(m: Mirror) -> dict[str, str]:
    env = {"HF_ENDPOINT": m.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_TOKEN": ""}
    if m.token:
        env["HF_TOKEN"] = m.token
    return env


def _no_secret_anywhere(m: Mirror, *runs: Run) -> None:
    if m.token is None:
        return
    for run in runs:
        assert m.token not in run.stdout + run.stderr
    if m.hub is not None:
        cdn = m.hub.requests("cdn")
        assert all("Authorization" not in r["headers"] for r in cdn), "token sent to the CDN"


def _check_verification(m: Mirror, files: dict[str, dict[str, object]]) -> None:
    for name in _files():
        f = files[name]
        verified = f["verified"]
        assert isinstance(verified, list)
        if name.endswith(".safetensors") and m.weak_lfs:
            assert "sha256" not in verified
            assert f["unverified"], name  # said, never silently weaker
        elif name.endswith(".safetensors"):
            assert "sha256" in verified, (name, f)
        else:
            assert "git-sha1" in verified, (name, f)


def test_pull(mirror: Mirror, tmp_path: Path) -> None:
    dest = tmp_path / "model"
    run = cli_process("pull", f"hf://{REPO}", str(dest), "--json", env=_env(mirror), timeout=180)
    assert run.code == 0, run.stderr
    for name, data in _files().items():
        assert (dest / name).read_bytes() == data, name
    summary = run.json()
    _check_verification(mirror, {f["path"]: f for f in summary["files"]})
    _no_secret_anywhere(mirror, run)

    human = cli_process("pull", f"hf://{REPO}", str(tmp_path / "again"), env=_env(mirror))
    assert human.code == 0, human.stderr
    if mirror.weak_lfs:
        assert "2 size only, unverified" in human.stdout + human.stderr


def test_inspect(mirror: Mirror) -> None:
    run = cli_process("inspect", f"hf://{REPO}", "--json", env=_env(mirror), timeout=120)
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["parameterCount"] == count_of(SHARDS)
    assert data["modelType"] == "qwen3"
    _no_secret_anywhere(mirror, run)


def test_node_agent(mirror: Mirror, tmp_path: Path) -> None:
    manifests, models, state = tmp_path / "manifests", tmp_path / "models", tmp_path / "s.json"
    manifests.mkdir()
    (manifests / "m.yaml").write_text(
        "apiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata:\n  name: tiny\n"
        f"spec:\n  storage:\n    storageUri: hf://{REPO}\n    path: tiny\n"
    )
    run = cli_process(
        "run", "--standalone", "--manifests", str(manifests), "--models-root-dir", str(models),
        "--state-file", str(state), "--node-name", "box", "--once",
        env=_env(mirror), timeout=180,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    entry = json.loads(state.read_text())["models"]["ClusterBaseModel/tiny"]
    assert entry["state"] == "Ready", entry
    for name, data in _files().items():
        assert (models / "tiny" / name).read_bytes() == data, name
    manifest = next((models / ".ome-agent" / "manifests").glob("*.json")).read_text()
    assert ("unverified" in manifest) == mirror.weak_lfs
    _no_secret_anywhere(mirror, run)
    if mirror.token:
        assert mirror.token not in state.read_text()
