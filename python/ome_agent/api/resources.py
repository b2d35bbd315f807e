"""pydantic models of BaseModel, ClusterBaseModel and FineTunedWeight (api layer).

Attribute names are snake_case; the wire names are the CRDs' camelCase (aliases), and
both are accepted when parsing. Unknown spec fields are kept (``extra="allow"``): a
newer CRD must not make an older agent drop a resource. Where the reference doc and
OME spell a field differently, both spellings are fields here and a property gives
the effective value (docs/architecture.md, "Field names").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel as _Model
from pydantic import ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from ome_agent.errors import BadInput

GROUP = "ome.io"
VERSION = "v1beta1"
KINDS = ("BaseModel", "ClusterBaseModel", "FineTunedWeight")
PLURALS = {
    "BaseModel": "basemodels",
    "ClusterBaseModel": "clusterbasemodels",
    "FineTunedWeight": "finetunedweights",
}
SKIP_CONFIG_PARSING_ANNOTATIONS = (
    "ome.io/skip-config-parsing",
    "ome.oracle.com/skip-config-parsing",
)

Kind = Literal["BaseModel", "ClusterBaseModel", "FineTunedWeight"]
# cluster-scoped kinds, as in OME's CRDs (deploy/crds/)
CLUSTER_SCOPED = frozenset({"ClusterBaseModel", "FineTunedWeight"})
Operator = Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
# what the API server accepts: a name is a DNS subdomain, a namespace a DNS label; a
# standalone manifest is held to the same, as names become file names on the node
DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class _Wire(_Model):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="allow"
    )


class NodeSelectorRequirement(_Wire):
    key: str
    operator: Operator
    values: list[str] = Field(default_factory=list)


class NodeSelectorTerm(_Wire):
    match_expressions: list[NodeSelectorRequirement] = Field(default_factory=list)
    match_fields: list[NodeSelectorRequirement] = Field(default_factory=list)


class NodeSelector(_Wire):
    node_selector_terms: list[NodeSelectorTerm] = Field(default_factory=list)


class NodeAffinity(_Wire):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    # preferences do not decide where a model is stored; kept so they round-trip
    preferred_during_scheduling_ignored_during_execution: list[dict[str, Any]] = Field(
        default_factory=list
    )


class StorageSpec(_Wire):
    storage_uri: str | None = None
    path: str | None = None
    schema_path: str | None = None
    storage_key: str | None = None  # the reference doc's name
    key: str | None = None  # OME's name
    parameters: dict[str, str] = Field(default_factory=dict)
    node_selector: dict[str, str] = Field(default_factory=dict)
    node_affinity: NodeAffinity | None = None
    download_policy: Literal["AlwaysDownload", "ReuseIfExists"] = "AlwaysDownload"

    @property
    def reuse_if_exists(self) -> bool:
        """Identical files another model holds on the node are linked, not downloaded."""
        return self.download_policy == "ReuseIfExists"

    @property
    def secret_name(self) -> str | None:
        """The Secret holding credentials, whichever spelling the user wrote."""
        return self.storage_key or self.key

    @property
    def secret_key(self) -> str:
        """The key inside that Secret (``parameters.secretKey``, default ``token``)."""
        return self.parameters.get("secretKey") or "token"

    @property
    def on_claim(self) -> bool:
        """``pvc://``: the model lives on a PersistentVolumeClaim, not on the nodes."""
        return (self.storage_uri or "").strip().lower().startswith("pvc://")

    @property
    def auth(self) -> str | None:
        """``parameters.auth`` (OME) or ``parameters.auth_type`` (reference doc)."""
        return self.parameters.get("auth") or self.parameters.get("auth_type")


class NameVersion(_Wire):
    name: str | None = None
    version: str | None = None


class ObjectRef(_Wire):
    name: str | None = None
    namespace: str | None = None
    kind: str | None = None
    api_version: str | None = None


class BaseModelSpec(_Wire):
    vendor: str | None = None
    version: str | None = None
    disabled: bool = False
    display_name: str | None = None
    model_type: str | None = None
    model_architecture: str | None = None
    model_parameter_size: str | None = None
    max_tokens: int | None = None
    model_capabilities: list[str] = Field(default_factory=list)
    model_format: NameVersion | None = None
    model_framework: NameVersion | None = None
    quantization: str | None = None
    storage: StorageSpec | None = None
    model_configuration: Any = None  # RawExtension: JSON object or a string holding JSON
    additional_metadata: dict[str, str] = Field(default_factory=dict)
    serving_mode: list[str] = Field(default_factory=list)


class FineTunedWeightSpec(_Wire):
    base_model_ref: ObjectRef | None = None
    model_type: str | None = None
    hyper_parameters: Any = None
    configuration: Any = None
    storage: StorageSpec | None = None
    training_job_ref: ObjectRef | None = None
    disabled: bool = False


# spec fields a user may set that discovery would otherwise fill (wire names)
DISCOVERABLE_FIELDS = (
    "modelType",
    "modelArchitecture",
    "modelParameterSize",
    "maxTokens",
    "modelCapabilities",
    "modelFormat",
    "modelFramework",
    "quantization",
)


