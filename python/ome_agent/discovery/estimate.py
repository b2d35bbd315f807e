"""Parameter count estimated from config.json, for when no weights are at hand.

Discovery prefers the exact count from safetensors headers (``weights``); this is
the fallback, e.g. before a download or for a ``pytorch_model.bin`` repo. It sums
what the config's structure builds, as the checkpoint would hold it:

- token embeddings, plus an LM head unless tied or the model has none (``*Model``
  encoders, embedding models); BERT-style encoders add learned positions, token
  types, biases and a pooler;
- every decoder layer as its own type says (``estimate_layers``: attention kinds,
  linear-attention layers, dense or mixture-of-experts MLPs), then the final norm
  and any multi-token-prediction layers the checkpoint ships;
- a vision tower and its projector (``estimate_vision``), or the tower alone for a
  vision-encoder config.

The sizes are read through ``estimate_view`` (nested sub-configs and family-implied
sizes folded into one mapping), so nothing here dispatches on a model name.
"""

from __future__ import annotations

from ome_agent.discovery.estimate_layers import (
    HIDDEN,
    Widths,
    bounded,
    layer_count,
    layer_parameters,
    widths,
)
from ome_agent.discovery.estimate_view import language_view
from ome_agent.discovery.estimate_vision import tower_parameters, vision_parameters
from ome_agent.discovery.fields import Config, first_int, flag

_VOCAB = ("vocab_size", "padded_vocab_size", "n_vocab")
# multi-token-prediction layers the checkpoint ships beside the stack: DeepSeek's
# convention stores a copy of the embedding and the LM head in each, Qwen's does not
_MTP_WITH_EMBEDDINGS = "num_nextn_predict_layers"
_MTP_SHARING_EMBEDDINGS = "mtp_num_hidden_layers"


def estimate_parameters(config: Config, *, lm_head: bool = True) -> int | None:
    """Whole-model estimate (language model + vision tower + projector); None when
    the config lacks the sizes of either. ``lm_head``: whether the model's use keeps
    one (an embedding model's checkpoint does not)."""
    view = language_view(config)
    if "patch_size" in config and first_int(view, *_VOCAB) is None:
        return _vision_encoder(config)
    w = widths(view)
    language = None
    if w is not None:
        language = _language(view, w, lm_head=lm_head and not _tied(config, view))
    vision = vision_parameters(config, w.hidden if w else 0)
    if language is None:
        return vision
    return language + (vision or 0)


def _vision_encoder(config: Config) -> int | None:
    """A vision encoder on its own (CLIP's image tower) and its output projection."""
    tower = tower_parameters(config)
    if tower is None:
        return None
    width = first_int(config, *HIDDEN) or 0
    return tower + (first_int(config, "projection_dim") or 0) * width


def _language(c: Config, w: Widths, *, lm_head: bool) -> int | None:
    layers = layer_count(c)
    vocab = first_int(c, *_VOCAB) or 0
    mtp = _mtp(c, w, layers or 0, vocab)
    if layers is None or mtp is None:
        return None
    total = sum(layer_parameters(c, w, index) for index in range(layers))
    total += w.hidden  # final norm
    total += vocab * w.hidden * (2 if lm_head else 1)
    if "type_vocab_size" in c:
        total += _encoder_extras(c, w, layers)
    return total + mtp


def _mtp(c: Config, w: Widths, layers: int, vocab: int) -> int | None:
    """Multi-token-prediction blocks: each a layer over a projection of [embedding;
    hidden state] (with its two input norms and an output norm)."""
    own = first_int(c, _MTP_WITH_EMBEDDINGS) or 0
    count = bounded(own or first_int(c, _MTP_SHARING_EMBEDDINGS) or 0)
    if count is None:
        return None
    total = 0
    for index in range(layers, layers + count):
        total += layer_parameters(c, w, index) + 2 * w.hidden * w.hidden + 3 * w.hidden
    return total + own * 2 * vocab * w.hidden


def _tied(config: Config, view: Config) -> bool:
    top = config.get("tie_word_embeddings")
    if isinstance(top, bool):
        return top
    own = flag(view, "tie_word_embeddings")  # its value, else its family's default
    # PretrainedConfig's own default is True; custom-code families inherit it
    return True if own is None else own


def _encoder_extras(c: Config, w: Widths, layers: int) -> int:
    """BERT-style encoders: learned positions, token types, the biases of every linear
    layer, LayerNorms with a bias, the pooler."""
    h, ff = w.hidden, w.dense_ff
    positions = first_int(c, "max_position_embeddings") or 512
    types = first_int(c, "type_vocab_size") or 0
    biases = layers * (4 * h + ff + h + 2 * 2 * h)  # attention + MLP biases, two LayerNorms
    pooler = h * h + h
    return positions * h + types * h + 2 * h + biases + pooler
