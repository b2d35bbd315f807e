"""Parameter count estimated from config.json, for when no weights are at hand.

Discovery (DESIGN.md §1, layer 3) prefers the exact count from safetensors headers
(``weights``); this module is the fallback, e.g. before a download or for a
``pytorch_model.bin`` repo. It counts what the architecture builds:

- decoder layers: attention (grouped-query, or DeepSeek's MLA with low-rank q/kv),
  a gated MLP (three matrices; two for encoder-style models), norms;
- mixture of experts: routed + shared experts and the router on the MoE layers only
  (DeepSeek ``first_k_dense_replace``, Llama 4 ``interleave_moe_layer_step``, Qwen
  ``decoder_sparse_step`` / ``mlp_only_layers``);
- token embeddings, plus an LM head unless tied or the model has none (``*Model``
  encoders, embedding models);
- a vision tower (ViT blocks, patch and position embeddings) and its projector.

Within a few percent of the published counts of every family in
tests/data/hf-configs/; biases and small norms are approximated.
"""

from __future__ import annotations

from ome_agent.discovery.fields import (
    Config,
    first_int,
    flag,
    mapping,
    pos_num,
    text,
    text_config,
    vision_config,
)

# encoder / GPT-2-style families whose MLP is two matrices (up, down), not gated
_UNGATED = frozenset(
    {
        "bert",
        "roberta",
        "xlm-roberta",
        "distilbert",
        "electra",
        "mpnet",
        "nomic_bert",
        "deberta",
        "deberta-v2",
        "gpt2",
        "gpt_neox",
        "gptj",
        "gpt_bigcode",
        "opt",
        "bloom",
        "falcon",
        "phi",
        "starcoder2",
        "mpt",
        "codegen",
        "clip_vision_model",
        "clip_text_model",
        "siglip_vision_model",
    }
)
_ENCODERS = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "mpnet", "nomic_bert"}
)
_QKV_BIAS = frozenset({"qwen", "qwen2", "qwen2_moe", "qwen2_vl", "qwen2_5_vl", "chatglm"})


def estimate_parameters(config: Config, *, lm_head: bool = True) -> int | None:
    """Whole-model estimate (language model + vision tower + projector); None when
    the config lacks the sizes a language model needs."""
    text_part = text_config(config)
    if text_part is not config:
        text_part = _inherit(text_part, config)
    tied = _tied(config, text_part)
    language = estimate_text(text_part, lm_head=lm_head and not tied)
    vision = estimate_vision(config, text_part)
    if language is None:
        return vision
    return language + (vision or 0)


def _inherit(nested: Config, parent: Config) -> Config:
    """A nested text config falls back to its family's defaults (llava's text_config is
    a llama config that omits most sizes)."""
    merged = dict(nested)
    if "model_type" not in merged:
        merged["model_type"] = parent.get("model_type")
    if "vocab_size" not in merged and "vocab_size" in parent:
        merged["vocab_size"] = parent["vocab_size"]
    return merged


def _tied(config: Config, text_part: Config) -> bool:
    for source in (config, text_part):
        value = source.get("tie_word_embeddings")
        if isinstance(value, bool):
            return value
    default = flag(text_part, "tie_word_embeddings")
    # PretrainedConfig's own default is True; custom-code families inherit it
    return True if default is None else default


