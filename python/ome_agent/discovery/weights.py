"""Exact parameter count and size from safetensors headers (discovery, layer 3).

Which files: the shards named by ``*.safetensors.index.json`` when there is one (a
missing shard is an error and the count is not trusted), else every
``*.safetensors`` beside the config, except ``consolidated*.safetensors`` when
others exist (Mistral repos ship the same weights twice). A tensor name seen in
two files counts once. Headers are parsed by the Rust core, which bounds their
size and checks offsets.

Counting rule, per tensor (``numel`` = product of its shape):
- quantization metadata is not a parameter: scales (``*_scale``, ``*_scale_inv``,
  ``*_scales``, ``.scales``), zero points (``qzeros``, ``*_zero_point``),
  ``g_idx``, bitsandbytes ``absmax`` / ``quant_map`` / ``quant_state``, and
  compressed-tensors ``weight_shape``;
- packed integer weights count their logical values: an I32 ``qweight`` (GPTQ,
  AWQ) or I32 ``weight_packed`` (compressed-tensors) holds ``32 / bits`` weights
  per element (8 at 4 bits); a U8 ``*_blocks`` tensor (MXFP4) or a U8 weight of a
  4-bit method (bitsandbytes 4-bit, NVFP4, int4) holds 2;
- everything else, FP8 weights included, counts ``numel``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ome_agent import _core
from ome_agent.discovery.configfile import ConfigError, parse_config_bytes
from ome_agent.discovery.quantization import Quantization

_METADATA_SUFFIXES = (
    "_scale",
    "_scale_inv",
    "_scales",
    ".scales",
    "qzeros",
    "_zero_point",
    "g_idx",
    ".absmax",
    ".quant_map",
    ".nested_absmax",
    ".nested_quant_map",
    "weight_shape",
)
_FOUR_BIT_U8 = frozenset({"bitsandbytes", "nvfp4", "mxfp4", "fp4", "int4"})
INDEX_SUFFIX = ".safetensors.index.json"


@dataclass
class WeightCount:
    parameters: int = 0
    size_bytes: int = 0
    files: int = 0
    dtypes: dict[str, int] = field(default_factory=dict)  # stored elements per dtype
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.files > 0 and not self.errors


def is_metadata(name: str) -> bool:
    return name.endswith(_METADATA_SUFFIXES) or ".quant_state." in name


def logical_parameters(name: str, dtype: str, numel: int, quant: Quantization) -> int:
    if is_metadata(name):
        return 0
    if dtype == "I32" and (name.endswith("qweight") or name.endswith("weight_packed")):
        return numel * (32 // (quant.bits or 4))
    if dtype == "U8":
        if name.endswith("_blocks"):
            return numel * 2
        four_bit = quant.method in _FOUR_BIT_U8 and (quant.bits in (None, 4))
        if four_bit and (name.endswith(".weight") or name.endswith("weight_packed")):
            return numel * 2
    return numel


def count(
    headers: Iterable[tuple[str, _core.SafetensorsHeader, int]], quant: Quantization
) -> WeightCount:
    """Sum over ``(file name, header, file size)``; tensor names count once."""
    result = WeightCount()
    seen: set[str] = set()
    dtypes = result.dtypes
    for _name, header, size in headers:
        result.files += 1
        result.size_bytes += size
        for tensor in header.tensors:
            name = tensor.name
            if name in seen:
                continue
            seen.add(name)
            numel, dtype = tensor.numel, tensor.dtype
            dtypes[dtype] = dtypes.get(dtype, 0) + numel
            result.parameters += logical_parameters(name, dtype, numel, quant)
    return result


def merge(a: WeightCount | None, b: WeightCount) -> WeightCount:
    """Sum of two groups' counts (diffusers components are counted group by group)."""
    if a is None:
        return b
    dtypes = dict(a.dtypes)
    for k, v in b.dtypes.items():
        dtypes[k] = dtypes.get(k, 0) + v
    return WeightCount(
        a.parameters + b.parameters,
        a.size_bytes + b.size_bytes,
        a.files + b.files,
        dtypes,
        a.errors + b.errors,
    )


def select_shards(names: Iterable[str], read_index: Any) -> tuple[list[str], list[str]]:
    """Shard names to count, and errors. ``names`` are base names in the config's
    directory; ``read_index(name) -> bytes`` reads an index file."""
    available = set(names)
    errors: list[str] = []
    indexes = sorted(n for n in available if n.endswith(INDEX_SUFFIX))
    if indexes:
        # model.safetensors.index.json first; diffusers variants (*.fp16.*) after
        indexes.sort(key=lambda n: (n != "model" + INDEX_SUFFIX, n))
        index = indexes[0]
        try:
            shards = _index_shards(parse_config_bytes(read_index(index), index), index)
        except ConfigError as e:
            errors.append(str(e))
        except OSError as e:
            errors.append(f"{index}: cannot read it ({e.strerror or type(e).__name__})")
        else:
            missing = [s for s in shards if s not in available]
            if missing:
                errors.append(
                    f"{index}: {len(missing)} of {len(shards)} shards missing "
                    f"(first: {missing[0]}): no exact count until they are there"
                )
            return [s for s in shards if s in available], errors
    files = sorted(n for n in available if n.endswith(".safetensors"))
    others = [n for n in files if not n.startswith("consolidated")]
    return (others or files), errors


def _index_shards(index: dict[str, Any], name: str) -> list[str]:
    weight_map = index.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise ConfigError(f"{name}: no weight_map object: it is not a safetensors index")
    # thousands of tensors name a few hundred shards: check each shard name once
    unique: dict[str, None] = {}
    for shard in weight_map.values():
        if not isinstance(shard, str):
            raise ConfigError(f"{name}: weight_map names {shard!r}, not a file beside the index")
        unique[shard] = None
    for shard in unique:
        if "/" in shard or "\\" in shard or shard in ("", ".", ".."):
            raise ConfigError(f"{name}: weight_map names {shard!r}, not a file beside the index")
    return list(unique)


def read_local(directory: Path, names: list[str], quant: Quantization) -> WeightCount:
    """Parse the headers of local shards (only the header bytes are read)."""
    errors: list[str] = []
    parsed: list[tuple[str, _core.SafetensorsHeader, int]] = []
    base = str(directory)
    for name in names:
        path = os.path.join(base, name)
        try:
            header = _core.read_safetensors_header(path)
            size = os.stat(path).st_size
        except _core.HeaderError as e:
            errors.append(f"{name}: {e}")
            continue
        except OSError as e:
            errors.append(f"{name}: cannot read it ({e.strerror or type(e).__name__})")
            continue
        parsed.append((name, header, size))
    result = count(parsed, quant)
    result.errors = errors
    return result
