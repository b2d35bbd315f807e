"""``ome-agent run`` on a cluster: the Kubernetes adapter wired to the reconcile core
(docs/architecture.md, layer 5; the CLI, layer 6, calls :func:`run_cluster`).

Start-up order matters for "no flap on restart": the first lists of every kind and
of the own Node are handed to the core before it starts, so the core knows the whole
desired state when it confirms Ready models from disk and cleans leftovers; only then
do the watches start (from the lists' resourceVersions, so nothing between list and
watch is missed). The process then runs until SIGTERM/SIGINT, and stops gracefully:
downloads cancelled with their partial files kept for a resume, pending reports
flushed, exit code 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterable
from typing import Any

from ome_agent.adapters.kube.client import Kube, KubeError, connect
from ome_agent.adapters.kube.informer import Informer, Target, items_of, model_target
from ome_agent.adapters.kube.reporter import KubeReporter
from ome_agent.adapters.kube.secrets import KubeSecretReader
from ome_agent.api import ModelResource, parse_resource, resource_key
from ome_agent.errors import BadInput
from ome_agent.observability import kube_metrics
from ome_agent.observability.health import HealthServer
from ome_agent.observability.metrics import AgentMetrics
from ome_agent.reconcile.backoff import Backoff
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.options import AgentOptions

log = logging.getLogger(__name__)

# the model kinds a node agent watches; base models first, so a FineTunedWeight's
# base is known when the first lists are handed to the core
WATCHED_KINDS = ("ClusterBaseModel", "BaseModel", "FineTunedWeight")
# /healthz turns unready when the API server has not answered for this long
API_GRACE_SECONDS = 60.0
FLUSH_ON_EXIT_SECONDS = 5.0
STOP_DOWNLOADS_SECONDS = 10.0


def run_cluster(
    options: AgentOptions, *, kubeconfig: str | None, health_address: str, health_port: int
) -> int:
    """Run the node agent against the API server until SIGTERM/SIGINT; exit code."""
    try:
        import uvloop  # optional: a faster event loop

        runner: Callable[[Any], int] = uvloop.run
    except ImportError:
        runner = asyncio.run
    return runner(_main(options, kubeconfig, health_address, health_port))


class ClusterAgent:
    """The adapter's parts around one :class:`Reconciler`."""

    def __init__(
        self, options: AgentOptions, kube: Kube, health_port: int, health_address: str
    ) -> None:
        self.options = options
        self.kube = kube
        self.reporter = KubeReporter(kube, options.node_name, options.namespace)
        self.reconciler = Reconciler(
            options, self.reporter, KubeSecretReader(kube), metrics=AgentMetrics()
        )
        self.synced = False
        self._node_labels: dict[str, str] | None = None
        self.health = HealthServer(health_port, self.ready, host=health_address)
        self.informers: list[Informer] = [
            Informer(
                kube,
                model_target(kind),
                on_event=self._model_event,
                on_replace=self._replacer(kind),
            )
            for kind in WATCHED_KINDS
        ]
        self.node_informer = Informer(
            kube,
            Target(
                f"node {options.node_name}", "/api/v1/nodes", f"metadata.name={options.node_name}"
            ),
            on_event=self._node_event,
            on_replace=self._node_replace,
        )
        kube.health.expected_watches = len(self.informers) + 1

    def ready(self) -> tuple[bool, str]:
        if not self.synced:
            return False, "first sync not done"
        if not self.kube.health.reachable(API_GRACE_SECONDS):
            return False, f"API server not reached for over {API_GRACE_SECONDS:.0f} s"
        return True, "ok"

    # ------------------------------------------------------------ start-up
    async def sync(self) -> None:
        """First lists → core, then the core's start (confirm from disk, clean up)."""
        node = await self._first_node()
        self._node_replace([node])
        for kind, informer in zip(WATCHED_KINDS, self.informers, strict=True):
            self.reconciler.replace_all(
                (kind,), self._parse_all(kind, await informer.list_until_ok())
            )
        await self.reconciler.start()
        self.synced = True
        log.info(
            "node %s: first sync done (%s); watching", self.options.node_name, self.kube.server
        )

    async def _first_node(self) -> dict[str, Any]:
        backoff = Backoff(base=0.5, cap=10.0, jitter=0.5)
        logged = False
        while True:
            items = await self.node_informer.list_until_ok()
            if items:
                return items[0]
            if not logged:
                log.error(
                    "Node %s does not exist on the API server: check --node-name "
                    "(NODE_NAME from spec.nodeName); waiting for it",
                    self.options.node_name,
                )
                logged = True
            await asyncio.sleep(backoff.next_delay())

    # ------------------------------------------------------------ handlers
    def _replacer(self, kind: str) -> Callable[[list[dict[str, Any]]], None]:
        def replace(items: list[dict[str, Any]]) -> None:
            self.reconciler.replace_all((kind,), self._parse_all(kind, items))

        return replace

    def _parse_all(self, kind: str, items: Iterable[dict[str, Any]]) -> list[ModelResource]:
        out = []
        for obj in items_of(list(items), kind):
            res = _parse(obj)
            if res is not None:
                out.append(res)
        return out

    def _model_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            if (key := resource_key(obj)) is not None:
                self.reconciler.forget(key)
            return
        res = _parse(obj)
        if res is not None:
            self.reconciler.apply(res)

    def _node_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind == "DELETED":
            log.warning(
                "Node %s was deleted: keeping the models until it is back", self.options.node_name
            )
            return
        self._node_replace([obj])

    def _node_replace(self, items: list[dict[str, Any]]) -> None:
        if not items:
            return
        labels = dict((items[0].get("metadata") or {}).get("labels") or {})
        self.reporter.observe_node(labels)
        # status updates of the Node (kubelet heartbeats) change nothing the core uses
        if labels != self._node_labels:
            self._node_labels = labels
            self.reconciler.set_node(self.options.node_name, labels)

    # ------------------------------------------------------------ main loop
    async def run_until(self, stop: asyncio.Event) -> int:
        """Run until ``stop`` is set (exit code 0) or a part of the agent crashed (1,
        so the kubelet restarts the Pod)."""
        code = 0
        tasks = [
            asyncio.create_task(self.reporter.run(), name="reporter"),
        ]
        sync = asyncio.create_task(self.sync(), name="sync")
        stopping = asyncio.create_task(stop.wait(), name="stop")
        done, _ = await asyncio.wait({sync, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if sync in done and sync.exception() is not None:
            log.error("first sync failed: %r", sync.exception())
            code = 1
        elif sync in done:
            tasks += [
                asyncio.create_task(i.run(), name=i.target.name)
                for i in (self.node_informer, *self.informers)
            ]
            tasks.append(asyncio.create_task(self.reconciler.run(), name="reconciler"))
            waiter = asyncio.create_task(asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION))
            await asyncio.wait({waiter, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and not t.cancelled() and t.exception() is not None:
                    log.error("%s stopped on an error: %r", t.get_name(), t.exception())
                    code = 1
            waiter.cancel()
        else:
            sync.cancel()
        stopping.cancel()
        log.info(
            "node %s: stopping (downloads cancelled, partial files kept)", self.options.node_name
        )
        # the queue cancels the downloads in flight (partial files stay for a resume);
        # give them a moment to unwind before everything else is cancelled
        self.reconciler.close()
        in_flight = [t for t in tasks if t.get_name() == "reconciler"]
        if in_flight:
            await asyncio.wait(in_flight, timeout=STOP_DOWNLOADS_SECONDS)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, sync, return_exceptions=True)
        with contextlib.suppress(KubeError, TimeoutError):
            await asyncio.wait_for(self.reporter.flush(), FLUSH_ON_EXIT_SECONDS)
        return code


def _parse(obj: dict[str, Any]) -> ModelResource | None:
    # A resource that stops parsing keeps its last good version in the core (its key
    # is all the core could act on, and removing files over a typo would be worse).
    try:
        return parse_resource(obj)
    except BadInput as e:
        kind = str(obj.get("kind") or "?")
        meta = obj.get("metadata") or {}
        where = "/".join(str(p) for p in (meta.get("namespace"), meta.get("name")) if p)
        kube_metrics.INVALID_RESOURCES.labels(kind=kind).inc()
        log.error(
            "skipping %s %s: %s (fix the resource; it is not placed on this node)", kind, where, e
        )
        return None


async def _main(
    options: AgentOptions, kubeconfig: str | None, health_address: str, health_port: int
) -> int:
    kube = await connect(kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    agent = ClusterAgent(options, kube, health_port, health_address)
    try:
        try:
            await agent.health.start()
        except OSError as e:
            raise BadInput(
                f"--health-address {health_address} --health-port {health_port}: cannot "
                f"listen ({e.strerror})"
            ) from None
        log.info(
            "node %s: agent starting against %s; health on %s:%d",
            options.node_name,
            kube.server,
            health_address,
            health_port,
        )
        return await agent.run_until(stop)
    finally:
        await agent.health.stop()
        await kube.close()
