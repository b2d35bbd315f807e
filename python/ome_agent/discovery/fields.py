"""Typed reads of config.json values, and the transformers defaults they fall back to.

Discovery (docs/architecture.md, layer 3) reads configs written by many hands: a value may
be missing, of the wrong type, or hostile (``1e400``, ``true`` for a size). The
helpers here return ``None`` for anything that is not a sane value so the callers
never crash on a config; the defaults are those of the transformers config class
of each ``model_type`` (what ``AutoConfig`` would fill in when a key is absent).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

Config = Mapping[str, Any]

# transformers' defaults for keys that configs often omit, per model_type
_TYPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "vocab_size": 32000,
        "max_position_embeddings": 2048,
        "tie_word_embeddings": False,
    },
    "mistral": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
        "max_position_embeddings": 4096 * 32,
        "tie_word_embeddings": False,
    },
    "mixtral": {"max_position_embeddings": 4096 * 32, "tie_word_embeddings": False},
    "qwen2": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen2_moe": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen3": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen3_moe": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen2_vl": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen2_5_vl": {"max_position_embeddings": 32768, "tie_word_embeddings": False},
    "qwen3_vl_text": {"max_position_embeddings": 128000, "tie_word_embeddings": False},
    "qwen3_vl_moe_text": {"max_position_embeddings": 128000, "tie_word_embeddings": False},
    "gemma": {"max_position_embeddings": 8192, "tie_word_embeddings": True},
    "gemma2": {"max_position_embeddings": 8192, "tie_word_embeddings": True},
    # Gemma 3 (4B and up) ships a text_config without max_position_embeddings:
    # the class default is what transformers and the runtimes use
    "gemma3_text": {"max_position_embeddings": 131072, "tie_word_embeddings": True},
    "phi3": {"max_position_embeddings": 4096, "tie_word_embeddings": False},
    "phi": {"max_position_embeddings": 2048, "tie_word_embeddings": False},
    "deepseek_v2": {"max_position_embeddings": 2048, "tie_word_embeddings": False},
    "deepseek_v3": {"max_position_embeddings": 4096, "tie_word_embeddings": False},
    "gpt_oss": {"max_position_embeddings": 131072, "tie_word_embeddings": False},
    "llama4_text": {"max_position_embeddings": 4096 * 32, "tie_word_embeddings": False},
    "mllama_text_model": {"max_position_embeddings": 131072, "tie_word_embeddings": False},
    "internlm2": {"max_position_embeddings": 2048, "tie_word_embeddings": False},
    "stablelm": {"max_position_embeddings": 4096, "tie_word_embeddings": False},
    "starcoder2": {"max_position_embeddings": 4096, "tie_word_embeddings": True},
    "cohere": {"max_position_embeddings": 8192, "tie_word_embeddings": True},
    "olmo": {"max_position_embeddings": 2048, "tie_word_embeddings": False},
    "glm4": {"max_position_embeddings": 131072, "tie_word_embeddings": False},
    "bert": {"max_position_embeddings": 512, "tie_word_embeddings": True},
    "roberta": {"max_position_embeddings": 514, "tie_word_embeddings": True},
    "xlm-roberta": {"max_position_embeddings": 514, "tie_word_embeddings": True},
    "clip_vision_model": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 224,
        "patch_size": 32,
    },
}


def type_default(model_type: str | None, key: str) -> Any:
    return _TYPE_DEFAULTS.get(model_type or "", {}).get(key)


def pos_int(value: Any) -> int | None:
    """A positive integer, or None (bools, strings, NaN, 1e400 and negatives are not)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and value > 0:
        return int(value)
    return None


def pos_num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number > 0 else None


def first_int(config: Config, *keys: str) -> int | None:
    """The first key holding a positive integer (config value, else type default)."""
    for key in keys:
        found = pos_int(config.get(key))
        if found is not None:
            return found
    model_type = text(config.get("model_type"))
    for key in keys:
        found = pos_int(type_default(model_type, key))
        if found is not None:
            return found
    return None


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def mapping(value: Any) -> Config | None:
    return value if isinstance(value, Mapping) else None


def flag(config: Config, key: str) -> bool | None:
    value = config.get(key)
    if isinstance(value, bool):
        return value
    default = type_default(text(config.get("model_type")), key)
    return default if isinstance(default, bool) else None


def architectures(config: Config) -> list[str]:
    value = config.get("architectures")
    if isinstance(value, list):
        return [a for a in value if isinstance(a, str) and a]
    return []


TEXT_CONFIG_KEYS = ("text_config", "llm_config", "language_config", "thinker_config")


def text_config(config: Config) -> Config:
    """The language part of a config: the nested text/LLM config of a multimodal model,
    else the config itself."""
    for key in TEXT_CONFIG_KEYS:
        nested = mapping(config.get(key))
        if nested is not None:
            return nested
    return config


VISION_CONFIG_KEYS = ("vision_config", "visual", "vision_tower_config", "img_processor")


def vision_config(config: Config) -> Config | None:
    for key in VISION_CONFIG_KEYS:
        nested = mapping(config.get(key))
        if nested is not None:
            return nested
    return None
