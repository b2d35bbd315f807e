"""Exact parameter counts from synthetic safetensors shards (sparse files, real headers).

Each case knows its count by construction, including the packed quantized layouts
whose logical parameter count differs from the stored element count (the rule is in
``ome_agent.discovery.weights``).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import pytest

from ome_agent.discovery import discover
from tests.data.safetensors_fixtures import (
    count_of,
    llama_like_shards,
    write_index,
    write_shard,
)

CONFIGS = Path(__file__).parent / "data" / "hf-configs"


def _config(model: Path, name: str = "llama3_2_1b", **changes: object) -> None:
    config = json.loads((CONFIGS / f"{name}.json").read_text())
    config.update(changes)
    (model / "config.json").write_text(json.dumps(config))


def test_sharded_model_with_index_counts_exactly(tmp_path: Path) -> None:
    shards = llama_like_shards(4, layers_per_shard=2)
    sizes = [write_shard(tmp_path / name, tensors) for name, tensors in shards.items()]
    write_index(tmp_path, shards, total_size=sum(sizes))
    _config(tmp_path)
    got = discover(tmp_path)
    assert got.errors == ()
    assert got.parameter_count == count_of(shards)
    assert got.parameter_count_source == "safetensors"
    assert got.size_on_disk_bytes == sum(sizes)
    assert got.model_format is not None
    assert got.model_format.name == "safetensors"


def test_real_sized_sparse_shards(tmp_path: Path) -> None:
    # Llama 3.2 1B's embedding and one layer, at their real sizes (2.4 GB sparse)
    hidden, ff, vocab = 2048, 8192, 128256
    tensors = {
        "model.embed_tokens.weight": ("BF16", [vocab, hidden]),
        "model.layers.0.mlp.gate_proj.weight": ("BF16", [ff, hidden]),
        "model.layers.0.mlp.up_proj.weight": ("BF16", [ff, hidden]),
        "model.layers.0.mlp.down_proj.weight": ("BF16", [hidden, ff]),
        "model.norm.weight": ("BF16", [hidden]),
    }
    size = write_shard(tmp_path / "model.safetensors", tensors)
    _config(tmp_path)
    got = discover(tmp_path)
    assert got.parameter_count == vocab * hidden + 3 * ff * hidden + hidden
    assert got.size_on_disk_bytes == size
    assert size > 2 * vocab * hidden  # the bytes are accounted, not read
    assert got.model_parameter_size == "313M"  # 313,001,984


def test_missing_shard_is_an_error_and_the_estimate_is_used(tmp_path: Path) -> None:
    shards = llama_like_shards(3)
    for name, tensors in list(shards.items())[:2]:
        write_shard(tmp_path / name, tensors)
    write_index(tmp_path, shards)
    _config(tmp_path)
    got = discover(tmp_path)
    assert any("1 of 3 shards missing" in e and "model-00003-of-00003" in e for e in got.errors)
    assert got.parameter_count_source == "estimate"
    assert got.parameter_count is not None
    assert abs(got.parameter_count / 1.24e9 - 1) < 0.05


def test_consolidated_copy_beside_hf_shards_counts_once(tmp_path: Path) -> None:
    shards = llama_like_shards(2)
    for name, tensors in shards.items():
        write_shard(tmp_path / name, tensors)
    merged = {k: v for t in shards.values() for k, v in t.items()}
    write_shard(tmp_path / "consolidated.safetensors", merged)
    _config(tmp_path)
    assert discover(tmp_path).parameter_count == count_of(shards)


def test_tensor_in_two_files_counts_once(tmp_path: Path) -> None:
    write_shard(tmp_path / "a.safetensors", {"w": ("F16", [10, 10]), "x": ("F16", [3])})
    write_shard(tmp_path / "b.safetensors", {"w": ("F16", [10, 10]), "y": ("F16", [5])})
    _config(tmp_path)
    assert discover(tmp_path).parameter_count == 100 + 3 + 5


def test_mxfp4_blocks_count_two_weights_per_byte(tmp_path: Path) -> None:
    # gpt-oss layout: [experts, rows, blocks of 32 values, 16 bytes]; scales are metadata
    experts, rows, blocks = 4, 64, 2
    tensors = {
        "model.layers.0.mlp.experts.gate_up_proj_blocks": ("U8", [experts, rows, blocks, 16]),
        "model.layers.0.mlp.experts.gate_up_proj_scales": ("U8", [experts, rows, blocks]),
        "model.layers.0.mlp.experts.gate_up_proj_bias": ("BF16", [experts, rows]),
        "model.layers.0.self_attn.q_proj.weight": ("BF16", [64, 64]),
    }
    write_shard(tmp_path / "model.safetensors", tensors)
    _config(tmp_path, "gpt_oss_20b")
    got = discover(tmp_path)
    assert got.parameter_count == experts * rows * blocks * 32 + experts * rows + 64 * 64
    assert got.quantization == "mxfp4"


@pytest.mark.parametrize("bits", [4, 8])
def test_gptq_qweight_counts_logical_weights(tmp_path: Path, bits: int) -> None:
    in_f, out_f, group = 256, 128, 128
    per = 32 // bits
    tensors = {
        "model.layers.0.mlp.down_proj.qweight": ("I32", [in_f // per, out_f]),
        "model.layers.0.mlp.down_proj.qzeros": ("I32", [in_f // group, out_f // per]),
        "model.layers.0.mlp.down_proj.scales": ("F16", [in_f // group, out_f]),
        "model.layers.0.mlp.down_proj.g_idx": ("I32", [in_f]),
        "model.layers.0.mlp.down_proj.bias": ("F16", [out_f]),
    }
    write_shard(tmp_path / "model.safetensors", tensors)
    _config(tmp_path, quantization_config={"quant_method": "gptq", "bits": bits})
    got = discover(tmp_path)
    assert got.parameter_count == in_f * out_f + out_f
    assert got.quantization == "gptq"


def test_awq_qweight_counts_logical_weights(tmp_path: Path) -> None:
    in_f, out_f = 256, 128
    tensors = {
        "l.qweight": ("I32", [in_f, out_f // 8]),
        "l.qzeros": ("I32", [in_f // 128, out_f // 8]),
        "l.scales": ("F16", [in_f // 128, out_f]),
    }
    write_shard(tmp_path / "model.safetensors", tensors)
    _config(tmp_path, quantization_config={"quant_method": "awq", "bits": 4})
    got = discover(tmp_path)
    assert (got.parameter_count, got.quantization) == (in_f * out_f, "awq")


def test_fp8_weights_count_and_scales_do_not(tmp_path: Path) -> None:
    tensors = {
        "l.weight": ("F8_E4M3", [256, 512]),
        "l.weight_scale_inv": ("F32", [2, 4]),
        "l.input_scale": ("F32", [1]),
        "norm.weight": ("BF16", [512]),
    }
    write_shard(tmp_path / "model.safetensors", tensors)
    _config(tmp_path)  # no quantization_config: the FP8 dtype says it
    got = discover(tmp_path)
    assert (got.parameter_count, got.quantization) == (256 * 512 + 512, "fp8")


def test_bitsandbytes_4bit_counts_two_per_byte(tmp_path: Path) -> None:
    rows, cols = 64, 128
    tensors = {
        "l.weight": ("U8", [rows * cols // 2, 1]),
        "l.weight.absmax": ("F32", [rows * cols // 64]),
        "l.weight.quant_map": ("F32", [16]),
        "l.weight.quant_state.bitsandbytes__nf4": ("U8", [80]),
    }
    write_shard(tmp_path / "model.safetensors", tensors)
    _config(
        tmp_path,
        quantization_config={"quant_method": "bitsandbytes", "load_in_4bit": True},
    )
    got = discover(tmp_path)
    assert (got.parameter_count, got.quantization) == (rows * cols, "bitsandbytes")


def test_compressed_tensors_packed_int4(tmp_path: Path) -> None:
    rows, cols = 64, 256
    tensors = {
        "l.weight_packed": ("I32", [rows, cols // 8]),
        "l.weight_scale": ("BF16", [rows, cols // 128]),
        "l.weight_zero_point": ("I32", [rows // 8, cols // 128]),
        "l.weight_shape": ("I64", [2]),
    }
    write_shard(tmp_path / "model.safetensors", tensors)
    quant = {
        "quant_method": "compressed-tensors",
        "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int"}}},
    }
    _config(tmp_path, quantization_config=quant)
    got = discover(tmp_path)
    assert (got.parameter_count, got.quantization) == (rows * cols, "compressed-tensors")


def test_dtype_from_weights_when_the_config_has_none(tmp_path: Path) -> None:
    write_shard(tmp_path / "model.safetensors", {"w": ("F16", [8, 8]), "b": ("F32", [8])})
    config = json.loads((CONFIGS / "llama3_2_1b.json").read_text())
    del config["torch_dtype"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert discover(tmp_path).torch_dtype == "float16"


def test_weights_without_a_config_still_count(tmp_path: Path) -> None:
    write_shard(tmp_path / "model.safetensors", {"w": ("BF16", [1000, 1000])})
    got = discover(tmp_path)
    assert got.parameter_count == 1_000_000
    assert got.model_parameter_size == "1M"
    assert got.errors == ("config.json: not found in the model directory (nor a subfolder)",)


def _raw_shard(path: Path, header: bytes, data_size: int = 0, length: int | None = None) -> None:
    n = len(header) if length is None else length
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", n) + header)
        fh.truncate(8 + len(header) + data_size)


HOSTILE = {
    "huge-length": (b"{}", 0, 2**63),
    "truncated": (b'{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}', 0, 4096),
    "beyond-file": (b'{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}', 4, None),
    "not-utf8": (b'{"w\xff":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', 2, None),
    "not-json": (b"\x00\x01garbage", 0, None),
    "shape-mismatch": (b'{"w":{"dtype":"F16","shape":[4],"data_offsets":[0,6]}}', 6, None),
    "overflow-shape": (
        b'{"w":{"dtype":"F16","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,2]}}',
        2,
        None,
    ),
    "array-top": (b"[1,2,3]", 0, None),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_header_is_an_error_in_the_result(tmp_path: Path, case: str) -> None:
    header, data, length = HOSTILE[case]
    write_shard(tmp_path / "model-00001-of-00002.safetensors", {"good": ("F16", [10])})
    _raw_shard(tmp_path / "model-00002-of-00002.safetensors", header, data, length)
    shutil.copy(CONFIGS / "qwen2.5_0.5b.json", tmp_path / "config.json")
    got = discover(tmp_path)
    assert len(got.errors) == 1
    assert got.errors[0].startswith("model-00002-of-00002.safetensors: ")
    # the model is still described: the count falls back to the estimate
    assert got.parameter_count_source == "estimate"
    assert got.model_type == "qwen2"


def test_hostile_index_is_an_error(tmp_path: Path) -> None:
    write_shard(tmp_path / "model.safetensors", {"w": ("F16", [10])})
    (tmp_path / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"w": "../../etc/passwd"}})
    )
    _config(tmp_path)
    got = discover(tmp_path)
    assert any("not a file beside the index" in e for e in got.errors)
    assert got.parameter_count_source == "estimate"


def test_pytorch_bin_repo_is_estimated_and_sized(tmp_path: Path) -> None:
    _config(tmp_path)
    for name in ("pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"):
        with (tmp_path / name).open("wb") as fh:
            fh.truncate(3_000_000)
    (tmp_path / "chat_template.jinja").write_text("{{ messages }}")
    got = discover(tmp_path)
    assert got.errors == ()
    assert got.model_format is not None
    assert (got.model_format.name, got.model_format.version) == ("pytorch", None)
    assert got.size_on_disk_bytes == 6_000_000
    assert got.parameter_count_source == "estimate"
    assert got.api_capabilities[0] == "OPENAI_V1_CHAT_COMPLETIONS"