def estimate_text(c: Config, *, lm_head: bool) -> int | None:
    model_type = text(c.get("model_type")) or ""
    h = first_int(c, "hidden_size", "n_embd", "d_model", "dim", "model_dim")
    layers = first_int(c, "num_hidden_layers", "num_layers", "n_layer", "n_layers")
    vocab = first_int(c, "vocab_size", "padded_vocab_size", "n_vocab")
    if h is None or layers is None:
        return None
    heads = first_int(c, "num_attention_heads", "n_head", "n_heads", "num_heads") or 1
    kv = first_int(c, "num_key_value_heads", "n_head_kv", "num_kv_heads")
    if kv is None and c.get("multi_query_attention") is True:
        kv = first_int(c, "multi_query_group_num") or 1
    kv = kv or heads
    head_dim = first_int(c, "head_dim", "kv_channels") or max(1, h // heads)
    ff = first_int(
        c, "intermediate_size", "ffn_hidden_size", "ff_intermediate_size", "n_inner", "ffn_dim"
    ) or (4 * h)
    if model_type == "qwen":
        ff //= 2  # Qwen (v1) configs give twice the width of each of its two up-projections
    mlp_mats = 2 if model_type in _UNGATED else 3

    attention = _attention(c, h, heads, kv, head_dim, model_type)
    dense_mlp = mlp_mats * h * ff
    total = 0
    for index in range(layers):
        total += attention + 2 * h + _layer_mlp(c, index, h, ff, dense_mlp, mlp_mats)
    total += h  # final norm
    if vocab is not None:
        # Mllama adds 8 image tokens to the input embedding only
        extra = 8 if model_type == "mllama_text_model" else 0
        total += (vocab + extra) * h
        if lm_head:
            total += vocab * h
    if model_type in _ENCODERS:
        total += _encoder_extras(c, h, ff, layers)
    return total


def _attention(c: Config, h: int, heads: int, kv: int, head_dim: int, model_type: str) -> int:
    kv_rank = first_int(c, "kv_lora_rank")
    if kv_rank is not None and c.get("use_mla") is not False:
        # DeepSeek MLA: low-rank q (optional) and joint kv compression
        nope = first_int(c, "qk_nope_head_dim") or head_dim
        rope = first_int(c, "qk_rope_head_dim") or 0
        v_dim = first_int(c, "v_head_dim") or head_dim
        q_rank = first_int(c, "q_lora_rank")
        q = (
            h * q_rank + q_rank + q_rank * heads * (nope + rope)
            if q_rank
            else h * heads * (nope + rope)
        )
        kv_part = h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim)
        return q + kv_part + heads * v_dim * h
    weights = h * heads * head_dim + 2 * h * kv * head_dim + heads * head_dim * h
    if model_type in _QKV_BIAS or c.get("attention_bias") is True or c.get("add_qkv_bias") is True:
        weights += heads * head_dim + 2 * kv * head_dim
    return weights


def _experts(c: Config) -> int | None:
    return first_int(c, "num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")


def _layer_mlp(c: Config, index: int, h: int, ff: int, dense_mlp: int, mats: int) -> int:
    experts = _experts(c)
    if experts is None or not _is_moe_layer(c, index):
        if text(c.get("model_type")) == "llama4_text":
            return mats * h * (first_int(c, "intermediate_size_mlp") or ff)
        return dense_mlp
    moe_ff = first_int(c, "moe_intermediate_size") or ff
    routed = experts * 3 * h * moe_ff
    shared = 0
    n_shared = first_int(c, "n_shared_experts", "num_shared_experts")
    if n_shared:
        shared = n_shared * 3 * h * moe_ff
    shared_ff = first_int(c, "shared_expert_intermediate_size")
    if shared_ff:
        shared = 3 * h * shared_ff + h  # plus its sigmoid gate
    if text(c.get("model_type")) == "llama4_text":
        shared = 3 * h * ff  # one shared expert of the routed width
    return routed + shared + h * experts  # router


def _is_moe_layer(c: Config, index: int) -> bool:
    dense_first = first_int(c, "first_k_dense_replace") or 0
    if index < dense_first:
        return False
    freq = first_int(c, "moe_layer_freq")
    if freq and (index - dense_first) % freq:
        return False
    step = first_int(c, "interleave_moe_layer_step", "decoder_sparse_step")
    if step and (index + 1) % step:
        return False
    only_mlp = c.get("mlp_only_layers")
    return not (isinstance(only_mlp, list) and index in only_mlp)


def _encoder_extras(c: Config, h: int, ff: int, layers: int) -> int:
    positions = first_int(c, "max_position_embeddings") or 512
    types = first_int(c, "type_vocab_size") or 0
    biases = layers * (4 * h + ff + h + 2 * 2 * h)  # attention + MLP biases, two LayerNorms
    pooler = h * h + h
    return positions * h + types * h + 2 * h + biases + pooler


