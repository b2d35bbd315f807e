"""The node's reports, written to the API server (docs/architecture.md, layer 5: core output).

Implements the reconcile core's ``Reporter`` port for one node: each model's entry in
the per-node ConfigMap (OME's format, ``ome_agent.wire``) and its two Node labels
(OME's ``models.ome.io/...`` key and ``models.ome/<uid>``).

Cost is the point of this module. ``publish``/``withdraw`` only record the desired
state and return; a flusher writes what differs from the last known server state,
after a short coalescing window: a burst (500 models confirmed Ready at start-up)
costs one ConfigMap write and one Node patch, and republishing an unchanged report
costs nothing (steady state: zero writes). The ConfigMap is written with optimistic
concurrency (PUT with resourceVersion): on 409 Conflict it is re-read and only our
keys are re-applied, so entries of other writers (the controller, OME tooling) are
never lost. Its labels and annotations are restored on every write. Node labels are
changed by a JSON merge patch of our keys only (null removes one). A failed write is
retried with backoff until it lands: the desired state stays pending, nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.api import ModelKey
from ome_agent.reconcile.backoff import Backoff
from ome_agent.reconcile.ports import NodeReport, NodeState
from ome_agent.wire import entry as wire_entry
from ome_agent.wire import naming

log = logging.getLogger(__name__)

COALESCE_SECONDS = 0.1  # gather a burst of publishes into one write
CONFLICT_RETRIES = 8
RESYNC_SECONDS = 600.0  # re-read the ConfigMap this often when nothing changes


class KubeReporter:
    """``Reporter`` for node ``node_name``: ConfigMap ``namespace/node_name`` + Node labels."""

    def __init__(
        self,
        kube: Kube,
        node_name: str,
        namespace: str,
        *,
        window: float = COALESCE_SECONDS,
        resync: float = RESYNC_SECONDS,
    ) -> None:
        self.kube = kube
        self.node_name = node_name
        self.namespace = namespace
        self.window = window
        self.resync = resync
        self._meta = naming.config_map_metadata(node_name, namespace)
        self._cm_path = f"/api/v1/namespaces/{namespace}/configmaps/{node_name}"
        self._node_path = f"/api/v1/nodes/{node_name}"
        # desired state of our ConfigMap keys / Node labels (None = must be absent)
        self._entries: dict[str, str | None] = {}
        self._labels: dict[str, str | None] = {}
        # last known server state
        self._cm: dict[str, Any] | None = None
        self._node_labels: dict[str, str] = {}
        self._node_labels_known = False
        self._uids: dict[ModelKey, str] = {}
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._backoff = Backoff(base=0.5, cap=10.0, jitter=0.5)
        self._failing: str | None = None

    # ------------------------------------------------------------ Reporter port
    async def publish(self, report: NodeReport) -> None:
        self._entries[naming.config_map_key(report.key)] = wire_entry.encode_entry(report)
        state = report.state.value
        self._labels[naming.node_label_key(report.key)] = state
        if report.uid:
            old = self._uids.get(report.key)
            if old and old != report.uid:  # the resource was recreated under the same name
                self._labels[naming.uid_label_key(old)] = None
            self._uids[report.key] = report.uid
            self._labels[naming.uid_label_key(report.uid)] = state
        self._kick()

    async def withdraw(self, key: ModelKey, uid: str | None) -> None:
        self._entries[naming.config_map_key(key)] = None
        self._labels[naming.node_label_key(key)] = None
        known = self._uids.pop(key, None)
        for u in {u for u in (uid, known) if u}:
            self._labels[naming.uid_label_key(u)] = None
        self._kick()

    async def reported(self) -> Mapping[ModelKey, NodeState]:
        """The entries of this node's ConfigMap, keyed by model (read from the server;
        retried with backoff until it answers: start-up needs the answer)."""
        backoff = Backoff(base=0.5, cap=10.0, jitter=0.5)
        while True:
            try:
                cm = await self._read_cm()
                node = await self.kube.request("GET", self._node_path, verb="get")
                break
            except KubeError as e:
                self._failed(e, "cannot read reports")
                await asyncio.sleep(backoff.next_delay())
        self._failing = None
        self.observe_node((node.get("metadata") or {}).get("labels") or {})
        out: dict[ModelKey, NodeState] = {}
        for cm_key, text in ((cm or {}).get("data") or {}).items():
            decoded = wire_entry.decode_entry(text)
            key = decoded.model_key(cm_key)
            if key is None or decoded.state is None:
                log.warning(
                    "ConfigMap %s/%s: entry %r is not a model entry (%s): left alone",
                    self.namespace,
                    self.node_name,
                    cm_key,
                    decoded.error or "unknown key",
                )
                continue
            if decoded.uid:
                # lets a withdraw of a leftover remove its models.ome/<uid> label too
                self._uids.setdefault(key, decoded.uid)
            out[key] = decoded.state
        return out

    # ------------------------------------------------------------ node view
    def observe_node(self, labels: Mapping[str, str]) -> None:
        """The Node's labels as the watch sees them: a label of ours that someone
        removed or changed is written again."""
        self._node_labels = dict(labels)
        self._node_labels_known = True
        if self._label_changes():
            self._kick()

    # ------------------------------------------------------------ flushing
    async def run(self) -> None:
        """Write pending changes until cancelled. Every ``resync`` seconds without a
        change, the ConfigMap is read again (one GET) and repaired if someone deleted
        it or removed our entries: still no write while everything is in place."""
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.resync)
            except TimeoutError:
                self._cm = None  # re-read before comparing
            else:
                await asyncio.sleep(self.window)
            self._wake.clear()
            try:
                await self.flush()
            except KubeError as e:
                self._failed(e, "cannot write reports")
                await asyncio.sleep(self._backoff.next_delay())
                self._wake.set()
            else:
                self._backoff.reset()
                if self._failing is not None:
                    log.info("node %s: reports written again", self.node_name)
                self._failing = None

    async def flush(self) -> None:
        """Write everything pending now (also used at shutdown)."""
        async with self._lock:
            # independent writes: a ConfigMap that cannot be written (RBAC, conflicts)
            # must not keep the labels from being set, nor the other way round
            errors: list[KubeError] = []
            for write in (self._flush_configmap, self._flush_labels):
                try:
                    await write()
                except KubeError as e:
                    errors.append(e)
            if errors:
                raise errors[0]

    def pending(self) -> bool:
        return bool(self._label_changes()) or self._cm_changes(self._cm) is not None

    def _kick(self) -> None:
        self._wake.set()

    def _failed(self, e: KubeError, doing: str) -> None:
        what = f"{doing}: {e.status} {e.reason}"
        if self._failing != what:
            hint = ""
            if e.status == 403:
                hint = (
                    " (the agent's ServiceAccount lacks a permission: check its "
                    "ClusterRole/Role against deploy/agent/rbac.yaml)"
                )
            log.error("node %s: %s, retrying: %s%s", self.node_name, doing, e, hint)
        self._failing = what

    async def _read_cm(self) -> dict[str, Any] | None:
        try:
            self._cm = await self.kube.request("GET", self._cm_path, verb="get")
        except KubeError as e:
            if e.status != 404:
                raise
            self._cm = None
        return self._cm

    def _cm_changes(self, cm: dict[str, Any] | None) -> dict[str, Any] | None:
        """The ConfigMap to write (data and metadata), or None when it already matches."""
        meta = (cm or {}).get("metadata") or {}
        data: dict[str, str] = dict((cm or {}).get("data") or {})
        new = dict(data)
        for k, v in self._entries.items():
            if v is None:
                new.pop(k, None)
            else:
                new[k] = v
        labels = dict(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        want_labels = {**labels, **self._meta["labels"]}
        want_annotations = {**annotations, **self._meta["annotations"]}
        if cm is None:
            if not any(v is not None for v in self._entries.values()):
                return None  # nothing to say: do not create an empty ConfigMap
        elif new == data and want_labels == labels and want_annotations == annotations:
            return None
        out_meta: dict[str, Any] = {
            "name": self.node_name,
            "namespace": self.namespace,
            "labels": want_labels,
            "annotations": want_annotations,
        }
        if cm is not None:
            out_meta["resourceVersion"] = meta.get("resourceVersion")
        return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": out_meta, "data": new}

    async def _flush_configmap(self) -> None:
        if self._cm is None:
            await self._read_cm()
        for _ in range(CONFLICT_RETRIES):
            body = self._cm_changes(self._cm)
            if body is None:
                self._forget_settled_entries()
                return
            try:
                if self._cm is None:
                    collection = self._cm_path.rsplit("/", 1)[0]
                    self._cm = await self.kube.request("POST", collection, verb="create", body=body)
                else:
                    self._cm = await self.kube.request(
                        "PUT", self._cm_path, verb="update", body=body
                    )
            except KubeError as e:
                if e.status not in (404, 409):
                    raise
                # 409: someone else wrote it (or created it first); 404: it was deleted.
                # Re-read and re-apply only our keys.
                log.debug("ConfigMap %s: %s, re-reading", self._cm_path, e.reason)
                await self._read_cm()
        raise KubeError(
            409,
            "Conflict",
            f"still conflicting after {CONFLICT_RETRIES} tries",
            what=f"PUT {self._cm_path}",
        )

    def _forget_settled_entries(self) -> None:
        # removals that the server state already reflects need not be remembered
        data = (self._cm or {}).get("data") or {}
        for k in [k for k, v in self._entries.items() if v is None and k not in data]:
            del self._entries[k]

    def _label_changes(self) -> dict[str, str | None]:
        if not self._node_labels_known:
            return dict(self._labels)
        return {k: v for k, v in self._labels.items() if self._node_labels.get(k) != v}

    async def _flush_labels(self) -> None:
        if not self._node_labels_known:
            node = await self.kube.request("GET", self._node_path, verb="get")
            self.observe_node((node.get("metadata") or {}).get("labels") or {})
        changes = self._label_changes()
        if changes:
            node = await self.kube.request(
                "PATCH",
                self._node_path,
                verb="patch",
                body={"metadata": {"labels": changes}},
                content_type="application/merge-patch+json",
            )
            self._node_labels = dict((node.get("metadata") or {}).get("labels") or {})
        for k in [k for k, v in self._labels.items() if v is None and k not in self._node_labels]:
            del self._labels[k]
