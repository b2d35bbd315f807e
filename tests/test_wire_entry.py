"""ConfigMap entries: OME's format written exactly, deterministic strings, tolerant reading."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from ome_agent.api import ModelKey
from ome_agent.reconcile.ports import NodeReport, NodeState, Progress
from ome_agent.wire.entry import MAX_MESSAGE, decode_entry, encode_entry
from ome_agent.wire.naming import config_map_key
from tests.data import llama_entry_config

CBM = ModelKey("ClusterBaseModel", None, "llama-3-1-8b-instruct")
BM = ModelKey("BaseModel", "team-a", "mistral-7b")
UID = "0f7c5a3e-1b2d-4c5e-8f9a-0123456789ab"

CONFIG = llama_entry_config(
    modelFramework={"name": "transformers", "version": "4.43.0.dev0"},
    decodedModelConfiguration={"model_type": "llama", "parameter_count": "8.03B"},
    artifact={"sha": "0e9e39f2", "parentPath": {}, "childrenPaths": []},
)

PROGRESS = Progress(
    phase="Downloading",
    total_bytes=16_060_522_496,
    completed_bytes=4_000_000_000,
    total_files=4,
    completed_files=1,
    speed_bytes_per_sec=1_234_567.89,
    last_updated=datetime(2026, 11, 27, 8, 1, 2, 345678, tzinfo=UTC),
)


def test_ready_entry_exact() -> None:
    report = NodeReport(key=CBM, uid=UID, state=NodeState.READY, config=CONFIG)
    text = encode_entry(report)
    assert text.startswith('{"name":"llama-3-1-8b-instruct","status":"Ready","config":{')
    assert text.endswith(f',"kind":"ClusterBaseModel","uid":"{UID}"}}')
    assert " " not in text.replace("Ready", "")  # compact
    data = json.loads(text)
    assert data["config"] == CONFIG
    assert "progress" not in data
    assert "namespace" not in data  # None is omitted
    assert "message" not in data


def test_updating_entry_progress_in_ome_format() -> None:
    report = NodeReport(key=BM, uid=UID, state=NodeState.UPDATING, progress=PROGRESS)
    data = json.loads(encode_entry(report))
    assert data["name"] == "mistral-7b"  # metadata.name, as OME writes it
    assert data["status"] == "Updating"
    assert data["namespace"] == "team-a"
    assert "config" not in data
    assert data["progress"] == {
        "phase": "Downloading",
        "totalBytes": 16_060_522_496,
        "completedBytes": 4_000_000_000,
        "totalFiles": 4,
        "completedFiles": 1,
        "speedBytesPerSec": 1_234_568,
        "lastUpdated": "2026-11-27T08:01:02Z",
    }


def test_failed_entry_carries_the_extras() -> None:
    report = NodeReport(
        key=BM,
        uid=UID,
        state=NodeState.FAILED,
        error="storage.storageUri: scheme s3 is not supported here: use hf:// or https://",
        storage_uri="s3://bucket/model",
        path="/mnt/models/mistral-7b",
        revision="abc123",
        manifest_digest="xxh3:0011",
    )
    text = encode_entry(report)
    assert list(json.loads(text)) == [
        "name",
        "status",
        "kind",
        "namespace",
        "uid",
        "message",
        "storageUri",
        "path",
        "revision",
        "manifestDigest",
    ]
    decoded = decode_entry(text)
    assert decoded.state is NodeState.FAILED
    assert decoded.message == report.error
    assert decoded.storage_uri == "s3://bucket/model"
    assert decoded.path == "/mnt/models/mistral-7b"
    assert decoded.revision == "abc123"
    assert decoded.manifest_digest == "xxh3:0011"
    assert decoded.error is None


def test_equal_reports_give_equal_strings() -> None:
    shuffled = dict(reversed(list(CONFIG.items())))
    shuffled["modelFramework"] = {"version": "4.43.0.dev0", "name": "transformers"}
    a = NodeReport(key=CBM, uid=UID, state=NodeState.READY, config=CONFIG)
    b = NodeReport(key=CBM, uid=UID, state=NodeState.READY, config=shuffled)
    assert encode_entry(a) == encode_entry(b)
    # a progress tick within the same second at nearly the same speed changes nothing
    p2 = Progress(**{**PROGRESS.__dict__, "speed_bytes_per_sec": 1_234_568.2})
    p2 = Progress(**{**p2.__dict__, "last_updated": PROGRESS.last_updated.replace(microsecond=9)})
    u1 = NodeReport(key=CBM, uid=UID, state=NodeState.UPDATING, progress=PROGRESS)
    u2 = NodeReport(key=CBM, uid=UID, state=NodeState.UPDATING, progress=p2)
    assert encode_entry(u1) == encode_entry(u2)
    # and a real change does change the string
    p3 = Progress(**{**PROGRESS.__dict__, "completed_bytes": PROGRESS.completed_bytes + 1})
    u3 = NodeReport(key=CBM, uid=UID, state=NodeState.UPDATING, progress=p3)
    assert encode_entry(u1) != encode_entry(u3)


def test_time_is_written_in_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    local = PROGRESS.last_updated.astimezone(plus2)
    p = Progress(**{**PROGRESS.__dict__, "last_updated": local})
    data = json.loads(encode_entry(NodeReport(CBM, UID, NodeState.UPDATING, progress=p)))
    assert data["progress"]["lastUpdated"] == "2026-11-27T08:01:02Z"
    naive = Progress(**{**PROGRESS.__dict__, "last_updated": datetime(2026, 1, 2, 3, 4, 5)})
    data = json.loads(encode_entry(NodeReport(CBM, UID, NodeState.UPDATING, progress=naive)))
    assert data["progress"]["lastUpdated"] == "2026-01-02T03:04:05Z"


@pytest.mark.parametrize("speed", [float("nan"), float("inf"), -5.0, 0.0])
def test_odd_speeds_are_written_as_zero(speed: float) -> None:
    p = Progress(**{**PROGRESS.__dict__, "speed_bytes_per_sec": speed})
    data = json.loads(encode_entry(NodeReport(CBM, UID, NodeState.UPDATING, progress=p)))
    assert data["progress"]["speedBytesPerSec"] == 0


def test_long_messages_are_clipped() -> None:
    report = NodeReport(CBM, UID, NodeState.FAILED, error="x" * 100_000)
    message = json.loads(encode_entry(report))["message"]
    assert len(message) == MAX_MESSAGE
    assert message.endswith("…")


def test_config_that_is_not_json_is_a_clear_error() -> None:
    report = NodeReport(CBM, UID, NodeState.READY, config={"maxTokens": float("nan")})
    with pytest.raises(
        ValueError, match=r"ClusterBaseModel/llama-3-1-8b-instruct: .*not plain JSON"
    ):
        encode_entry(report)


def test_round_trip() -> None:
    report = NodeReport(
        key=BM, uid=UID, state=NodeState.UPDATING, progress=PROGRESS, path="/m/x", revision="r"
    )
    decoded = decode_entry(encode_entry(report))
    assert decoded.state is NodeState.UPDATING
    assert decoded.name == "mistral-7b"
    assert decoded.kind == "BaseModel"
    assert decoded.namespace == "team-a"
    assert decoded.uid == UID
    assert decoded.progress == Progress(
        **{
            **PROGRESS.__dict__,
            "speed_bytes_per_sec": 1_234_568.0,
            "last_updated": PROGRESS.last_updated.replace(microsecond=0),
        }
    )
    assert decoded.model_key(config_map_key(BM)) == BM


# what OME's agent (Go, encoding/json) writes
OME_READY = (
    '{"name":"llama-3-1-8b-instruct","status":"Ready","config":{"modelType":"llama",'
    '"modelArchitecture":"LlamaForCausalLM","modelFramework":{"name":"transformers",'
    '"version":"4.43.0.dev0"},"modelFormat":{"name":"safetensors","version":"1.0.0"},'
    '"modelParameterSize":"8.03B","maxTokens":131072,"modelCapabilities":["TEXT_GENERATION"],'
    '"artifact":{"sha":"","parentPath":null,"childrenPaths":null}}}'
)
OME_UPDATING = (
    '{"name":"mistral-7b","status":"Updating","progress":{"phase":"Downloading",'
    '"totalBytes":100,"completedBytes":50,"totalFiles":2,"completedFiles":1,'
    '"speedBytesPerSec":1.5e+06,"lastUpdated":"2025-06-01T10:20:30.123456789+02:00"}}'
)


def test_reads_omes_ready_entry() -> None:
    decoded = decode_entry(OME_READY)
    assert decoded.state is NodeState.READY
    assert decoded.name == "llama-3-1-8b-instruct"
    assert decoded.config is not None
    assert decoded.config["modelParameterSize"] == "8.03B"
    assert decoded.progress is None
    assert decoded.kind is None
    assert decoded.uid is None
    assert decoded.model_key("clusterbasemodel.llama-3-1-8b-instruct") == CBM


def test_reads_omes_updating_entry() -> None:
    decoded = decode_entry(OME_UPDATING)
    assert decoded.state is NodeState.UPDATING
    # the members of OME_UPDATING's progress, in its order
    assert decoded.progress == Progress(
        "Downloading", 100, 50, 2, 1, 1.5e6, datetime(2025, 6, 1, 8, 20, 30, 123456, tzinfo=UTC)
    )
    assert decoded.model_key("team-a.basemodel.mistral-7b") == BM


def test_model_key_of_a_shortened_ome_key_uses_the_full_name() -> None:
    long = ModelKey("BaseModel", "team-a", "meta-llama-3-1-405b-instruct-fp8-dynamic-" + "x" * 220)
    data_key = config_map_key(long)
    assert data_key != f"team-a.basemodel.{long.name}"
    decoded = decode_entry(json.dumps({"name": long.name, "status": "Ready"}))
    assert decoded.model_key(data_key) == long


def test_model_key_unknown() -> None:
    assert decode_entry("{}").model_key("not-a-model-key") is None


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "not JSON"),
        ("{", "not JSON"),
        ("[1, 2]", "not a JSON object but list"),
        ('"Ready"', "not a JSON object but str"),
        ('{"name": "x"}', "no status"),
        ('{"name": "x", "status": "Deleted"}', "status 'Deleted' is not one of"),
        ('{"name": "x", "status": 3}', "no status"),
    ],
)
def test_malformed_entries_never_raise(text: str, error: str) -> None:
    decoded = decode_entry(text)
    assert decoded.state is None
    assert decoded.error is not None
    assert error in decoded.error


def test_deep_nesting_never_raises() -> None:
    decoded = decode_entry("[" * 100_000)
    assert decoded.state is None
    assert decoded.error == "not JSON: nested too deeply"


def test_wrong_types_inside_are_tolerated() -> None:
    text = json.dumps(
        {
            "name": 5,
            "status": "Updating",
            "config": "not an object",
            "progress": {
                "phase": None,
                "totalBytes": "100",
                "completedBytes": True,
                "speedBytesPerSec": "fast",
                "lastUpdated": "yesterday",
            },
            "message": ["x"],
        }
    )
    decoded = decode_entry(text)
    assert decoded.state is NodeState.UPDATING
    assert decoded.name is None
    assert decoded.config is None
    assert decoded.message is None
    # every member at its zero value
    assert decoded.progress == Progress("", 0, 0, 0, 0, 0.0, datetime(1970, 1, 1, tzinfo=UTC))
    assert decode_entry(json.dumps({"status": "Ready", "progress": [1]})).progress is None