def estimate_vision(config: Config, text_part: Config) -> int | None:
    """Vision tower + projector; None when the config has no vision part."""
    text_h = first_int(text_part, "hidden_size", "n_embd", "d_model") or 0
    if config.get("mm_vision_tower") is not None:
        # original LLaVA: the CLIP tower is loaded from its own repo; only the projector ships
        mm_h = first_int(config, "mm_hidden_size") or 1024
        return mm_h * text_h + text_h * text_h
    v = vision_config(config)
    if v is None:
        return None
    if mapping(config.get("img_processor")) is not None and "vision_config" not in config:
        # Phi-3-vision: a CLIP ViT-L/14-336 and a two-layer projector over 4 merged patches
        image_dim = first_int(v, "image_dim_out") or 1024
        tower = _vit(1024, 24, 4096, gated=False) + 3 * 14 * 14 * 1024 + (24 * 24 + 1) * 1024
        return tower + 4 * image_dim * text_h + text_h * text_h
    vh = first_int(v, "embed_dim", "width", "hidden_size")
    depth = first_int(v, "depth", "num_hidden_layers", "layers")
    if vh is None or depth is None:
        return None
    depth += first_int(v, "num_global_layers") or 0
    ratio = pos_num(v.get("mlp_ratio"))
    vff = first_int(v, "intermediate_size") or (int(ratio * vh) if ratio else 4 * vh)
    gated = v.get("hidden_act") == "silu"
    patch = first_int(v, "patch_size", "spatial_patch_size") or 14
    image = first_int(v, "image_size") or 336
    channels = first_int(v, "in_channels", "in_chans", "num_channels") or 3
    grid = (image // patch) ** 2 + 1
    tower = _vit(vh, depth, vff, gated=gated) + _patch_embed(v, vh, patch, channels)
    tower += (first_int(v, "num_position_embeddings") or grid) * vh
    tiles = first_int(v, "max_num_tiles")
    ratios = v.get("supported_aspect_ratios")
    if tiles and isinstance(ratios, list):
        # Mllama: a positional embedding per (aspect ratio, tile, patch)
        tower += (len(ratios) + 1) * tiles * grid * vh
    return tower + _projector(config, v, vh, text_h)


def _patch_embed(v: Config, vh: int, patch: int, channels: int) -> int:
    temporal = first_int(v, "temporal_patch_size") or 1
    return channels * temporal * patch * patch * vh


def _vit(vh: int, depth: int, vff: int, *, gated: bool) -> int:
    """Transformer blocks of a ViT (attention and MLP with biases, two norms each)."""
    block = 4 * vh * vh + 4 * vh + (3 if gated else 2) * vh * vff + vff + vh + 4 * vh
    return depth * block + 4 * vh


def _projector(config: Config, v: Config, vh: int, text_h: int) -> int:
    merge = first_int(v, "spatial_merge_size")
    if merge:
        # Qwen-VL patch merger: an MLP over merge x merge patches (Qwen3-VL adds one per
        # deepstack layer); Qwen2-VL names the LM width hidden_size in the vision config
        merged = vh * merge * merge
        out = first_int(v, "out_hidden_size") or first_int(v, "hidden_size") or text_h
        if "embed_dim" not in v and "out_hidden_size" not in v:
            out = text_h
        deepstack = v.get("deepstack_visual_indexes")
        count = 1 + (len(deepstack) if isinstance(deepstack, list) else 0)
        return count * (merged * merged + merged * out)
    output_dim = first_int(v, "vision_output_dim")
    if output_dim:
        # Mllama / Llama 4: one projection from the tower's output to the LM width
        adapter = 0
        p_in, p_out = first_int(v, "projector_input_dim"), first_int(v, "projector_output_dim")
        if p_in and p_out:
            adapter = vh * 4 * p_in + p_in * p_out  # pixel-shuffle MLP
        return output_dim * text_h + adapter
    projector = mapping(config.get("projector_config"))
    if projector is not None:
        # DeepSeek-VL2: 2x2 downsampling, then a two-layer MLP
        width = first_int(projector, "n_embed") or text_h
        return 4 * vh * width + width * width
    # LLaVA-style two-layer MLP
    return vh * text_h + text_h * text_h
