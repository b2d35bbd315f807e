"""A reconcile of N models costs O(N), not O(N²): counted, not timed (timings on a
shared machine prove little). The reconcile core runs for real over vendor:// models
(Ready without a download) and local-folder models (hard-linked) with a state file;
what is counted is what used to be done once per pair of models: resolving a model's
directory, scanning for dependents, rewriting the whole state file, looking at every
queued key to start one, and reading every manifest on disk for each report."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from ome_agent.adapters.standalone import state as state_module
from ome_agent.adapters.standalone.secrets import StandaloneSecretReader
from ome_agent.adapters.standalone.state import StateFileReporter
from ome_agent.api import KINDS, ModelKey, parse_resource
from ome_agent.reconcile import core, layout, workqueue
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.manifest import ManifestStore
from ome_agent.reconcile.options import AgentOptions
from ome_agent.reconcile.ports import NodeReport, NodeState

N = 600


def _models(n: int, source: Path) -> list[Any]:
    local = [
        parse_resource({
            "kind": "ClusterBaseModel", "metadata": {"name": f"local{i}"},
            "spec": {"storage": {"storageUri": str(source)}},
        })
        for i in range(n // 10)
    ]  # fmt: skip
    base = local + [
        parse_resource({
            "kind": "ClusterBaseModel", "metadata": {"name": f"m{i}"},
            "spec": {"storage": {"storageUri": f"vendor://v/type/r{i}"}},
        })
        for i in range(n)
    ]  # fmt: skip
    tuned = [
        parse_resource({
            "kind": "FineTunedWeight", "metadata": {"name": f"t{i}"},
            "spec": {"baseModelRef": {"name": f"m{i}"},
                     "storage": {"storageUri": f"vendor://v/type/t{i}"}},
        })
        for i in range(n // 10)
    ]  # fmt: skip
    return base + tuned


def test_work_per_model_does_not_grow_with_the_number_of_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = {"target_dir": 0, "base_key": 0, "writes": 0, "scanned": 0, "manifest_scans": 0}

    real_all = ManifestStore.all

    def all_manifests(self: ManifestStore) -> Any:
        counts["manifest_scans"] += 1
        return real_all(self)

    monkeypatch.setattr(ManifestStore, "all", all_manifests)

    real_target = layout.target_dir

    def target_dir(*args: Any, **kwargs: Any) -> Path:
        counts["target_dir"] += 1
        return real_target(*args, **kwargs)

    monkeypatch.setattr(layout, "target_dir", target_dir)

    real_base_key = core.ModelResource.base_key

    def base_key(self: Any) -> Any:
        counts["base_key"] += 1
        return real_base_key.fget(self)  # type: ignore[attr-defined]

    monkeypatch.setattr(core.ModelResource, "base_key", property(base_key))

    real_write = state_module.write_text

    def write_text(*args: Any, **kwargs: Any) -> None:
        counts["writes"] += 1
        real_write(*args, **kwargs)

    monkeypatch.setattr(state_module, "write_text", write_text)

    real_items = dict.items

    class CountingDict(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            counts["scanned"] += len(self)
            return real_items(self)

        def values(self) -> Any:
            counts["scanned"] += len(self)
            return dict.values(self)

    real_init = workqueue.WorkQueue.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        real_init(self, *args, **kwargs)
        self._queued = CountingDict()

    monkeypatch.setattr(workqueue.WorkQueue, "__init__", init)

    source = tmp_path / "sources" / "weights"
    source.mkdir(parents=True)
    (source / "w.bin").write_bytes(b"w" * 64)
    models = _models(N, source)
    state = tmp_path / "state.json"

    async def reconcile() -> bool:
        options = AgentOptions(
            node_name="n",
            models_roots=(tmp_path / "models",),
            local_source_dirs=(tmp_path / "sources",),
        )
        reporter = StateFileReporter(state, "n")
        reconciler = Reconciler(options, reporter, StandaloneSecretReader())
        reconciler.set_node("n", {})
        reconciler.replace_all(KINDS, models)
        await reconciler.start()
        ok = await reconciler.run_until_idle()
        await reporter.flush()
        return ok

    assert asyncio.run(asyncio.wait_for(reconcile(), 300))
    reported = json.loads(state.read_text())["models"]
    assert len(reported) == len(models)
    assert all(r["state"] == "Ready" for r in reported.values())
    total = len(models)
    # each was once per pair of models: before, 436,260 / 180,360 / 652,412 and 660
    assert counts["target_dir"] <= 6 * total, counts
    assert counts["base_key"] <= 6 * total, counts
    assert counts["scanned"] <= 6 * total, counts
    assert counts["writes"] <= total // 10, counts  # coalesced, not one per report
    # every manifest on disk was read for each downloaded model's report
    assert counts["manifest_scans"] <= 2, counts


def test_a_model_directory_is_resolved_by_looking_at_its_own_part_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The models root is resolved once; a model's default directory below it costs one
    ``lstat`` (realpath of the whole path cost one per component, for every model, and
    a start-up of 10,000 models spent seconds there). A symbolic link is still
    followed: a model directory linked out of the root resolves to where it points."""
    root = tmp_path.joinpath("a", "b", "c", "d", "models")
    root.mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    real_lstat = os.lstat
    calls = 0

    def lstat(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return real_lstat(*args, **kwargs)

    layout.target_dir(ModelKey("ClusterBaseModel", None, "warm"), None, (root,))
    monkeypatch.setattr(os, "lstat", lstat)
    for i in range(100):
        key = ModelKey("ClusterBaseModel", None, f"m{i}")
        assert layout.target_dir(key, None, (root,)) == root / f"m{i}"
    assert calls <= 100, calls  # before: 100 times the 9+ components of the path
    linked = layout.target_dir(ModelKey("ClusterBaseModel", None, "linked"), None, (root,))
    assert linked == tmp_path / "elsewhere"


def test_writing_the_state_file_takes_a_bounded_share_of_the_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that took w seconds is followed by the next no sooner than
    w / WRITE_SHARE later: with a fixed interval, a start-up as long as its N models
    wrote the N-model file a number of times that grew with N too."""
    writes: list[float] = []
    real_write = state_module.write_text

    def slow_write(path: Path, text: str) -> None:
        writes.append(time.monotonic())
        time.sleep(0.1)  # a large file on a slow disk
        real_write(path, text)

    monkeypatch.setattr(state_module, "write_text", slow_write)
    reporter = StateFileReporter(tmp_path / "state.json", "n")

    async def publish_for(seconds: float) -> None:
        end = time.monotonic() + seconds
        i = 0
        while time.monotonic() < end:
            key = ModelKey("ClusterBaseModel", None, f"m{i}")
            await reporter.publish(NodeReport(key, "", NodeState.UPDATING))
            i += 1
            await asyncio.sleep(0.01)
        await reporter.flush()

    asyncio.run(publish_for(1.5))
    # the first change at once, the next not before 0.1 s / 0.05 = 2 s later: the
    # flush at the end; before, one every 0.5 s (4 or more)
    assert len(writes) == 2, writes
    saved = json.loads((tmp_path / "state.json").read_text())["models"]
    assert len(saved) > 50
    assert all(r["state"] == "Updating" for r in saved.values())
    lines = (tmp_path / "state.json").read_text().splitlines()
    assert sum(1 for line in lines if line.startswith('    "ClusterBaseModel/')) == len(saved)