class ModelKey(NamedTuple):
    """Identity of a resource: what the work queue, reports and manifests are keyed by."""

    kind: Kind
    namespace: str | None  # None for the cluster-scoped kinds
    name: str

    def __str__(self) -> str:
        scope = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{scope}{self.name}"


@dataclass(frozen=True)
class ModelResource:
    """One parsed resource: identity, the metadata the agent uses, and the typed spec."""

    key: ModelKey
    spec: BaseModelSpec | FineTunedWeightSpec
    uid: str = ""
    generation: int = 0
    resource_version: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    deleting: bool = False  # metadata.deletionTimestamp is set

    @property
    def kind(self) -> Kind:
        return self.key.kind

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def namespace(self) -> str | None:
        return self.key.namespace

    @property
    def storage(self) -> StorageSpec | None:
        return self.spec.storage

    @property
    def storage_uri(self) -> str:
        """``spec.storage.storageUri``, or "" when there is none."""
        return (self.storage.storage_uri if self.storage is not None else None) or ""

    @property
    def disabled(self) -> bool:
        return self.spec.disabled

    @property
    def on_claim(self) -> bool:
        return self.storage is not None and self.storage.on_claim

    @property
    def base_key(self) -> ModelKey | None:
        """A FineTunedWeight's base model: ``baseModelRef`` with a namespace (or kind
        BaseModel) names a BaseModel, without one a ClusterBaseModel; None otherwise."""
        if not isinstance(self.spec, FineTunedWeightSpec) or self.spec.base_model_ref is None:
            return None
        ref = self.spec.base_model_ref
        if not ref.name:
            return None
        if ref.kind == "BaseModel" or (ref.namespace and ref.kind != "ClusterBaseModel"):
            return ModelKey("BaseModel", ref.namespace or "default", ref.name)
        return ModelKey("ClusterBaseModel", None, ref.name)

    @property
    def skip_config_parsing(self) -> bool:
        return any(
            self.annotations.get(a, "").strip().lower() == "true"
            for a in SKIP_CONFIG_PARSING_ANNOTATIONS
        )

    def user_fields(self) -> dict[str, Any]:
        """The discoverable spec fields the user set (wire names), which discovery
        must never override."""
        if not isinstance(self.spec, BaseModelSpec):
            return {}
        dumped = self.spec.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
        return {k: dumped[k] for k in DISCOVERABLE_FIELDS if k in dumped}


def resource_key(obj: Mapping[str, Any]) -> ModelKey | None:
    """The key :func:`parse_resource` gives ``obj``, without validating its spec (for
    deletions and caches, where the spec does not matter); None without a kind or with
    a name or namespace the API server would refuse."""
    meta = obj.get("metadata")
    kind = obj.get("kind")
    if kind not in KINDS or not isinstance(meta, Mapping):
        return None
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    namespace = meta.get("namespace")
    if kind in CLUSTER_SCOPED:
        namespace = None  # a namespace in a manifest of a cluster-scoped kind is meaningless
    elif not isinstance(namespace, str) or not namespace:
        namespace = "default"
    if not DNS_SUBDOMAIN.fullmatch(name) or (
        namespace is not None and not DNS_LABEL.fullmatch(namespace)
    ):
        return None
    return ModelKey(kind, namespace, name)


def parse_resource(obj: Mapping[str, Any]) -> ModelResource:
    """A raw object (from the API server or a YAML manifest) → :class:`ModelResource`.

    Raises :class:`~ome_agent.errors.BadInput` naming the resource and the field at fault.
    """
    if not isinstance(obj, Mapping):
        raise BadInput(f"a resource must be a mapping, got {type(obj).__name__}")
    kind = obj.get("kind")
    meta = obj.get("metadata")
    if kind not in KINDS:
        raise BadInput(f"kind: {kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("name"), str) or not meta["name"]:
        raise BadInput(f"{kind}: metadata.name is missing: give the resource a name")
    key = resource_key(obj)
    if key is None:
        raise BadInput(
            f"{kind} {meta['name'][:80]!r}: metadata.name must be a DNS subdomain (at most "
            "253 of a-z, 0-9, '-' and '.', starting and ending alphanumeric) and "
            "metadata.namespace a DNS label (at most 63 of a-z, 0-9 and '-'): rename it"
        )
    _, namespace, name = key
    where = f"{kind} {namespace + '/' if namespace else ''}{name}"
    raw_spec = obj.get("spec") or {}
    if not isinstance(raw_spec, Mapping):
        raise BadInput(f"{where}: spec must be a mapping")
    spec_type = FineTunedWeightSpec if kind == "FineTunedWeight" else BaseModelSpec
    try:
        spec = spec_type.model_validate(raw_spec)
    except ValidationError as e:
        raise BadInput(f"{where}: {_describe(e)}") from None
    labels = meta.get("labels") or {}
    annotations = meta.get("annotations") or {}
    generation = meta.get("generation") or 0
    return ModelResource(
        key=key,
        spec=spec,
        uid=str(meta.get("uid") or ""),
        generation=generation if isinstance(generation, int) else 0,
        resource_version=str(meta.get("resourceVersion") or ""),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {},
        annotations=(
            {str(k): str(v) for k, v in annotations.items()}
            if isinstance(annotations, Mapping)
            else {}
        ),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"spec.{loc}: {first['msg']}{more}"
