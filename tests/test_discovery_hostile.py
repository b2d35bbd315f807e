"""Bad model content never crashes discovery: each problem is a message naming the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ome_agent.discovery import discover
from ome_agent.errors import BadInput
from tests.data.safetensors_fixtures import write_shard

LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 128,
    "vocab_size": 100,
}

BAD_CONFIGS = {
    "malformed": (b'{"model_type": "llama",', "config.json: malformed JSON at line 1"),
    "nan": (b'{"model_type": "llama", "hidden_size": NaN}', "config.json: NaN is not valid JSON"),
    "infinity": (b'{"rope_theta": -Infinity}', "config.json: -Infinity is not valid JSON"),
    "not-utf8": (b'{"model_type": "ll\xe9ma"}', "config.json: not UTF-8 (byte 0xe9 at offset 18)"),
    "array": (b"[1, 2]", "config.json: expected a JSON object at the top, got list"),
    "deep": (b"[" * 100000 + b"]" * 100000, "config.json: "),
    "empty": (b"", "config.json: malformed JSON at line 1 column 1"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_an_error_not_a_crash(tmp_path: Path, case: str) -> None:
    content, message = BAD_CONFIGS[case]
    (tmp_path / "config.json").write_bytes(content)
    write_shard(tmp_path / "model.safetensors", {"w": ("BF16", [16, 16])})
    got = discover(tmp_path)
    assert len(got.errors) == 1
    assert got.errors[0].startswith(message), got.errors
    # the weights are still counted and reported
    assert got.parameter_count == 256
    assert got.parameter_count_source == "safetensors"


def test_config_json_that_is_a_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()
    (tmp_path / "config.json" / "x").write_text("{}")
    got = discover(tmp_path)
    assert got.errors == ("config.json is a directory, not a file: remove it or fix schemaPath",)


def test_unreadable_config(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads anything: a dangling symlink gives the same "cannot read" path
        (tmp_path / "config.json").symlink_to(tmp_path / "gone.json")
    else:
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "config.json").chmod(0)
    got = discover(tmp_path)
    assert len(got.errors) == 1
    assert got.errors[0].startswith("config.json")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("hidden_size", "4096"),
        ("hidden_size", True),
        ("num_hidden_layers", -3),
        ("num_hidden_layers", "__1e400__"),  # parses to inf
        ("vocab_size", None),
        ("max_position_embeddings", [1, 2]),
        ("rope_scaling", "yarn"),
        ("text_config", 7),
        ("architectures", "LlamaForCausalLM"),
        ("quantization_config", {"config_groups": {"g": 5}, "quant_method": 3}),
    ],
)
def test_wrong_types_are_ignored_not_fatal(tmp_path: Path, key: str, value: object) -> None:
    config = dict(LLAMA, **{key: value})
    (tmp_path / "config.json").write_text(json.dumps(config).replace('"__1e400__"', "1e400"))
    got = discover(tmp_path)
    assert got.model_type == "llama"  # not fatal: the model is still described
    # a value discovery reads but cannot use is reported as ignored, naming the field
    read = ("hidden_size", "num_hidden_layers", "max_position_embeddings", "architectures")
    assert len(got.errors) == (1 if key in read else 0), got.errors
    for error in got.errors:
        assert error.startswith(f"config.json: {key} "), error
        assert error.endswith(": ignored"), error


def test_missing_keys_leave_fields_unknown(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "mystery"}))
    got = discover(tmp_path)
    assert got.parameter_count is None
    assert got.parameter_count_source is None
    assert got.max_tokens is None
    assert "parameterCount" not in json.dumps(got.to_ome_config())


def test_model_dir_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        discover(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="is not a directory"):
        discover(tmp_path / "file")


def test_schema_path_points_at_the_config(tmp_path: Path) -> None:
    (tmp_path / "weights" / "llm").mkdir(parents=True)
    (tmp_path / "weights" / "llm" / "my-config.json").write_text(json.dumps(LLAMA))
    write_shard(tmp_path / "weights" / "llm" / "model.safetensors", {"w": ("BF16", [4, 4])})
    got = discover(tmp_path, schema_path="weights/llm/my-config.json")
    assert (got.config_path, got.model_type, got.parameter_count) == (
        "weights/llm/my-config.json",
        "llama",
        16,
    )
    # a directory means the config.json inside it
    (tmp_path / "weights" / "llm" / "config.json").write_text(json.dumps(LLAMA))
    assert discover(tmp_path, schema_path="weights/llm").config_path == "weights/llm/config.json"


@pytest.mark.parametrize("bad", ["../config.json", "/etc/passwd", "a/../../b", "  "])
def test_schema_path_outside_the_model_is_an_error(tmp_path: Path, bad: str) -> None:
    (tmp_path / "config.json").write_text(json.dumps(LLAMA))
    got = discover(tmp_path, schema_path=bad)
    assert got.model_type is None
    assert len(got.errors) == 1
    assert "must be a relative path inside the model" in got.errors[0]


def test_missing_schema_path_target(tmp_path: Path) -> None:
    got = discover(tmp_path, schema_path="nested/config.json")
    assert got.errors == (
        "schemaPath 'nested/config.json': nested/config.json does not exist in the model",
    )


def test_config_found_in_a_subfolder(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(LLAMA))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "config.json").write_text(json.dumps({"model_type": "x"}))
    assert discover(tmp_path).config_path == "model/config.json"


def test_diffusers_pipeline(tmp_path: Path) -> None:
    index = {
        "_class_name": "StableDiffusionXLPipeline",
        "_diffusers_version": "0.30.0",
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "EulerDiscreteScheduler"],
    }
    (tmp_path / "model_index.json").write_text(json.dumps(index))
    write_shard(tmp_path / "unet" / "diffusion_pytorch_model.safetensors", {"w": ("F16", [10])})
    write_shard(tmp_path / "vae" / "diffusion_pytorch_model.safetensors", {"w": ("F16", [5])})
    got = discover(tmp_path)
    assert got.errors == ()
    assert got.model_type == "StableDiffusionXLPipeline"
    assert list(got.model_capabilities) == ["TEXT_TO_IMAGE"]
    assert got.parameter_count == 15  # same tensor name in two components: both count
    assert got.model_framework is not None
    assert (got.model_framework.name, got.model_framework.version) == ("diffusers", "0.30.0")


def test_oversized_config_is_refused(tmp_path: Path) -> None:
    with (tmp_path / "config.json").open("wb") as fh:
        fh.write(b'{"pad": "')
        fh.truncate(17 * 1024 * 1024)
    got = discover(tmp_path)
    assert got.errors == ("config.json: larger than the 16777216-byte limit of a config file",)


def test_config_that_is_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "my.json")
    os.mkfifo(tmp_path / "model.safetensors")
    got = discover(tmp_path, schema_path="my.json")
    assert got.errors == ("my.json is not a regular file: replace it with the JSON file",)
    assert got.parameter_count is None
