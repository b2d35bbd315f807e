"""The resources users declare, as typed Python (docs/architecture.md: input of the reconcile core).

pydantic v2 models mirroring the CRDs in ``deploy/crds/``: ``BaseModel`` (namespaced),
``ClusterBaseModel`` (cluster-wide) and ``FineTunedWeight``. Both spellings of the
fields where the reference doc and OME differ are accepted (docs/architecture.md,
"Field names"). Every adapter (Kubernetes watches, standalone manifests) turns a raw object into a
:class:`ModelResource` through :func:`parse_resource`, so bad input is rejected in one
place with a message naming the field.
"""

from ome_agent.api.resources import (
    GROUP,
    KINDS,
    VERSION,
    BaseModelSpec,
    FineTunedWeightSpec,
    ModelKey,
    ModelResource,
    NodeAffinity,
    NodeSelectorRequirement,
    NodeSelectorTerm,
    ObjectRef,
    StorageSpec,
    parse_resource,
    resource_key,
)

__all__ = [
    "GROUP",
    "KINDS",
    "VERSION",
    "BaseModelSpec",
    "FineTunedWeightSpec",
    "ModelKey",
    "ModelResource",
    "NodeAffinity",
    "NodeSelectorRequirement",
    "NodeSelectorTerm",
    "ObjectRef",
    "StorageSpec",
    "parse_resource",
    "resource_key",
]
