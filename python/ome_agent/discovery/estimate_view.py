"""The language-model config an estimate reads, as one flat mapping.

Part of the config-only parameter estimate (``estimate``). Families keep the same
sizes in different places: nested under ``text_config`` / ``llm_config`` /
``language_config``, split into DBRX's ``attn_config`` and ``ffn_config``, or not
written at all because the family's code fixes them. This module folds all of that
into one mapping, once, so the arithmetic in ``estimate_layers`` reads keys and
structure only, never a family name.
"""

from __future__ import annotations

from typing import Any

from ome_agent.discovery.fields import Config, mapping, text, text_config

# sub-objects that describe parts of the same decoder stack (DBRX)
_SUB_CONFIGS = ("attn_config", "ffn_config")

# keys of the parent a nested text config may leave to it (llava's text_config is a
# llama config that names only what differs from the family's defaults)
_INHERITED = ("model_type", "vocab_size")

# Qwen3-Next / Qwen3.5 hybrid stacks: their config classes' defaults for sizes a
# config.json may leave out (three linear-attention layers to one full), and the
# attention output gate their code always builds
_HYBRID_DEFAULTS: dict[str, Any] = {
    "head_dim": 256,
    "attn_output_gate": True,
    "full_attention_interval": 4,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_value_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
}

# What a family's config class defaults to, or its modelling code fixes, when its
# config.json does not say, stated in the keys the estimator reads; whatever the
# config does say wins. Data, not dispatch: the arithmetic never sees a family name.
_IMPLIED: dict[str, dict[str, Any]] = {
    # Qwen (v1): a SwiGLU MLP whose intermediate_size is both up-projections together
    "qwen": {"hidden_act": "silu", "mlp_width_divisor": 2},
    # Llama 4: every MoE layer adds one shared expert of the routed experts' width
    "llama4_text": {"n_shared_experts": 1},
    "qwen3_next": _HYBRID_DEFAULTS,
    "qwen3_5_text": _HYBRID_DEFAULTS,
    "qwen3_5_moe_text": _HYBRID_DEFAULTS,
}


def language_view(config: Config) -> dict[str, Any]:
    """The language model's sizes: its own keys first, then those of its sub-objects,
    then what it inherits from a parent config, then what its family implies."""
    part = text_config(config)
    view = dict(part)
    for key in _SUB_CONFIGS:
        for sub_key, value in (mapping(part.get(key)) or {}).items():
            view.setdefault(sub_key, value)
    if part is not config:
        for key in _INHERITED:
            if key in config:
                view.setdefault(key, config[key])
    for key, value in _IMPLIED.get(text(view.get("model_type")) or "", {}).items():
        view.setdefault(key, value)
    return view
