"""Discovery over every real config.json in tests/data/hf-configs/ (config only, no weights).

Parameter counts are estimates here, each held to the count published for the model
(named with its source in PUBLISHED) within a tolerance stated per model; context
lengths are what transformers and vLLM use; capabilities follow the model's kind.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from ome_agent.discovery import discover

CONFIGS = Path(__file__).parent / "data" / "hf-configs"
TTT = ["TEXT_TO_TEXT"]
VLM = ["TEXT_TO_TEXT", "IMAGE_TEXT_TO_TEXT"]
EMB = ["EMBEDDING"]

# file -> (model_type, max tokens, capabilities, quantization)
EXPECTED: dict[str, tuple[str, int | None, list[str], str | None]] = {
    "baichuan2_7b": ("baichuan", 4096, TTT, None),
    "bge_large": ("bert", 512, EMB, None),
    "chatglm3_6b": ("chatglm", 8192, TTT, None),
    "clip_vision_model": ("clip_vision_model", None, EMB, None),
    "deepseek_v3": ("deepseek_v3", 163840, TTT, None),
    "deepseek_vl2_tiny": ("deepseek_vl_v2", 4096, VLM, None),
    "e5_mistral_7b": ("mistral", 32768, EMB, None),
    "exaone_7.8b": ("exaone", 32768, TTT, None),
    # Gemma 3 1B states 32768; the larger Gemma 3 (no key) get 131072, see below
    "gemma3_text": ("gemma3_text", 32768, TTT, None),
    "gemma_2_2b": ("gemma2", 8192, TTT, None),
    "gemma_2_2b_it": ("gemma2", 8192, TTT, None),
    "gemma_2_9b": ("gemma2", 8192, TTT, None),
    "gemma_7b": ("gemma", 8192, TTT, None),
    "glm4_9b": ("chatglm", 8192, TTT, None),
    "gpt_oss_20b": ("gpt_oss", 131072, TTT, "mxfp4"),
    "gte_qwen2_7b": ("qwen2", 131072, EMB, None),
    "internlm2_7b": ("internlm2", 32768, TTT, None),
    "llama3": ("llama", 8192, TTT, None),
    "llama3_1": ("llama", 131072, TTT, None),
    "llama3_2_11b_vision": ("mllama", 131072, VLM, None),
    "llama3_2_1b": ("llama", 131072, TTT, None),
    "llama3_2_3b": ("llama", 131072, TTT, None),
    "llama4": ("llama4", 1048576, VLM, "compressed-tensors"),  # Maverick 128E FP8
    "llama4_scout_17b_16e": ("llama4", 10485760, VLM, None),
    "llava_1.5_7b_hf": ("llava", 4096, VLM, None),
    "llava_v1.5_7b": ("llava", 4096, VLM, None),
    "mistral": ("mistral", 32768, TTT, None),
    "mistral_7b_instruct": ("mistral", 32768, TTT, None),
    "mixtral": ("mixtral", 32768, TTT, None),
    "phi3": ("phi3", 131072, TTT, None),
    "phi3_v": ("phi3_v", 131072, VLM, None),
    "phi3small": ("phi3small", 8192, TTT, None),
    "qwen2.5_0.5b": ("qwen2", 32768, TTT, None),
    "qwen2.5_1.5b": ("qwen2", 131072, TTT, None),
    "qwen2.5_14b": ("qwen2", 131072, TTT, None),
    "qwen2.5_32b": ("qwen2", 131072, TTT, None),
    "qwen2.5_3b": ("qwen2", 32768, TTT, None),
    "qwen2.5_7b": ("qwen2", 131072, TTT, None),
    "qwen2.5_vl_7b": ("qwen2_5_vl", 128000, VLM, None),
    "qwen2_7b": ("qwen2", 131072, TTT, None),
    "qwen2_vl_2b": ("qwen2_vl", 32768, VLM, None),
    "qwen2_vl_7b": ("qwen2_vl", 32768, VLM, None),
    "qwen3_30b": ("qwen3_moe", 40960, TTT, None),
    "qwen3_4b": ("qwen3", 40960, TTT, None),
    "qwen3_8b_fp8": ("qwen3", 40960, TTT, "fp8"),
    "qwen3_vl_2b_instruct": ("qwen3_vl", 262144, VLM, None),
    "qwen3_vl_30b_a3b_instruct": ("qwen3_vl_moe", 262144, VLM, None),
    "qwen_7b": ("qwen", 8192, TTT, None),  # seq_length 8192 beside 32768 positions
    "smollm_1.7b": ("llama", 2048, TTT, None),
    "stablelm_3b": ("stablelm", 4096, TTT, None),
    "xverse_7b": ("xverse", 8192, TTT, None),
}


@dataclass(frozen=True)
class Published:
    """A published parameter count: ``source`` names where (the Hub's safetensors
    total is the "Model size" of the repo's page, three significant digits; a model
    card's figure is marked rounded when it is); ``tolerance`` is the relative error
    allowed, 1% unless a comment beside it says why another."""

    count: float
    source: str
    tolerance: float = 0.01


# A model's name ("7B") is nominal, not a count: LLaMA-7B holds 6.74B. Where nothing
# more precise is published the estimate is held to the name within 8%, and exactly
# to its own arithmetic in ARITHMETIC.
NOMINAL = 0.08
SEVEN_B = "model card: 7B (nominal; .bin weights, no Hub total)"

PUBLISHED: dict[str, Published | None] = {
    "baichuan2_7b": Published(7e9, SEVEN_B, NOMINAL),
    "bge_large": Published(335e6, "Hub safetensors total: 335M (BAAI/bge-large-en-v1.5)"),
    "chatglm3_6b": Published(6.24e9, "Hub safetensors total: 6.24B (THUDM/chatglm3-6b)"),
    # the vision half of laion/CLIP-ViT-H-14-laion2B-s32B-b79K; five significant digits
    "clip_vision_model": Published(
        632.08e6, "OpenCLIP model profile: ViT-H-14 image tower 632.08M", 0.001
    ),
    "deepseek_v3": Published(
        685e9, "Hub safetensors total: 685B (model card: 671B main model + 14B MTP module)"
    ),
    "deepseek_vl2_tiny": Published(3.37e9, "Hub safetensors total: 3.37B"),
    "e5_mistral_7b": Published(7.11e9, "Hub safetensors total: 7.11B"),
    "exaone_7.8b": Published(7.82e9, "Hub safetensors total: 7.82B (model card: 7.8B)"),
    "gemma3_text": Published(1.0e9, "Hub safetensors total: 1.00B (google/gemma-3-1b-it)"),
    "gemma_2_2b": Published(2.61e9, "Hub safetensors total: 2.61B"),
    "gemma_2_2b_it": Published(2.61e9, "Hub safetensors total: 2.61B"),
    "gemma_2_9b": Published(9.24e9, "Hub safetensors total: 9.24B"),
    "gemma_7b": Published(8.54e9, "Hub safetensors total: 8.54B"),
    "glm4_9b": Published(9.4e9, "Hub safetensors total: 9.4B (THUDM/glm-4-9b-chat)"),
    "gpt_oss_20b": Published(20.9e9, "model card (OpenAI): 20.9B total"),
    # the checkpoint keeps the causal-LM head (151646 x 3584) that an embedding model never
    # uses; its config cannot say so (Qwen3-Embedding's, of the same class, ships none)
    "gte_qwen2_7b": Published(7.61e9, "Hub safetensors total: 7.61B", 0.075),
    "internlm2_7b": Published(7.74e9, "Hub safetensors total: 7.74B"),
    "llama3": Published(70.6e9, "Hub safetensors total: 70.6B (Meta-Llama-3-70B)"),
    "llama3_1": Published(70.6e9, "Hub safetensors total: 70.6B (Llama-3.1-70B)"),
    "llama3_2_11b_vision": Published(10.7e9, "Hub safetensors total: 10.7B"),
    "llama3_2_1b": Published(1.24e9, "Hub safetensors total: 1.24B"),
    "llama3_2_3b": Published(3.21e9, "Hub safetensors total: 3.21B"),
    "llama4": Published(402e9, "Hub safetensors total: 402B, BF16 repo (model card: 400B)"),
    "llama4_scout_17b_16e": Published(109e9, "Hub safetensors total: 109B (model card: 109B)"),
    "llava_1.5_7b_hf": Published(7.06e9, "Hub safetensors total: 7.06B"),
    # liuhaotian/llava-v1.5-7b: LM + projector; the CLIP tower is fetched from its own repo
    "llava_v1.5_7b": Published(7e9, SEVEN_B, NOMINAL),
    "mistral": Published(7.24e9, "Hub safetensors total: 7.24B (Mistral-7B-v0.1)"),
    "mistral_7b_instruct": Published(7.24e9, "Hub safetensors total: 7.24B"),
    "mixtral": Published(46.7e9, "Hub safetensors total: 46.7B (model card: 46.7B)"),
    "phi3": Published(3.82e9, "Hub safetensors total: 3.82B"),
    "phi3_v": Published(4.15e9, "Hub safetensors total: 4.15B (model card: 4.2B)"),
    "phi3small": Published(7.39e9, "Hub safetensors total: 7.39B"),
    "qwen2.5_0.5b": Published(494e6, "Hub safetensors total: 494M (model card: 0.49B)"),
    "qwen2.5_1.5b": Published(1.54e9, "Hub safetensors total: 1.54B (model card: 1.54B)"),
    "qwen2.5_14b": Published(14.8e9, "Hub safetensors total: 14.8B (model card: 14.7B)"),
    "qwen2.5_32b": Published(32.8e9, "Hub safetensors total: 32.8B (model card: 32.5B)"),
    "qwen2.5_3b": Published(3.09e9, "Hub safetensors total: 3.09B (model card: 3.09B)"),
    "qwen2.5_7b": Published(7.62e9, "Hub safetensors total: 7.62B (model card: 7.61B)"),
    "qwen2.5_vl_7b": Published(8.29e9, "Hub safetensors total: 8.29B"),
    "qwen2_7b": Published(7.62e9, "Hub safetensors total: 7.62B"),
    "qwen2_vl_2b": Published(2.21e9, "Hub safetensors total: 2.21B"),
    "qwen2_vl_7b": Published(8.29e9, "Hub safetensors total: 8.29B"),
    "qwen3_30b": Published(30.5e9, "Hub safetensors total: 30.5B (model card: 30.5B)"),
    "qwen3_4b": Published(4.02e9, "Hub safetensors total: 4.02B (model card: 4.0B)"),
    "qwen3_8b_fp8": Published(8.19e9, "Hub safetensors total: 8.19B, BF16 Qwen3-8B"),
    "qwen3_vl_2b_instruct": Published(2.13e9, "Hub safetensors total: 2.13B"),
    "qwen3_vl_30b_a3b_instruct": Published(31.1e9, "Hub safetensors total: 31.1B"),
    "qwen_7b": Published(7.72e9, "Hub safetensors total: 7.72B (model card: 7.7B)"),
    "smollm_1.7b": Published(1.71e9, "Hub safetensors total: 1.71B"),
    "stablelm_3b": Published(2.8e9, "Hub safetensors total: 2.8B (stablelm-3b-4e1t)"),
    "xverse_7b": Published(7e9, SEVEN_B, NOMINAL),
    # no published count: this file's sizes are not those of the model its name says
    "qwen3_5_27b": None,
    # Hub safetensors total 7.57B: held to it below, with its sentence-transformers files
    "qwen3_embedding_8b": None,
    "config_sentence_transformers": None,  # not a model config
}

# exact arithmetic of the sizes, where no count is published or only a nominal one
ARITHMETIC: dict[str, tuple[str, int, int, list[str]]] = {
    # 32 x (4 x 4096^2 + 3 x 4096 x 11008 + 2 x 4096) + 4096 + 2 x 100534 x 4096
    "xverse_7b": ("xverse", 7_299_846_144, 8192, TTT),
    # language model, as Qwen3.5's config class completes the file (head_dim 256, 3 of
    # every 4 layers linear attention: 16 key / 32 value heads of 128, gated output):
    #   15 full-attention layers x 84_410_368 (q+gate 3584 x 14336, k/v 2 x 3584 x 1024,
    #   o 7168 x 3584) + 47 gated-delta layers x 58_982_592 + 62 x (3 x 3584 x 17408 MLP +
    #   2 x 3584 norms) + 3584 + 2 x 248064 x 3584 = 17_421_498_688;
    # plus a 36-block vision tower and its patch merger: 755_466_240
    "qwen3_5_27b": ("qwen3_5", 18_176_964_928, 262144, VLM),
}


def _model(tmp_path: Path, name: str, extra: dict[str, str] | None = None) -> Path:
    shutil.copy(CONFIGS / f"{name}.json", tmp_path / "config.json")
    for file, content in (extra or {}).items():
        (tmp_path / file).write_text(content)
    return tmp_path


def test_every_config_file_is_covered() -> None:
    names = {p.stem for p in CONFIGS.glob("*.json")}
    assert names == set(PUBLISHED)
    assert {n for n, p in PUBLISHED.items() if p is not None} <= set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_matches_published_facts(tmp_path: Path, name: str) -> None:
    model_type, max_tokens, caps, quant = EXPECTED[name]
    got = discover(_model(tmp_path, name))
    assert got.errors == ()
    assert got.model_type == model_type
    assert got.parameter_count_source == "estimate"
    assert got.max_tokens == max_tokens
    assert list(got.model_capabilities) == caps
    assert got.has_vision == ("IMAGE_TEXT_TO_TEXT" in caps or name == "clip_vision_model")
    assert got.is_embedding == (caps == EMB)
    assert got.quantization == quant
    # deepseek_vl2_tiny names no top-level architecture: none is made up
    archs = json.loads((CONFIGS / f"{name}.json").read_text()).get("architectures", [None])
    assert got.model_architecture == archs[0]


@pytest.mark.parametrize("name", sorted(n for n, p in PUBLISHED.items() if p is not None))
def test_estimate_is_within_tolerance_of_the_published_count(tmp_path: Path, name: str) -> None:
    published = PUBLISHED[name]
    assert published is not None
    got = discover(_model(tmp_path, name)).parameter_count
    assert got is not None
    error = got / published.count - 1
    assert abs(error) <= published.tolerance, f"{got:,} vs {published.source}: {error:+.2%}"


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
    # Hub safetensors total: 7.57B (the checkpoint has no LM head)
    assert abs(got.parameter_count / 7.57e9 - 1) <= 0.01
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
