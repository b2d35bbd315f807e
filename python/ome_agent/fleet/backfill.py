"""Spec back-fill: the discovered config fills the spec fields the user left empty
(controller mode, docs/architecture.md, layer 4; docs/wire.md: only the controller writes specs).

A node agent that finished a model writes what discovery learned into the ``config``
of its ConfigMap entry. The controller turns the config of the first Ready node
(by name, so every controller replica picks the same one) into a JSON merge patch of
the spec: only the discoverable fields (``DISCOVERABLE_FIELDS``) that are empty in
the spec, only values of the CRD's types. A field the user wrote is never touched,
and once filled a field is no longer empty, so the patch is written once. The
skip-config-parsing annotation (either spelling, docs/architecture.md, "Field names") turns it off.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ome_agent.api import ModelResource
from ome_agent.api.resources import DISCOVERABLE_FIELDS, BaseModelSpec
from ome_agent.discovery.capabilities import normalize_capabilities
from ome_agent.discovery.fields import pos_int
from ome_agent.discovery.result import MAX_INT32  # spec.maxTokens is an int32 too
from ome_agent.fleet.status import NodeEntry
from ome_agent.reconcile.ports import NodeState

_TEXT_FIELDS = ("modelType", "modelArchitecture", "modelParameterSize", "quantization")
_NAME_VERSION_FIELDS = ("modelFormat", "modelFramework")


def ready_config(entries: Mapping[str, NodeEntry]) -> Mapping[str, Any] | None:
    """The ``config`` of the first Ready node's entry, by node name; ``entries`` maps
    node name → its entry. None when no Ready node wrote one."""
    for node in sorted(entries):
        entry = entries[node]
        if entry.state == NodeState.READY and entry.config:
            return entry.config
    return None


def backfill_patch(resource: ModelResource, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """A JSON merge patch of ``.spec`` (the fields only: wrap it in ``{"spec": ...}``
    to patch the object) setting the empty discoverable fields from ``config``.

    None when nothing is left to fill, when the resource is not a BaseModel /
    ClusterBaseModel, or when the skip-config-parsing annotation is set."""
    if not isinstance(resource.spec, BaseModelSpec) or resource.skip_config_parsing:
        return None
    if not isinstance(config, Mapping):
        return None
    spec = resource.spec.model_dump(by_alias=True)
    fill: dict[str, Any] = {}
    for field in DISCOVERABLE_FIELDS:
        if not _empty(spec.get(field)):
            continue
        value = _valid(field, config.get(field))
        if value is not None:
            fill[field] = value
    return fill or None


def _empty(value: Any) -> bool:
    if value is None or value == "" or value == []:
        return True
    if isinstance(value, Mapping):  # modelFormat / modelFramework without a name
        return not value.get("name")
    return False


def _valid(field: str, value: Any) -> Any:
    """``value`` in the CRD's type for ``field``, or None: a node's report is not trusted
    to be well-formed, and a patch the API server rejects would block every later one."""
    if field in _TEXT_FIELDS:
        return value if isinstance(value, str) and value.strip() else None
    if field == "maxTokens":
        tokens = pos_int(value)
        return tokens if tokens is not None and tokens <= MAX_INT32 else None
    if field == "modelCapabilities":
        if not isinstance(value, list):
            return None
        return normalize_capabilities(v for v in value if isinstance(v, str)) or None
    if field in _NAME_VERSION_FIELDS:
        if not isinstance(value, Mapping):
            return None
        name, version = value.get("name"), value.get("version")
        if not isinstance(name, str) or not name:
            return None
        return {"name": name} | ({"version": version} if isinstance(version, str) else {})
    return None
