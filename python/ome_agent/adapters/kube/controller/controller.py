"""The controller's reconcile loop on Kubernetes (docs/architecture.md, layer 5; the pure
decisions are in :mod:`ome_agent.fleet`).

Informers keep :class:`~.cache.Cache` current and queue only the model keys an event
touches; a keyed work queue runs one reconcile per key at a time. A reconcile reads
the caches only (no list, no get) and writes only what differs:

1. a resource without the cleanup finalizer gets it (before anything else, so a
   delete racing the first reconcile still waits for the nodes);
2. its ``.status`` is aggregated from the nodes' entries (or, for ``pvc://``, from the
   claim and its inspection Job) and written when :func:`status_changed`;
3. empty spec fields are back-filled once from the first Ready node's config;
4. being deleted, :func:`deletion_decision` says whether the finalizer may go; if
   not, the key is queued again at the timeout deadline only (the ConfigMap events
   of the agents removing their entries queue it sooner).

Nothing is requeued on a timer while downloads run and nothing is relisted
periodically: the watches resume from their resourceVersion. ConfigMaps of Nodes
that no longer exist are deleted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.adapters.kube.controller.cache import (
    Cache,
    Model,
    config_map_node,
    ns_name,
)
from ome_agent.adapters.kube.controller.events import EventRecorder
from ome_agent.adapters.kube.controller.pvcjobs import PvcInspector
from ome_agent.adapters.kube.controller.watches import (
    JOBS,
    NODES,
    PODS,
    PVCS,
    config_map_target,
)
from ome_agent.adapters.kube.controller.writer import Writer
from ome_agent.adapters.kube.informer import Informer, Target, items_of, model_target
from ome_agent.api import KINDS, ModelKey, resource_key
from ome_agent.fleet.backfill import backfill_patch, ready_config
from ome_agent.fleet.deletion import FINALIZER, deletion_decision
from ome_agent.fleet.status import (
    aggregate,
    node_list,
    node_view,
    set_condition,
    status_changed,
)
from ome_agent.observability import controller_metrics
from ome_agent.reconcile.backoff import Backoff
from ome_agent.reconcile.workqueue import Priority, WorkQueue

log = logging.getLogger(__name__)

Handler = Callable[[str, dict[str, Any]], set[ModelKey]]

# Node reports come in bursts (a rollout, many nodes finishing one model): a model
# touched by a report is reconciled this long after, once for the whole burst (the
# queue keeps the earliest due time, so a steady stream cannot postpone it).
REPORT_BATCH_SECONDS = 0.5


@dataclass(frozen=True)
class ControllerOptions:
    namespace: str = "ome"  # where the agents' ConfigMaps are
    finalizer_timeout: timedelta = timedelta(minutes=10)
    pvc_inspect_image: str | None = None
    workers: int = 4


def _now() -> datetime:
    return datetime.now(UTC)


def _time(text: str | None) -> datetime:
    if not text:
        return _now()
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


@dataclass
class _Watch:
    informer: Informer
    kind: str  # the kind to put on list items (lists come without it)
    handler: Handler
    store: Callable[[], Mapping[Any, Any]]  # this watch's objects in the cache, now
    ident: Callable[[dict[str, Any]], Any]


class Controller:
    def __init__(self, kube: Kube, options: ControllerOptions, events: EventRecorder) -> None:
        self.kube = kube
        self.options = options
        self.cache = Cache(namespace=options.namespace)
        self.writer = Writer(kube)
        self.events = events
        self.pvc = PvcInspector(self.cache, self.writer, options.pvc_inspect_image)
        self.queue: WorkQueue[ModelKey] = WorkQueue(self._work, options.workers)
        self.gc_queue: WorkQueue[str] = WorkQueue(self._collect, 1)
        self.retries = Backoff(base=0.5, cap=60.0)
        self.synced = False
        controller_metrics.QUEUE_DEPTH.set_function(lambda: self.queue.depth)
        cm_target = config_map_target(options.namespace)
        c = self.cache
        # ConfigMaps are listed before Nodes: a ConfigMap whose Node appears between
        # the two lists is then never taken for an orphan
        self.watches = [
            self._watch(cm_target, "ConfigMap", c.config_map_event, lambda: c.config_maps,
                        config_map_node, REPORT_BATCH_SECONDS),
            self._watch(NODES, "Node", self._node_event, lambda: c.nodes, _name),
            # the three model kinds share one store: a relist of one kind must see only
            # its own kind, or it would take the others for deleted
            *(
                self._watch(model_target(kind), kind, c.model_event,
                            functools.partial(c.models_of_kind, kind), resource_key)
                for kind in KINDS
            ),
            self._watch(PVCS, "PersistentVolumeClaim", c.pvc_event, lambda: c.pvcs, ns_name),
            self._watch(JOBS, "Job", c.job_event, lambda: c.jobs, ns_name),
            self._watch(PODS, "Pod", c.pod_event, lambda: c.pods, ns_name),
        ]  # fmt: skip
        kube.health.expected_watches = len(self.watches)

    def _watch(
        self,
        target: Target,
        kind: str,
        handler: Handler,
        store: Callable[[], Mapping[Any, Any]],
        ident: Callable[[dict[str, Any]], Any],
        delay: float = 0.0,
    ) -> _Watch:
        return _Watch(
            Informer(
                self.kube,
                target,
                on_event=lambda t, o: self._enqueue(
                    handler(t, {**o, "kind": o.get("kind") or kind}), delay
                ),
                on_replace=lambda items: self._enqueue(
                    self.cache.replace(store(), items_of(items, kind), handler, ident)
                ),
            ),
            kind,
            handler,
            store,
            ident,
        )

    # ------------------------------------------------------------ events → keys
    def _enqueue(self, keys: set[ModelKey], delay: float = 0.0) -> None:
        if not self.synced:
            return  # the first sync queues every model once
        for key in keys:
            self.queue.add(key, Priority.DOWNLOAD, delay)

    def _node_event(self, kind: str, obj: dict[str, Any]) -> set[ModelKey]:
        keys = self.cache.node_event(kind, obj)
        if kind == "DELETED" and self.synced:
            self.gc_queue.add(node_view(obj).name, Priority.DELETE)
        return keys

    # ------------------------------------------------------------ running
    async def sync(self) -> None:
        """First lists into the caches, every model queued once, orphans collected."""
        for w in self.watches:
            items = await w.informer.list_until_ok()
            self.cache.replace(w.store(), items_of(items, w.kind), w.handler, w.ident)
        self.synced = True
        for key in self.cache.models:
            self.queue.add(key, Priority.DOWNLOAD)
        for name in self.cache.orphan_config_maps():
            self.gc_queue.add(name, Priority.DELETE)
        log.info(
            "controller: first sync done: %d models, %d nodes, %d node reports",
            len(self.cache.models),
            len(self.cache.nodes),
            len(self.cache.config_maps),
        )

    async def run(self) -> None:
        """Sync, then watch and reconcile until cancelled (or :meth:`close`)."""
        await self.sync()
        tasks = [asyncio.create_task(w.informer.run(), name=w.informer.target.name)
                 for w in self.watches]  # fmt: skip
        tasks += [
            asyncio.create_task(self.queue.run(), name="queue"),
            asyncio.create_task(self.gc_queue.run(), name="gc"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                if t.exception() is not None:
                    raise RuntimeError(f"{t.get_name()} stopped") from t.exception()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        self.queue.close()
        self.gc_queue.close()

    # ------------------------------------------------------------ reconcile
    async def _work(self, key: ModelKey, priority: Priority) -> None:
        model = self.cache.models.get(key)
        if model is None:  # deleted: forget what was kept for it
            controller_metrics.RECONCILES.labels(result="gone").inc()
            self.retries.reset(key)
            self.events.forget(key)
            self.pvc.forget(key)
            return
        try:
            if model.resource.deleting:
                await self._deleting(model)
            else:
                await self._active(model)
        except KubeError as e:
            if e.status == 404:  # deleted meanwhile: its DELETED event follows
                controller_metrics.RECONCILES.labels(result="gone").inc()
                return
            controller_metrics.RECONCILES.labels(result="error").inc()
            delay = self.retries.next_delay(key)
            log.warning("%s: %s; retrying in %.1f s", key, e, delay)
            self.queue.add(key, priority, delay)
            return
        controller_metrics.RECONCILES.labels(result="ok").inc()
        self.retries.reset(key)

    def _store(self, obj: dict[str, Any]) -> Model:
        self.cache.stored(obj)
        key = resource_key(obj)
        assert key is not None
        return self.cache.models[key]

    async def _active(self, model: Model) -> None:
        key, meta = model.resource.key, model.raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            model = self._store(
                await self.writer.finalizers(
                    key, str(meta.get("resourceVersion")), [*finalizers, FINALIZER]
                )
            )
        resource, previous = model.resource, model.raw.get("status")
        now = _now()
        if self.pvc.handles(resource):
            new = await self.pvc.status(resource, previous, now)
            config = self.pvc.config(resource)
        else:
            entries = self.cache.entries_of(resource)
            base = self.cache.base_of(resource)
            new = aggregate(resource, entries, self.cache.nodes, previous, now, base=base)
            config = ready_config(entries)
        if status_changed(previous, new):
            model = self._store(await self.writer.status(key, previous, new))
            await self._transition_events(model, previous, new)
        if config:
            patch = backfill_patch(model.resource, config)
            if patch:
                log.info("%s: back-filling spec fields %s", key, ", ".join(sorted(patch)))
                self._store(await self.writer.spec(key, patch))
                # a new generation: its status says so on the next round (the watch
                # event of this write changes nothing in the cache, so queue it here)
                self.queue.add(key, Priority.DOWNLOAD)

    async def _deleting(self, model: Model) -> None:
        resource, meta = model.resource, model.raw.get("metadata") or {}
        finalizers = list(meta.get("finalizers") or [])
        if FINALIZER not in finalizers:
            return
        now = _now()
        pvc = self.pvc.handles(resource)
        entries = {} if pvc else self.cache.entries_of(resource)
        since = _time(meta.get("deletionTimestamp"))
        decision = deletion_decision(
            resource,
            entries,
            self.cache.nodes,
            deleting_since=since,
            now=now,
            timeout=self.options.finalizer_timeout,
        )
        previous = model.raw.get("status")
        if pvc:
            await self.pvc.cleanup(resource)
            new = dict(previous or {})
        else:
            base = self.cache.base_of(resource)
            new = aggregate(resource, entries, self.cache.nodes, previous, now, base=base)
        new = set_condition(new, decision.condition, now)
        if status_changed(previous, new):
            model = self._store(await self.writer.status(resource.key, previous, new))
        if not decision.done:
            deadline = since + self.options.finalizer_timeout
            self.queue.add(resource.key, Priority.DELETE, (deadline - now).total_seconds() + 0.5)
            return
        if decision.timed_out:
            await self._event(model, "DeletionTimedOut", decision.condition["message"], True)
        meta = model.raw.get("metadata") or {}
        left = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
        await self.writer.finalizers(resource.key, str(meta.get("resourceVersion")), left)
        log.info("%s: cleanup finalizer removed%s", resource.key,
                 " (timed out)" if decision.timed_out else "")  # fmt: skip

    async def _transition_events(
        self, model: Model, previous: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> None:
        state, before = new.get("state"), (previous or {}).get("state")
        conditions = {c.get("type"): c for c in new.get("conditions") or []}
        if state == before:
            return
        if state == "Ready":
            message = str((conditions.get("Ready") or {}).get("message") or "ready")
            where = node_list(new.get("nodesReady") or [])
            await self._event(model, "Ready", f"ready on {where} ({message})")
        elif state == "Failed":
            message = str((conditions.get("Degraded") or {}).get("message") or "failed")
            await self._event(model, "Failed", message, True)

    async def _event(self, model: Model, reason: str, message: str, warning: bool = False) -> None:
        if await self.events.record(model.resource, reason, message, warning=warning):
            controller_metrics.EVENTS_RECORDED.labels(reason=reason).inc()

    # ------------------------------------------------------------ garbage collection
    async def _collect(self, node: str, _: Priority) -> None:
        if node in self.cache.nodes or node not in self.cache.config_maps:
            return
        try:
            # the cache may lag: ask the API server before deleting a node's reports
            await self.kube.request("GET", f"/api/v1/nodes/{node}", verb="get")
            return
        except KubeError as e:
            if e.status != 404:
                self.gc_queue.add(node, Priority.DELETE, self.retries.next_delay(node))
                return
        name = _name(self.cache.config_maps.get(node) or {}) or node
        path = f"/api/v1/namespaces/{self.options.namespace}/configmaps/{name}"
        try:
            if await self.writer.delete("configmap", path):
                log.info("node %s no longer exists: deleted its ConfigMap %s", node, name)
        except KubeError as e:
            log.warning("node %s no longer exists; deleting its ConfigMap failed: %s", node, e)
            self.gc_queue.add(node, Priority.DELETE, self.retries.next_delay(node))


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")
