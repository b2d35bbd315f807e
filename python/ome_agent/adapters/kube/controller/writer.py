"""The controller's writes to the API server (docs/architecture.md, layer 5: output of the
controller).

Each write is the smallest request that does the job:

- ``.status``: a JSON merge patch on the ``status`` subresource carrying the whole
  new status, with ``null`` for fields the old one had and the new one drops (a merge
  patch otherwise keeps them);
- spec back-fill: a merge patch of the main resource with only the empty fields;
- the finalizer: a merge patch of ``metadata.finalizers`` that carries the
  ``resourceVersion`` read, so a finalizer another controller added meanwhile is never
  overwritten (a stale version gets 409 Conflict and the key is reconciled again);
- a ConfigMap of a deleted Node, an inspection Job: one DELETE, 404 counted as done.

Every write returns the object the server stored (or None), so the caller can update
its cache and recognise the watch event that echoes its own write.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.api import GROUP, VERSION, ModelKey
from ome_agent.api.resources import PLURALS

MERGE = "application/merge-patch+json"

WRITES = Counter(
    "ome_agent_controller_writes",
    "Writes of the controller, by what was written (status, spec, finalizer, "
    "configmap, job) and result",
    ["what", "result"],
)


def model_path(key: ModelKey) -> str:
    plural = PLURALS[key.kind]
    scope = f"namespaces/{key.namespace}/" if key.namespace else ""
    return f"/apis/{GROUP}/{VERSION}/{scope}{plural}/{key.name}"


class Writer:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    async def _patch(self, what: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            out = await self.kube.request(
                "PATCH", path, verb="patch", body=body, content_type=MERGE
            )
        except KubeError as e:
            WRITES.labels(what=what, result=e.reason or str(e.status)).inc()
            raise
        WRITES.labels(what=what, result="ok").inc()
        return out

    async def status(
        self, key: ModelKey, old: Mapping[str, Any] | None, new: Mapping[str, Any]
    ) -> dict[str, Any]:
        dropped = {k: None for k in (old or {}) if k not in new}
        return await self._patch(
            "status", model_path(key) + "/status", {"status": {**dropped, **new}}
        )

    async def spec(self, key: ModelKey, patch: Mapping[str, Any]) -> dict[str, Any]:
        return await self._patch("spec", model_path(key), {"spec": dict(patch)})

    async def finalizers(
        self, key: ModelKey, resource_version: str, finalizers: list[str]
    ) -> dict[str, Any]:
        body = {"metadata": {"resourceVersion": resource_version, "finalizers": finalizers}}
        return await self._patch("finalizer", model_path(key), body)

    async def delete(self, what: str, path: str) -> bool:
        """DELETE ``path``; whether it existed."""
        try:
            await self.kube.request(
                "DELETE",
                path,
                verb="delete",
                body={"propagationPolicy": "Background"},
            )
        except KubeError as e:
            if e.status == 404:
                WRITES.labels(what=what, result="NotFound").inc()
                return False
            WRITES.labels(what=what, result=e.reason or str(e.status)).inc()
            raise
        WRITES.labels(what=what, result="ok").inc()
        return True

    async def create(self, what: str, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        try:
            out = await self.kube.request("POST", path, verb="create", body=body)
        except KubeError as e:
            WRITES.labels(what=what, result=e.reason or str(e.status)).inc()
            raise
        WRITES.labels(what=what, result="ok").inc()
        return out
