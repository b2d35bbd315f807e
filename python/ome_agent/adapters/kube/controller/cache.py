"""The controller's informer caches and which model keys each change touches
(docs/architecture.md, layer 5: between the watches and the controller's work queue).

Every watch event updates one cache and returns the model keys whose status may have
changed, so the controller reconciles only those (OME's controller relists every
ConfigMap and Node per model instead):

- a ConfigMap (one node's reports): the keys whose entry on that node changed;
- a Node: nothing on a heartbeat; on a label change the models whose eligibility
  differs between the old and new labels (plus those with an entry there); on
  liveness, creation or deletion the models eligible there or reported there;
- a model: itself when spec, metadata or status differ from what was last seen (a
  status the controller itself wrote comes back as an event that changes nothing);
  a base model also touches the FineTunedWeights naming it;
- a PVC, Job or Pod: the pvc:// models that use it.

No I/O; the controller calls these from informer handlers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ome_agent.api import ModelKey, ModelResource, parse_resource, resource_key
from ome_agent.errors import BadInput
from ome_agent.fleet.pvc import LABEL_MODEL_UID, PvcRef, parse_pvc_uri
from ome_agent.fleet.status import (
    NodeEntry,
    NodeView,
    entries_of_configmap,
    entry_key,
    node_view,
    same_resource,
)
from ome_agent.observability import kube_metrics
from ome_agent.reconcile.eligibility import eligibility
from ome_agent.wire.naming import NODE_LABEL

log = logging.getLogger(__name__)

Obj = dict[str, Any]
NsName = tuple[str, str]  # (namespace, name)

# metadata that changes on every write and says nothing about what to do
_VOLATILE_META = ("resourceVersion", "managedFields")


@dataclass
class Model:
    raw: Obj
    resource: ModelResource


def ns_name(obj: Mapping[str, Any]) -> NsName:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def config_map_node(obj: Mapping[str, Any]) -> str:
    """The node a per-node ConfigMap reports on: its ``node`` label, else its name."""
    meta = obj.get("metadata") or {}
    return str((meta.get("labels") or {}).get(NODE_LABEL) or meta.get("name") or "")


def _data(config_map: Mapping[str, Any] | None) -> Mapping[str, str]:
    return (config_map or {}).get("data") or {}


def _comparable(obj: Mapping[str, Any]) -> Obj:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _VOLATILE_META}
    return {**obj, "metadata": meta}


@dataclass
class Cache:
    """Everything the controller knows, kept current by the informers."""

    namespace: str = "ome"  # the controller's: pvc:// of a ClusterBaseModel defaults to it
    models: dict[ModelKey, Model] = field(default_factory=dict)
    nodes: dict[str, NodeView] = field(default_factory=dict)
    # data key -> node -> entry (the inverted index of every node's ConfigMap)
    entries: dict[str, dict[str, NodeEntry]] = field(default_factory=dict)
    config_maps: dict[str, Obj] = field(default_factory=dict)  # node -> its ConfigMap
    pvcs: dict[NsName, Obj] = field(default_factory=dict)
    jobs: dict[NsName, Obj] = field(default_factory=dict)
    pods: dict[NsName, Obj] = field(default_factory=dict)
    # data key -> the model keys stored under it (a shortened key may be shared)
    by_data_key: dict[str, set[ModelKey]] = field(default_factory=dict)

    # ------------------------------------------------------------ reads
    def entries_of(self, resource: ModelResource) -> dict[str, NodeEntry]:
        """node -> this resource's entry on it (entries of another resource that
        shares a shortened key are told apart by uid when the agent wrote one)."""
        found = self.entries.get(entry_key(resource), {})
        return {node: e for node, e in found.items() if same_resource(resource, e)}

    def models_of_kind(self, kind: str) -> dict[ModelKey, Model]:
        return {k: m for k, m in self.models.items() if k.kind == kind}

    def base_of(self, resource: ModelResource) -> ModelResource | None:
        """The BaseModel / ClusterBaseModel a FineTunedWeight names, if it exists (None
        for the other kinds)."""
        key = resource.base_key
        found = self.models.get(key) if key is not None else None
        return found.resource if found is not None else None

    def pvc_ref(self, resource: ModelResource) -> PvcRef | None:
        """The claim a pvc:// model names; None for other schemes or a malformed URI
        (the controller reports that one as Failed)."""
        if not resource.on_claim:
            return None
        try:
            return parse_pvc_uri(resource.storage_uri, resource, self.namespace)
        except BadInput:
            return None

    def pvc_models(self, namespace: str, claim: str) -> Iterator[ModelKey]:
        for key, model in self.models.items():
            ref = self.pvc_ref(model.resource)
            if ref is not None and (ref.namespace, ref.claim) == (namespace, claim):
                yield key

    # ------------------------------------------------------------ models
    def model_event(self, kind: str, obj: Obj) -> set[ModelKey]:
        key = resource_key(obj)
        if key is None:
            return set()
        old = self.models.get(key)
        if kind == "DELETED":
            if old is None:
                return set()
            self._drop_model(key, old.resource)
            return {key, *self._dependents(key)}
        if old is not None and _comparable(old.raw) == _comparable(obj):
            return set()
        try:
            resource = parse_resource(obj)
        except BadInput as e:
            kube_metrics.INVALID_RESOURCES.labels(kind=key.kind).inc()
            log.error("skipping %s: %s (fix the resource; its status is not written)", key, e)
            return set()
        if old is not None:
            self._drop_model(key, old.resource)
        self.models[key] = Model(obj, resource)
        self.by_data_key.setdefault(entry_key(resource), set()).add(key)
        return {key, *self._dependents(key)}

    def stored(self, obj: Obj) -> None:
        """Remember an object the controller just wrote (its patch response), so the
        watch event echoing the write finds nothing new."""
        key = resource_key(obj)
        if key is not None and key in self.models:
            try:
                self.models[key] = Model(obj, parse_resource(obj))
            except BadInput:
                return

    def _drop_model(self, key: ModelKey, resource: ModelResource) -> None:
        self.models.pop(key, None)
        data_key = entry_key(resource)
        keys = self.by_data_key.get(data_key)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self.by_data_key[data_key]

    def _dependents(self, key: ModelKey) -> set[ModelKey]:
        if key.kind == "FineTunedWeight":
            return set()
        out = set()
        for k, m in self.models.items():
            if k.kind == "FineTunedWeight":
                base = self.base_of(m.resource)
                if base is not None and base.key == key:
                    out.add(k)
                elif base is None:
                    out.add(k)  # it may be waiting for this very base to appear
        return out

    # ------------------------------------------------------------ nodes
    def node_event(self, kind: str, obj: Obj) -> set[ModelKey]:
        view = node_view(obj)
        old = self.nodes.get(view.name)
        if kind == "DELETED":
            self.nodes.pop(view.name, None)
            return self._touching_node(view.name, [old] if old else [])
        if old == view:
            return set()  # a heartbeat: status changed, nothing the controller uses
        self.nodes[view.name] = view
        if old is not None and old.live == view.live:
            return self._touching_node(view.name, [old, view], label_change=True)
        return self._touching_node(view.name, [v for v in (old, view) if v is not None])

    def _touching_node(
        self, node: str, views: list[NodeView], label_change: bool = False
    ) -> set[ModelKey]:
        out: set[ModelKey] = set()
        for key, model in self.models.items():
            storage = (self.base_of(model.resource) or model.resource).storage
            verdicts = {eligibility(storage, node, v.labels).eligible for v in views}
            if (len(verdicts) > 1) if label_change else (True in verdicts):
                out.add(key)
        # models reported there: their lists of ready/failed nodes may change
        for data_key in _data(self.config_maps.get(node)):
            out |= self.by_data_key.get(data_key, set())
        return out

    # ------------------------------------------------------------ ConfigMaps
    def config_map_event(self, kind: str, obj: Obj) -> set[ModelKey]:
        node = config_map_node(obj)
        old = _data(self.config_maps.get(node))
        if kind == "DELETED":
            self.config_maps.pop(node, None)
            new: Mapping[str, str] = {}
        else:
            self.config_maps[node] = obj
            new = _data(obj)
        changed = {k for k in set(old) | set(new) if old.get(k) != new.get(k)}
        if not changed:
            return set()
        namespace, name = ns_name(obj)
        parsed = entries_of_configmap(
            node, {k: new[k] for k in changed if k in new}, f"{namespace}/{name}"
        )
        out: set[ModelKey] = set()
        for data_key in changed:
            per_node = self.entries.setdefault(data_key, {})
            if data_key in parsed:
                per_node[node] = parsed[data_key]
            else:
                per_node.pop(node, None)
                if not per_node:
                    del self.entries[data_key]
            out |= self.by_data_key.get(data_key, set())
        return out

    def orphan_config_maps(self) -> list[str]:
        """The nodes that have a ConfigMap but no longer exist."""
        return sorted(node for node in self.config_maps if node not in self.nodes)

    # ------------------------------------------------------------ PVCs, Jobs, Pods
    def pvc_event(self, kind: str, obj: Obj) -> set[ModelKey]:
        ref = ns_name(obj)
        old = self.pvcs.get(ref)
        if kind == "DELETED":
            self.pvcs.pop(ref, None)
        else:
            self.pvcs[ref] = obj
            if old is not None and old.get("status") == obj.get("status"):
                return set()
        return set(self.pvc_models(*ref))

    def job_event(self, kind: str, obj: Obj) -> set[ModelKey]:
        return self._owned_event(self.jobs, kind, obj)

    def pod_event(self, kind: str, obj: Obj) -> set[ModelKey]:
        return self._owned_event(self.pods, kind, obj)

    def _owned_event(self, store: dict[NsName, Obj], kind: str, obj: Obj) -> set[ModelKey]:
        ref = ns_name(obj)
        if kind == "DELETED":
            store.pop(ref, None)
        else:
            store[ref] = obj
        uid = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_MODEL_UID)
        return {k for k, m in self.models.items() if uid and m.resource.uid == uid}

    def pods_of_job(self, namespace: str, job: str) -> list[Obj]:
        """The Pods the Job controller made for ``job`` (found by its job-name label)."""
        out = []
        for (ns, _), pod in self.pods.items():
            labels = (pod.get("metadata") or {}).get("labels") or {}
            name = labels.get("batch.kubernetes.io/job-name") or labels.get("job-name")
            if ns == namespace and name == job:
                out.append(pod)
        return out

    # ------------------------------------------------------------ relists
    def replace(
        self, store: Mapping[Any, Any], items: Iterable[Obj], handle: Any, ident: Any
    ) -> set[ModelKey]:
        """A full list (first sync or after 410 Gone) as events: the objects missing
        from it are DELETED, the others ADDED (the handlers diff against the cache)."""
        items = list(items)
        present = {ident(o) for o in items}
        out: set[ModelKey] = set()
        for known in [k for k in store if k not in present]:
            out |= handle("DELETED", _stub(store[known]))
        for obj in items:
            out |= handle("ADDED", obj)
        return out


def _stub(value: Model | NodeView | Obj) -> Obj:
    if isinstance(value, Model):
        return value.raw
    if isinstance(value, NodeView):
        return {"metadata": {"name": value.name}}
    return value
