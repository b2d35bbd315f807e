"""List + watch of one kind of object (docs/architecture.md, layer 5: input of the reconcile core).

The usual informer contract, kept small: list, hand the full set over, then watch
from the list's resourceVersion with bookmarks; after a dropped connection resume
from the last resourceVersion seen (no event lost, none repeated); on 410 Gone (the
server no longer has that history) list again and hand the full set over again, so
deletions missed meanwhile are noticed. Errors back off exponentially with jitter and
never end the loop: the API server may be down for minutes. One line is logged per
change of state (watching → failing → watching), not one per retry.

Handlers are plain callables that must not block (they call the reconcile core's
non-blocking methods); the watch reads the next event as soon as they return.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.api import GROUP, VERSION
from ome_agent.api.resources import PLURALS
from ome_agent.observability import kube_metrics
from ome_agent.reconcile.backoff import Backoff

log = logging.getLogger(__name__)

# The server ends a watch after this many seconds (randomised per watch, like
# client-go, so informers of many agents do not reconnect in lockstep).
WATCH_SECONDS = (240, 300)
LIST_TIMEOUT = 60.0
MIN_WATCH_SECONDS = 1.0


@dataclass(frozen=True)
class Target:
    """What to watch: a collection path and optional field and label selectors."""

    name: str  # for logs and counters, e.g. "clusterbasemodels", "node n1"
    path: str  # e.g. /apis/ome.io/v1beta1/clusterbasemodels
    field_selector: str | None = None
    label_selector: str | None = None

    def selectors(self) -> list[tuple[str, str]]:
        """Query parameters of the list and of the watches after it (the same ones)."""
        query: list[tuple[str, str]] = []
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        return query


def model_target(kind: str) -> Target:
    """Every object of a model kind (all namespaces for BaseModels)."""
    return Target(PLURALS[kind], f"/apis/{GROUP}/{VERSION}/{PLURALS[kind]}")


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


EventHandler = Callable[[str, dict[str, Any]], None]
ReplaceHandler = Callable[[list[dict[str, Any]]], None]


class Informer:
    """Keeps one :class:`Target` in sync: ``on_replace`` gets full lists, ``on_event``
    gets ``(type, object)`` for ADDED, MODIFIED and DELETED."""

    def __init__(
        self,
        kube: Kube,
        target: Target,
        *,
        on_event: EventHandler,
        on_replace: ReplaceHandler,
        backoff: Backoff | None = None,
    ) -> None:
        self.kube = kube
        self.target = target
        self.on_event = on_event
        self.on_replace = on_replace
        self.backoff = backoff or Backoff(base=0.2, cap=5.0, jitter=0.5)
        self.resource_version: str | None = None
        self._failing: str | None = None  # the error last logged, None while healthy

    async def fetch(self) -> list[dict[str, Any]]:
        """One list; remembers its resourceVersion for the watch that follows."""
        body = await self.kube.request(
            "GET",
            self.target.path,
            verb="list",
            query=self.target.selectors(),
            timeout=LIST_TIMEOUT,
        )
        self.resource_version = str(body.get("metadata", {}).get("resourceVersion") or "")
        items: list[dict[str, Any]] = body.get("items") or []
        return items

    async def list_until_ok(self) -> list[dict[str, Any]]:
        """:meth:`fetch`, retried with backoff until the API server answers."""
        while True:
            try:
                items = await self.fetch()
            except KubeError as e:
                self._failed(e)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            self._recovered("listed")
            return items

    async def run(self) -> None:
        """Watch forever (until cancelled), relisting when needed."""
        while True:
            try:
                if not self.resource_version:
                    self._replace(await self.fetch())
                opened = time.monotonic()
                await self._watch_once()
                if time.monotonic() - opened >= MIN_WATCH_SECONDS:
                    self.backoff.reset()
                else:
                    # a server closing watches at once (shutting down, a proxy) must
                    # not turn this loop into a busy one
                    await asyncio.sleep(self.backoff.next_delay())
            except Gone:
                kube_metrics.RELISTS.labels(resource=self.target.name).inc()
                log.info("watch of %s expired (410 Gone): listing again", self.target.name)
                self.resource_version = None
            except (KubeError, aiohttp.ClientError, TimeoutError, ValueError) as e:
                self.kube.health.watching.discard(self.target.name)
                self._failed(e)
                await asyncio.sleep(self.backoff.next_delay())
            finally:
                self.kube.health.watching.discard(self.target.name)

    async def _watch_once(self) -> None:
        query: list[tuple[str, str]] = [
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", self.resource_version or ""),
            ("timeoutSeconds", str(random.randint(*WATCH_SECONDS))),  # noqa: S311
            *self.target.selectors(),
        ]
        try:
            resp = await self.kube.stream(
                self.target.path, query=query, server_timeout=int(query[3][1])
            )
        except KubeError as e:
            if e.status == 410:
                raise Gone() from e
            raise
        try:
            self.kube.health.watching.add(self.target.name)
            self._recovered("watching")
            async for line in resp.content:
                if line.strip():
                    self._handle(json.loads(line))
        finally:
            resp.close()

    def _handle(self, event: dict[str, Any]) -> None:
        kind = str(event.get("type") or "")
        obj = event.get("object") or {}
        self.kube.health.ok()
        kube_metrics.WATCH_EVENTS.labels(resource=self.target.name, type=kind).inc()
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise Gone()
            raise KubeError(
                int(code or 0),
                str(obj.get("reason") or "Error"),
                str(obj.get("message") or ""),
                what=f"watch {self.target.name}",
            )
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if rv:
            self.resource_version = str(rv)
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            try:
                self.on_event(kind, obj)
            except Exception:
                # a bug in a handler must not stop the watch of every other object
                meta = obj.get("metadata") or {}
                log.exception(
                    "%s: handling %s of %s failed", self.target.name, kind, meta.get("name")
                )

    def _replace(self, items: list[dict[str, Any]]) -> None:
        try:
            self.on_replace(items)
        except Exception:
            log.exception(
                "%s: handling the list of %d objects failed", self.target.name, len(items)
            )

    def _failed(self, e: BaseException) -> None:
        what = f"{type(e).__name__}: {e}"
        # one line per state change: the first failure, or a different one
        if self._failing is None or _kind_of(self._failing) != _kind_of(what):
            log.warning(
                "%s: API server request failed, retrying with backoff: %s", self.target.name, what
            )
        self._failing = what

    def _recovered(self, state: str) -> None:
        if self._failing is not None:
            log.info("%s: API server reachable again (%s)", self.target.name, state)
        self._failing = None


def _kind_of(what: str) -> str:
    # compare failures by their class and status, not their full text (which holds
    # resource versions and addresses that change on every retry)
    return " ".join(what.split()[:3])


def items_of(objs: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """List items come without ``kind``: put it back, as ``parse_resource`` needs it."""
    return [{**o, "kind": o.get("kind") or kind} for o in objs]
