"""The discovery API other layers call: sizes, annotations, capabilities, OME config, spec merge."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ome_agent.discovery import (
    Discovery,
    NameVersion,
    discover,
    format_parameter_size,
    merge_user_spec,
    normalize_capability,
    skip_config_parsing,
)

CONFIGS = Path(__file__).parent / "data" / "hf-configs"


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (8_030_261_248, "8.03B"),
        (70_000_000_000, "70B"),
        (1_500_000_000, "1.5B"),
        (70_553_706_496, "70.55B"),
        (494_032_768, "494.03M"),
        (671_026_404_352, "671.03B"),
        (1_000_000_000_000, "1T"),
        (999_996_000, "1B"),  # rounds up into the next unit
        (7_000_000, "7M"),
        (12_345, "12.35K"),
        (999, "999"),
        (0, "0"),
    ],
)
def test_format_parameter_size(n: int, text: str) -> None:
    assert format_parameter_size(n) == text


def test_format_parameter_size_rejects_non_integers() -> None:
    with pytest.raises(ValueError, match="non-negative integer"):
        format_parameter_size(-1)


@pytest.mark.parametrize(
    ("annotations", "skip"),
    [
        ({"ome.io/skip-config-parsing": "true"}, True),
        ({"ome.oracle.com/skip-config-parsing": "True"}, True),
        ({"ome.io/skip-config-parsing": "false"}, False),
        (
            {"ome.io/skip-config-parsing": "false", "ome.oracle.com/skip-config-parsing": "true"},
            True,
        ),
        ({}, False),
        (None, False),
        ({"other": "true"}, False),
    ],
)
def test_skip_config_parsing(annotations: dict[str, str] | None, skip: bool) -> None:
    assert skip_config_parsing(annotations) is skip


@pytest.mark.parametrize(
    ("given", "enum"),
    [
        ("text-to-text", "TEXT_TO_TEXT"),
        ("TEXT_GENERATION", "TEXT_TO_TEXT"),
        ("embedding", "EMBEDDING"),
        ("Embeddings", "EMBEDDING"),
        ("image-text-to-text", "IMAGE_TEXT_TO_TEXT"),
        ("rerank", "RERANK"),
        ("reranking", "RERANK"),
        ("TEXT_TO_TEXT", "TEXT_TO_TEXT"),
        (" audio to text ", "AUDIO_TO_TEXT"),
    ],
)
def test_normalize_capability(given: str, enum: str) -> None:
    assert normalize_capability(given) == enum


def _llama(tmp_path: Path) -> Discovery:
    (tmp_path / "config.json").write_text((CONFIGS / "llama3_1.json").read_text())
    return discover(tmp_path)


def test_ome_config_has_exactly_the_wire_keys(tmp_path: Path) -> None:
    config = _llama(tmp_path).to_ome_config()
    assert set(config) == {
        "modelType",
        "modelArchitecture",
        "modelFramework",
        "modelParameterSize",
        "maxTokens",
        "modelCapabilities",
        "apiCapabilities",
        "decodedModelConfiguration",
        "parameterCount",  # ours: the exact count (OME's members are in docs/wire.md)
    }  # no modelFormat (no weights), no quantization: unknown keys are left out
    assert config["modelFramework"] == {"name": "transformers", "version": "4.42.3"}
    decoded = config["decodedModelConfiguration"]
    assert decoded == {
        "architecture": "LlamaForCausalLM",
        "context_length": 131072,
        "has_vision": False,
        "is_embedding": False,
        "model_size_bytes": 70_553_706_496 * 2,  # parameters x bfloat16's width
        "model_type": "llama",
        "parameter_count": "70.55B",  # OME's human string
        "torch_dtype": "bfloat16",
        "transformers_version": "4.42.3",
    }
    assert config["modelParameterSize"] == "70.55B"
    assert None not in json.loads(json.dumps(config)).values()


def test_inspect_json_shape(tmp_path: Path) -> None:
    data = _llama(tmp_path).to_json()
    for key in (
        "modelType",
        "modelArchitecture",
        "parameterCount",
        "modelParameterSize",
        "maxTokens",
        "torchDtype",
        "transformersVersion",
        "modelFormat",
        "modelFramework",
        "modelCapabilities",
        "apiCapabilities",
        "quantization",
        "hasVision",
        "isEmbedding",
        "sizeOnDiskBytes",
        "parameterCountSource",
        "errors",
    ):
        assert key in data
    assert data["parameterCount"] == 70_553_706_496
    assert data["parameterCountSource"] == "estimate"


def test_user_spec_wins_over_discovery(tmp_path: Path) -> None:
    found = _llama(tmp_path)
    spec = {
        "modelType": "custom",
        "maxTokens": 4096,
        "modelCapabilities": ["text-to-text", "TEXT_GENERATION", "embedding"],
        "modelFormat": {"name": "safetensors", "version": "1.0.0"},
        "modelFramework": {"name": "transformers", "version": "4.36.0"},
        "modelParameterSize": "70B",
        "quantization": "fp8",
        "modelArchitecture": None,  # unset: discovery keeps its value
        "vendor": "meta",  # not a discoverable field: ignored
    }
    merged = found.merge_user_spec(spec)
    assert merged.model_type == "custom"
    assert merged.max_tokens == 4096
    assert merged.model_capabilities == ("TEXT_TO_TEXT", "EMBEDDING")
    assert merged.model_format == NameVersion("safetensors", "1.0.0")
    assert merged.model_framework == NameVersion("transformers", "4.36.0")
    assert merged.model_parameter_size == "70B"
    assert merged.quantization == "fp8"
    assert merged.model_architecture == "LlamaForCausalLM"
    assert merged.parameter_count == found.parameter_count
    assert merge_user_spec(found, spec) == merged
    assert merged.to_ome_config()["modelCapabilities"] == ["TEXT_TO_TEXT", "EMBEDDING"]


def test_empty_user_fields_do_not_override(tmp_path: Path) -> None:
    found = _llama(tmp_path)
    assert (
        found.merge_user_spec({"modelType": "", "modelCapabilities": [], "maxTokens": 0}) == found
    )


def test_skip_parsing_then_user_spec_only() -> None:
    # what the agent does with the skip annotation: nothing discovered, the spec as given
    spec = {"modelType": "custom", "maxTokens": 4096, "modelCapabilities": ["TEXT_GENERATION"]}
    config = Discovery().merge_user_spec(spec).to_ome_config()
    assert config == {
        "modelType": "custom",
        "maxTokens": 4096,
        "modelCapabilities": ["TEXT_TO_TEXT"],
        "decodedModelConfiguration": {"context_length": 4096, "model_type": "custom"},
    }
