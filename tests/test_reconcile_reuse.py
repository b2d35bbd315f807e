"""``storage.downloadPolicy: ReuseIfExists`` in the reconcile core, against the local Hub
(its request log counts the downloads) with an in-memory reporter: one download for
two models, hard links that outlive either model, OME's artifact fields kept in step,
and a restart that downloads nothing."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from ome_agent.api import ModelResource, parse_resource
from ome_agent.errors import BadInput
from ome_agent.reconcile.manifest import FileRecord, Identity, Manifest
from ome_agent.reconcile.ports import NodeState
from ome_agent.reconcile.reuse import same_files
from ome_agent.sources import RemoteFile, ResolvedSource
from ome_agent.transfer.settings import TransferSettings
from ome_agent.wire.entry import encode_entry
from tests.servers import moto_server
from tests.servers.hf_hub_server import HubServer
from tests.servers.moto_server import REGION, MotoS3
from tests.test_reconcile_core import (
    CONFIG,
    Agent,
    MemoryReporter,
    MiB,
    Secrets,
    aio,
    model,
    options,
    running,
    until,
)

moto_s3 = moto_server.moto_s3  # the session fixture, used by name below
REUSE = {"downloadPolicy": "ReuseIfExists"}
# one range request per file, so the Hub's log counts one GET per download
ONE = {"transfer": TransferSettings(connections=1)}
WEIGHTS = "model.safetensors"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "models"
    r.mkdir()
    return r


def reusing(name: str, uri: str, **storage: Any) -> ModelResource:
    return model(name, uri, path=name, storage={**REUSE, **storage})


def downloads(hub: HubServer, file: str = WEIGHTS) -> int:
    """GETs of one file on the Hub's resolve route (an LFS file is then redirected to
    the CDN, so this counts each download of it once)."""
    return sum(
        1
        for r in hub.requests("hub")
        if r["method"] == "GET" and "/resolve/" in r["path"] and r["path"].endswith(file)
    )


def artifact(reporter: MemoryReporter, name: str) -> dict[str, Any]:
    """The artifact of the model's ConfigMap entry, as written (checked against OME's
    schema: the tests set it)."""
    report = reporter.report(name)
    assert report.state is NodeState.READY, report.error
    return dict(json.loads(encode_entry(report))["config"]["artifact"])


def ready(reporter: MemoryReporter, *names: str) -> bool:
    return all(reporter.state(n) is NodeState.READY for n in names)


def repo(hub: HubServer, weights: bytes) -> str:
    return hub.add_repo("org/shared", {"config.json": CONFIG, WEIGHTS: weights})


@aio
async def test_two_models_of_one_repo_and_revision_download_once(
    hf_env: HubServer, root: Path
) -> None:
    weights = os.urandom(2 * MiB)
    commit = repo(hf_env, weights)
    reporter = MemoryReporter()
    models = [reusing("first", "hf://org/shared"), reusing("second", "hf://org/shared@main")]
    async with running(root, reporter, *models, **ONE) as agent:
        await until(lambda: ready(reporter, "first", "second"))
        assert downloads(hf_env) == 1, hf_env.requests("cdn")
        metrics = agent.rec._metrics
        assert metrics is not None
        assert metrics.downloads.labels("success")._value.get() == 1
        assert metrics.downloads.labels("reused")._value.get() == 1
        assert metrics.download_bytes._value.get() == 2 * MiB + len(CONFIG)
        first, second = root / "first" / WEIGHTS, root / "second" / WEIGHTS
        assert second.read_bytes() == weights
        assert first.stat().st_ino == second.stat().st_ino  # one copy, two names
        assert first.stat().st_nlink == 2
        await until(lambda: artifact(reporter, "first")["childrenPaths"] == [str(root / "second")])
        assert artifact(reporter, "second") == {
            "sha": commit,
            "parentPath": {"clusterbasemodel.first": str(root / "first")},
            "childrenPaths": [],
        }
        assert artifact(reporter, "first")["parentPath"] == {}
        assert reporter.report("second").revision == commit


@aio
async def test_always_download_is_the_default_and_the_policy_is_the_reusers(
    hf_env: HubServer, root: Path
) -> None:
    repo(hf_env, os.urandom(MiB))
    reporter = MemoryReporter()
    models = [model(n, "hf://org/shared", path=n) for n in ("one", "two")]
    async with running(root, reporter, *models, **ONE) as agent:
        await until(lambda: ready(reporter, "one", "two"))
        assert downloads(hf_env) == 2
        assert (root / "one" / WEIGHTS).stat().st_ino != (root / "two" / WEIGHTS).stat().st_ino
        assert artifact(reporter, "one")["childrenPaths"] == []
        assert artifact(reporter, "two")["parentPath"] == {}
        # a model asking for reuse takes the files of one that did not ask
        agent.rec.apply(reusing("three", "hf://org/shared"))
        await until(lambda: ready(reporter, "three"))
        assert downloads(hf_env) == 2
        assert artifact(reporter, "three")["parentPath"] == {
            "clusterbasemodel.one": str(root / "one")
        }


@aio
async def test_deleting_the_parent_leaves_the_child_ready_with_every_byte(
    hf_env: HubServer, root: Path
) -> None:
    weights = os.urandom(2 * MiB)
    repo(hf_env, weights)
    reporter = MemoryReporter()
    parent, child = reusing("parent", "hf://org/shared"), reusing("child", "hf://org/shared")
    async with running(root, reporter, parent, **ONE) as agent:
        await until(lambda: ready(reporter, "parent"))
        agent.rec.apply(child)
        await until(lambda: ready(reporter, "child"))
        assert downloads(hf_env) == 1
        agent.rec.forget(parent.key)
        await until(lambda: reporter.state("parent") is None and not (root / "parent").exists())
        await until(lambda: artifact(reporter, "child")["parentPath"] == {})
        assert (root / "child" / WEIGHTS).read_bytes() == weights
        assert (root / "child" / "config.json").read_bytes() == CONFIG
        assert (root / "child" / WEIGHTS).stat().st_nlink == 1
        assert reporter.state("child") is NodeState.READY
        assert downloads(hf_env) == 1


@aio
async def test_deleting_the_child_leaves_the_parent_untouched(
    hf_env: HubServer, root: Path
) -> None:
    weights = os.urandom(MiB)
    repo(hf_env, weights)
    reporter = MemoryReporter()
    parent, child = reusing("parent", "hf://org/shared"), reusing("child", "hf://org/shared")
    async with running(root, reporter, parent, child, **ONE) as agent:
        await until(lambda: ready(reporter, "parent", "child"))
        await until(lambda: artifact(reporter, "parent")["childrenPaths"] == [str(root / "child")])
        before = {p.name: p.stat() for p in (root / "parent").iterdir()}
        digest = reporter.report("parent").manifest_digest
        agent.rec.forget(child.key)
        await until(lambda: reporter.state("child") is None and not (root / "child").exists())
        await until(lambda: artifact(reporter, "parent")["childrenPaths"] == [])
        after = {p.name: p.stat() for p in (root / "parent").iterdir()}
        assert {n: (s.st_ino, s.st_size, s.st_mtime_ns) for n, s in after.items()} == {
            n: (s.st_ino, s.st_size, s.st_mtime_ns) for n, s in before.items()
        }
        assert (root / "parent" / WEIGHTS).read_bytes() == weights
        assert reporter.report("parent").manifest_digest == digest
        assert downloads(hf_env) == 1


@aio
async def test_a_revision_change_splits_them(hf_env: HubServer, root: Path) -> None:
    repo(hf_env, b"a" * MiB)
    v2 = hf_env.add_repo("org/shared", {"config.json": CONFIG, WEIGHTS: b"b" * MiB}, revision="v2")
    reporter = MemoryReporter()
    parent, child = reusing("parent", "hf://org/shared"), reusing("child", "hf://org/shared")
    async with running(root, reporter, parent, child, **ONE) as agent:
        await until(lambda: ready(reporter, "parent", "child"))
        await until(lambda: artifact(reporter, "parent")["childrenPaths"] == [str(root / "child")])
        agent.rec.apply(reusing("child", "hf://org/shared@v2"))
        await until(lambda: ready(reporter, "child") and reporter.report("child").revision == v2)
        assert downloads(hf_env) == 2
        assert (root / "child" / WEIGHTS).read_bytes() == b"b" * MiB
        assert (root / "parent" / WEIGHTS).read_bytes() == b"a" * MiB
        assert (root / "parent" / WEIGHTS).stat().st_nlink == 1
        assert artifact(reporter, "child")["parentPath"] == {}
        await until(lambda: artifact(reporter, "parent")["childrenPaths"] == [])


@aio
async def test_a_restart_downloads_nothing_and_keeps_the_links(
    hf_env: HubServer, root: Path
) -> None:
    repo(hf_env, os.urandom(MiB))
    models = [reusing("parent", "hf://org/shared"), reusing("child", "hf://org/shared")]
    reporter = MemoryReporter()
    first = Agent(options(root, **ONE), reporter, Secrets())
    await first.start(None, *models)
    await until(lambda: ready(reporter, "parent", "child"))
    await until(lambda: artifact(reporter, "parent")["childrenPaths"] == [str(root / "child")])
    await first.stop()

    hf_env.clear_requests()
    reporter = MemoryReporter()
    second = Agent(options(root, **ONE), reporter, Secrets())
    second.rec.set_node("node-a", {})
    second.rec.replace_all(("ClusterBaseModel",), models)
    await second.rec.start()
    assert await second.rec.run_until_idle()
    assert hf_env.requests("hub") == []
    assert hf_env.requests("cdn") == []
    assert artifact(reporter, "parent")["childrenPaths"] == [str(root / "child")]
    assert artifact(reporter, "child")["parentPath"] == {
        "clusterbasemodel.parent": str(root / "parent")
    }


@aio
async def test_a_parent_deleted_while_the_agent_was_down_leaves_the_child_whole(
    hf_env: HubServer, root: Path
) -> None:
    weights = os.urandom(MiB)
    repo(hf_env, weights)
    parent, child = reusing("parent", "hf://org/shared"), reusing("child", "hf://org/shared")
    reporter = MemoryReporter()
    first = Agent(options(root, **ONE), reporter, Secrets())
    await first.start(None, parent, child)
    await until(lambda: ready(reporter, "parent", "child"))
    assert artifact(reporter, "child")["parentPath"] == {
        "clusterbasemodel.parent": str(root / "parent")
    }
    await first.stop()

    hf_env.clear_requests()
    second = Agent(options(root, **ONE), reporter, Secrets())
    second.rec.set_node("node-a", {})
    second.rec.replace_all(("ClusterBaseModel",), [child])
    await second.rec.start()
    assert await second.rec.run_until_idle()
    assert not (root / "parent").exists()
    assert reporter.state("parent") is None
    assert (root / "child" / WEIGHTS).read_bytes() == weights
    assert artifact(reporter, "child")["parentPath"] == {}
    assert hf_env.requests("hub") == []


@aio
async def test_a_file_changed_on_the_node_is_not_reused(hf_env: HubServer, root: Path) -> None:
    weights = os.urandom(MiB)
    repo(hf_env, weights)
    reporter = MemoryReporter()
    async with running(root, reporter, reusing("parent", "hf://org/shared"), **ONE) as agent:
        await until(lambda: ready(reporter, "parent"))
        (root / "parent" / WEIGHTS).write_bytes(b"x" * MiB)  # same size, other bytes
        agent.rec.apply(reusing("child", "hf://org/shared"))
        await until(lambda: ready(reporter, "child"))
        assert (root / "child" / WEIGHTS).read_bytes() == weights
        assert artifact(reporter, "child")["parentPath"] == {}
        assert downloads(hf_env) == 2
        # the intact copy is the one reused next
        agent.rec.apply(reusing("third", "hf://org/shared"))
        await until(lambda: ready(reporter, "third"))
        assert artifact(reporter, "third")["parentPath"] == {
            "clusterbasemodel.child": str(root / "child")
        }
        assert downloads(hf_env) == 2


@aio
async def test_across_filesystems_the_model_is_downloaded_and_the_log_says_why(
    hf_env: HubServer, root: Path, tiny_fs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    weights = os.urandom(MiB)
    repo(hf_env, weights)
    reporter = MemoryReporter()
    parent = reusing("parent", "hf://org/shared")
    child = model("child", "hf://org/shared", path=str(tiny_fs / "child"), storage=REUSE)
    opts: dict[str, Any] = {**ONE, "models_roots": (root, tiny_fs)}
    caplog.set_level(logging.INFO, logger="ome_agent.reconcile")
    async with running(root, reporter, parent, **opts) as agent:
        await until(lambda: ready(reporter, "parent"))
        agent.rec.apply(child)
        await until(lambda: ready(reporter, "child"))
        assert (tiny_fs / "child" / WEIGHTS).read_bytes() == weights
        assert artifact(reporter, "child")["parentPath"] == {}
        assert downloads(hf_env) == 2
    fallback = [r for r in caplog.records if r.getMessage().startswith("identical files not")]
    assert fallback
    assert "another filesystem" in fallback[0].__dict__["reason"]


@aio
async def test_object_store_reuse_follows_the_listed_digests(moto_s3: MotoS3, root: Path) -> None:
    bucket = moto_s3.new_bucket()
    s3 = moto_s3.client()
    first_bytes, second_bytes = os.urandom(MiB), os.urandom(MiB)
    s3.put_object(Bucket=bucket, Key="m/config.json", Body=CONFIG)
    s3.put_object(Bucket=bucket, Key="m/w.bin", Body=first_bytes)
    secrets = Secrets({("team", "s3-creds", k): v for k, v in moto_s3.secret().items()})
    storage = {
        **REUSE,
        "storageKey": "s3-creds",
        "parameters": {"endpoint": moto_s3.endpoint, "region": REGION},
    }

    def s3_model(name: str) -> ModelResource:
        return model(name, f"s3://{bucket}/m", path=name, kind="BaseModel", storage=storage)

    reporter = MemoryReporter()
    async with running(root, reporter, s3_model("a"), s3_model("b"), secrets=secrets) as agent:
        await until(lambda: ready(reporter, "a", "b"))
        assert (root / "a" / "w.bin").stat().st_ino == (root / "b" / "w.bin").stat().st_ino
        assert artifact(reporter, "b")["parentPath"] == {"team.basemodel.a": str(root / "a")}
        # the object changes upstream: same names and sizes, another MD5, so no reuse
        s3.put_object(Bucket=bucket, Key="m/w.bin", Body=second_bytes)
        agent.rec.apply(s3_model("c"))
        await until(lambda: ready(reporter, "c"))
        assert (root / "c" / "w.bin").read_bytes() == second_bytes
        assert (root / "c" / "w.bin").stat().st_ino != (root / "a" / "w.bin").stat().st_ino
        assert artifact(reporter, "c")["parentPath"] == {}
        assert (root / "a" / "w.bin").read_bytes() == first_bytes


# ---------------------------------------------------------------- the rule alone
def _manifest(files: list[FileRecord], commit: str | None = None) -> Manifest:
    key = model("p", "s3://b/m").key
    return Manifest(key, "uid", 1, Identity("s3://b/m", None, "/m/p"), commit, files)


def _listing(*files: RemoteFile, commit: str | None = None) -> ResolvedSource:
    return ResolvedSource("s3://b/m", "s3", list(files), commit=commit)


def test_object_listings_match_by_path_size_and_digest() -> None:
    md5 = "9e107d9d372bb6826bd81d3542a419d6"
    recorded = [FileRecord("w.bin", 10, 1, {"md5": md5, "sha256": "ab"}, ["md5", "size"])]
    manifest = _manifest(recorded)
    assert same_files(_listing(RemoteFile("w.bin", "u", size=10, md5=md5.upper())), manifest)
    # another digest, another size, another name, one more object, no digest at all
    assert not same_files(_listing(RemoteFile("w.bin", "u", size=10, md5="0" * 32)), manifest)
    assert not same_files(_listing(RemoteFile("w.bin", "u", size=11, md5=md5)), manifest)
    assert not same_files(_listing(RemoteFile("x.bin", "u", size=10, md5=md5)), manifest)
    assert not same_files(
        _listing(RemoteFile("w.bin", "u", size=10, md5=md5), RemoteFile("y", "u", size=1, md5=md5)),
        manifest,
    )
    assert not same_files(_listing(RemoteFile("w.bin", "u", size=10, etag='"e"')), manifest)


def test_hf_listings_must_resolve_to_the_same_commit() -> None:
    recorded = [FileRecord("w.bin", 10, 1, {"sha256": "ab"}, ["sha256", "size"])]
    listed = RemoteFile("w.bin", "u", size=10, sha256="ab")
    assert same_files(_listing(listed, commit="c1"), _manifest(recorded, "c1"))
    assert not same_files(_listing(listed, commit="c2"), _manifest(recorded, "c1"))


def test_an_unknown_policy_is_one_line_naming_the_field() -> None:
    spec = {"storage": {"storageUri": "hf://org/m", "downloadPolicy": "Sometimes"}}
    with pytest.raises(BadInput) as raised:
        parse_resource({"kind": "ClusterBaseModel", "metadata": {"name": "m"}, "spec": spec})
    message = str(raised.value)
    assert "spec.storage.downloadPolicy" in message
    assert "'AlwaysDownload' or 'ReuseIfExists'" in message
    assert "\n" not in message
