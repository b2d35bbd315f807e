"""Parameters of one decoder layer, from the structure its config describes.

Part of the config-only parameter estimate (``estimate``), reading the flat view of
``estimate_view``. A layer is a token mixer, an MLP and two norms:

- mixer: grouped-query attention (optionally with a gated output, as in Qwen3-Next),
  DeepSeek's multi-head latent attention (low-rank q and joint kv compression), or a
  linear-attention layer (gated delta net) where ``layer_types`` says so;
- MLP: dense (gated, three matrices, or two for GELU/LayerNorm encoders), or a mixture
  of experts on the layers that ``first_k_dense_replace`` / ``moe_layer_freq`` /
  ``decoder_sparse_step`` / ``interleave_moe_layer_step`` / ``moe_layers`` /
  ``mlp_only_layers`` make sparse: routed experts, shared experts, the router.

Biases and small per-head norms are left out unless the config names them: they are
well under 0.1% of any model here.
"""

from __future__ import annotations

from dataclasses import dataclass

from ome_agent.discovery.fields import Config, first_int, text

HIDDEN = ("hidden_size", "n_embd", "d_model", "dim", "model_dim")
_LAYERS = ("num_hidden_layers", "num_layers", "n_layer", "n_layers")
_HEADS = ("num_attention_heads", "n_head", "n_heads", "num_heads")
_KV_HEADS = ("num_key_value_heads", "n_head_kv", "num_kv_heads", "kv_n_heads")
_FF = ("intermediate_size", "ffn_hidden_size", "ff_intermediate_size", "n_inner", "ffn_dim")
_EXPERTS = ("num_local_experts", "n_routed_experts", "num_experts", "moe_num_experts")
_ACTIVATION = ("hidden_act", "hidden_activation", "activation_function", "activation")
# no real stack is deeper: a larger count is a broken or hostile config, and summing
# it layer by layer would never end
MAX_LAYERS = 10_000
# activations of gated (two up-projection) MLPs
_GATED_ACTIVATIONS = ("silu", "swish", "swiglu", "gegelu", "geglu")


@dataclass(frozen=True)
class Widths:
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    dense_ff: int  # a dense layer's MLP width
    expert_ff: int  # one routed expert's width
    mlp_mats: int  # 3 for a gated MLP, 2 otherwise


