"""Quantization of a checkpoint, and how its packed weights count (discovery, layer 3).

``quantization`` names the method as the config's ``quantization_config.quant_method``
says (fp8, fbgemm_fp8, awq, gptq, mxfp4, compressed-tensors, bitsandbytes, ...), so
nothing is lost; the reference doc's ``int4`` is reported for int4 methods without a
more precise name. Without a quantization_config, FP8 weight tensors mean ``fp8``.

``bits`` is the width of one packed weight, used by ``weights`` to turn an I32/U8
packed tensor back into the number of logical parameters it stores.
"""

from __future__ import annotations

from dataclasses import dataclass

from ome_agent.discovery.fields import Config, mapping, pos_int, text


@dataclass(frozen=True)
class Quantization:
    method: str | None  # as reported
    bits: int | None  # width of a packed weight, when the method packs


def from_config(config: Config) -> Quantization:
    q = mapping(config.get("quantization_config"))
    if q is None:
        for key in ("text_config", "llm_config", "language_config"):
            nested = mapping(config.get(key))
            if nested is not None and mapping(nested.get("quantization_config")) is not None:
                q = mapping(nested.get("quantization_config"))
                break
    if q is None:
        return Quantization(None, None)
    method = (text(q.get("quant_method")) or "").strip().lower() or None
    bits = pos_int(q.get("bits")) or pos_int(q.get("w_bit")) or pos_int(q.get("weight_bits"))
    if method == "bitsandbytes" or q.get("load_in_4bit") is True or q.get("load_in_8bit") is True:
        return Quantization("bitsandbytes", 4 if q.get("load_in_4bit") is True else 8)
    if method in ("mxfp4", "nvfp4", "fp4"):
        return Quantization(method, 4)
    if method == "compressed-tensors":
        return Quantization(method, _compressed_tensors_bits(q))
    if method in ("gptq", "awq", "autoround", "auto-round", "hqq", "quark", "int4"):
        return Quantization(method, bits or 4)
    return Quantization(method, bits)


def _compressed_tensors_bits(q: Config) -> int | None:
    groups = mapping(q.get("config_groups"))
    if groups is None:
        return None
    for value in groups.values():
        group = mapping(value)
        weights = mapping(group.get("weights")) if group is not None else None
        if weights is not None:
            bits = pos_int(weights.get("num_bits"))
            if bits is not None:
                return bits
    return None


def from_weight_dtypes(dtypes: Config) -> str | None:
    """``fp8`` when the weights are FP8 and the config did not say so."""
    if any(d.startswith("F8") for d in dtypes):
        return "fp8"
    return None
