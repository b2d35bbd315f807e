"""Discovery: config.json + safetensors headers -> model metadata (docs/architecture.md, layer 3).

Entry points: ``discover`` (a local model directory), ``inspect_remote`` (an
``hf://`` repo or an http(s) safetensors URL, headers only, by range requests).
Both return a :class:`Discovery` whose ``to_ome_config()`` is the ``config`` object
of OME's ConfigMap entry. Modules: ``configfile`` (finding and strictly reading
JSON), ``fields`` (typed reads, transformers defaults), ``estimate`` (parameter count
from the config's structure, with ``estimate_view``, ``estimate_layers`` and
``estimate_vision``), ``weights`` (exact count from headers; the counting rule for
packed quantized weights), ``context``, ``capabilities``, ``quantization``,
``sizes``, ``reader`` (the one path both entry points take), ``describe``
(assembly), ``result`` (the result type and user-spec merge), ``annotations``
(skip-config-parsing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ome_agent.discovery.annotations import SKIP_CONFIG_PARSING, skip_config_parsing
from ome_agent.discovery.capabilities import CAPABILITIES, normalize_capability
from ome_agent.discovery.local import discover
from ome_agent.discovery.result import USER_FIELDS, Discovery, NameVersion, merge_user_spec
from ome_agent.discovery.sizes import format_parameter_size

if TYPE_CHECKING:
    from ome_agent.discovery.remote import inspect_remote


def __getattr__(name: str) -> Any:
    # the remote reader pulls in the sources layer (and huggingface_hub on use):
    # the node agent's local discovery should not pay for it
    if name == "inspect_remote":
        from ome_agent.discovery.remote import inspect_remote

        return inspect_remote
    raise AttributeError(name)


__all__ = [
    "CAPABILITIES",
    "SKIP_CONFIG_PARSING",
    "USER_FIELDS",
    "Discovery",
    "NameVersion",
    "discover",
    "format_parameter_size",
    "inspect_remote",
    "merge_user_spec",
    "normalize_capability",
    "skip_config_parsing",
]
