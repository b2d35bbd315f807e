"""A reconcile of N models costs O(N), not O(N²): counted, not timed (timings on a
shared machine prove little). The reconcile core runs for real over vendor:// models
(Ready without a download) and local-folder models (hard-linked) with a state file;
what is counted is what used to be done once per pair of models: resolving a model's
directory, scanning for dependents, rewriting the whole state file, looking at every
queued key to start one, and reading every manifest on disk for each report."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from ome_agent.adapters.standalone import state as state_module
from ome_agent.adapters.standalone.secrets import StandaloneSecretReader
from ome_agent.adapters.standalone.state import StateFileReporter
from ome_agent.api import KINDS, parse_resource
from ome_agent.reconcile import core, layout, workqueue
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.manifest import ManifestStore
from ome_agent.reconcile.options import AgentOptions

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

    real_write = state_module.write_json

    def write_json(*args: Any, **kwargs: Any) -> None:
        counts["writes"] += 1
        real_write(*args, **kwargs)

    monkeypatch.setattr(state_module, "write_json", write_json)

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
