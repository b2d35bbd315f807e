"""Discovery over every real config.json in tests/data/hf-configs/ (config only, no weights).

Parameter counts are estimates here and must land within 5% of the count published
for the model (the "Model size" of its Hugging Face page / model card); context
lengths are what transformers and vLLM use; capabilities follow the model's kind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ome_agent.discovery import discover

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
TTT = ["TEXT_TO_TEXT"]
VLM = ["TEXT_TO_TEXT", "IMAGE_TEXT_TO_TEXT"]
EMB = ["EMBEDDING"]

# file -> (model_type, published parameter count, max tokens, capabilities, quantization)
EXPECTED: dict[str, tuple[str, float, int | None, list[str], str | None]] = {
    "baichuan2_7b": ("baichuan", 7.51e9, 4096, TTT, None),
    "bge_large": ("bert", 335e6, 512, EMB, None),
    "chatglm3_6b": ("chatglm", 6.24e9, 8192, TTT, None),
    # CLIP ViT-H/14 image encoder with projection (OpenCLIP: 632M)
    "clip_vision_model": ("clip_vision_model", 632e6, None, EMB, None),
    "deepseek_v3": ("deepseek_v3", 671e9, 163840, TTT, None),
    "deepseek_vl2_tiny": ("deepseek_vl_v2", 3.37e9, 4096, VLM, None),
    "e5_mistral_7b": ("mistral", 7.11e9, 32768, EMB, None),
    "exaone_7.8b": ("exaone", 7.82e9, 32768, TTT, None),
    # Gemma 3 1B states 32768; the larger Gemma 3 (no key) get 131072, see below
    "gemma3_text": ("gemma3_text", 1.0e9, 32768, TTT, None),
    "gemma_2_2b": ("gemma2", 2.61e9, 8192, TTT, None),
    "gemma_2_2b_it": ("gemma2", 2.61e9, 8192, TTT, None),
    "gemma_2_9b": ("gemma2", 9.24e9, 8192, TTT, None),
    "gemma_7b": ("gemma", 8.54e9, 8192, TTT, None),
    "glm4_9b": ("chatglm", 9.4e9, 8192, TTT, None),
    "gpt_oss_20b": ("gpt_oss", 20.9e9, 131072, TTT, "mxfp4"),
    # published 7.61B includes an LM head (151646 x 3584) the embedding model never uses
    "gte_qwen2_7b": ("qwen2", 7.61e9 - 151646 * 3584, 131072, EMB, None),
    "internlm2_7b": ("internlm2", 7.74e9, 32768, TTT, None),
    "llama3": ("llama", 70.55e9, 8192, TTT, None),
    "llama3_1": ("llama", 70.55e9, 131072, TTT, None),
    "llama3_2_11b_vision": ("mllama", 10.67e9, 131072, VLM, None),
    "llama3_2_1b": ("llama", 1.24e9, 131072, TTT, None),
    "llama3_2_3b": ("llama", 3.21e9, 131072, TTT, None),
    "llama4": ("llama4", 402e9, 1048576, VLM, "compressed-tensors"),  # Maverick 128E FP8
    "llama4_scout_17b_16e": ("llama4", 109e9, 10485760, VLM, None),
    "llava_1.5_7b_hf": ("llava", 7.06e9, 4096, VLM, None),
    # original LLaVA repo: LM + projector; the CLIP tower is fetched from its own repo
    "llava_v1.5_7b": ("llava", 7.0e9, 4096, VLM, None),
    "mistral": ("mistral", 7.24e9, 32768, TTT, None),
    "mistral_7b_instruct": ("mistral", 7.24e9, 32768, TTT, None),
    "mixtral": ("mixtral", 46.7e9, 32768, TTT, None),
    "phi3": ("phi3", 3.82e9, 131072, TTT, None),
    "phi3_v": ("phi3_v", 4.15e9, 131072, VLM, None),
    "phi3small": ("phi3small", 7.39e9, 8192, TTT, None),
    "qwen2.5_0.5b": ("qwen2", 0.494e9, 32768, TTT, None),
    "qwen2.5_1.5b": ("qwen2", 1.54e9, 131072, TTT, None),
    "qwen2.5_14b": ("qwen2", 14.7e9, 131072, TTT, None),
    "qwen2.5_32b": ("qwen2", 32.5e9, 131072, TTT, None),
    "qwen2.5_3b": ("qwen2", 3.09e9, 32768, TTT, None),
    "qwen2.5_7b": ("qwen2", 7.61e9, 131072, TTT, None),
    "qwen2.5_vl_7b": ("qwen2_5_vl", 8.29e9, 128000, VLM, None),
    "qwen2_7b": ("qwen2", 7.62e9, 131072, TTT, None),
    "qwen2_vl_2b": ("qwen2_vl", 2.21e9, 32768, VLM, None),
    "qwen2_vl_7b": ("qwen2_vl", 8.29e9, 32768, VLM, None),
    "qwen3_30b": ("qwen3_moe", 30.5e9, 40960, TTT, None),
    "qwen3_4b": ("qwen3", 4.02e9, 40960, TTT, None),
    "qwen3_8b_fp8": ("qwen3", 8.19e9, 40960, TTT, "fp8"),
    "qwen3_vl_2b_instruct": ("qwen3_vl", 2.13e9, 262144, VLM, None),
    "qwen3_vl_30b_a3b_instruct": ("qwen3_vl_moe", 31.1e9, 262144, VLM, None),
    "qwen_7b": ("qwen", 7.72e9, 8192, TTT, None),  # seq_length 8192 beside 32768 positions
    "smollm_1.7b": ("llama", 1.71e9, 2048, TTT, None),
    "stablelm_3b": ("stablelm", 2.8e9, 4096, TTT, None),
}

# no published count to hold these to: checked against the arithmetic of their sizes
# (qwen3_5_27b's sizes are those of a ~16B model whatever its file name says)
ARITHMETIC: dict[str, tuple[str, int, int, list[str]]] = {
    # 32 x (4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096) + 4096 + 2 x 100534 x 4096
    "xverse_7b": ("xverse", 7_299_846_144, 8192, TTT),
    "qwen3_5_27b": ("qwen3_5", 15_958_955_520, 262144, VLM),
}


def _model(tmp_path: Path, name: str, extra: dict[str, str] | None = None) -> Path:
    shutil.copy(CONFIGS / f"{name}.json", tmp_path / "config.json")
    for file, content in (extra or {}).items():
        (tmp_path / file).write_text(content)
    return tmp_path


def test_every_config_file_is_covered() -> None:
    names = {p.stem for p in CONFIGS.glob("*.json")}
    covered = (
        set(EXPECTED) | set(ARITHMETIC) | {"config_sentence_transformers", "qwen3_embedding_8b"}
    )
    assert names == covered


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_matches_published_facts(tmp_path: Path, name: str) -> None:
    model_type, published, max_tokens, caps, quant = EXPECTED[name]
    got = discover(_model(tmp_path, name))
    assert got.errors == ()
    assert got.model_type == model_type
    assert got.parameter_count_source == "estimate"
    assert got.parameter_count is not None
    assert abs(got.parameter_count / published - 1) < 0.05, (got.parameter_count, published)
    assert got.max_tokens == max_tokens
    assert list(got.model_capabilities) == caps
    assert got.has_vision == ("IMAGE_TEXT_TO_TEXT" in caps or name == "clip_vision_model")
    assert got.is_embedding == (caps == EMB)
    assert got.quantization == quant
    # deepseek_vl2_tiny names no top-level architecture: none is made up
    archs = json.loads((CONFIGS / f"{name}.json").read_text()).get("architectures", [None])
    assert got.model_architecture == archs[0]


@pytest.mark.parametrize("name", sorted(ARITHMETIC))
def test_config_arithmetic(tmp_path: Path, name: str) -> None:
    model_type, count, max_tokens, caps = ARITHMETIC[name]
    got = discover(_model(tmp_path, name))
    assert (got.model_type, got.parameter_count, got.max_tokens) == (model_type, count, max_tokens)
    assert list(got.model_capabilities) == caps


def test_qwen3_embedding_is_an_embedding_model_by_its_sentence_transformers_files(
    tmp_path: Path,
) -> None:
    marker = (CONFIGS / "config_sentence_transformers.json").read_text()
    got = discover(
        _model(tmp_path, "qwen3_embedding_8b", {"config_sentence_transformers.json": marker})
    )
    assert list(got.model_capabilities) == EMB
    assert list(got.api_capabilities) == ["OPENAI_V1_EMBEDDINGS"]
    assert got.is_embedding is True
    assert got.parameter_count is not None
    assert abs(got.parameter_count / 7.57e9 - 1) < 0.05  # published: 7.57B, no LM head
    assert got.max_tokens == 40960


def test_qwen3_embedding_config_alone_reads_as_its_causal_lm_class(tmp_path: Path) -> None:
    # its config.json names Qwen3ForCausalLM and nothing else marks it: honest, not guessed
    got = discover(_model(tmp_path, "qwen3_embedding_8b"))
    assert list(got.model_capabilities) == TTT


def test_sentence_transformers_config_alone_is_not_a_model_config(tmp_path: Path) -> None:
    got = discover(_model(tmp_path, "config_sentence_transformers"))
    assert got.model_type is None
    assert got.parameter_count is None
    assert got.model_capabilities == ()


def test_mistral_chat_model_is_not_an_embedding_model(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ x }}"}))
    got = discover(_model(tmp_path, "mistral_7b_instruct"))
    assert got.is_embedding is False
    assert list(got.model_capabilities) == TTT
    assert list(got.api_capabilities) == ["OPENAI_V1_CHAT_COMPLETIONS", "OPENAI_V1_COMPLETIONS"]


def test_gemma3_multimodal_context_is_the_class_default(tmp_path: Path) -> None:
    # Gemma 3 4B and up: text_config has no max_position_embeddings (OME reported 8192)
    config = {
        "architectures": ["Gemma3ForConditionalGeneration"],
        "model_type": "gemma3",
        "text_config": {
            "model_type": "gemma3_text",
            "hidden_size": 2560,
            "intermediate_size": 10240,
            "num_hidden_layers": 34,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "head_dim": 256,
            "rope_scaling": {"factor": 8.0, "rope_type": "linear"},
            "sliding_window": 1024,
        },
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "image_size": 896,
            "patch_size": 14,
        },
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    got = discover(tmp_path)
    assert got.max_tokens == 131072
    assert list(got.model_capabilities) == VLM


def test_yarn_rope_scaling_extends_the_context(tmp_path: Path) -> None:
    config = json.loads((CONFIGS / "qwen3_4b.json").read_text())
    config["rope_scaling"] = {
        "rope_type": "yarn",
        "factor": 4.0,
        "original_max_position_embeddings": 32768,
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert discover(tmp_path).max_tokens == 131072


def test_reranker_is_rerank(tmp_path: Path) -> None:
    config = json.loads((CONFIGS / "bge_large.json").read_text())
    config["architectures"] = ["XLMRobertaForSequenceClassification"]
    config["model_type"] = "xlm-roberta"
    config["id2label"] = {"0": "LABEL_0"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    got = discover(tmp_path)
    assert list(got.model_capabilities) == ["RERANK"]
    assert got.is_embedding is False


def test_unknown_family_falls_back_to_the_generic_rules(tmp_path: Path) -> None:
    config = {
        "architectures": ["NovelForCausalLM"],
        "model_type": "novel",
        "llm_config": {
            "hidden_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "intermediate_size": 2048,
            "vocab_size": 1000,
            "max_position_embeddings": 4096,
            "num_experts": 4,
            "moe_intermediate_size": 512,
            "tie_word_embeddings": False,
        },
        "vision_config": {"hidden_size": 256, "num_hidden_layers": 2, "intermediate_size": 512},
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    got = discover(tmp_path)
    assert got.max_tokens == 4096
    assert got.has_vision is True
    assert list(got.model_capabilities) == VLM
    h, layers, heads = 1024, 4, 8
    attention = 4 * h * h
    experts = 4 * 3 * h * 512 + h * 4
    language = layers * (attention + experts + 2 * h) + h + 2 * 1000 * h
    assert got.parameter_count is not None
    assert language < got.parameter_count < language * 1.1  # plus a small vision tower
    assert heads == 8
