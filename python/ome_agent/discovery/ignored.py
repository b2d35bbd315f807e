"""Which config.json values discovery had to ignore, and why (discovery, layer 3).

The typed reads of :mod:`ome_agent.discovery.fields` turn a value of the wrong type
into "unknown" so a hostile config never crashes discovery; this module says so
instead of staying silent: one line per top-level field that discovery reads and
that holds an unusable value (``"hidden_size": "big"``), for ``Discovery.errors``.
"""

from __future__ import annotations

from typing import Any

from ome_agent.discovery.context import LENGTH_KEYS
from ome_agent.discovery.fields import Config, pos_int, text

# the integer sizes the parameter estimate and the context length read
POSITIVE_INTEGERS = (
    "hidden_size", "n_embd", "d_model", "dim", "model_dim",
    "num_hidden_layers", "num_layers", "n_layer", "n_layers",
    "vocab_size", "padded_vocab_size", "n_vocab",
    "num_attention_heads", "n_head", "n_heads", "num_heads",
    "num_key_value_heads", "n_head_kv", "num_kv_heads",
    "head_dim", "kv_channels",
    "intermediate_size", "ffn_hidden_size", "ff_intermediate_size", "n_inner", "ffn_dim",
    *LENGTH_KEYS,
)  # fmt: skip
TEXTS = ("model_type", "torch_dtype", "transformers_version")


def ignored_fields(config: Config, where: str) -> list[str]:
    """``<where>: <field> <value> is not ...: ignored`` for each unusable value."""
    out = []
    for key in POSITIVE_INTEGERS:
        if key in config and config[key] is not None and pos_int(config[key]) is None:
            out.append(f"{where}: {key} {_show(config[key])} is not a positive integer: ignored")
    for key in TEXTS:
        if key in config and config[key] is not None and text(config[key]) is None:
            out.append(f"{where}: {key} {_show(config[key])} is not a non-empty string: ignored")
    architectures = config.get("architectures")
    if architectures is not None and not (
        isinstance(architectures, list) and all(isinstance(a, str) and a for a in architectures)
    ):
        out.append(f"{where}: architectures {_show(architectures)} is not a list of names: ignored")
    return out


def _show(value: Any) -> str:
    text_ = repr(value)
    return text_ if len(text_) <= 40 else text_[:40] + "..."


__all__ = ["ignored_fields"]
