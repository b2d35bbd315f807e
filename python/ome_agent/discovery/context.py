"""Context length (``maxTokens``) as the serving runtimes compute it (discovery, layer 3).

Read from the language part of the config (``text_config`` of a multimodal model).
The length keys are the ones vLLM reads; when several are present the smallest
wins (Qwen 1's ``seq_length`` 8192 beside a ``max_position_embeddings`` of 32768).
A key the config omits takes the transformers class default (Gemma 3's text config
has none: 131072, where OME reported 8192). Declared rope scaling extends the
window: YaRN to ``original_max_position_embeddings x factor``, dynamic NTK to
``length x factor``. Linear, Llama 3, LongRoPE and M-RoPE configs already state the
extended length (Gemma 3's linear factor 8 is how it reaches its 131072).
"""

from __future__ import annotations

from ome_agent.discovery.fields import (
    Config,
    first_int,
    mapping,
    pos_int,
    pos_num,
    text,
    text_config,
    type_default,
)

LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
    "model_max_length",
)
_NO_EXTENSION = frozenset({"default", "mrope", "su", "longrope", "llama3", "linear"})


def context_length(config: Config) -> int | None:
    part = text_config(config)
    lengths = [n for key in LENGTH_KEYS if (n := pos_int(part.get(key))) is not None]
    if not lengths and part is not config:
        lengths = [n for key in LENGTH_KEYS if (n := pos_int(config.get(key))) is not None]
    if lengths:
        length = min(lengths)
    else:
        model_type = text(part.get("model_type"))
        if model_type is None and part is not config:
            parent = text(config.get("model_type"))
            model_type = f"{parent}_text" if parent else None
        length = pos_int(type_default(model_type, "max_position_embeddings")) or 0
        if not length:
            return None
    return _scaled(part, length)


def _scaled(part: Config, length: int) -> int:
    rope = mapping(part.get("rope_scaling")) or mapping(part.get("rope_parameters"))
    if rope is None:
        return length
    kind = text(rope.get("rope_type")) or text(rope.get("type"))
    factor = pos_num(rope.get("factor"))
    if kind is None or kind in _NO_EXTENSION or factor is None or factor <= 1:
        return length
    if kind == "yarn":
        original = first_int(rope, "original_max_position_embeddings") or length
        return max(length, int(original * factor))
    if kind == "dynamic":
        return int(length * factor)
    return length
