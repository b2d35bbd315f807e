"""Parameters of a multimodal model's vision tower and projector, from its config.

Part of the config-only parameter estimate (``estimate``): a ViT (attention and MLP
blocks with biases, patch and position embeddings; Mllama's tile embeddings) plus the
projector that maps its output to the language model's width (LLaVA's two-layer MLP,
the Qwen-VL patch merger, Mllama / Llama 4's projection, DeepSeek-VL2's downsampler).
The original LLaVA repos ship only the projector: the tower comes from its own repo.
"""

from __future__ import annotations

from ome_agent.discovery.fields import Config, first_int, mapping, pos_num, vision_config


def vision_parameters(config: Config, text_h: int) -> int | None:
    """Vision tower + projector; None when the config has no vision part. ``text_h``:
    the language model's width, the projector's output."""
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
        clip = _vit(1024, 24, 4096, gated=False) + 3 * 14 * 14 * 1024 + (24 * 24 + 1) * 1024
        return clip + 4 * image_dim * text_h + text_h * text_h
    vh = _width(v)
    tower = tower_parameters(v)
    if vh is None or tower is None:
        return None
    return tower + _projector(config, v, vh, text_h)


def tower_parameters(v: Config) -> int | None:
    """A ViT: its blocks, patch and position embeddings; None without its sizes."""
    vh = _width(v)
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
    return tower


def _width(v: Config) -> int | None:
    return first_int(v, "embed_dim", "width", "hidden_size")


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
