"""Synthetic safetensors shards with real headers, for discovery tests and benchmarks.

A shard is the 8-byte little-endian header length, the JSON header, then the data
section; ``write_shard`` writes the header and ``truncate``s the file to its full
size, so a "10 GB" shard is a sparse file that costs no disk. Tensor data offsets
are laid out back to back, exactly as the safetensors writer does.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}

Tensors = Mapping[str, tuple[str, Sequence[int]]]  # name -> (dtype, shape)


def header_bytes(tensors: Tensors, metadata: Mapping[str, str] | None = None) -> tuple[bytes, int]:
    """(8-byte length + JSON header padded to 8 bytes, data section size)."""
    header: dict[str, Any] = {}
    if metadata is not None:
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * DTYPE_BYTES[dtype]
        header[name] = {
            "dtype": dtype,
            "shape": list(shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def write_shard(path: Path, tensors: Tensors, metadata: Mapping[str, str] | None = None) -> int:
    """Write a sparse shard; return its total size in bytes."""
    prefix, data_size = header_bytes(tensors, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(prefix)
        fh.truncate(len(prefix) + data_size)
    return len(prefix) + data_size


def shard_bytes(tensors: Tensors) -> bytes:
    """A whole (small) shard in memory, data zero-filled: for the local Hub server."""
    prefix, data_size = header_bytes(tensors)
    return prefix + bytes(data_size)


def write_index(directory: Path, shards: Mapping[str, Tensors], total_size: int = 0) -> None:
    weight_map = {name: shard for shard, tensors in shards.items() for name in tensors}
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))


def llama_like_shards(
    shards: int, layers_per_shard: int = 1, hidden: int = 64, ff: int = 128, dtype: str = "BF16"
) -> dict[str, dict[str, tuple[str, list[int]]]]:
    """Shard name -> tensors of a small llama-shaped model (9 tensors per layer)."""
    out: dict[str, dict[str, tuple[str, list[int]]]] = {}
    layer = 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors: dict[str, tuple[str, list[int]]] = {}
        for _ in range(layers_per_shard):
            p = f"model.layers.{layer}."
            for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
                tensors[p + f"self_attn.{proj}.weight"] = (dtype, [hidden, hidden])
            tensors[p + "mlp.gate_proj.weight"] = (dtype, [ff, hidden])
            tensors[p + "mlp.up_proj.weight"] = (dtype, [ff, hidden])
            tensors[p + "mlp.down_proj.weight"] = (dtype, [hidden, ff])
            tensors[p + "input_layernorm.weight"] = (dtype, [hidden])
            tensors[p + "post_attention_layernorm.weight"] = (dtype, [hidden])
            layer += 1
        out[name] = tensors
    return out


def count_of(shards: Mapping[str, Tensors]) -> int:
    return sum(math.prod(shape) for tensors in shards.values() for _d, shape in tensors.values())
