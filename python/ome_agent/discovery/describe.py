"""Turning what was read (config, file names, header counts) into a Discovery.

Shared by the local (``local``) and remote (``remote``) readers through
``reader.describe_model``, so a model gives the same answer on disk and on the Hub.
Nothing here touches files or the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ome_agent.discovery import capabilities
from ome_agent.discovery.configfile import parent_of
from ome_agent.discovery.context import context_length
from ome_agent.discovery.estimate import estimate_parameters
from ome_agent.discovery.fields import Config, architectures, text, text_config
from ome_agent.discovery.ignored import ignored_fields
from ome_agent.discovery.quantization import Quantization, from_config, from_weight_dtypes
from ome_agent.discovery.result import Discovery, NameVersion
from ome_agent.discovery.sizes import format_parameter_size
from ome_agent.discovery.weights import WeightCount

SAFETENSORS_VERSION = "1.0.0"  # the format has no version field; OME writes this one
_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32", "F64": "float64"}
_FORMATS = (
    (".safetensors", "safetensors"),
    (".gguf", "gguf"),
    (".bin", "pytorch"),
    (".pt", "pytorch"),
    (".pth", "pytorch"),
    (".onnx", "onnx"),
)


def is_diffusers(config: Config | None) -> bool:
    return config is not None and "_diffusers_version" in config


def weight_dirs(config_path: str | None, config: Config | None, names: Iterable[str]) -> list[str]:
    """Directories whose weights make up the model ("" is the root)."""
    base = parent_of(config_path) if config_path else ""
    if config is None or not is_diffusers(config):
        return [base]
    prefix = f"{base}/" if base else ""
    present = {parent_of(n) for n in names}
    dirs = [
        f"{prefix}{key}"
        for key, value in config.items()
        if not key.startswith("_") and isinstance(value, list) and f"{prefix}{key}" in present
    ]
    return sorted(dirs)


def quantization_of(config: Config | None) -> Quantization:
    return from_config(config) if config is not None else Quantization(None, None)


def build(
    *,
    dir_files: frozenset[str],
    errors: list[str],
    config: Config | None = None,
    config_path: str | None = None,
    weights: WeightCount | None = None,
    other_weight_bytes: int = 0,
    tokenizer_config: Mapping[str, Any] | None = None,
) -> Discovery:
    """``dir_files``: every file name of the model, relative to its root. Readers of a
    whole model come through ``reader.describe_model``; a single file has no config."""
    cfg: Config = config or {}
    if config is not None:
        errors = errors + ignored_fields(config, config_path or "config.json")
    names_here = frozenset(
        n.rpartition("/")[2] for n in dir_files if parent_of(n) == parent_of(config_path or "")
    )
    chat = bool(names_here & capabilities.CHAT_TEMPLATE_FILES) or bool(
        tokenizer_config and tokenizer_config.get("chat_template")
    )
    caps = (
        capabilities.detect(cfg, capabilities.Evidence(names_here, chat_template=chat))
        if config is not None
        else None
    )

    count: int | None = None
    source: Any = None
    if weights is not None and weights.complete:
        count, source = weights.parameters, "safetensors"
    elif config is not None and not is_diffusers(config):
        count = estimate_parameters(cfg, lm_head=caps.lm_head if caps else True)
        source = "estimate" if count is not None else None

    quant = quantization_of(config).method
    if quant is None and weights is not None:
        quant = from_weight_dtypes(weights.dtypes)

    size: int | None = None
    if weights is not None and weights.files:
        size = weights.size_bytes + other_weight_bytes
    elif other_weight_bytes:
        size = other_weight_bytes

    return Discovery(
        model_type=text(cfg.get("model_type")) or text(cfg.get("_class_name")),
        model_architecture=next(iter(architectures(cfg)), None) or text(cfg.get("_class_name")),
        parameter_count=count,
        model_parameter_size=format_parameter_size(count) if count is not None else None,
        max_tokens=context_length(cfg) if config is not None else None,
        torch_dtype=_dtype(cfg, weights),
        transformers_version=text(cfg.get("transformers_version")),
        model_format=_format(dir_files),
        model_framework=_framework(config),
        model_capabilities=tuple(caps.model) if caps else (),
        api_capabilities=tuple(caps.api) if caps else (),
        quantization=quant,
        has_vision=caps.has_vision if caps else None,
        is_embedding=caps.is_embedding if caps else None,
        size_on_disk_bytes=size,
        parameter_count_source=source,
        config_path=config_path,
        errors=tuple(errors),
    )


def _dtype(cfg: Config, weights: WeightCount | None) -> str | None:
    for part in (cfg, text_config(cfg)):
        for key in ("torch_dtype", "dtype"):
            value = text(part.get(key))
            if value:
                return value.removeprefix("torch.")
    if weights is not None and weights.dtypes:
        dominant = max(weights.dtypes.items(), key=lambda kv: kv[1])[0]
        return _DTYPES.get(dominant)
    return None


def _format(names: Iterable[str]) -> NameVersion | None:
    found = {fmt for n in names for suffix, fmt in _FORMATS if n.endswith(suffix)}
    for _suffix, fmt in _FORMATS:
        if fmt in found:
            return NameVersion(fmt, SAFETENSORS_VERSION if fmt == "safetensors" else None)
    return None


def _framework(config: Config | None) -> NameVersion | None:
    if config is None:
        return None
    if is_diffusers(config):
        return NameVersion("diffusers", text(config.get("_diffusers_version")))
    version = text(config.get("transformers_version"))
    if version or architectures(config) or text(config.get("model_type")):
        return NameVersion("transformers", version)
    return None
