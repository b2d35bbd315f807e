"""FineTunedWeights on the node: placed beside their base model, a zipped adapter
unpacked safely, described and reported (reconcile core with a real HTTP server)."""

from __future__ import annotations

import asyncio
import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

from ome_agent.api import ModelKey, ModelResource
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.ports import NodeState
from tests.servers.fault_server import FaultServer
from tests.test_reconcile_core import MemoryReporter, Secrets, aio, model, options, root, until

__all__ = ["root"]  # the fixture, re-exported for pytest

ADAPTER_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "r": 16,
    "lora_alpha": 32,
    "target_modules": ["q_proj", "v_proj"],
    "base_model_name_or_path": "meta-llama/Llama-3.1-8B",
    "lora_dropout": 0.05,
}
FTW = ModelKey("FineTunedWeight", None, "ftw")


def adapter_zip(members: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in (
            members
            or {
                "adapter/adapter_config.json": json.dumps(ADAPTER_CONFIG).encode(),
                "adapter/adapter_model.safetensors": b"\0" * 4096,
            }
        ).items():
            z.writestr(name, data)
    return buf.getvalue()


def fine_tuned(uri: str, base: dict[str, Any], **storage: Any) -> ModelResource:
    return model(
        "ftw", uri, kind="FineTunedWeight", baseModelRef=base, modelType="LoRA", storage=storage
    )


def reconciler(root: Path, reporter: MemoryReporter, labels: dict[str, str]) -> Reconciler:
    rec = Reconciler(options(root), reporter, Secrets())
    rec.set_node("node-a", labels)
    return rec


def _gpu_node(
    fault_server: FaultServer, root: Path, base: str, config: bytes
) -> tuple[MemoryReporter, Reconciler, str, str]:
    """A reconciler on a node labelled gpu=a100, with the base model's config.json
    served at /{base}/ and an adapter archive at /{base}-adapter/."""
    base_url = fault_server.add(f"/{base}/config.json", config)
    zip_url = fault_server.add(f"/{base}-adapter/adapter.zip", adapter_zip())
    reporter = MemoryReporter()
    return reporter, reconciler(root, reporter, {"gpu": "a100"}), base_url, zip_url


@aio
async def test_adapter_follows_its_base_model_and_is_unpacked(
    fault_server: FaultServer, root: Path
) -> None:
    reporter, rec, base_url, zip_url = _gpu_node(
        fault_server, root, "base", b'{"model_type": "llama"}'
    )
    base = model("base", base_url, labels={"gpu": "a100"}, path="base")
    rec.replace_all(("ClusterBaseModel",), [base])
    rec.replace_all(("FineTunedWeight",), [fine_tuned(zip_url, {"name": "base"})])
    await rec.start()
    assert await asyncio.wait_for(rec.run_until_idle(), 30)

    report = reporter.current[FTW]
    assert report.state is NodeState.READY
    target = root / "fine-tuned" / "ftw"
    assert report.path == str(target)
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()) == [
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
    ]  # the archive itself is gone
    assert report.config is not None
    assert report.config["baseModelRef"] == {"kind": "ClusterBaseModel", "name": "base"}
    assert report.config["modelType"] == "LoRA"
    assert report.config["adapter"]["r"] == 16
    assert "lora_dropout" not in report.config["adapter"]
    manifest = json.loads(
        next((root / ".ome-agent" / "manifests").glob("FineTunedWeight.*.json")).read_text()
    )
    verified = {f["path"]: f["verified"] for f in manifest["files"]}
    assert verified["adapter/adapter_model.safetensors"] == ["zip-crc32", "size"]


@aio
async def test_adapter_waits_for_its_base_and_leaves_with_it(
    fault_server: FaultServer, root: Path
) -> None:
    reporter, rec, base_url, zip_url = _gpu_node(fault_server, root, "b2", b"{}")
    # a BaseModel in namespace "team" (the ref names the namespace)
    rec.replace_all(
        ("FineTunedWeight",), [fine_tuned(zip_url, {"name": "b2", "namespace": "team"})]
    )
    await rec.start()
    runner = asyncio.create_task(rec.run())
    try:
        await asyncio.sleep(0.3)
        assert FTW not in reporter.current  # no base: not placed anywhere
        rec.apply(model("b2", base_url, kind="BaseModel", labels={"gpu": "a100"}))
        await until(
            lambda: FTW in reporter.current and reporter.current[FTW].state.value == "Ready"
        )
        target = root / "fine-tuned" / "ftw"
        assert (target / "adapter" / "adapter_config.json").is_file()
        rec.set_node("node-a", {"gpu": "h100"})  # the base leaves this node: so does the adapter
        await until(lambda: FTW not in reporter.current and not target.exists())
    finally:
        rec.close()
        await asyncio.wait_for(runner, 10)


@aio
async def test_hostile_archives_fail_naming_the_member_and_write_nothing_outside(
    fault_server: FaultServer, root: Path, tmp_path: Path
) -> None:
    escape = adapter_zip({"ok.json": b"{}", "../../escaped.txt": b"owned"})
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as z:
        info = zipfile.ZipInfo("adapter/link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    base_url = fault_server.add("/b3/config.json", b"{}")
    for case, body in (("escape", escape), ("link", link.getvalue())):
        url = fault_server.add(f"/{case}/adapter.zip", body)
        reporter = MemoryReporter()
        rec = reconciler(root, reporter, {})
        rec.replace_all(("ClusterBaseModel",), [model("b3", base_url, path="b3")])
        rec.replace_all(("FineTunedWeight",), [fine_tuned(url, {"name": "b3"})])
        await rec.start()
        assert not await asyncio.wait_for(rec.run_until_idle(), 30)
        report = reporter.current[FTW]
        assert report.state is NodeState.FAILED
        error = report.error or ""
        assert "archive adapter.zip" in error
        assert ("../../escaped.txt" if case == "escape" else "adapter/link") in error
        assert not (tmp_path / "escaped.txt").exists()
        assert not (root.parent / "escaped.txt").exists()
        assert not list(root.rglob("link"))
