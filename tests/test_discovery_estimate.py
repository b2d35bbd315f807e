"""The config-only parameter estimate on structures the real configs of
tests/data/hf-configs/ do not cover: sizes in DBRX's sub-objects, hybrid stacks whose
layers differ, explicit MoE layer lists, multi-token-prediction layers.
"""

from __future__ import annotations

from typing import Any

from ome_agent.discovery.estimate import estimate_parameters

# the sizes of databricks/dbrx-base's config.json: attention and MLP in sub-objects
DBRX: dict[str, Any] = {
    "architectures": ["DbrxForCausalLM"],
    "model_type": "dbrx",
    "d_model": 6144,
    "n_heads": 48,
    "n_layers": 40,
    "max_seq_len": 32768,
    "vocab_size": 100352,
    "tie_word_embeddings": False,
    "attn_config": {"clip_qkv": 8, "kv_n_heads": 8, "model_type": "", "rope_theta": 500000},
    "ffn_config": {
        "ffn_hidden_size": 10752,
        "model_type": "",
        "moe_num_experts": 16,
        "moe_top_k": 4,
    },
}

# the sizes of Qwen/Qwen3-Next-80B-A3B-Instruct's config.json (in its sorted order): no
# layer_types, the interval makes every fourth layer full attention and the others
# gated delta nets
QWEN3_NEXT: dict[str, Any] = {
    "architectures": ["Qwen3NextForCausalLM"],
    "decoder_sparse_step": 1,
    "full_attention_interval": 4,
    "head_dim": 256,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "intermediate_size": 5120,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 128,
    "linear_num_key_heads": 16,
    "linear_num_value_heads": 32,
    "linear_value_head_dim": 128,
    "mlp_only_layers": [],
    "model_type": "qwen3_next",
    "moe_intermediate_size": 512,
    "num_attention_heads": 16,
    "num_experts": 512,
    "num_experts_per_tok": 10,
    "num_hidden_layers": 48,
    "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06,
    "shared_expert_intermediate_size": 512,
    "tie_word_embeddings": False,
    "vocab_size": 151936,
}

H = 64
TINY: dict[str, Any] = {
    "model_type": "novel",
    "hidden_size": H,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "intermediate_size": 128,
    "vocab_size": 100,
    "tie_word_embeddings": True,
}
MLP = 3 * H * 128
NORMS = 2 * H
ATTENTION = H * (4 * 16 + 2 * 2 * 16) + 4 * 16 * H  # q, k, v, o
EMBEDDING_AND_FINAL_NORM = 100 * H + H


def test_dbrx_sizes_are_read_from_its_attn_and_ffn_config() -> None:
    got = estimate_parameters(DBRX)
    assert got is not None
    # model card: "132B total parameters" (rounded)
    assert abs(got / 132e9 - 1) <= 0.01, got


def test_qwen3_next_hybrid_stack_counts_each_layer_as_its_type() -> None:
    got = estimate_parameters(QWEN3_NEXT)
    assert got is not None
    # model card: "80B in total and 3B activated" (rounded)
    assert abs(got / 80e9 - 1) <= 0.01, got


def test_layer_types_choose_each_layers_mixer() -> None:
    config = {
        **TINY,
        # an entry that is not a type name is a full-attention layer, as by default
        "layer_types": ["linear_attention", 7],
        "attn_output_gate": True,
        "linear_num_key_heads": 2,
        "linear_num_value_heads": 4,
        "linear_key_head_dim": 8,
        "linear_value_head_dim": 8,
        "linear_conv_kernel_dim": 4,
    }
    keys, values = 2 * 8, 4 * 8
    conv = 2 * keys + values
    # q/k/v, z, beta and alpha in; out; the depthwise conv; decay and dt per head; norm
    linear = H * (conv + values + 2 * 4) + values * H + conv * 4 + 2 * 4 + 8
    gated_full = ATTENTION + 4 * 16 * H  # q_proj doubled by the output gate
    expected = linear + gated_full + 2 * (MLP + NORMS) + EMBEDDING_AND_FINAL_NORM
    assert estimate_parameters(config) == expected


def test_moe_layers_list_names_the_sparse_layers() -> None:
    config = {**TINY, "num_experts": 4, "moe_intermediate_size": 32, "moe_layers": [1]}
    moe = 4 * 3 * H * 32 + H * 4  # routed experts + router
    expected = 2 * (ATTENTION + NORMS) + MLP + moe + EMBEDDING_AND_FINAL_NORM
    assert estimate_parameters(config) == expected


def test_mtp_layers_are_counted_and_share_the_embeddings_in_qwens_convention() -> None:
    config = {**TINY, "mtp_num_hidden_layers": 1}
    layer = ATTENTION + MLP + NORMS
    mtp = layer + 2 * H * H + 3 * H  # a layer over the [embedding; hidden] projection
    assert estimate_parameters(config) == 2 * layer + mtp + EMBEDDING_AND_FINAL_NORM


def test_an_absurd_layer_count_gives_no_estimate_and_returns_at_once() -> None:
    # a valid JSON integer no model has: summed layer by layer it would never finish
    assert estimate_parameters({**TINY, "num_hidden_layers": 10**12}) is None
    assert estimate_parameters({**TINY, "num_nextn_predict_layers": 10**12}) is None


def test_mlp_is_two_matrices_in_layernorm_decoders_naming_no_activation() -> None:
    # Falcon and BLOOM fix GELU in code; their configs name only a LayerNorm epsilon
    falcon_like = {**TINY, "layer_norm_epsilon": 1e-5}
    two_matrices = 2 * H * 128
    expected = 2 * (ATTENTION + two_matrices + NORMS) + EMBEDDING_AND_FINAL_NORM
    assert estimate_parameters(falcon_like) == expected
    # DistilBERT names it "activation"
    assert estimate_parameters({**TINY, "activation": "gelu"}) == expected
