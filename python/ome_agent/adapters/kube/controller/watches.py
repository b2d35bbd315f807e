"""What the controller watches (DESIGN.md §1, layer 5: input of the controller).

One :class:`~ome_agent.adapters.kube.informer.Informer` per kind, reused from the node
agent's adapter. Its :class:`~ome_agent.adapters.kube.informer.Target` selects by
field only; the controller also needs label selectors (the per-node ConfigMaps, the
inspection Jobs and their Pods), so :class:`LabelSelected` adds ``labelSelector`` to
every list and watch of one informer while sharing the connection pool, the health
record and the request counters of the main client.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from ome_agent.adapters.kube.client import Kube, Query
from ome_agent.adapters.kube.informer import Target
from ome_agent.api import GROUP, VERSION
from ome_agent.api.resources import PLURALS
from ome_agent.controller.pvc import COMPONENT, LABEL_COMPONENT
from ome_agent.wire.naming import STATUS_LABEL

# the inspection Jobs (and, through their template, their Pods) carry this label
INSPECT_SELECTOR = f"{LABEL_COMPONENT}={COMPONENT}"


class LabelSelected(Kube):
    """The same client, with ``labelSelector=<selector>`` on every request."""

    def __init__(self, kube: Kube, selector: str) -> None:
        super().__init__(kube.api)
        self.health = kube.health
        self.selector = selector

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        query: Query = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        return await super().request(
            method,
            path,
            verb=verb,
            query=[*query, ("labelSelector", self.selector)],
            body=body,
            content_type=content_type,
            timeout=timeout,
        )

    async def stream(
        self, path: str, *, query: Query, server_timeout: int
    ) -> aiohttp.ClientResponse:
        return await super().stream(
            path, query=[*query, ("labelSelector", self.selector)], server_timeout=server_timeout
        )


def model_target(kind: str) -> Target:
    return Target(PLURALS[kind], f"/apis/{GROUP}/{VERSION}/{PLURALS[kind]}")


def config_map_target(namespace: str) -> tuple[Target, str]:
    return (
        Target("configmaps", f"/api/v1/namespaces/{namespace}/configmaps"),
        f"{STATUS_LABEL}=true",
    )


NODES = Target("nodes", "/api/v1/nodes")
PVCS = Target("persistentvolumeclaims", "/api/v1/persistentvolumeclaims")
JOBS = (Target("jobs", "/apis/batch/v1/jobs"), INSPECT_SELECTOR)
PODS = (Target("pods", "/api/v1/pods"), INSPECT_SELECTOR)
