"""Names of every legal length become file names the kernel accepts: the shortening
rule, the manifests, the model and staging directories, remote file names and the
resource names accepted at parse time (real files in tmp_path, no servers)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from ome_agent.api import ModelKey, StorageSpec, parse_resource
from ome_agent.errors import BadInput, UnsafePath
from ome_agent.names import NAME_BUDGET, NAME_MAX, PATH_MAX, fit
from ome_agent.reconcile import layout
from ome_agent.reconcile.manifest import Identity, Manifest, ManifestStore
from ome_agent.transfer.confine import PART_SUFFIX, SEGMENT_MAX, confine
from tests.servers.http_fixtures import core

LONG = "m" * 200 + "-" + "x" * 52  # 253: the longest DNS subdomain
NAMESPACE = "n" * 63  # the longest DNS label
LONG_KEYS = [
    ModelKey("ClusterBaseModel", None, LONG),
    ModelKey("FineTunedWeight", None, LONG),
    ModelKey("BaseModel", NAMESPACE, LONG),
]
TMP = len(".") + len(".tmp")  # what the durable write adds around a name today


def manifest(key: ModelKey, path: Path) -> Manifest:
    return Manifest(key, "uid", 1, Identity("http://h/x", None, str(path)), None, [])


def test_fit_keeps_short_names_and_shortens_long_ones_by_omes_rule() -> None:
    assert fit("llama", 10) == "llama"
    assert fit("x" * 10, 10) == "x" * 10
    # OME's rule: 8 hex of the whole name's sha256, "-", then as much of its tail as fits
    digest = hashlib.sha256(LONG.encode()).hexdigest()[:8]
    assert fit(LONG, NAME_BUDGET) == f"{digest}-{LONG[-(NAME_BUDGET - 9) :]}"
    assert len(fit(LONG, NAME_BUDGET)) == NAME_BUDGET


def test_long_names_sharing_a_prefix_or_a_suffix_stay_apart() -> None:
    head, tail = "p" * 240, "s" * 240
    shared_prefix = {fit(head + end, 100) for end in ("-a", "-b", "-aa", "a-b")}
    shared_suffix = {fit(start + tail, 100) for start in ("a-", "b-", "aa-", "a-b")}
    assert len(shared_prefix) == 4
    assert len(shared_suffix) == 4


@pytest.mark.parametrize("key", LONG_KEYS, ids=lambda k: k.kind)
def test_manifests_of_the_longest_names_are_written_found_and_deleted(
    tmp_path: Path, key: ModelKey
) -> None:
    store = ManifestStore(tmp_path / "state")
    store.save(manifest(key, tmp_path / "m"))
    store.save_staging(key, tmp_path / "staging")
    names = [p.name for p in store.dir.iterdir()]
    assert len(names) == 2
    assert all(len(n.encode()) <= NAME_BUDGET for n in names), names
    assert store.load(key) == manifest(key, tmp_path / "m")
    assert store.staging_of(key) == tmp_path / "staging"
    assert [m.key for m in store.all()] == [key]
    assert store.staging() == {key: tmp_path / "staging"}
    store.delete(key)
    assert list(store.dir.iterdir()) == []


def test_short_names_keep_their_manifest_file_names(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    for key, name in [
        (ModelKey("ClusterBaseModel", None, "llama"), "ClusterBaseModel._.llama"),
        (ModelKey("BaseModel", "team", "llama"), "BaseModel.team.llama"),
        (ModelKey("FineTunedWeight", None, "lora"), "FineTunedWeight._.lora"),
        # the longest name kept whole: the staging marker fits the budget exactly
        (ModelKey("ClusterBaseModel", None, "c" * 183), "ClusterBaseModel._." + "c" * 183),
    ]:
        store.save(manifest(key, tmp_path / "m"))
        store.save_staging(key, tmp_path / "s")
        assert (store.dir / f"{name}.json").is_file()
        assert (store.dir / f"{name}_staging.json").is_file()
    assert max(len(p.name) for p in store.dir.iterdir()) == NAME_BUDGET


def test_two_long_names_sharing_a_prefix_get_two_manifests(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    a = ModelKey("BaseModel", NAMESPACE, LONG[:-1] + "a")
    b = ModelKey("BaseModel", NAMESPACE, LONG[:-1] + "b")
    c = ModelKey("BaseModel", NAMESPACE, "c" + LONG[1:])  # shares b's suffix... and a's
    for key in (a, b, c):
        store.save(manifest(key, tmp_path / key.name[-1]))
    assert len(list(store.dir.iterdir())) == 3
    assert {store.load(k).key for k in (a, b, c)} == {a, b, c}  # type: ignore[union-attr]


def test_a_manifest_found_under_another_models_file_name_is_not_taken(tmp_path: Path) -> None:
    # a shortened name is unique up to its hash: the key inside the file decides
    store = ManifestStore(tmp_path)
    mine, other = LONG_KEYS[0], ModelKey("ClusterBaseModel", None, "other")
    store.save(manifest(other, tmp_path / "o"))
    (store.dir / "ClusterBaseModel._.other.json").rename(store._file(mine))
    assert store.load(mine) is None


def test_migrate_renames_full_name_files_of_earlier_versions(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    store.dir.mkdir()
    long_key = ModelKey("ClusterBaseModel", None, "l" * 200)  # fit 255 bytes, not the budget
    short_key = ModelKey("BaseModel", "team", "short")
    legacy = store.dir / f"ClusterBaseModel._.{long_key.name}.json"
    legacy.write_text(json.dumps(manifest(long_key, tmp_path / "l").to_json()))
    marker = store.dir / f"ClusterBaseModel._.{long_key.name}.staging.json"
    marker.write_text(json.dumps({"key": list(long_key), "staging": str(tmp_path / "s")}))
    store.save(manifest(short_key, tmp_path / "s"))
    (store.dir / "junk.json").write_text("{")
    assert store.load(long_key) is None  # before: looked up under the new name
    assert store.migrate() == 2
    assert not legacy.exists()
    assert not marker.exists()
    assert store.load(long_key) == manifest(long_key, tmp_path / "l")
    assert store.staging_of(long_key) == tmp_path / "s"
    assert store.load(short_key) is not None
    assert (store.dir / "junk.json").exists()  # unreadable: left alone
    assert all(len(p.name) <= NAME_BUDGET for p in store.dir.iterdir())
    assert store.migrate() == 0


def test_a_models_marker_is_never_another_models_manifest(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    x, x_staging = (ModelKey("ClusterBaseModel", None, n) for n in ("x", "x.staging"))
    store.save_staging(x, tmp_path / "s")
    store.save(manifest(x_staging, tmp_path / "x"))
    assert store.staging_of(x) == tmp_path / "s"
    assert [m.key for m in store.all()] == [x_staging]
    store.clear_staging(x)
    assert store.load(x_staging) is not None


def test_migrate_tells_a_model_named_like_a_marker_by_its_content(tmp_path: Path) -> None:
    store = ManifestStore(tmp_path)
    key = ModelKey("ClusterBaseModel", None, "x.staging")
    store.save(manifest(key, tmp_path / "x"))
    assert store.migrate() == 0
    assert store.load(key) is not None
    marker = store.dir / "BaseModel.team.m.staging.json"  # an earlier version's marker
    marker.write_text(json.dumps({"key": ["BaseModel", "team", "m"], "staging": "/s"}))
    assert store.migrate() == 1
    assert store.staging() == {ModelKey("BaseModel", "team", "m"): Path("/s")}


def test_default_directories_fit_and_short_names_keep_theirs(tmp_path: Path) -> None:
    roots = (tmp_path,)
    assert layout.target_dir(ModelKey("ClusterBaseModel", None, "m"), None, roots) == (
        tmp_path / "m"
    )
    kept = "k" * NAME_BUDGET
    assert layout.target_dir(ModelKey("BaseModel", "t", kept), None, roots) == tmp_path / "t" / kept
    parents = [tmp_path, tmp_path / "fine-tuned", tmp_path / NAMESPACE]
    for key, parent in zip(LONG_KEYS, parents, strict=True):
        assert layout.target_dir(key, None, roots) == parent / fit(LONG, NAME_BUDGET)


@pytest.mark.parametrize("key", LONG_KEYS, ids=lambda k: k.kind)
def test_staging_and_switch_work_for_the_longest_names(tmp_path: Path, key: ModelKey) -> None:
    target = layout.target_dir(key, None, (tmp_path,))
    for generation in ("one", "two"):  # the second switch exchanges with the first
        staging = layout.staging_dir(target, key, generation)
        assert len(staging.name) + len(".old") <= NAME_BUDGET
        staging.mkdir(parents=True)
        (staging / "w.bin").write_text(generation)
        previous = layout.switch_into_place(staging, target)
        if previous is not None:
            layout.remove_tree(previous, (tmp_path,))
    assert (target / "w.bin").read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_staging_of_a_long_storage_path_segment_fits(tmp_path: Path) -> None:
    key = ModelKey("ClusterBaseModel", None, "m")
    target = layout.target_dir(key, StorageSpec(path="d/" + "p" * NAME_MAX), (tmp_path,))
    staging = layout.staging_dir(target, key, "id")
    assert len(staging.name) + len(".old") <= NAME_BUDGET
    assert staging.name.startswith(".ome-staging-")
    assert "p" * 100 in staging.name


@pytest.mark.parametrize(
    ("path", "why"),
    [("d/" + "p" * (NAME_MAX + 1), "segment of 256 bytes"), ("/".join(["d" * 200] * 20), "long")],
)
def test_a_storage_path_the_kernel_refuses_names_the_field(
    tmp_path: Path, path: str, why: str
) -> None:
    key = ModelKey("ClusterBaseModel", None, "m")
    with pytest.raises(BadInput, match=r"^spec\.storage\.path ") as err:
        layout.target_dir(key, StorageSpec(path=path), (tmp_path,))
    assert why in str(err.value)


@pytest.mark.parametrize(
    ("name", "namespace"),
    [("Upper", "team"), ("../escape", "team"), ("a_b", "team"), ("-a", "team"),
     ("a" * 254, "team"), ("ok", "n" * 64), ("ok", "a.b"), ("ok\n", "team")],
)  # fmt: skip
def test_names_the_api_server_would_refuse_are_refused(name: str, namespace: str) -> None:
    obj = {"kind": "BaseModel", "metadata": {"name": name, "namespace": namespace}}
    with pytest.raises(BadInput, match=r"metadata\.name must be a DNS subdomain"):
        parse_resource(obj)


def test_the_longest_legal_names_parse() -> None:
    for kind, namespace in [("BaseModel", NAMESPACE), ("ClusterBaseModel", None)]:
        meta = {"name": LONG, "namespace": namespace}
        assert parse_resource({"kind": kind, "metadata": meta}).key == ModelKey(
            kind, namespace, LONG
        )


def test_the_longest_remote_segment_fits_beside_its_journal(tmp_path: Path) -> None:
    name = "d/" + "w" * SEGMENT_MAX
    target = confine(tmp_path, name)
    target.parent.mkdir()
    (target.parent / (target.name + PART_SUFFIX)).write_bytes(b"")  # the kernel agrees


@pytest.mark.parametrize(
    ("name", "size"),
    [("w" * (SEGMENT_MAX + 1), SEGMENT_MAX + 1), ("d/" + "é" * 120, 240), ("é" * 128, 256)],
)
def test_a_remote_segment_too_long_for_its_journal_is_refused(
    tmp_path: Path, name: str, size: int
) -> None:
    with pytest.raises(UnsafePath, match=f"has a segment of {size} bytes: at most 239 fit"):
        confine(tmp_path, name)


def test_a_remote_path_too_long_for_the_kernel_is_refused(tmp_path: Path) -> None:
    deep = "/".join(["d" * 200] * (PATH_MAX // 201))
    with pytest.raises(UnsafePath, match="passes the kernel's limit of 4095"):
        confine(tmp_path, deep)
    assert not os.listdir(tmp_path)


def test_the_engine_refuses_a_destination_its_journal_cannot_be_named_after(
    engine: Any, tmp_path: Path
) -> None:
    longest = tmp_path / ("w" * SEGMENT_MAX)
    core().Transfer(engine, "http://127.0.0.1:9/x", str(longest))  # accepted
    with pytest.raises(ValueError, match=r"^dest: the file name has 240 bytes; .* 239 bytes"):
        core().Transfer(engine, "http://127.0.0.1:9/x", str(tmp_path / ("w" * 240)))