def widths(c: Config) -> Widths | None:
    h = first_int(c, *HIDDEN)
    if h is None:
        return None
    heads = first_int(c, *_HEADS) or 1
    kv = first_int(c, *_KV_HEADS)
    if kv is None and c.get("multi_query_attention") is True:
        kv = first_int(c, "multi_query_group_num") or 1
    ff = first_int(c, *_FF) or 4 * h
    divisor = first_int(c, "mlp_width_divisor") or 1  # implied by estimate_view (Qwen v1)
    return Widths(
        hidden=h,
        heads=heads,
        kv_heads=kv or heads,
        head_dim=first_int(c, "head_dim", "kv_channels") or max(1, h // heads),
        # Llama 4 names its dense layers' width apart from the experts'
        dense_ff=(first_int(c, "intermediate_size_mlp") or ff) // divisor,
        expert_ff=(first_int(c, "moe_intermediate_size") or ff) // divisor,
        mlp_mats=3 if _gated(c) else 2,
    )


def _gated(c: Config) -> bool:
    activation = next((a for k in _ACTIVATION if (a := text(c.get(k)))), None)
    rms_norm = "rms_norm_eps" in c or c.get("rmsnorm") is True
    if activation is None:
        # families whose code fixes the activation: SwiGLU in RMSNorm decoders, in
        # nested configs that leave the family's default out (llava's llama) and in DBRX;
        # GELU in LayerNorm ones (Falcon, BLOOM)
        return rms_norm or not any(k in c for k in ("layer_norm_epsilon", "layer_norm_eps"))
    # a GELU MLP is gated in RMSNorm decoders (Gemma), two matrices in LayerNorm ones
    return activation.lower().startswith(_GATED_ACTIVATIONS) or rms_norm


def layer_parameters(c: Config, w: Widths, index: int) -> int:
    """Layer ``index`` of the stack (indices past the last are multi-token-prediction
    layers, built like the last one)."""
    return _mixer(c, w, index) + _mlp(c, w, index) + 2 * w.hidden


def _mixer(c: Config, w: Widths, index: int) -> int:
    if _layer_type(c, index).startswith("linear"):
        linear = _linear_attention(c, w.hidden)
        if linear is not None:
            return linear
    if first_int(c, "kv_lora_rank") is not None and c.get("use_mla") is not False:
        return _latent_attention(c, w)
    return _attention(c, w)


def _layer_type(c: Config, index: int) -> str:
    types = c.get("layer_types")
    entry = types[index] if isinstance(types, list) and index < len(types) else None
    if isinstance(entry, str):
        return entry
    interval = first_int(c, "full_attention_interval")
    if interval and first_int(c, "linear_num_value_heads") and index < (layer_count(c) or 0):
        return "full_attention" if (index + 1) % interval == 0 else "linear_attention"
    return "full_attention"


def layer_count(c: Config) -> int | None:
    return bounded(first_int(c, *_LAYERS))


def bounded(count: int | None) -> int | None:
    return count if count is not None and count <= MAX_LAYERS else None


def _attention(c: Config, w: Widths) -> int:
    q = w.heads * w.head_dim
    kv = w.kv_heads * w.head_dim
    # a gated output doubles q_proj: half of it is the sigmoid gate over the heads
    q_out = 2 * q if c.get("attn_output_gate") is True else q
    weights = w.hidden * (q_out + 2 * kv) + q * w.hidden
    if c.get("attention_bias") is True:
        weights += q + 2 * kv + w.hidden
    elif any(c.get(k) is True for k in ("add_qkv_bias", "qkv_bias", "use_qkv_bias")):
        weights += q + 2 * kv
    return weights


def _latent_attention(c: Config, w: Widths) -> int:
    h, heads = w.hidden, w.heads
    kv_rank = first_int(c, "kv_lora_rank") or 0
    nope = first_int(c, "qk_nope_head_dim") or w.head_dim
    rope = first_int(c, "qk_rope_head_dim") or 0
    v_dim = first_int(c, "v_head_dim") or w.head_dim
    q_rank = first_int(c, "q_lora_rank")
    if q_rank:
        q = h * q_rank + q_rank + q_rank * heads * (nope + rope)
    else:
        q = h * heads * (nope + rope)
    kv = h * (kv_rank + rope) + kv_rank + kv_rank * heads * (nope + v_dim)
    return q + kv + heads * v_dim * h


def _linear_attention(c: Config, h: int) -> int | None:
    """A gated delta-net layer (Qwen3-Next, Qwen3.5): q/k/v/z and per-head beta/alpha
    projections, a depthwise causal convolution over q/k/v, per-head decay, a gated
    norm and the output projection."""
    key_heads = first_int(c, "linear_num_key_heads")
    value_heads = first_int(c, "linear_num_value_heads")
    key_dim = first_int(c, "linear_key_head_dim")
    value_dim = first_int(c, "linear_value_head_dim")
    if not (key_heads and value_heads and key_dim and value_dim):
        return None
    keys, values = key_heads * key_dim, value_heads * value_dim
    conv = 2 * keys + values
    kernel = first_int(c, "linear_conv_kernel_dim") or 4
    projections = h * (conv + values + 2 * value_heads) + values * h
    return projections + conv * kernel + 2 * value_heads + value_dim


def _mlp(c: Config, w: Widths, index: int) -> int:
    h, mats = w.hidden, w.mlp_mats
    experts = first_int(c, *_EXPERTS)
    if experts is None or not _is_moe_layer(c, index):
        return mats * h * w.dense_ff
    routed = experts * mats * h * w.expert_ff
    shared = (first_int(c, "n_shared_experts", "num_shared_experts") or 0) * mats * h * w.expert_ff
    shared_ff = first_int(c, "shared_expert_intermediate_size")
    if shared_ff:
        shared = mats * h * shared_ff + h  # one shared expert and its sigmoid gate
    return routed + shared + h * experts  # router


def _is_moe_layer(c: Config, index: int) -> bool:
    listed = c.get("moe_layers")
    if isinstance(listed, list):
        return index in listed
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
