"""OME's names, byte for byte: node label keys, ConfigMap keys, the ConfigMap's metadata."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ome_agent.api import ModelKey
from ome_agent.wire.naming import (
    config_map_key,
    config_map_metadata,
    node_label_key,
    parse_config_map_key,
    uid_label_key,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "ome-naming-vectors.json").read_text())


def _key(v: dict[str, Any]) -> ModelKey:
    return ModelKey(v["kind"], v["namespace"], v["name"])


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
def test_node_label_vectors(vector: dict[str, Any]) -> None:
    assert node_label_key(_key(vector)) == vector["nodeLabel"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"][:40] for v in VECTORS])
def test_config_map_key_vectors(vector: dict[str, Any]) -> None:
    assert config_map_key(_key(vector)) == vector["configMapKey"]


def _sha8(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def test_label_budget_edges() -> None:
    # ClusterBaseModel: 32 characters for the name
    fits = "n" * 32
    assert node_label_key(ModelKey("ClusterBaseModel", None, fits)).endswith("." + fits)
    over = "a" + "n" * 32
    assert node_label_key(ModelKey("ClusterBaseModel", None, over)) == (
        f"models.ome.io/clusterbasemodel.{_sha8(over)}-{'n' * 23}"
    )
    # BaseModel: namespace + name share 38 characters (OME: 49 - len("basemodel.") - 1)
    key = ModelKey("BaseModel", "ns", "m" * 36)
    assert node_label_key(key) == f"models.ome.io/ns.basemodel.{'m' * 36}"
    key = ModelKey("BaseModel", "ns", "m" * 37)
    assert node_label_key(key) == f"models.ome.io/ns.basemodel.{_sha8('m' * 37)}-{'m' * 27}"


def test_every_label_name_fits_kubernetes_limits() -> None:
    for kind, namespace in [("ClusterBaseModel", None), ("BaseModel", "n" * 63)]:
        for length in range(1, 254):
            label = node_label_key(ModelKey(kind, namespace, "x" * length))  # type: ignore[arg-type]
            prefix, name = label.split("/")
            assert prefix == "models.ome.io"
            assert len(name) <= 49
            data_key = config_map_key(ModelKey(kind, namespace, "x" * length))  # type: ignore[arg-type]
            assert len(data_key) <= 253


def test_long_namespace_keeps_a_hash_of_eight() -> None:
    key = ModelKey("BaseModel", "a-rather-long-namespace-name", "m" * 40)
    label = node_label_key(key)
    assert label.startswith(f"models.ome.io/{_sha8('a-rather-long-namespace-name')}.basemodel.")
    assert len(label.split("/")[1]) == 49


def test_fine_tuned_weight_forms() -> None:
    key = ModelKey("FineTunedWeight", None, "llama-lora")
    assert node_label_key(key) == "models.ome.io/finetunedweight.llama-lora"
    assert config_map_key(key) == "finetunedweight.llama-lora"
    long = ModelKey("FineTunedWeight", None, "l" * 60)
    assert len(node_label_key(long).split("/")[1]) == 49


def test_kinds_never_collide() -> None:
    keys = {
        config_map_key(ModelKey("BaseModel", "a", "b")),
        config_map_key(ModelKey("FineTunedWeight", None, "b")),
        config_map_key(ModelKey("ClusterBaseModel", None, "b")),
    }
    assert len(keys) == 3


def test_uid_label() -> None:
    uid = "0f7c5a3e-1b2d-4c5e-8f9a-0123456789ab"
    assert uid_label_key(uid) == f"models.ome/{uid}"


def test_config_map_metadata() -> None:
    assert config_map_metadata("gpu-node-1", "ome") == {
        "name": "gpu-node-1",
        "namespace": "ome",
        "labels": {"models.ome/basemodel-status": "true", "node": "gpu-node-1"},
        "annotations": {
            "models.ome.io/node-name": "gpu-node-1",
            "models.ome.io/managed-by": "model-agent",
        },
    }


@pytest.mark.parametrize(
    "key",
    [
        ModelKey("ClusterBaseModel", None, "llama-3-70b-instruct"),
        ModelKey("BaseModel", "team-a", "llama-3-70b-instruct"),
        ModelKey("BaseModel", "team-a", "my.dotted.name"),
        ModelKey("FineTunedWeight", None, "lora"),
    ],
)
def test_parse_config_map_key_round_trips(key: ModelKey) -> None:
    assert parse_config_map_key(config_map_key(key)) == key


@pytest.mark.parametrize("data_key", ["", "clusterbasemodel.", "something-else", ".basemodel.x"])
def test_parse_config_map_key_rejects_other_keys(data_key: str) -> None:
    assert parse_config_map_key(data_key) is None
