"""The result of discovery and its two wire shapes (discovery, layer 3).

``Discovery.to_json()`` is what ``ome-agent inspect --json`` prints; ``to_ome_config()``
is exactly the ``config`` object of OME's per-node ConfigMap entry (docs/wire.md),
without the ``artifact`` part the node agent adds, and with unknown values left out
rather than written as null. ``merge_user_spec`` applies the rule that a field the
user set in the BaseModel spec always wins over a discovered one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ome_agent.api.resources import DISCOVERABLE_FIELDS
from ome_agent.discovery.capabilities import normalize_capabilities
from ome_agent.discovery.fields import pos_int
from ome_agent.discovery.sizes import ome_counts

MAX_INT32 = 2**31 - 1  # OME's maxTokens is an int32: a larger length is left out
USER_FIELDS = DISCOVERABLE_FIELDS  # spec fields a user may set instead of discovery


@dataclass(frozen=True)
class NameVersion:
    name: str
    version: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"name": self.name}
        if self.version is not None:
            out["version"] = self.version
        return out

    @classmethod
    def from_spec(cls, value: Any) -> NameVersion | None:
        if isinstance(value, NameVersion):
            return value
        if isinstance(value, Mapping) and isinstance(value.get("name"), str) and value["name"]:
            version = value.get("version")
            return cls(value["name"], str(version) if version is not None else None)
        return None


@dataclass(frozen=True)
class Discovery:
    """What discovery learned about one model; ``None`` means unknown."""

    model_type: str | None = None
    model_architecture: str | None = None
    parameter_count: int | None = None
    model_parameter_size: str | None = None
    max_tokens: int | None = None
    torch_dtype: str | None = None
    transformers_version: str | None = None
    model_format: NameVersion | None = None
    model_framework: NameVersion | None = None
    model_capabilities: tuple[str, ...] = ()
    api_capabilities: tuple[str, ...] = ()
    quantization: str | None = None
    has_vision: bool | None = None
    is_embedding: bool | None = None
    size_on_disk_bytes: int | None = None  # weight files' bytes on disk
    parameter_count_source: Literal["safetensors", "estimate"] | None = None
    config_path: str | None = None  # where the config was found, relative to the model
    errors: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {
            "modelType": self.model_type,
            "modelArchitecture": self.model_architecture,
            "parameterCount": self.parameter_count,
            "modelParameterSize": self.model_parameter_size,
            "maxTokens": self.max_tokens,
            "torchDtype": self.torch_dtype,
            "transformersVersion": self.transformers_version,
            "modelFormat": self.model_format.to_json() if self.model_format else None,
            "modelFramework": self.model_framework.to_json() if self.model_framework else None,
            "modelCapabilities": list(self.model_capabilities),
            "apiCapabilities": list(self.api_capabilities),
            "quantization": self.quantization,
            "hasVision": self.has_vision,
            "isEmbedding": self.is_embedding,
            "sizeOnDiskBytes": self.size_on_disk_bytes,
            "parameterCountSource": self.parameter_count_source,
            "configPath": self.config_path,
            "errors": list(self.errors),
        }

    def to_ome_config(self) -> dict[str, Any]:
        count = self.parameter_count
        decoded = {
            "architecture": self.model_architecture,
            "context_length": self.max_tokens,
            "has_vision": self.has_vision,
            "is_embedding": self.is_embedding,
            "model_type": self.model_type,
            "torch_dtype": self.torch_dtype,
            "transformers_version": self.transformers_version,
            # OME's types: the human count and parameters x dtype width (docs/wire.md)
            **(ome_counts(count, self.torch_dtype) if count is not None else {}),
        }
        config: dict[str, Any] = {
            "modelType": self.model_type,
            "modelArchitecture": self.model_architecture,
            "modelFramework": self.model_framework.to_json() if self.model_framework else None,
            "modelFormat": self.model_format.to_json() if self.model_format else None,
            "modelParameterSize": self.model_parameter_size,
            "maxTokens": self.max_tokens if (self.max_tokens or 0) <= MAX_INT32 else None,
            "modelCapabilities": list(self.model_capabilities) or None,
            "apiCapabilities": list(self.api_capabilities) or None,
            "decodedModelConfiguration": {k: v for k, v in decoded.items() if v is not None}
            or None,
            "quantization": self.quantization,
            # members of ours, ignored by OME's decoder: the exact count and disk bytes
            "parameterCount": count,
            "sizeOnDiskBytes": self.size_on_disk_bytes,
        }
        return {k: v for k, v in config.items() if v is not None}

    def merge_user_spec(self, spec_fields: Mapping[str, Any]) -> Discovery:
        """A copy where every field the user set (wire names, see ``USER_FIELDS``) wins.

        Empty values (None, "", []) count as not set. Capabilities are normalised to
        OME's enum spelling."""
        changes: dict[str, Any] = {}
        for key in USER_FIELDS:
            value = spec_fields.get(key)
            if value is None or value == "" or value == []:
                continue
            if key in ("modelType", "modelArchitecture", "modelParameterSize", "quantization"):
                attr = {
                    "modelType": "model_type",
                    "modelArchitecture": "model_architecture",
                    "modelParameterSize": "model_parameter_size",
                    "quantization": "quantization",
                }[key]
                changes[attr] = str(value)
            elif key == "maxTokens":
                tokens = pos_int(value)
                if tokens is not None:
                    changes["max_tokens"] = tokens
            elif key == "modelCapabilities" and isinstance(value, list | tuple):
                caps = normalize_capabilities(str(v) for v in value)
                if caps:
                    changes["model_capabilities"] = tuple(caps)
            elif key in ("modelFormat", "modelFramework"):
                parsed = NameVersion.from_spec(value)
                if parsed is not None:
                    changes["model_format" if key == "modelFormat" else "model_framework"] = parsed
        return dataclasses.replace(self, **changes)


def merge_user_spec(discovered: Discovery, spec_fields: Mapping[str, Any]) -> Discovery:
    """Function form of :meth:`Discovery.merge_user_spec`."""
    return discovered.merge_user_spec(spec_fields)
