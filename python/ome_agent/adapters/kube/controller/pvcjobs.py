"""``pvc://`` models on Kubernetes: the inspection Job's life (docs/architecture.md, layer 5;
the objects and the status rules are in :mod:`ome_agent.fleet.pvc`).

No node agent downloads a model that already lives on a claim, so the controller
reports it: the claim's phase comes from the PVC informer; once the claim is Bound
and the model has not been read yet, one Job (:func:`inspect_job`) mounts it
read-only and leaves the discovered config in its Pod's termination message; the
Pod's result (:func:`job_result`) becomes the status (:func:`pvc_status`) and the
spec back-fill, and the Job is deleted. The result is kept per resource uid and
storageUri, so a finished inspection is not repeated; after a restart a model whose
status is already Ready for its generation is not inspected again either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ome_agent.adapters.kube.client import KubeError
from ome_agent.adapters.kube.controller.cache import Cache
from ome_agent.adapters.kube.controller.writer import Writer
from ome_agent.api import ModelKey, ModelResource
from ome_agent.errors import BadInput
from ome_agent.fleet.pvc import (
    PvcRef,
    inspect_job,
    job_name,
    job_result,
    parse_pvc_uri,
    pvc_status,
)

log = logging.getLogger(__name__)

NO_IMAGE = (
    "the controller has no image to inspect the claim with: "
    "set --pvc-inspect-image (or OME_AGENT_IMAGE)"
)


@dataclass(frozen=True)
class _Result:
    uid: str
    uri: str  # the storageUri read: a new one is read again, other spec edits are not
    state: str  # Succeeded | Failed
    config: Mapping[str, Any] | None
    error: str | None


def _jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


class PvcInspector:
    def __init__(self, cache: Cache, writer: Writer, image: str | None) -> None:
        self.cache = cache
        self.writer = writer
        self.image = image
        self._results: dict[ModelKey, _Result] = {}

    @staticmethod
    def handles(resource: ModelResource) -> bool:
        return resource.on_claim

    def config(self, resource: ModelResource) -> Mapping[str, Any] | None:
        """The config the inspection read (for the spec back-fill), if it ran."""
        result = self._current(resource)
        return result.config if result is not None and result.state == "Succeeded" else None

    async def status(
        self, resource: ModelResource, previous: Mapping[str, Any] | None, now: datetime
    ) -> dict[str, Any]:
        try:
            ref = parse_pvc_uri(resource.storage_uri, resource, self.cache.namespace)
        except BadInput as e:
            # a malformed URI is reported like a failed inspection of a claim that
            # cannot be used: the message names the field and the fix
            bound = {"status": {"phase": "Bound"}}
            return pvc_status(resource, bound, "Failed", None, str(e), previous, now)
        pvc = self.cache.pvcs.get((ref.namespace, ref.claim))
        phase = ((pvc or {}).get("status") or {}).get("phase")
        state: str | None = None
        config: Mapping[str, Any] | None = None
        error: str | None = None
        result = self._current(resource)
        if result is not None:
            state, config, error = result.state, result.config, result.error
        elif phase == "Bound":
            if _ready_before(resource, previous):
                state, config = "Succeeded", {}  # read before a restart: nothing to redo
            elif not self.image:
                state, error = "Failed", NO_IMAGE
            else:
                state, config, error = await self._inspect(resource, ref)
        return pvc_status(resource, pvc, state, config, error, previous, now)

    async def _inspect(
        self, resource: ModelResource, ref: PvcRef
    ) -> tuple[str, Mapping[str, Any] | None, str | None]:
        namespace, name = ref.namespace, job_name(resource)
        job = self.cache.jobs.get((namespace, name))
        if job is None:
            assert self.image is not None
            body = inspect_job(ref, resource, image=self.image, job_name=name)
            try:
                created = await self.writer.create("job", _jobs_path(namespace), body)
            except KubeError as e:
                if e.status != 409:  # 409: created before; the informer brings it
                    raise
            else:
                self.cache.jobs[(namespace, name)] = created
                log.info("%s: inspecting claim %s/%s with Job %s",
                         resource.key, namespace, ref.claim, name)  # fmt: skip
            return "Running", None, None
        state, config, error = "Running", None, None
        for pod in self.cache.pods_of_job(namespace, name):
            state, config, error = job_result(pod)
            if state != "Running":
                break
        if state == "Running":
            failed = _job_failed(job)
            if failed:
                state, error = "Failed", failed
        if state != "Running":
            self._results[resource.key] = _Result(
                resource.uid, resource.storage_uri, state, config, error
            )
            await self.writer.delete("job", f"{_jobs_path(namespace)}/{name}")
            self.cache.jobs.pop((namespace, name), None)
            log.info("%s: inspection %s; Job %s deleted", resource.key, state.lower(), name)
        return state, config, error

    async def cleanup(self, resource: ModelResource) -> None:
        """The resource is being deleted: its Job goes too."""
        self._results.pop(resource.key, None)
        name = job_name(resource)
        for namespace, job in list(self.cache.jobs):
            if job == name:
                await self.writer.delete("job", f"{_jobs_path(namespace)}/{name}")
                self.cache.jobs.pop((namespace, name), None)

    def forget(self, key: ModelKey) -> None:
        self._results.pop(key, None)

    def _current(self, resource: ModelResource) -> _Result | None:
        result = self._results.get(resource.key)
        if result is None or (result.uid, result.uri) != (resource.uid, resource.storage_uri):
            return None
        return result


def _ready_before(resource: ModelResource, previous: Mapping[str, Any] | None) -> bool:
    return bool(
        previous
        and previous.get("state") == "Ready"
        and previous.get("observedGeneration") == resource.generation
    )


def _job_failed(job: Mapping[str, Any]) -> str | None:
    """The Job controller's verdict (backoff limit, deadline), when there is one."""
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Failed" and condition.get("status") == "True":
            return str(condition.get("message") or condition.get("reason") or "the Job failed")
    return None
