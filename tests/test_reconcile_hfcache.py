"""``spec.storage.parameters.cache_dir``: the node agent keeps an ``hf://`` model in the
Hugging Face cache layout. The real ``ome-agent run --standalone --once`` against the
local Hub (tests/servers/hf_hub_server.py), read back with huggingface_hub's own offline
functions, as transformers, vLLM and SGLang call them with HF_HUB_OFFLINE=1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from huggingface_hub import snapshot_download, try_to_load_from_cache

from ome_agent.api import ModelResource
from ome_agent.reconcile.ports import NodeState
from tests.pull_helpers import Run, cli_process
from tests.servers.hf_hub_server import HubServer, Quirk
from tests.test_reconcile_core import (
    CONFIG,
    Agent,
    MemoryReporter,
    Secrets,
    aio,
    model,
    options,
    root,
    until,
)

__all__ = ["root"]  # the fixture, re-exported for pytest

REPO = "org/m"
MiB = 1024 * 1024


def _files(weights: bytes) -> dict[str, bytes]:
    return {
        "config.json": CONFIG,
        "tokenizer/tokenizer_config.json": b"{}",
        "model.safetensors": weights,  # over the Hub's LFS threshold: a sha256 blob
    }


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Path]:
    out = {
        "manifests": tmp_path / "manifests",
        "models": tmp_path / "models",
        "state": tmp_path / "state.json",
    }
    out["manifests"].mkdir()
    out["models"].mkdir()
    out["cache"] = out["models"] / "hf_cache"
    return out


def _model(name: str, uri: str, cache_dir: str, namespace: str | None = None) -> str:
    kind = "BaseModel" if namespace else "ClusterBaseModel"
    meta: dict[str, str] = {"name": name, **({"namespace": namespace} if namespace else {})}
    spec = {"storage": {"storageUri": uri, "parameters": {"cache_dir": cache_dir}}}
    doc = {"apiVersion": "ome.io/v1beta1", "kind": kind, "metadata": meta, "spec": spec}
    return json.dumps(doc)


def _run(hub: HubServer, node: dict[str, Path]) -> Run:
    return cli_process(
        "run", "--standalone", "--once", "--manifests", str(node["manifests"]),
        "--models-root-dir", str(node["models"]), "--state-file", str(node["state"]),
        "--node-name", "box", "--progress-interval", "0.2",
        env={"HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1"},
        timeout=120,
    )  # fmt: skip


def _state(node: dict[str, Path]) -> dict[str, Any]:
    models: dict[str, Any] = json.loads(node["state"].read_text())["models"]
    return models


def _file_gets(hub: HubServer) -> list[str]:
    """Paths of the file downloads the Hub answered (a GET on resolve), LFS or not."""
    hub_log = hub.requests("hub")
    return [r["path"] for r in hub_log if r["method"] == "GET" and "/resolve/" in r["path"]]


def _load_offline(cache: Path, revision: str = "main") -> str:
    """snapshot_download in a fresh process with HF_HUB_OFFLINE=1 (read at import)."""
    code = (
        "import sys; from huggingface_hub import snapshot_download as s; "
        "print(s(sys.argv[1], cache_dir=sys.argv[2], revision=sys.argv[3]))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "http://127.0.0.1:9"}
    out = subprocess.run(
        [sys.executable, "-c", code, REPO, str(cache), revision],
        capture_output=True, text=True, env=env, check=True, timeout=60,
    )  # fmt: skip
    return out.stdout.strip()


def test_model_lands_in_the_cache_and_loads_offline(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    files = _files(os.urandom(2 * MiB))
    commit = hf_hub.add_repo(REPO, files)
    (node["manifests"] / "m.yaml").write_text(_model("m", f"hf://{REPO}", str(node["cache"])))
    done = _run(hf_hub, node)
    assert done.code == 0, done.stderr

    repo = node["cache"] / "models--org--m"
    snapshot = repo / "snapshots" / commit
    entry = _state(node)["ClusterBaseModel/m"]
    assert entry["state"] == "Ready"
    assert entry["path"] == str(snapshot), "the node reports the snapshot folder"
    assert json.loads(entry["entry"])["path"] == str(snapshot)
    assert entry["sizeBytes"] == sum(len(b) for b in files.values())
    assert (repo / "refs" / "main").read_text() == commit
    for name, data in files.items():
        link = snapshot / name
        assert link.is_symlink(), name
        assert not os.path.isabs(os.readlink(link)), "relative, as huggingface_hub links"
        assert Path(os.path.realpath(link)).parent == repo / "blobs"
        assert link.read_bytes() == data
    assert not list(node["models"].glob("*/.ome-staging-*")), "no staging left"
    assert not list((repo / "snapshots").glob(".ome-staging-*")), "no staging left"

    assert snapshot_download(REPO, cache_dir=node["cache"], local_files_only=True) == str(snapshot)
    found = try_to_load_from_cache(REPO, "model.safetensors", cache_dir=node["cache"])
    assert isinstance(found, str)
    assert Path(found).read_bytes() == files["model.safetensors"]
    assert _load_offline(node["cache"]) == str(snapshot)

    # a restart confirms the model from disk: not one request to the Hub or its CDN
    hf_hub.clear_requests()
    again = _run(hf_hub, node)
    assert again.code == 0, again.stderr
    assert _state(node)["ClusterBaseModel/m"]["state"] == "Ready"
    assert hf_hub.requests("hub") == []
    assert hf_hub.requests("cdn") == []

    # `ome-agent verify` hashes the blobs the snapshot links to
    ok = cli_process("verify", str(snapshot))
    assert ok.code == 0, ok.stdout + ok.stderr
    assert ok.stdout.count(" OK") == 3, ok.stdout
    blob = Path(os.path.realpath(snapshot / "model.safetensors"))
    blob.write_bytes(b"x" * blob.stat().st_size)
    bad = cli_process("verify", str(snapshot))
    assert bad.code == 1
    assert f"blobs/{blob.name}" in bad.stdout
    assert "MISMATCH" in bad.stdout


def test_models_share_blobs_and_removal_keeps_what_others_link(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    weights = os.urandom(2 * MiB)
    files = _files(weights)
    commit1 = hf_hub.add_repo(REPO, files)
    v2 = {**files, "config.json": CONFIG.replace(b"{", b'{"v": 2, ', 1)}
    commit2 = hf_hub.add_repo(REPO, v2, revision="v2")
    cache = str(node["cache"])
    (node["manifests"] / "a.yaml").write_text(_model("a", f"hf://{REPO}", cache))
    assert _run(hf_hub, node).code == 0
    first = _file_gets(hf_hub)
    assert len(first) == 3, first

    # the same files again under another name, and a revision sharing the weights
    hf_hub.clear_requests()
    (node["manifests"] / "b.yaml").write_text(_model("b", f"hf://{REPO}", cache, "team"))
    (node["manifests"] / "c.yaml").write_text(_model("c", f"hf://{REPO}@v2", cache))
    done = _run(hf_hub, node)
    assert done.code == 0, done.stderr
    assert _file_gets(hf_hub) == [f"/{REPO}/resolve/{commit2}/config.json"], (
        "only the one file v2 changed is downloaded: the weights and the tokenizer are shared"
    )
    state = _state(node)
    repo = node["cache"] / "models--org--m"
    s1, s2 = repo / "snapshots" / commit1, repo / "snapshots" / commit2
    assert state["ClusterBaseModel/a"]["path"] == state["BaseModel/team/b"]["path"] == str(s1)
    assert state["ClusterBaseModel/c"]["path"] == str(s2)
    assert (repo / "refs" / "v2").read_text() == commit2
    assert os.path.realpath(s1 / "model.safetensors") == os.path.realpath(s2 / "model.safetensors")
    blobs_before = {p.name for p in (repo / "blobs").iterdir()}
    assert len(blobs_before) == 4, "three files per revision, two of them identical"

    # a removed while b holds the same snapshot: nothing of it goes
    (node["manifests"] / "a.yaml").unlink()
    assert _run(hf_hub, node).code == 0
    assert s1.is_dir()
    assert (repo / "refs" / "main").read_text() == commit1
    assert {p.name for p in (repo / "blobs").iterdir()} == blobs_before

    # b removed: main's snapshot and ref go, and v1's config blob, which only it linked;
    # c still loads offline, the shared weights with it
    (node["manifests"] / "b.yaml").unlink()
    assert _run(hf_hub, node).code == 0
    assert not s1.exists()
    assert not (repo / "refs" / "main").exists()
    left = {p.name for p in (repo / "blobs").iterdir()}
    assert len(left) == 3
    assert left < blobs_before
    assert _load_offline(node["cache"], "v2") == str(s2)
    assert (s2 / "model.safetensors").read_bytes() == weights

    # the last model of the repo removes the repo's folder, never the cache folder
    (node["manifests"] / "c.yaml").unlink()
    assert _run(hf_hub, node).code == 0
    assert not repo.exists()
    assert node["cache"].is_dir()


def test_cache_written_by_huggingface_hub_is_adopted_after_hashing(
    hf_env: HubServer, node: dict[str, Path]
) -> None:
    files = _files(os.urandom(2 * MiB))
    commit = hf_env.add_repo(REPO, files)
    # what a pod running transformers would have left in the cache
    snapshot_download(REPO, cache_dir=node["cache"], endpoint=hf_env.endpoint)
    repo = node["cache"] / "models--org--m"
    weights_blob = Path(os.path.realpath(repo / "snapshots" / commit / "model.safetensors"))
    # one blob damaged behind huggingface_hub's back, size and mtime kept
    config_blob = Path(os.path.realpath(repo / "snapshots" / commit / "config.json"))
    st = config_blob.stat()
    config_blob.write_bytes(b"x" * st.st_size)
    os.utime(config_blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    hf_env.clear_requests()

    (node["manifests"] / "m.yaml").write_text(_model("m", f"hf://{REPO}", str(node["cache"])))
    done = _run(hf_env, node)
    assert done.code == 0, done.stderr
    assert _file_gets(hf_env) == [f"/{REPO}/resolve/{commit}/config.json"], (
        "every blob is hashed: the good ones are kept, the damaged one fetched again"
    )
    assert hf_env.requests("cdn") == []
    assert (repo / "snapshots" / commit / "config.json").read_bytes() == files["config.json"]
    assert weights_blob.read_bytes() == files["model.safetensors"]
    assert _state(node)["ClusterBaseModel/m"]["state"] == "Ready"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda n: "hf_cache", "is relative"),
        (lambda n: f"{n['models']}/x/../../elsewhere", "'..' segments"),
        (lambda n: str(n["models"].parent / "elsewhere"), "outside the models roots"),
        (lambda n: str(n["models"]), "outside the models roots"),  # the root itself
        (lambda n: str(n["models"] / "out"), "links followed"),  # a symlink out of the root
        (lambda n: str(n["models"] / ".ome-agent" / "c"), "the agent's own state"),
    ],
)
def test_cache_dir_outside_the_models_roots_is_refused(
    hf_hub: HubServer, node: dict[str, Path], make: Any, why: str
) -> None:
    hf_hub.add_repo(REPO, _files(os.urandom(1000)))
    elsewhere = node["models"].parent / "elsewhere"
    elsewhere.mkdir()
    (node["models"] / "out").symlink_to(elsewhere)
    (node["manifests"] / "m.yaml").write_text(_model("m", f"hf://{REPO}", make(node)))
    done = _run(hf_hub, node)
    assert done.code == 1, done.stderr
    entry = _state(node)["ClusterBaseModel/m"]
    assert entry["state"] == "Failed"
    assert "spec.storage.parameters.cache_dir" in entry["message"]
    assert why in entry["message"]
    assert entry["path"] is None, "no folder of the model's: it has none yet"
    assert "Traceback" not in done.stderr
    assert list(elsewhere.iterdir()) == [], "nothing written where the manifest pointed"
    assert _file_gets(hf_hub) == []


def test_cache_dir_with_path_or_another_scheme_is_refused(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    cache = str(node["cache"])
    with_path = json.loads(_model("p", f"hf://{REPO}", cache))
    with_path["spec"]["storage"]["path"] = "p"
    (node["manifests"] / "p.yaml").write_text(json.dumps(with_path))
    (node["manifests"] / "h.yaml").write_text(_model("h", "https://example.invalid/m.bin", cache))
    done = _run(hf_hub, node)
    assert done.code == 1
    state = _state(node)
    assert "spec.storage.path both" in state["ClusterBaseModel/p"]["message"]
    assert "applies to hf:// models" in state["ClusterBaseModel/h"]["message"]
    assert not node["cache"].exists()


# ---------------------------------------------------------------- the scrub, in process
def _cache_model(root: Path, name: str = "cached", revision: str = "") -> ModelResource:
    cache = {"parameters": {"cache_dir": str(root / "hf_cache")}}
    uri = "hf://org/scrubbed" + (f"@{revision}" if revision else "")
    return model(name, uri, storage=cache)


@aio
async def test_scrub_reads_a_cache_model_through_its_blobs(hf_env: HubServer, root: Path) -> None:
    hf_env.add_repo("org/scrubbed", {"config.json": CONFIG, "model.safetensors": b"w" * MiB})
    reporter = MemoryReporter()
    agent = Agent(options(root, scrub_rate=1e9), reporter, Secrets())
    await agent.start(None, _cache_model(root))
    metrics = agent.rec._metrics
    assert metrics is not None
    try:
        await until(lambda: reporter.state("cached") is NodeState.READY)
        published = len(reporter.history)
        hf_env.clear_requests()
        # two passes at least: the links into blobs/ are the model's own, not damage
        await until(lambda: metrics.scrub_bytes._value.get() >= 2 * MiB, timeout=30)
        assert len(reporter.history) == published
        assert hf_env.requests("hub") == []
        assert metrics.scrub_mismatches._value.get() == 0
    finally:
        await agent.stop()


@aio
async def test_progress_names_the_repo_folder_then_the_snapshot(
    hf_env: HubServer, root: Path
) -> None:
    commit = hf_env.add_repo(
        "org/scrubbed", {"config.json": CONFIG, "model.safetensors": b"w" * MiB}
    )
    reporter = MemoryReporter()
    agent = Agent(options(root, scrub_rate=0), reporter, Secrets())
    await agent.start(None, _cache_model(root))
    try:
        await until(lambda: reporter.state("cached") is NodeState.READY)
    finally:
        await agent.stop()
    repo = root / "hf_cache" / "models--org--scrubbed"
    updating = [r.path for r in reporter.history if r.state is NodeState.UPDATING]
    assert updating, "progress was reported"
    assert set(updating) <= {str(repo), str(repo / "snapshots" / commit)}, updating
    assert reporter.report("cached").path == str(repo / "snapshots" / commit)


@aio
async def test_scrub_fetches_a_flipped_blob_again(hf_env: HubServer, root: Path) -> None:
    weights = os.urandom(2 * MiB)
    hf_env.add_repo("org/scrubbed", {"config.json": CONFIG, "model.safetensors": weights})
    reporter = MemoryReporter()
    first = Agent(options(root, scrub_rate=0), reporter, Secrets())
    await first.start(None, _cache_model(root))
    await until(lambda: reporter.state("cached") is NodeState.READY)
    await first.stop()
    snapshot = Path(reporter.report("cached").path or "")
    blob = Path(os.path.realpath(snapshot / "model.safetensors"))
    st = blob.stat()
    body = bytearray(blob.read_bytes())
    body[len(body) // 2] ^= 1
    blob.write_bytes(bytes(body))
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    hf_env.clear_requests()

    second = Agent(options(root, scrub_rate=1e9), reporter, Secrets())
    await second.start(None, _cache_model(root))
    try:
        await until(lambda: _bytes(snapshot / "model.safetensors") == weights, timeout=30)
        await until(lambda: reporter.state("cached") is NodeState.READY)
    finally:
        await second.stop()
    assert (snapshot / "model.safetensors").is_symlink(), "still the cache layout"
    assert Path(os.path.realpath(snapshot / "model.safetensors")).parent == blob.parent
    gets = [r["path"] for r in hf_env.requests("hub") if r["method"] == "GET"]
    assert not [p for p in gets if p.endswith("config.json")], "only the wrong blob came again"
    assert [p for p in gets if p.endswith("model.safetensors")]


def _bytes(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def test_models_declared_together_download_each_blob_once(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    weights = os.urandom(4 * MiB)
    hf_hub.add_repo(REPO, _files(weights))
    cache = str(node["cache"])
    for namespace in ("team-a", "team-b", "team-c"):  # fetched at once: two workers
        (node["manifests"] / f"{namespace}.yaml").write_text(
            _model("m", f"hf://{REPO}", cache, namespace)
        )
    done = _run(hf_hub, node)
    assert done.code == 0, done.stderr
    assert len(_file_gets(hf_hub)) == 3, _file_gets(hf_hub)
    state = _state(node)
    assert {m["state"] for m in state.values()} == {"Ready"}
    assert len({m["path"] for m in state.values()}) == 1
    assert (Path(state["BaseModel/team-a/m"]["path"]) / "model.safetensors").read_bytes() == weights


def test_a_folder_of_the_repo_linked_out_of_the_cache_is_refused(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    hf_hub.add_repo(REPO, _files(os.urandom(2 * MiB)))
    elsewhere = node["models"].parent / "elsewhere"
    elsewhere.mkdir()
    repo = node["cache"] / "models--org--m"
    repo.mkdir(parents=True)
    (repo / "blobs").symlink_to(elsewhere)  # planted by anything that writes the cache
    (node["manifests"] / "m.yaml").write_text(_model("m", f"hf://{REPO}", str(node["cache"])))
    done = _run(hf_hub, node)
    assert done.code == 1
    message = _state(node)["ClusterBaseModel/m"]["message"]
    assert "spec.storage.parameters.cache_dir" in message
    assert "is a symbolic link" in message
    assert list(elsewhere.iterdir()) == []
    assert _file_gets(hf_hub) == []


@aio
async def test_spec_changes_move_the_model_in_and_out_of_the_cache(
    hf_env: HubServer, root: Path
) -> None:
    weights = os.urandom(2 * MiB)
    commit = hf_env.add_repo("org/scrubbed", {"config.json": CONFIG, "model.safetensors": weights})
    v2 = hf_env.add_repo(
        "org/scrubbed", {"config.json": b"{}", "model.safetensors": weights}, revision="v2"
    )
    repo = root / "hf_cache" / "models--org--scrubbed"
    reporter = MemoryReporter()
    plain = model("moving", "hf://org/scrubbed", path="moving")
    agent = Agent(options(root, scrub_rate=0), reporter, Secrets())
    await agent.start(None, plain)

    def at(path: Path) -> bool:
        ready = reporter.state("moving") is NodeState.READY
        return ready and reporter.report("moving").path == str(path)

    try:
        await until(lambda: at(root / "moving"))
        agent.rec.apply(_cache_model(root, "moving"))  # plain → cache: the folder goes
        await until(lambda: at(repo / "snapshots" / commit))
        await until(lambda: not (root / "moving").exists())
        agent.rec.apply(_cache_model(root, "moving", "v2"))  # another revision: v1 goes
        await until(lambda: at(repo / "snapshots" / v2))
        await until(lambda: not (repo / "snapshots" / commit).exists())
        assert not (repo / "refs" / "main").exists()
        assert (repo / "refs" / "v2").read_text() == v2
        assert len(list((repo / "blobs").iterdir())) == 2, "v1's config blob went"
        agent.rec.apply(plain)  # cache → plain: the repo's folder goes
        await until(lambda: at(root / "moving"))
        await until(lambda: not repo.exists())
    finally:
        await agent.stop()
    assert (root / "moving" / "model.safetensors").read_bytes() == weights


def test_a_blob_replaced_behind_the_agent_is_hashed_and_fetched_once(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    weights = os.urandom(2 * MiB)
    commit = hf_hub.add_repo(REPO, _files(weights))
    cache = str(node["cache"])
    (node["manifests"] / "a.yaml").write_text(_model("a", f"hf://{REPO}", cache))
    assert _run(hf_hub, node).code == 0
    blob = Path(
        os.path.realpath(node["cache"] / "models--org--m/snapshots" / commit / "model.safetensors")
    )
    blob.write_bytes(os.urandom(len(weights)))  # same size, a new mtime: not as recorded
    hf_hub.clear_requests()

    (node["manifests"] / "b.yaml").write_text(_model("b", f"hf://{REPO}", cache, "team"))
    done = _run(hf_hub, node)
    assert done.code == 0, done.stderr
    assert _file_gets(hf_hub) == [f"/{REPO}/resolve/{commit}/model.safetensors"]
    state = _state(node)
    for key in ("ClusterBaseModel/a", "BaseModel/team/b"):
        assert state[key]["state"] == "Ready"
        assert (Path(state[key]["path"]) / "model.safetensors").read_bytes() == weights


def test_removal_leaves_blobs_another_writer_of_the_cache_has_not_linked_yet(
    hf_hub: HubServer, node: dict[str, Path]
) -> None:
    commit = hf_hub.add_repo(REPO, _files(os.urandom(2 * MiB)))
    (node["manifests"] / "a.yaml").write_text(_model("a", f"hf://{REPO}", str(node["cache"])))
    assert _run(hf_hub, node).code == 0
    repo = node["cache"] / "models--org--m"
    ours = {p.name for p in (repo / "blobs").iterdir()}
    # huggingface_hub in a pod, midway: a blob being written, one written but not linked
    foreign = {"e" * 40 + ".incomplete": b"half", "f" * 64: b"whole"}
    for name, data in foreign.items():
        (repo / "blobs" / name).write_bytes(data)

    (node["manifests"] / "a.yaml").unlink()
    done = _run(hf_hub, node)
    assert done.code == 0, done.stderr
    assert not (repo / "snapshots" / commit).exists()
    assert not (repo / "refs" / "main").exists()
    assert {p.name: p.read_bytes() for p in (repo / "blobs").iterdir()} == foreign
    assert not ours & {p.name for p in (repo / "blobs").iterdir()}


def test_a_mirror_without_digests_gives_plain_files_in_the_snapshot(node: dict[str, Path]) -> None:
    """No tree API, no ETag, no X-Linked-*: no blob name, so each file stays a regular
    file in the snapshot, as huggingface_hub keeps it; checked by size, said."""
    quirks = frozenset({Quirk.NO_TREE, Quirk.NO_LINKED, Quirk.NO_ETAG})
    with HubServer(lfs_threshold=MiB, quirks=quirks) as hub:
        files = _files(os.urandom(2 * MiB))
        commit = hub.add_repo(REPO, files)
        (node["manifests"] / "m.yaml").write_text(_model("m", f"hf://{REPO}", str(node["cache"])))
        done = _run(hub, node)
        assert done.code == 0, done.stderr
        entry = _state(node)["ClusterBaseModel/m"]
        assert entry["state"] == "Ready"
        assert "size only, unverified: 3 of 3 files" in entry["unverified"]
        snapshot = node["cache"] / "models--org--m" / "snapshots" / commit
        assert entry["path"] == str(snapshot)
        for name, data in files.items():
            assert not (snapshot / name).is_symlink()
            assert (snapshot / name).read_bytes() == data
        assert _load_offline(node["cache"]) == str(snapshot)
        hub.clear_requests()
        assert _run(hub, node).code == 0
        assert hub.requests("hub") == []

        (node["manifests"] / "m.yaml").unlink()
        assert _run(hub, node).code == 0
        assert not (node["cache"] / "models--org--m").exists()
