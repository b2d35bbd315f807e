"""Names the agent writes for OME's readers: node label keys, ConfigMap keys and the
ConfigMap's own metadata (wire format, docs/wire.md; used by the adapters of layer 5).

These must equal what OME's model agent writes, byte for byte, because OME's
controller, scheduler and console look them up by name:

- node label ``models.ome.io/clusterbasemodel.<name>`` or
  ``models.ome.io/<namespace>.basemodel.<name>``, the part after the prefix at most
  49 characters;
- ConfigMap data key ``clusterbasemodel.<name>`` or ``<namespace>.basemodel.<name>``,
  at most 253 characters;
- too long a part becomes ``sha256(part).hex()[:8] + "-" + <its tail>``
  (:func:`ome_agent.names.shorten`, the agent's one shortening rule); for a namespaced
  kind, namespace and name share one budget, and when they do not both fit the
  namespace keeps at most 8 characters (a bare 8-character hash when longer) and the
  name gets the rest.

FineTunedWeight has no node label or entry in OME; being cluster-scoped like a
ClusterBaseModel, it takes the same form with the type ``finetunedweight``
(``models.ome.io/finetunedweight.<name>``, ``finetunedweight.<name>``), shortened by
the same rule with its own budget, so it can never collide with a model's key.

We also label ``models.ome/<metadata.uid>``: the reference doc's
``kubectl get nodes -l models.ome/<uid>=Ready`` works with it.
Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from ome_agent.api import ModelKey
from ome_agent.names import shorten

LABEL_DOMAIN = "models.ome.io"
UID_LABEL_DOMAIN = "models.ome"
MAX_LABEL_NAME = 49  # OME's limit for the part after "models.ome.io/"
MAX_CONFIG_MAP_KEY = 253
MIN_NAMESPACE = 8

_TYPE = {
    "ClusterBaseModel": "clusterbasemodel",
    "BaseModel": "basemodel",
    "FineTunedWeight": "finetunedweight",
}

# the per-node ConfigMap (docs/wire.md): every write keeps these
STATUS_LABEL = "models.ome/basemodel-status"
NODE_LABEL = "node"
NODE_NAME_ANNOTATION = "models.ome.io/node-name"
MANAGED_BY_ANNOTATION = "models.ome.io/managed-by"
MANAGED_BY = "model-agent"


def node_label_key(key: ModelKey) -> str:
    """The node label whose value is the model's state on that node."""
    return f"{LABEL_DOMAIN}/{_qualified(key, MAX_LABEL_NAME)}"


def config_map_key(key: ModelKey) -> str:
    """The model's data key in the node's ConfigMap."""
    return _qualified(key, MAX_CONFIG_MAP_KEY)


def uid_label_key(uid: str) -> str:
    """``models.ome/<uid>``: the label the reference doc's node query uses."""
    return f"{UID_LABEL_DOMAIN}/{uid}"


def config_map_metadata(node_name: str, namespace: str) -> dict[str, Any]:
    """``metadata`` of the node's ConfigMap: name, namespace, labels, annotations."""
    return {
        "name": node_name,
        "namespace": namespace,
        "labels": {STATUS_LABEL: "true", NODE_LABEL: node_name},
        "annotations": {NODE_NAME_ANNOTATION: node_name, MANAGED_BY_ANNOTATION: MANAGED_BY},
    }


def _qualified(key: ModelKey, limit: int) -> str:
    kind_type = _TYPE[key.kind]
    if key.namespace is None:  # cluster-scoped kinds
        budget = limit - len(kind_type) - 1  # "<type>."
        return f"{kind_type}.{shorten(key.name, budget)}"
    namespace = key.namespace or ""
    budget = limit - len(kind_type) - 2  # "<ns>.<type>.<name>"
    if len(namespace) + len(key.name) <= budget:
        return f"{namespace}.{kind_type}.{key.name}"
    namespace_budget = min(len(namespace), MIN_NAMESPACE)
    name_budget = budget - namespace_budget
    return f"{shorten(namespace, namespace_budget)}.{kind_type}.{shorten(key.name, name_budget)}"


def parse_config_map_key(data_key: str) -> ModelKey | None:
    """The resource a ConfigMap data key names, as written: a part that was shortened
    stays shortened. None for keys that are not model entries."""
    for cluster_kind in ("ClusterBaseModel", "FineTunedWeight"):
        prefix = _TYPE[cluster_kind] + "."
        if data_key.startswith(prefix) and len(data_key) > len(prefix):
            return ModelKey(cluster_kind, None, data_key[len(prefix) :])
    namespace, sep, name = data_key.partition(f".{_TYPE['BaseModel']}.")
    if sep and namespace and name:
        return ModelKey("BaseModel", namespace, name)
    return None
