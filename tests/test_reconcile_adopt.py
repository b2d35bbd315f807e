"""Adoption: ``reconcile.localcheck.check_local`` (files already on disk checked against a
listing, each digest a source gives computed here independently and compared) and the
reconcile core's gate (only what the node's report calls Ready, only the flat layout),
with the local Hub and an in-memory reporter."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import google_crc32c
import pytest
from awscrt import checksums

from ome_agent.api import ModelResource
from ome_agent.errors import Interrupted, UnsafePath
from ome_agent.reconcile.localcheck import check_local
from ome_agent.reconcile.ports import NodeReport, NodeState
from ome_agent.sources import ResolvedSource
from ome_agent.sources.model import MultipartMd5, RemoteFile
from tests.data.safetensors_fixtures import shard_bytes
from tests.servers import moto_server
from tests.servers.hf_hub_server import HubServer
from tests.servers.moto_server import REGION, MotoS3
from tests.test_reconcile_core import (
    CONFIG,
    MemoryReporter,
    Secrets,
    aio,
    model,
    root,
    started,
)

moto_s3 = moto_server.moto_s3  # the session fixture, used by name below
__all__ = ["root"]  # the fixture, re-exported for pytest
PART = 1024


def _git_sha1(body: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


def _multipart(body: bytes, part: int) -> str:
    parts = [body[i : i + part] for i in range(0, len(body), part)]
    joined = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"


def _listing(files: dict[str, RemoteFile]) -> ResolvedSource:
    return ResolvedSource(source="test://", scheme="s3", files=list(files.values()))


BODIES = {
    "lfs.safetensors": b"weights" * 3000,
    "config.json": b'{"model_type": "llama"}',
    "object.bin": b"object" * 500,
    "crc.bin": b"crc" * 700,
    "crc64.bin": bytes(range(256)) * 300,  # long enough for the SIMD folding
    "parts.bin": b"p" * (3 * PART),  # exactly three parts: no empty fourth
    "parts-tail.bin": b"q" * (2 * PART + 5),
    "sized.bin": b"size only",
}


def _remote() -> dict[str, RemoteFile]:
    b = BODIES
    return {
        "lfs.safetensors": RemoteFile(
            "lfs.safetensors",
            "u",
            size=len(b["lfs.safetensors"]),
            sha256=hashlib.sha256(b["lfs.safetensors"]).hexdigest(),
        ),
        "config.json": RemoteFile(
            "config.json", "u", size=len(b["config.json"]), git_sha1=_git_sha1(b["config.json"])
        ),
        "object.bin": RemoteFile(
            "object.bin",
            "u",
            size=len(b["object.bin"]),
            md5=hashlib.md5(b["object.bin"], usedforsecurity=False).hexdigest(),
        ),
        "crc.bin": RemoteFile(
            "crc.bin",
            "u",
            size=len(b["crc.bin"]),
            crc32c=google_crc32c.value(b["crc.bin"]).to_bytes(4, "big").hex(),
        ),
        "crc64.bin": RemoteFile(
            "crc64.bin",
            "u",
            size=len(b["crc64.bin"]),
            # the AWS common runtime's CRC64NVME, not the engine's that adoption uses
            crc64nvme=checksums.crc64nvme(b["crc64.bin"]).to_bytes(8, "big").hex(),
        ),
        "parts.bin": RemoteFile(
            "parts.bin",
            "u",
            size=len(b["parts.bin"]),
            md5_multipart=MultipartMd5(PART, _multipart(b["parts.bin"], PART)),
        ),
        "parts-tail.bin": RemoteFile(
            "parts-tail.bin",
            "u",
            size=len(b["parts-tail.bin"]),
            md5_multipart=MultipartMd5(PART, _multipart(b["parts-tail.bin"], PART)),
            unverified="part sizes from the listing",
        ),
        "sized.bin": RemoteFile("sized.bin", "u", size=len(b["sized.bin"])),
    }


def _fill(root: Path) -> None:
    for rel, body in BODIES.items():
        (root / rel).write_bytes(body)


def test_every_digest_a_source_gives_is_checked_and_kept(tmp_path: Path) -> None:
    _fill(tmp_path)
    check = check_local(tmp_path, _listing(_remote()), workers=3)
    assert check.mismatches == []
    assert check.checked_bytes == sum(len(b) for b in BODIES.values())
    verified = {path: v for path, (_, v) in check.kept.items()}
    assert verified == {
        "lfs.safetensors": ["size", "sha256"],
        "config.json": ["size", "git-sha1"],
        "object.bin": ["size", "md5"],
        "crc.bin": ["size", "crc32c"],
        "crc64.bin": ["size", "crc64nvme"],
        "parts.bin": ["size", "md5-multipart"],
        "parts-tail.bin": ["size", "md5-multipart"],
        "sized.bin": ["size"],
    }
    # with nothing to compare, a sha256 of record for the manifest
    found, _ = check.kept["sized.bin"]
    assert found["sha256"] == hashlib.sha256(BODIES["sized.bin"]).hexdigest()
    assert check.kept["parts-tail.bin"][0]["unverified"] == "part sizes from the listing"


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_changed_byte_is_found_whatever_the_digest(tmp_path: Path, name: str) -> None:
    _fill(tmp_path)
    body = bytearray(BODIES[name])
    body[len(body) // 2] ^= 0x01
    (tmp_path / name).write_bytes(bytes(body))
    check = check_local(tmp_path, _listing(_remote()), workers=2)
    if name == "sized.bin":  # size only: nothing else to compare, so it is kept
        assert check.mismatches == []
        return
    assert [m.job.file.path for m in check.mismatches] == [name]
    assert check.mismatches[0].reason.endswith("differs from the source's")
    assert name not in check.kept
    assert len(check.kept) == len(BODIES) - 1


def test_missing_and_resized_files_are_not_read(tmp_path: Path) -> None:
    _fill(tmp_path)
    (tmp_path / "object.bin").unlink()
    (tmp_path / "lfs.safetensors").write_bytes(b"short")
    check = check_local(tmp_path, _listing(_remote()), workers=2)
    reasons = {m.job.file.path: m.reason for m in check.mismatches}
    assert reasons == {
        "lfs.safetensors": f"5 bytes, the source has {len(BODIES['lfs.safetensors'])}",
        "object.bin": "missing",
    }
    assert check.mismatches[0].job.dest == tmp_path / "lfs.safetensors"


def test_a_link_out_of_the_directory_is_refused(tmp_path: Path) -> None:
    _fill(tmp_path)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(BODIES["object.bin"])
    (tmp_path / "object.bin").unlink()
    (tmp_path / "object.bin").symlink_to(outside)
    with pytest.raises(UnsafePath, match=r"object\.bin"):
        check_local(tmp_path, _listing(_remote()), workers=1)


def test_cancelled_stops_reading(tmp_path: Path) -> None:
    _fill(tmp_path)
    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted):
        check_local(tmp_path, _listing(_remote()), workers=1, cancelled=stop)


# ---------------------------------------------------------------- in the reconcile core
def _reported_ready(resource: ModelResource) -> MemoryReporter:
    """A reporter holding the node's report as OME's agent left it: Ready, with no uid."""
    reporter = MemoryReporter()
    reporter.current[resource.key] = NodeReport(resource.key, "", NodeState.READY)
    return reporter


def _tiny_already_on_disk(hf_env: HubServer, root: Path) -> ModelResource:
    """org/tiny on the Hub, and its config.json already under ``root/tiny`` (no manifest)."""
    hf_env.add_repo("org/tiny", {"config.json": CONFIG})
    (root / "tiny").mkdir()
    (root / "tiny" / "config.json").write_bytes(CONFIG)
    return model("tiny", "hf://org/tiny", path="tiny")


async def _run_once(root: Path, reporter: MemoryReporter, resource: ModelResource) -> None:
    rec = await started(root, reporter, resource)
    await rec.run_until_idle()


@aio
async def test_files_the_report_does_not_call_ready_are_not_taken(
    hf_env: HubServer, root: Path
) -> None:
    resource = _tiny_already_on_disk(hf_env, root)
    reporter = MemoryReporter()
    await _run_once(root, reporter, resource)
    report = reporter.report("tiny")
    assert report.state is NodeState.FAILED
    assert "was not written by this agent" in (report.error or "")
    assert hf_env.requests("hub") == []
    assert not (root / ".ome-agent" / "manifests" / "ClusterBaseModel._.tiny.json").exists()


@aio
async def test_a_hugging_face_cache_layout_is_not_adopted(hf_env: HubServer, root: Path) -> None:
    hf_env.add_repo("org/tiny", {"config.json": CONFIG})
    snapshot = root / "tiny" / "models--org--tiny" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_bytes(CONFIG)
    resource = model("tiny", "hf://org/tiny", path="tiny")
    reporter = _reported_ready(resource)
    await _run_once(root, reporter, resource)
    report = reporter.report("tiny")
    assert report.state is NodeState.FAILED
    assert "Hugging Face cache layout is not adopted" in (report.error or "")
    assert "spec.storage.path" in (report.error or "")
    assert [r for r in hf_env.requests("hub") if "/resolve/" in r["path"]] == []
    assert (snapshot / "config.json").read_bytes() == CONFIG  # nothing removed


@aio
async def test_adopted_without_a_download_and_confirmed_from_disk_next_time(
    hf_env: HubServer, root: Path
) -> None:
    resource = _tiny_already_on_disk(hf_env, root)
    reporter = _reported_ready(resource)
    await _run_once(root, reporter, resource)
    assert [r.state for r in reporter.history] == [NodeState.READY]  # never Updating
    assert reporter.report("tiny").manifest_digest
    assert [r for r in hf_env.requests("hub") if "/resolve/" in r["path"]] == []
    hf_env.clear_requests()
    await _run_once(root, reporter, resource)  # a restart: the manifest decides
    assert hf_env.requests("hub") == []


@aio
async def test_adopted_from_an_object_store_with_the_one_bad_file_fetched_again(
    moto_s3: MotoS3, root: Path
) -> None:
    bucket = moto_s3.new_bucket()
    config = json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}).encode()
    shard = shard_bytes({"model.embed_tokens.weight": ("BF16", (256, 64))})
    s3 = moto_s3.client()
    s3.put_object(Bucket=bucket, Key="llama/config.json", Body=config)
    s3.put_object(Bucket=bucket, Key="llama/model.safetensors", Body=shard)
    (root / "llama").mkdir()
    (root / "llama" / "config.json").write_bytes(config)
    (root / "llama" / "model.safetensors").write_bytes(shard[:-1] + b"\0")  # one byte off
    resource = model(
        "llama", f"s3://{bucket}/llama", path="llama", kind="BaseModel",
        storage={
            "storageKey": "s3-creds",
            "parameters": {"endpoint": moto_s3.endpoint, "region": REGION},
        },
    )  # fmt: skip
    reporter = _reported_ready(resource)
    secrets = Secrets({("team", "s3-creds", k): v for k, v in moto_s3.secret().items()})
    rec = await started(root, reporter, resource, secrets=secrets)
    assert await rec.run_until_idle()
    assert [r.state for r in reporter.history] == [NodeState.READY]
    assert (root / "llama" / "model.safetensors").read_bytes() == shard
    manifest = json.loads(
        (root / ".ome-agent" / "manifests" / "BaseModel.team.llama.json").read_text()
    )
    verified = {f["path"]: f["verified"] for f in manifest["files"]}
    assert "md5" in verified["config.json"], verified  # kept: the ETag's MD5, here
    assert "md5" in verified["model.safetensors"], verified  # fetched again: by the engine
