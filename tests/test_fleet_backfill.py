"""Spec back-fill: only empty fields, only valid values, never overriding, skippable."""

from __future__ import annotations

from typing import Any

import pytest

from ome_agent.api import ModelResource, parse_resource
from ome_agent.api.resources import DISCOVERABLE_FIELDS
from ome_agent.fleet.backfill import backfill_patch, ready_config
from ome_agent.fleet.status import NodeEntry
from tests.data import llama_entry_config

CONFIG = llama_entry_config(
    apiCapabilities=["OPENAI_V1_CHAT_COMPLETIONS"],
    decodedModelConfiguration={"model_type": "llama"},
    quantization="fp8",
)


def resource(
    spec: dict[str, Any] | None = None,
    *,
    kind: str = "ClusterBaseModel",
    annotations: dict[str, str] | None = None,
) -> ModelResource:
    meta: dict[str, Any] = {"name": "llama", "annotations": annotations or {}}
    body = {"storage": {"storageUri": "hf://meta/llama"}, **(spec or {})}
    return parse_resource({"kind": kind, "metadata": meta, "spec": body})


def test_fills_every_empty_discoverable_field() -> None:
    patch = backfill_patch(resource(), CONFIG)
    assert patch is not None
    assert set(patch) == set(DISCOVERABLE_FIELDS)  # the fields of .spec, not {"spec": ...}
    assert patch["maxTokens"] == 131072
    assert patch["modelFormat"] == {"name": "safetensors", "version": "1.0.0"}
    # never fields outside the list (apiCapabilities, the decoded configuration)
    assert "apiCapabilities" not in patch


def test_never_overrides_what_the_user_wrote() -> None:
    user = {
        "modelType": "custom",
        "maxTokens": 4096,
        "modelCapabilities": ["text-to-text"],
        "modelFormat": {"name": "pytorch"},
    }
    patch = backfill_patch(resource(user), CONFIG)
    assert patch is not None
    for field in user:
        assert field not in patch
    assert patch["modelArchitecture"] == "LlamaForCausalLM"


def test_nothing_to_fill_is_none() -> None:
    full = {k: v for k, v in CONFIG.items() if k in DISCOVERABLE_FIELDS}
    assert backfill_patch(resource(full), CONFIG) is None
    assert backfill_patch(resource(), {}) is None


def test_empty_user_values_count_as_empty() -> None:
    patch = backfill_patch(resource({"modelType": "", "modelCapabilities": []}), CONFIG)
    assert patch is not None
    assert patch["modelType"] == "llama"
    assert patch["modelCapabilities"] == ["TEXT_TO_TEXT"]


@pytest.mark.parametrize(
    "annotation", ["ome.io/skip-config-parsing", "ome.oracle.com/skip-config-parsing"]
)
def test_skip_config_parsing_annotation_both_spellings(annotation: str) -> None:
    assert backfill_patch(resource(annotations={annotation: "true"}), CONFIG) is None
    assert backfill_patch(resource(annotations={annotation: "false"}), CONFIG) is not None


def test_invalid_reported_values_are_dropped_not_patched() -> None:
    bad = {
        "modelType": 7,
        "maxTokens": 2**40,  # beyond the CRD's int32
        "modelCapabilities": "TEXT_TO_TEXT",
        "modelFormat": {"version": "1"},
        "modelFramework": {"name": "transformers", "version": 4},
        "quantization": "  ",
        "modelArchitecture": "X",
    }
    patch = backfill_patch(resource(), bad)
    assert patch == {"modelFramework": {"name": "transformers"}, "modelArchitecture": "X"}


def test_capabilities_normalised() -> None:
    patch = backfill_patch(resource(), {"modelCapabilities": ["text-generation", "embedding"]})
    assert patch == {"modelCapabilities": ["TEXT_TO_TEXT", "EMBEDDING"]}


def test_finetunedweight_is_not_back_filled() -> None:
    ftw = parse_resource(
        {
            "kind": "FineTunedWeight",
            "metadata": {"name": "lora"},
            "spec": {"baseModelRef": {"name": "llama"}},
        }
    )
    assert backfill_patch(ftw, CONFIG) is None


def test_ready_config_first_ready_node_by_name() -> None:
    entries = {
        "c": NodeEntry("c", "Ready", None, None, {"modelType": "from-c"}),
        "a": NodeEntry("a", "Updating", None, None, None),
        "b": NodeEntry("b", "Ready", None, None, {"modelType": "from-b"}),
        "0": NodeEntry("0", "Ready", None, None, None),  # Ready without a config: skipped
    }
    assert ready_config(entries) == {"modelType": "from-b"}
    assert ready_config({"a": entries["a"]}) is None
