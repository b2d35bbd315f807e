"""What a model can do: OME's capability enum and the API it serves (discovery, layer 3).

Rules, from the strongest evidence down:
- EMBEDDING: sentence-transformers files in the repo, an ``is_causal: false``
  decoder (gte-Qwen2), an ``*Model`` / ``*EmbeddingModel`` architecture without a
  head (e5-mistral, BERT), or a CLIP/SigLIP encoder with projection;
- RERANK: a ``*ForSequenceClassification`` with a single output label (cross-encoders);
- TEXT_TO_TEXT: causal / conditional-generation LMs (a Mistral chat model is a chat
  model whatever its family, unlike OME's parser);
- IMAGE_TEXT_TO_TEXT (with TEXT_TO_TEXT): an LM with a vision tower;
- AUDIO_TO_TEXT: speech-recognition and audio-LM architectures;
- TEXT_TO_IMAGE: a diffusers pipeline.

API capabilities: OPENAI_V1_COMPLETIONS for text LMs, OPENAI_V1_CHAT_COMPLETIONS when
the repo carries a chat template (or the name says instruct/chat), and
OPENAI_V1_EMBEDDINGS for embedding models.

``normalize_capability`` maps the reference doc's spellings (``text-to-text``,
``TEXT_GENERATION``, ``embedding``) and OME's legacy values (``CHAT``, ``VISION``,
``TEXT_EMBEDDINGS``, ``TEXT_RERANK``) to OME's current names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ome_agent.discovery.fields import Config, architectures, mapping, text, vision_config

TEXT_TO_TEXT = "TEXT_TO_TEXT"
IMAGE_TEXT_TO_TEXT = "IMAGE_TEXT_TO_TEXT"
EMBEDDING = "EMBEDDING"
RERANK = "RERANK"
AUDIO_TO_TEXT = "AUDIO_TO_TEXT"
TEXT_TO_IMAGE = "TEXT_TO_IMAGE"
# OME's enum (its current names) plus the two this project adds for evident cases
CAPABILITIES = (TEXT_TO_TEXT, IMAGE_TEXT_TO_TEXT, EMBEDDING, RERANK, AUDIO_TO_TEXT, TEXT_TO_IMAGE)
CHAT_COMPLETIONS = "OPENAI_V1_CHAT_COMPLETIONS"
COMPLETIONS = "OPENAI_V1_COMPLETIONS"
EMBEDDINGS = "OPENAI_V1_EMBEDDINGS"

# the reference doc's spellings and OME's legacy enum values
_ALIASES = {
    "TEXT_GENERATION": TEXT_TO_TEXT,
    "TEXT_SUMMARIZATION": TEXT_TO_TEXT,
    "TEXT_RERANK": RERANK,
    "TEXT2TEXT": TEXT_TO_TEXT,
    "CHAT": TEXT_TO_TEXT,
    "COMPLETION": TEXT_TO_TEXT,
    "EMBEDDINGS": EMBEDDING,
    "TEXT_EMBEDDING": EMBEDDING,
    "TEXT_EMBEDDINGS": EMBEDDING,
    "FEATURE_EXTRACTION": EMBEDDING,
    "EMBED": EMBEDDING,
    "RERANKING": RERANK,
    "RERANKER": RERANK,
    "VISION": IMAGE_TEXT_TO_TEXT,
    "VISION_LANGUAGE": IMAGE_TEXT_TO_TEXT,
    "MULTIMODAL": IMAGE_TEXT_TO_TEXT,
    "SPEECH_TO_TEXT": AUDIO_TO_TEXT,
    "AUTOMATIC_SPEECH_RECOGNITION": AUDIO_TO_TEXT,
}

# files that mark a sentence-transformers (embedding) repo
SENTENCE_TRANSFORMERS_FILES = frozenset(
    {"config_sentence_transformers.json", "modules.json", "sentence_bert_config.json"}
)
CHAT_TEMPLATE_FILES = frozenset({"chat_template.json", "chat_template.jinja"})
_CHAT_NAME = re.compile(r"(instruct|chat|-it\b|_it\b|assistant)", re.IGNORECASE)
_EMBED_NAME = re.compile(r"(embed|(^|[-_/])(e5|gte|bge)[-_])", re.IGNORECASE)
_AUDIO_TYPES = frozenset({"whisper", "qwen2_audio", "wav2vec2", "hubert", "speech_to_text"})


def normalize_capability(value: str) -> str:
    """The OME enum spelling: ``text-to-text`` / ``TEXT_GENERATION`` -> ``TEXT_TO_TEXT``."""
    key = re.sub(r"[\s\-.]+", "_", value.strip()).upper()
    return _ALIASES.get(key, key)


def normalize_capabilities(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in values:
        n = normalize_capability(v)
        if n and n not in out:
            out.append(n)
    return out


@dataclass(frozen=True)
class Evidence:
    """What the repo shows besides config.json."""

    files: frozenset[str]  # base names in the config's directory
    chat_template: bool = False


@dataclass(frozen=True)
class Capabilities:
    model: list[str]
    api: list[str]
    has_vision: bool
    is_embedding: bool

    @property
    def lm_head(self) -> bool:
        """Whether the checkpoint is expected to carry an LM head (for estimates)."""
        return TEXT_TO_TEXT in self.model


def has_vision(config: Config) -> bool:
    if vision_config(config) is not None or config.get("mm_vision_tower") is not None:
        return True
    model_type = text(config.get("model_type")) or ""
    return "vision" in model_type or model_type.endswith("_vl")


def detect(config: Config, evidence: Evidence) -> Capabilities:
    archs = architectures(config)
    model_type = text(config.get("model_type")) or ""
    vision = has_vision(config)
    name = text(config.get("_name_or_path")) or ""

    caps: list[str] = []
    if "_diffusers_version" in config or "_class_name" in config:
        caps = [TEXT_TO_IMAGE]
    elif _is_embedding(config, archs, model_type, name, evidence):
        caps = [EMBEDDING]
    elif any(a.endswith("ForSequenceClassification") for a in archs):
        if _single_label(config):
            caps = [RERANK]
    elif (
        model_type in _AUDIO_TYPES
        or "audio_config" in config
        or any("SpeechSeq2Seq" in a or "ForCTC" in a for a in archs)
    ):
        caps = [AUDIO_TO_TEXT]
    elif _is_generative(archs, model_type):
        caps = [TEXT_TO_TEXT, IMAGE_TEXT_TO_TEXT] if vision else [TEXT_TO_TEXT]

    api: list[str] = []
    if TEXT_TO_TEXT in caps:
        api.append(COMPLETIONS)
        if evidence.chat_template or _CHAT_NAME.search(name):
            api.insert(0, CHAT_COMPLETIONS)
    if EMBEDDING in caps:
        api.append(EMBEDDINGS)
    return Capabilities(caps, api, vision, EMBEDDING in caps)


def _is_embedding(
    config: Config, archs: list[str], model_type: str, name: str, evidence: Evidence
) -> bool:
    if evidence.files & SENTENCE_TRANSFORMERS_FILES:
        return True
    if config.get("is_causal") is False:
        return True
    if any(a.endswith(("EmbeddingModel", "ForEmbedding", "ModelWithProjection")) for a in archs):
        return True
    if archs and all(a.endswith("Model") and not a.endswith("LMHeadModel") for a in archs):
        # a bare transformer without head: its output is hidden states, i.e. embeddings
        # (ChatGLM names its causal LM "ChatGLMModel", so it is excluded by family)
        return model_type not in ("chatglm", "qwen")
    return bool(not archs and _EMBED_NAME.search(name))


def _single_label(config: Config) -> bool:
    labels = mapping(config.get("id2label"))
    num = config.get("num_labels")
    if isinstance(num, int) and not isinstance(num, bool):
        return num == 1
    return labels is not None and len(labels) == 1


def _is_generative(archs: list[str], model_type: str) -> bool:
    generative = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration", "ForTextGeneration")
    if any(a.endswith(generative) for a in archs):
        return True
    # custom-code causal LMs without a conventional class name
    return model_type in ("chatglm", "qwen") or (not archs and bool(model_type))
