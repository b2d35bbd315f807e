"""Test data: real config.json files (hf-configs/) and safetensors shard builders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HF_CONFIGS = Path(__file__).parent / "hf-configs"


def hf_config(name: str) -> dict[str, Any]:
    """The parsed ``hf-configs/<name>.json``."""
    config: dict[str, Any] = json.loads((HF_CONFIGS / f"{name}.json").read_text())
    return config


def tiny_config(architecture: str, model_type: str, **fields: Any) -> dict[str, Any]:
    """The config.json of a tiny model (hidden size 64, two layers of four heads, a
    1000-token vocabulary); ``fields`` add to it."""
    return {
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "vocab_size": 1000,
        **fields,
    }


def llama_entry_config(**fields: Any) -> dict[str, Any]:
    """What discovery reports of Llama 3.1 8B in a ConfigMap entry's ``config`` (OME's
    members); ``fields`` add members or replace them."""
    return {
        "modelType": "llama",
        "modelArchitecture": "LlamaForCausalLM",
        "modelFramework": {"name": "transformers", "version": "4.43.0"},
        "modelFormat": {"name": "safetensors", "version": "1.0.0"},
        "modelParameterSize": "8.03B",
        "maxTokens": 131072,
        "modelCapabilities": ["TEXT_TO_TEXT"],
        **fields,
    }


def alias_bomb(storage_uri: str) -> str:
    """A ClusterBaseModel manifest of under 700 bytes whose YAML aliases expand to 9^9
    (387 million) strings (a "billion laughs"); its storageUri is ``storage_uri``."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(8):
        prev, name = chr(ord("a") + i), chr(ord("b") + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    text = "kind: ClusterBaseModel\nmetadata: {name: bomb}\nspec:\n  unknownField:\n"
    text += "".join(f"    {line}\n" for line in lines)
    return text + f"  storage: {{storageUri: {storage_uri}}}\n"
