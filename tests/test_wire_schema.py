"""Every kind of ConfigMap entry the agent writes, checked against OME's schema.

``docs/ome-modelentry.schema.json`` transcribes the Go structs OME's controller decodes
an entry into (ModelEntry, ModelConfig, Artifact, DownloadProgress); the validator is
the ``jsonschema`` package, not a hand check of a few keys. The entries are made by the
agent's own code: discovery of every real config in ``tests/data/hf-configs``, the
fine-tuned adapter description, the vendor and skip-config-parsing shapes, progress at
the limits of OME's unsigned counters, and version-1 manifests read back after an
upgrade. The negative cases prove the check can fail: each is a mistake of the kind
that made OME drop every entry.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from ome_agent.api import ModelKey
from ome_agent.api.resources import parse_resource
from ome_agent.discovery import discover
from ome_agent.reconcile import peft_zip
from ome_agent.reconcile.manifest import Manifest
from ome_agent.reconcile.ports import NodeReport, NodeState, Progress
from ome_agent.wire.conformance import WireContractError
from ome_agent.wire.entry import encode_entry
from tests.conftest import WIRE_SCHEMA
from tests.data.safetensors_fixtures import shard_bytes
from tests.pull_helpers import cli_process

CONFIGS = sorted((Path(__file__).parent / "data" / "hf-configs").glob("*.json"))
KEY = ModelKey("ClusterBaseModel", None, "m")
UID = "0f7c5a3e-1b2d-4c5e-8f9a-0123456789ab"
ARTIFACT = {"sha": "0e9e39f2" * 5, "parentPath": {}, "childrenPaths": []}


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(WIRE_SCHEMA.read_text())
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def check(validator: jsonschema.protocols.Validator, report: NodeReport) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(encode_entry(report))
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(entry)]
    assert not errors, errors
    return entry


def ready(config: dict[str, Any]) -> NodeReport:
    return NodeReport(KEY, UID, NodeState.READY, config={**config, "artifact": ARTIFACT})


@pytest.mark.parametrize("config_file", CONFIGS, ids=lambda p: p.stem)
def test_ready_entry_of_every_real_config(
    config_file: Path, tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    (tmp_path / "config.json").write_bytes(config_file.read_bytes())
    found = discover(tmp_path)
    entry = check(validator, ready(found.to_ome_config()))
    decoded = entry["config"].get("decodedModelConfiguration", {})
    if found.parameter_count is not None:  # OME's human string, and our exact count
        assert decoded["parameter_count"] == entry["config"]["modelParameterSize"]
        assert entry["config"]["parameterCount"] == found.parameter_count
        assert isinstance(decoded["model_size_bytes"], int)


def test_ready_entry_with_weights_keeps_disk_bytes_in_a_member_of_ours(
    tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps({**config, "torch_dtype": "bfloat16"}))
    shard = shard_bytes({"w": ("BF16", (1000, 64)), "b": ("F32", (64,))})
    (tmp_path / "model.safetensors").write_bytes(shard)
    entry = check(validator, ready(discover(tmp_path).to_ome_config()))
    decoded = entry["config"]["decodedModelConfiguration"]
    assert decoded["parameter_count"] == "64.06K"
    assert decoded["model_size_bytes"] == 64_064 * 2  # parameters x bfloat16's width
    assert entry["config"]["sizeOnDiskBytes"] == len(shard)
    assert entry["config"]["artifact"] == ARTIFACT


def test_unknown_dtype_counts_four_bytes_as_ome_does(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "x"}')
    (tmp_path / "model.safetensors").write_bytes(shard_bytes({"w": ("I8", (10, 10))}))
    decoded = discover(tmp_path).to_ome_config()["decodedModelConfiguration"]
    assert decoded["model_size_bytes"] == 100 * 4


def test_fine_tuned_vendor_and_skip_parsing_entries(
    tmp_path: Path, validator: jsonschema.protocols.Validator
) -> None:
    weight = parse_resource(
        {
            "apiVersion": "ome.io/v1beta1",
            "kind": "FineTunedWeight",
            "metadata": {"name": "lora", "uid": UID},
            "spec": {
                "baseModelRef": {"name": "llama"},
                "modelType": "LoRA",
                "storage": {"storageUri": "hf://acme/lora"},
            },
        }
    )
    (tmp_path / "adapter_config.json").write_text('{"r": 8, "peft_type": "LORA"}')
    check(validator, ready(peft_zip.fine_tuned_config(weight, tmp_path)))
    model = parse_resource(
        {
            "apiVersion": "ome.io/v1beta1",
            "kind": "ClusterBaseModel",
            "metadata": {"name": "m", "uid": UID},
            "spec": {
                "modelType": "llama",
                "maxTokens": 2_147_483_647,
                "modelFormat": {"name": "safetensors", "version": "1.0.0"},
                "modelCapabilities": ["text-to-text"],
                "storage": {"storageUri": "vendor://nvidia/nim/llama"},
            },
        }
    )
    user = model.user_fields()
    check(validator, ready(dict(user)))  # skip-config-parsing: the spec alone
    vendor = {**user, "vendorSource": {"vendor": "nvidia", "type": "nim", "path": "llama"}}
    check(validator, NodeReport(KEY, UID, NodeState.READY, config=vendor))


@pytest.mark.parametrize("completed", [0, 2**63, 2**64 - 1])
def test_updating_entry_at_the_limits_of_omes_counters(
    completed: int, validator: jsonschema.protocols.Validator
) -> None:
    progress = Progress(
        phase="Downloading",
        total_bytes=2**64 - 1,
        completed_bytes=completed,
        total_files=2**32 - 1,
        completed_files=0,
        speed_bytes_per_sec=float("nan"),  # a speed that is not a number is written as 0
        last_updated=datetime(2026, 12, 4, 8, 1, 2, tzinfo=UTC),
    )
    entry = check(validator, NodeReport(KEY, UID, NodeState.UPDATING, progress=progress))
    assert entry["progress"]["speedBytesPerSec"] == 0


def test_failed_entry(validator: jsonschema.protocols.Validator) -> None:
    report = NodeReport(KEY, UID, NodeState.FAILED, error="spec.storage.storageUri: bad")
    assert check(validator, report)["message"] == "spec.storage.storageUri: bad"


def test_version_1_manifest_is_upgraded_to_omes_types(
    validator: jsonschema.protocols.Validator,
) -> None:
    old_config = {
        "modelType": "llama",
        "modelParameterSize": "8.03B",
        "decodedModelConfiguration": {
            "parameter_count": 8_030_261_248,
            "model_size_bytes": 16_060_522_496,
            "torch_dtype": "bfloat16",
        },
        "artifact": {"sha": "abc", "parentPath": "/models/m", "childrenPaths": ["/models/m/a"]},
    }
    manifest = Manifest.from_json(
        {
            "version": 1,
            "key": list(KEY),
            "uid": UID,
            "generation": 1,
            "identity": {"source": "hf://a/b", "revision": None, "path": "/models/m"},
            "commit": "abc",
            "files": [],
            "config": old_config,
            "parameterCount": 8_030_261_248,
        }
    )
    assert manifest.config is not None
    entry = check(validator, NodeReport(KEY, UID, NodeState.READY, config=manifest.config))
    config = entry["config"]
    assert config["artifact"] == {"sha": "abc", "parentPath": {}, "childrenPaths": []}
    assert config["decodedModelConfiguration"]["parameter_count"] == "8.03B"
    assert config["decodedModelConfiguration"]["model_size_bytes"] == 16_060_522_496
    assert config["sizeOnDiskBytes"] == 16_060_522_496
    assert config["parameterCount"] == 8_030_261_248


@pytest.mark.parametrize(
    ("config", "member"),
    [
        # the mistake OME's decoder met: parentPath as a plain string
        ({"artifact": {"sha": "a", "parentPath": "/models/m"}}, "config/artifact"),
        ({"artifact": {"sha": "a", "childrenPaths": "/models/c"}}, "config/artifact"),
        ({"maxTokens": 2**31}, "config/maxTokens"),
        ({"maxTokens": "4096"}, "config/maxTokens"),
        ({"modelCapabilities": "TEXT_TO_TEXT"}, "config/modelCapabilities"),
        ({"modelFormat": {"name": "safetensors", "version": 1}}, "config/modelFormat"),
        ({"modelParameterSize": 8_030_261_248}, "config/modelParameterSize"),
    ],
)
def test_the_check_refuses_what_omes_decoder_refuses(config: dict[str, Any], member: str) -> None:
    with pytest.raises(WireContractError) as refused:
        encode_entry(NodeReport(KEY, UID, NodeState.READY, config=config))
    assert refused.value.member.startswith(member)


def test_the_check_refuses_a_negative_counter() -> None:
    progress = Progress("Downloading", -1, 0, 1, 0, 0.0, datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(WireContractError) as refused:
        encode_entry(NodeReport(KEY, UID, NodeState.UPDATING, progress=progress))
    assert refused.value.member == "progress/totalBytes"


def test_pvc_inspection_config_is_omes_model_config(tmp_path: Path) -> None:
    """pvc:// models: the Job's ``inspect --termination-log`` config is what the
    controller reports, so it must be OME's ModelConfig too."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_bytes((CONFIGS[0]).read_bytes())
    (model / "model.safetensors").write_bytes(shard_bytes({"w": ("BF16", (64, 64))}))
    log = tmp_path / "termination-log"
    run = cli_process("inspect", str(model), "--termination-log", str(log))
    assert run.code == 0, run.stderr
    schema = json.loads(WIRE_SCHEMA.read_text())
    model_config = {"$defs": schema["$defs"], "$ref": "#/$defs/ModelConfig"}
    validator = jsonschema.validators.validator_for(schema)(model_config)
    config = json.loads(log.read_text())
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(config)]
    assert not errors, errors
    assert config["decodedModelConfiguration"]["parameter_count"] == "4.1K"
