"""The reconcile core against real servers (fault server, local Hub) with an in-memory
reporter: the cluster is not the point here, the decisions and the files are."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from ome_agent.api import ModelKey, ModelResource, parse_resource
from ome_agent.errors import FailureReason
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import CredentialError, NodeReport, NodeState
from ome_agent.transfer.settings import TransferSettings
from tests.data import tiny_config
from tests.servers.fault_server import FaultServer, Status, Throttle
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

MiB = 1024 * 1024
CONFIG = json.dumps(
    tiny_config("LlamaForCausalLM", "llama", max_position_embeddings=2048, torch_dtype="bfloat16")
).encode()


class MemoryReporter:
    """Records every publish (to see flaps) and the current state per model."""

    def __init__(self) -> None:
        self.history: list[NodeReport] = []
        self.current: dict[ModelKey, NodeReport] = {}
        self.withdrawn: list[ModelKey] = []

    async def publish(self, report: NodeReport) -> None:
        self.history.append(report)
        self.current[report.key] = report

    async def withdraw(self, key: ModelKey, uid: str | None) -> None:
        if self.current.pop(key, None) is not None:
            self.withdrawn.append(key)

    async def reported(self) -> Mapping[ModelKey, NodeState]:
        return {k: r.state for k, r in self.current.items()}

    def state(self, name: str) -> NodeState | None:
        for key, report in self.current.items():
            if key.name == name:
                return report.state
        return None

    def report(self, name: str) -> NodeReport:
        return next(r for k, r in self.current.items() if k.name == name)


class Secrets:
    def __init__(self, values: dict[tuple[str, str, str], str] | None = None) -> None:
        self.values = values or {}
        self.asked: list[tuple[str, str, str]] = []

    async def read(self, namespace: str, name: str, key: str) -> str:
        self.asked.append((namespace, name, key))
        try:
            return self.values[(namespace, name, key)]
        except KeyError:
            raise CredentialError(f"secret {namespace}/{name} has no key {key!r}") from None

    async def read_all(self, namespace: str, name: str) -> Mapping[str, str]:
        self.asked.append((namespace, name, "*"))
        found = {k: v for (ns, n, k), v in self.values.items() if (ns, n) == (namespace, name)}
        if not found:
            raise CredentialError(f"secret {namespace}/{name} not found")
        return found


def model(
    name: str, uri: str, *, path: str | None = None, labels: dict[str, str] | None = None,
    kind: str = "ClusterBaseModel", **spec: Any,
) -> ModelResource:  # fmt: skip
    storage: dict[str, Any] = {"storageUri": uri}
    if path is not None:
        storage["path"] = path
    if labels:
        storage["nodeSelector"] = labels
    storage.update(spec.pop("storage", {}))
    meta = {"name": name, "uid": f"uid-{name}", "namespace": "team"}
    return parse_resource({"kind": kind, "metadata": meta, "spec": {"storage": storage, **spec}})


def options(root: Path, **kw: Any) -> AgentOptions:
    defaults: dict[str, Any] = {
        "node_name": "node-a",
        "models_roots": (root,),
        "progress_interval": 0.2,
        "retry_base": 0.3,
        "retry_cap": 1.0,
        "transfer": TransferSettings(max_connections=8),
    }
    defaults.update(kw)
    return AgentOptions(**defaults)


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class Agent:
    """A Reconciler with its queue running in a task, for tests that need run()."""

    def __init__(self, opts: AgentOptions, reporter: MemoryReporter, secrets: Secrets) -> None:
        self.rec = Reconciler(opts, reporter, secrets, metrics=AgentMetrics(CollectorRegistry()))
        self.task: asyncio.Task[None] | None = None

    async def start(self, labels: Mapping[str, str] | None = None, *models: ModelResource) -> None:
        self.rec.set_node("node-a", labels or {})
        self.rec.replace_all(("ClusterBaseModel", "BaseModel"), models)
        await self.rec.start()
        self.task = asyncio.create_task(self.rec.run())

    async def stop(self) -> None:
        self.rec.close()
        if self.task is not None:
            await asyncio.wait_for(self.task, 10)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "models"
    r.mkdir()
    return r


@contextlib.asynccontextmanager
async def running(
    root: Path, reporter: MemoryReporter, *models: ModelResource, labels: Any = None,
    secrets: Secrets | None = None, **kw: Any,
) -> AsyncIterator[Agent]:  # fmt: skip
    agent = Agent(options(root, **kw), reporter, secrets or Secrets())
    await agent.start(labels, *models)
    try:
        yield agent
    finally:
        await agent.stop()


async def started(
    root: Path, reporter: MemoryReporter, *models: ModelResource,
    secrets: Secrets | None = None, metrics: AgentMetrics | None = None, **kw: Any,
) -> Reconciler:  # fmt: skip
    """A Reconciler of node ``node-a`` (no labels) over ``models``, with
    ``options(root, **kw)``: started (what is on disk confirmed), not run."""
    rec = Reconciler(options(root, **kw), reporter, secrets or Secrets(), metrics=metrics)
    rec.set_node("node-a", {})
    rec.replace_all(("ClusterBaseModel", "BaseModel"), models)
    await rec.start()
    return rec


def aio(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body on a fresh event loop (fixtures stay synchronous)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(fn(*args, **kwargs), 60))

    return wrapper


def staging_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob(".ome-staging-*")]


# ---------------------------------------------------------------- tests
@aio
async def test_http_model_ready_with_manifest(fault_server: FaultServer, root: Path) -> None:
    data = os.urandom(3 * MiB)
    url = fault_server.add("/m/weights.bin", data)
    reporter = MemoryReporter()
    async with running(root, reporter, model("plain", url, path="plain")):
        await until(lambda: reporter.state("plain") is NodeState.READY)
        assert (root / "plain" / "weights.bin").read_bytes() == data
        report = reporter.report("plain")
        assert report.path == str(root / "plain")
        assert report.manifest_digest
        assert report.manifest_digest.startswith("sha256:")
        artifact = report.config["artifact"]  # type: ignore[index]
        assert artifact["parentPath"] == {}  # OME's map; no other model's files reused
        assert artifact["childrenPaths"] == []  # and no model reuses these
        assert artifact["sha"] == report.manifest_digest
        states = [r.state for r in reporter.history]
        assert states[0] is NodeState.UPDATING
        assert states[-1] is NodeState.READY
        manifest = json.loads(
            (root / ".ome-agent/manifests/ClusterBaseModel._.plain.json").read_text()
        )
        assert manifest["files"][0]["size"] == 3 * MiB
        assert manifest["files"][0]["verified"] == []  # a plain URL: nothing to compare with
        assert manifest["files"][0]["digests"]["sha256"]
        assert not list((root / "plain").glob(".*")), "no agent files inside the model directory"
        assert staging_leftovers(root) == []


@aio
async def test_hf_model_verified_and_described_with_secret_token(
    hf_env: HubServer, root: Path
) -> None:
    weights = os.urandom(2 * MiB)
    commit = hf_env.add_repo(
        "org/tiny", {"config.json": CONFIG, "model.safetensors": weights}, private=True
    )
    reporter = MemoryReporter()
    secrets = Secrets({("team", "hf-token", "token"): HF_TEST_TOKEN})
    res = model("tiny", "hf://org/tiny", kind="BaseModel", storage={"storageKey": "hf-token"})
    async with running(root, reporter, res, secrets=secrets):
        await until(lambda: reporter.state("tiny") in (NodeState.READY, NodeState.FAILED))
        report = reporter.report("tiny")
        assert report.state is NodeState.READY, report.error
        assert secrets.asked == [("team", "hf-token", "token")]  # the model's own namespace
        target = root / "team" / "tiny"
        assert (target / "model.safetensors").read_bytes() == weights
        assert report.revision == commit
        assert report.config["artifact"]["sha"] == commit  # type: ignore[index]
        assert report.config.get("modelArchitecture") == "LlamaForCausalLM"  # type: ignore[union-attr]
        manifest = json.loads((root / ".ome-agent/manifests/BaseModel.team.tiny.json").read_text())
        verified = {f["path"]: f["verified"] for f in manifest["files"]}
        assert "sha256" in verified["model.safetensors"]
        assert "git-sha1" in verified["config.json"]
        assert HF_TEST_TOKEN not in json.dumps(manifest)
        assert all(HF_TEST_TOKEN not in str(r) for r in reporter.history)


@aio
async def test_missing_secret_is_failed_naming_the_secret(hf_env: HubServer, root: Path) -> None:
    hf_env.add_repo("org/private", {"config.json": CONFIG}, private=True)
    reporter = MemoryReporter()
    secrets = Secrets()
    res = model("priv", "hf://org/private", storage={"key": "absent"})
    async with running(root, reporter, res, secrets=secrets):
        await until(lambda: reporter.state("priv") is NodeState.FAILED)
        assert "absent" in (reporter.report("priv").error or "")
    # a ClusterBaseModel's Secret is read in the agent's namespace
    assert secrets.asked[0] == ("ome", "absent", "token")


@aio
async def test_eligibility_follows_node_labels(fault_server: FaultServer, root: Path) -> None:
    url = fault_server.add("/m/a.bin", os.urandom(MiB))
    reporter = MemoryReporter()
    res = model("gpu-only", url, path="gpu-only", labels={"gpu": "a100"})
    async with running(root, reporter, res, labels={"gpu": "none"}) as agent:
        assert await asyncio.wait_for(_idle(agent), 10)
        assert reporter.history == []
        assert fault_server.requests == []
        assert not (root / "gpu-only").exists()

        agent.rec.set_node("node-a", {"gpu": "a100"})
        await until(lambda: reporter.state("gpu-only") is NodeState.READY)
        assert (root / "gpu-only" / "a.bin").exists()

        agent.rec.set_node("node-a", {"gpu": "h100"})
        await until(lambda: not (root / "gpu-only").exists())
        assert reporter.state("gpu-only") is None
        assert not (root / ".ome-agent/manifests/ClusterBaseModel._.gpu-only.json").exists()
        assert root.is_dir()


async def _idle(agent: Agent) -> bool:
    await agent.rec._queue.wait_idle()
    return True


@aio
async def test_storage_uri_change_downloads_fresh_and_switches(
    fault_server: FaultServer, root: Path
) -> None:
    old, new = os.urandom(MiB), os.urandom(2 * MiB)
    url_old = fault_server.add("/v1/w.bin", old)
    url_new = fault_server.add("/v2/w.bin", new)
    reporter = MemoryReporter()
    async with running(root, reporter, model("m", url_old, path="m")) as agent:
        await until(lambda: reporter.state("m") is NodeState.READY)
        first = reporter.report("m").manifest_digest
        inode_before = (root / "m").stat().st_ino

        agent.rec.apply(model("m", url_new, path="m"))
        await until(
            lambda: (
                reporter.state("m") is NodeState.READY
                and reporter.report("m").manifest_digest != first
            )
        )
        assert (root / "m" / "w.bin").read_bytes() == new
        assert (root / "m").stat().st_ino != inode_before  # a new directory, switched in
        assert staging_leftovers(root) == []
        assert reporter.report("m").storage_uri == url_new


@aio
async def test_path_change_moves_the_model_and_removes_the_old_directory(
    fault_server: FaultServer, root: Path
) -> None:
    _, url = _served_file(fault_server, "p")
    reporter = MemoryReporter()
    async with running(root, reporter, model("p", url, path="first")) as agent:
        await until(lambda: reporter.state("p") is NodeState.READY)
        agent.rec.apply(model("p", url, path="second"))
        await until(lambda: reporter.state("p") is NodeState.READY and (root / "second").exists())
        await until(lambda: not (root / "first").exists())
        assert reporter.report("p").path == str(root / "second")


@aio
async def test_delete_during_download_cancels_and_cleans(
    fault_server: FaultServer, root: Path
) -> None:
    url = fault_server.add("/slow/w.bin", os.urandom(16 * MiB))
    fault_server.set_faults("/slow/w.bin", Throttle(bytes_per_sec=1 * MiB))
    reporter = MemoryReporter()
    res = model("slow", url, path="slow")
    async with running(root, reporter, res, transfer=TransferSettings(connections=1)) as agent:
        await until(
            lambda: (
                reporter.state("slow") is NodeState.UPDATING
                and (reporter.report("slow").progress is not None)
                and reporter.report("slow").progress.completed_bytes > 0
            )  # type: ignore[union-attr]
        )
        started = time.monotonic()
        agent.rec.forget(res.key)
        await until(lambda: reporter.state("slow") is None and staging_leftovers(root) == [], 10)
        await asyncio.wait_for(_idle(agent), 10)
        assert time.monotonic() - started < 5, "the download was not cancelled at once"
        assert not (root / "slow").exists()
        assert staging_leftovers(root) == []
        assert not list((root / ".ome-agent/manifests").glob("*slow*"))


@aio
async def test_restart_confirms_ready_from_disk_without_network_or_flap(
    hf_env: HubServer, fault_server: FaultServer, root: Path
) -> None:
    hf_env.add_repo("org/tiny", {"config.json": CONFIG, "model.safetensors": os.urandom(MiB)})
    _, url = _served_file(fault_server, "r")
    models = [model("hfm", "hf://org/tiny"), model("web", url, path="web")]
    reporter = MemoryReporter()
    await _ready_once(root, reporter, *models)

    hf_env.clear_requests()
    fault_server.requests.clear()
    reporter.history.clear()
    second = Agent(options(root), reporter, Secrets())
    second.rec.set_node("node-a", {})
    second.rec.replace_all(("ClusterBaseModel",), models)
    await second.rec.start()
    # Ready at once, before the queue even runs
    assert {r.key.name: r.state for r in reporter.history} == {
        "hfm": NodeState.READY,
        "web": NodeState.READY,
    }
    assert await second.rec.run_until_idle()
    assert all(r.state is NodeState.READY for r in reporter.history), reporter.history
    assert hf_env.requests("hub") == []
    assert hf_env.requests("cdn") == []
    assert fault_server.requests == []


async def _ready_once(root: Path, reporter: MemoryReporter, *models: ModelResource) -> None:
    """A first agent run that brings every model Ready, then stops (the restart tests'
    set-up: files and manifests on disk, as a restarted agent finds them)."""
    first = Agent(options(root), reporter, Secrets())
    await first.start(None, *models)
    for m in models:
        await until(lambda m=m: reporter.state(m.name) is NodeState.READY)
    await first.stop()


def _served_file(fault_server: FaultServer, name: str) -> tuple[bytes, str]:
    """1 MiB of random bytes served at /{name}/w.bin, and its URL."""
    data = os.urandom(MiB)
    return data, fault_server.add(f"/{name}/w.bin", data)


@aio
async def test_restart_with_a_modified_file_downloads_again(
    fault_server: FaultServer, root: Path
) -> None:
    data, url = _served_file(fault_server, "x")
    reporter = MemoryReporter()
    await _ready_once(root, reporter, model("x", url, path="x"))
    (root / "x" / "w.bin").write_bytes(b"tampered")
    second = await started(root, reporter, model("x", url, path="x"))
    assert await second.run_until_idle()
    assert (root / "x" / "w.bin").read_bytes() == data


@aio
async def test_leftovers_of_models_gone_while_down_are_cleaned(
    fault_server: FaultServer, root: Path
) -> None:
    _, url = _served_file(fault_server, "g")
    reporter = MemoryReporter()
    await _ready_once(
        root, reporter, model("gone", url, path="gone"), model("kept", url, path="kept")
    )

    second = await started(root, reporter, model("kept", url, path="kept"))
    assert not (root / "gone").exists()
    assert (root / "kept" / "w.bin").exists()
    assert reporter.state("gone") is None
    assert reporter.state("kept") is NodeState.READY
    assert await second.run_until_idle()


@aio
async def test_failed_retries_with_backoff_until_the_server_heals(
    fault_server: FaultServer, root: Path
) -> None:
    _, url = _served_file(fault_server, "flaky")
    fault_server.set_faults("/flaky/w.bin", Status(code=404, times=2))
    reporter = MemoryReporter()
    async with running(root, reporter, model("flaky", url, path="flaky")):
        await until(lambda: reporter.state("flaky") is NodeState.FAILED)
        assert "HTTP 404" in (reporter.report("flaky").error or "")
        await until(lambda: reporter.state("flaky") is NodeState.READY)
        failed_at = [r for r in reporter.history if r.state is NodeState.FAILED]
        assert len(failed_at) == 2  # two attempts failed, the third made it


@aio
async def test_unknown_and_malformed_schemes_fail_fast_and_claims_stay_off_the_node(
    root: Path,
) -> None:
    reporter = MemoryReporter()
    uris = {
        "z": "weird://x",
        "o": "oci://n/ns/b/",
        "p": "pvc://claim/sub",
    }
    rec = await started(root, reporter, *[model(n, u) for n, u in uris.items()])
    assert not await asyncio.wait_for(rec.run_until_idle(), 10)
    assert "weird:// is not a storage scheme this agent knows" in (reporter.report("z").error or "")
    assert reporter.report("o").state is NodeState.FAILED
    assert (reporter.report("o").error or "").startswith("spec.storage.storageUri 'oci://n/ns/b/'")
    # a claim's files never belong on a node: no entry at all (the controller reports it)
    assert reporter.state("p") is None
    assert not any(r.state is NodeState.UPDATING for r in reporter.history)


@aio
async def test_vendor_is_ready_without_download(root: Path) -> None:
    reporter = MemoryReporter()
    rec = await started(
        root,
        reporter,
        model("v", "vendor://nvidia/models/llama-70b-tensorrt", path="v", modelType="llama"),
        model("bad", "vendor://nvidia", path="bad"),
    )
    assert not await rec.run_until_idle()
    ready = reporter.report("v")
    assert ready.state is NodeState.READY
    assert ready.path == str(root / "v")
    assert ready.config == {
        "modelType": "llama",
        "vendorSource": {
            "vendor": "nvidia",
            "resourceType": "models",
            "resourcePath": "llama-70b-tensorrt",
        },
    }
    assert not (root / "v").exists()  # nothing downloaded, nothing created
    bad = reporter.report("bad")
    assert bad.state is NodeState.FAILED
    assert "vendor://{vendor}/{resource-type}/{resource-path}" in (bad.error or "")


@aio
async def test_path_outside_roots_and_root_itself_are_rejected(
    fault_server: FaultServer, root: Path, tmp_path: Path
) -> None:
    url = fault_server.add("/o/w.bin", b"x")
    reporter = MemoryReporter()
    rec = await started(
        root,
        reporter,
        model("out", url, path=str(tmp_path / "elsewhere")),
        model("up", url, path="../escape"),
        model("rootitself", url, path=str(root)),
    )
    assert not await rec.run_until_idle()
    assert "outside the models roots" in (reporter.report("out").error or "")
    assert "'..'" in (reporter.report("up").error or "")
    assert "models root itself" in (reporter.report("rootitself").error or "")
    assert fault_server.requests == []
    assert not (tmp_path / "elsewhere").exists()


@aio
async def test_two_models_one_path_second_fails(fault_server: FaultServer, root: Path) -> None:
    _, url = _served_file(fault_server, "s")
    reporter = MemoryReporter()
    rec = await started(
        root,
        reporter,
        model("first", url, path="shared"),
        model("second", url, path="shared/inner"),
    )
    assert not await rec.run_until_idle()
    assert reporter.report("first").state is NodeState.READY
    error = reporter.report("second").error or ""
    assert "already used by ClusterBaseModel/first" in error
    # removing the second model never touches the first's files
    async with running(root, reporter, model("first", url, path="shared")):
        await until(lambda: reporter.state("second") is None)
        assert reporter.state("first") is NodeState.READY
    assert (root / "shared" / "w.bin").exists()


@aio
async def test_disabled_is_not_downloaded_and_keeps_files(
    fault_server: FaultServer, root: Path
) -> None:
    _, url = _served_file(fault_server, "d")
    reporter = MemoryReporter()
    async with running(
        root, reporter, model("off", url, path="off", disabled=True), model("on", url, path="on")
    ) as agent:
        await until(lambda: reporter.state("on") is NodeState.READY)
        assert reporter.state("off") is None
        assert not (root / "off").exists()

        agent.rec.apply(model("on", url, path="on", disabled=True))
        await until(lambda: reporter.state("on") is None)
        assert (root / "on" / "w.bin").exists(), "disabling keeps the files"
        requests = len(fault_server.requests)
        agent.rec.apply(model("on", url, path="on"))
        await until(lambda: reporter.state("on") is NodeState.READY)
        assert len(fault_server.requests) == requests, "re-enabled from disk, no download"


@aio
async def test_disk_space_checked_before_download(hf_env: HubServer, tiny_fs: Path) -> None:
    hf_env.add_repo("org/big", {"config.json": CONFIG, "model.safetensors": os.urandom(12 * MiB)})
    reporter = MemoryReporter()
    metrics = AgentMetrics(CollectorRegistry())
    rec = await started(tiny_fs, reporter, model("big", "hf://org/big"), metrics=metrics)
    assert not await rec.run_until_idle()
    error = reporter.report("big").error or ""
    assert "not enough disk space" in error, error
    assert "GB free" in error, error
    assert hf_env.requests("cdn") == [], "failed before fetching any byte"
    assert metrics.failures.labels("disk")._value.get() == 1
    assert reporter.report("big").reason is FailureReason.DISK_FULL


@aio
async def test_local_directory_is_linked_in_and_metrics_count_it(
    root: Path, tmp_path: Path
) -> None:
    source = tmp_path / "export"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_bytes(CONFIG)
    (source / "sub" / "w.bin").write_bytes(os.urandom(MiB))
    registry = CollectorRegistry()
    reporter = MemoryReporter()
    rec = await started(
        root,
        reporter,
        model("abs", str(source), path="abs"),
        model("url", f"file://{source}", path="url"),
        metrics=AgentMetrics(registry),
        local_source_dirs=(tmp_path,),
    )
    assert await rec.run_until_idle()
    for name in ("abs", "url"):
        assert reporter.report(name).state is NodeState.READY
        copied = root / name / "sub" / "w.bin"
        assert copied.read_bytes() == (source / "sub" / "w.bin").read_bytes()
        assert copied.stat().st_ino == (source / "sub" / "w.bin").stat().st_ino  # hard link
    assert registry.get_sample_value("ome_agent_downloads_total", {"result": "success"}) == 2
    assert registry.get_sample_value("ome_agent_download_duration_seconds_count") == 2
    assert registry.get_sample_value("ome_agent_models", {"state": "Ready"}) == 2
    assert registry.get_sample_value("ome_agent_queue_depth") == 0
    # removing the model never touches the source it was linked from
    async with running(
        root, reporter, model("url", f"file://{source}", path="url"), local_source_dirs=(tmp_path,)
    ):
        await until(lambda: not (root / "abs").exists())
    assert (source / "sub" / "w.bin").exists()
    assert (root / "url" / "sub" / "w.bin").exists()


@aio
async def test_restart_resumes_a_partial_download_and_throttles_progress(
    fault_server: FaultServer, root: Path
) -> None:
    size = 12 * MiB
    data = os.urandom(size)
    url = fault_server.add("/big/w.bin", data)
    fault_server.set_faults("/big/w.bin", Throttle(bytes_per_sec=2 * MiB))
    reporter = MemoryReporter()
    res = model("big", url, path="big")
    opts = {"transfer": TransferSettings(connections=2, chunk_size=MiB), "progress_interval": 0.5}
    async with running(root, reporter, res, **opts):
        await until(
            lambda: (
                reporter.state("big") is NodeState.UPDATING
                and (reporter.report("big").progress is not None)
                and reporter.report("big").progress.completed_bytes >= 4 * MiB
            )  # type: ignore[union-attr]
        )
        await asyncio.sleep(0.7)  # past the engine's journal commit interval
    assert not (root / "big").exists()
    updates = [r for r in reporter.history if r.progress and r.progress.phase == "Downloading"]
    times = [r.progress.last_updated.timestamp() for r in updates]  # type: ignore[union-attr]
    assert all(b - a >= 0.4 for a, b in itertools.pairwise(times)), times
    done = [r.progress.completed_bytes for r in updates]  # type: ignore[union-attr]
    assert done == sorted(done)
    assert updates[-1].progress.total_bytes == size  # type: ignore[union-attr]

    fault_server.clear_faults()
    sent_before = fault_server.total_bytes_sent("/big/w.bin")
    async with running(root, reporter, res, **opts):
        await until(lambda: reporter.state("big") is NodeState.READY)
    assert (root / "big" / "w.bin").read_bytes() == data
    fetched_again = fault_server.total_bytes_sent("/big/w.bin") - sent_before
    assert fetched_again < size - 2 * MiB, f"resumed: only the rest is fetched ({fetched_again})"
    assert staging_leftovers(root) == []


@aio
async def test_periodic_verification_repairs_a_damaged_model(
    fault_server: FaultServer, root: Path
) -> None:
    data, url = _served_file(fault_server, "v")
    reporter = MemoryReporter()
    async with running(root, reporter, model("v", url, path="v"), verify_interval=0.3):
        await until(lambda: reporter.state("v") is NodeState.READY)
        requests = len(fault_server.requests)
        await asyncio.sleep(1.0)  # a few verifications of an intact model: no network
        assert len(fault_server.requests) == requests
        (root / "v" / "w.bin").write_bytes(b"damaged")
        await until(lambda: (root / "v" / "w.bin").read_bytes() == data)
        await until(lambda: reporter.state("v") is NodeState.READY)


@aio
async def test_revision_change_downloads_the_other_commit(hf_env: HubServer, root: Path) -> None:
    hf_env.add_repo("org/rev", {"config.json": CONFIG, "model.safetensors": b"a" * MiB})
    hf_env.add_repo(
        "org/rev", {"config.json": CONFIG, "model.safetensors": b"b" * MiB}, revision="v2"
    )
    reporter = MemoryReporter()
    async with running(root, reporter, model("r", "hf://org/rev@v2", path="r")) as agent:
        await until(lambda: reporter.state("r") is NodeState.READY)
        assert reporter.report("r").revision == hf_env.commit("org/rev", "v2")
        assert (root / "r" / "model.safetensors").read_bytes() == b"b" * MiB
        agent.rec.apply(
            model("r", "hf://org/rev", path="r", storage={"parameters": {"revision": "main"}})
        )
        await until(
            lambda: (
                reporter.state("r") is NodeState.READY
                and reporter.report("r").revision == hf_env.commit("org/rev", "main")
            )
        )
        assert (root / "r" / "model.safetensors").read_bytes() == b"a" * MiB


@aio
async def test_spec_change_during_a_download_cancels_it(
    fault_server: FaultServer, root: Path
) -> None:
    slow_size = 16 * MiB
    url_slow = fault_server.add("/old/w.bin", os.urandom(slow_size))
    fault_server.set_faults("/old/w.bin", Throttle(bytes_per_sec=1 * MiB))
    fresh = os.urandom(MiB)
    url_new = fault_server.add("/new/w.bin", fresh)
    reporter = MemoryReporter()
    opts = {"transfer": TransferSettings(connections=1)}
    async with running(root, reporter, model("c", url_slow, path="c"), **opts) as agent:
        await until(lambda: fault_server.total_bytes_sent("/old/w.bin") > 0)
        agent.rec.apply(model("c", url_new, path="c"))
        await until(lambda: reporter.state("c") is NodeState.READY, 10)
        assert (root / "c" / "w.bin").read_bytes() == fresh
        assert reporter.report("c").storage_uri == url_new
    assert fault_server.total_bytes_sent("/old/w.bin") < slow_size // 2
    assert staging_leftovers(root) == [], "the old spec's partial download is removed"


@aio
async def test_local_sources_are_confined_to_allowed_folders(root: Path, tmp_path: Path) -> None:
    """A model's author must not be able to copy arbitrary node files into a model
    directory their pods can mount: only the roots and --local-source-dir are readable."""
    outside = tmp_path / "node-secrets"
    outside.mkdir()
    (outside / "kubelet.conf").write_text("credentials")
    allowed = tmp_path / "exports"
    (allowed / "m").mkdir(parents=True)
    (allowed / "m" / "config.json").write_bytes(CONFIG)
    (allowed / "m" / "escape.json").symlink_to(outside / "kubelet.conf")
    reporter = MemoryReporter()
    rec = await started(
        root,
        reporter,
        model("outside", str(outside), path="outside"),
        model("linked", str(allowed / "m"), path="linked"),
        local_source_dirs=(allowed,),
    )
    assert not await rec.run_until_idle()
    assert reporter.state("outside") is NodeState.FAILED
    assert "--local-source-dir" in (reporter.report("outside").error or "")
    assert reporter.state("linked") is NodeState.FAILED
    assert "symbolic link" in (reporter.report("linked").error or "")
    assert not any(p.name == "kubelet.conf" for p in root.rglob("*"))
    assert not any(p.name == "escape.json" for p in root.rglob("*"))
