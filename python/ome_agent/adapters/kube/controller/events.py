"""Kubernetes Events on the model resources (docs/architecture.md, layer 5: the operator's view).

``kubectl describe clusterbasemodel x`` shows why a model is or is not ready: the
controller records a core/v1 Event on each state transition it decides (Ready,
Failed with the summarised reason, deletion timed out). Events are deduplicated per
resource and reason: the same message again is not recorded again (a reconcile that
decides the same thing twice, or a controller restart, adds nothing); a new message
for a reason is a new Event. Recording is best effort: a failed write is logged and
never blocks a status write.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from ome_agent.adapters.kube.client import Kube, KubeError
from ome_agent.api import GROUP, VERSION, ModelKey, ModelResource
from ome_agent.wire.entry import rfc3339

log = logging.getLogger(__name__)

COMPONENT = "ome-agent-controller"
# cluster-scoped objects have their Events in "default", as client-go's recorder does
CLUSTER_EVENTS_NAMESPACE = "default"
MAX_MESSAGE = 1024


class EventRecorder:
    def __init__(self, kube: Kube, identity: str) -> None:
        self.kube = kube
        self.identity = identity
        # resource -> (its uid, reason -> the message last recorded); a resource
        # deleted and created again under the same name starts afresh
        self._last: dict[ModelKey, tuple[str, dict[str, str]]] = {}

    async def record(
        self, resource: ModelResource, reason: str, message: str, *, warning: bool = False
    ) -> bool:
        """Record an Event unless this resource's last one for ``reason`` said the same;
        whether one was written."""
        message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."
        uid, recorded = self._last.get(resource.key, (resource.uid, {}))
        if uid != resource.uid:
            recorded = {}
        if recorded.get(reason) == message:
            return False
        namespace = resource.namespace or CLUSTER_EVENTS_NAMESPACE
        now = rfc3339(datetime.now(UTC))
        digest = hashlib.sha256(f"{resource.uid}/{reason}/{message}".encode()).hexdigest()[:12]
        involved: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": resource.kind,
            "name": resource.name,
            "uid": resource.uid,
            "resourceVersion": resource.resource_version,
        }
        if resource.namespace:
            involved["namespace"] = resource.namespace
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{resource.name[:200]}.{digest}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": "Warning" if warning else "Normal",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.identity,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.request(
                "POST", f"/api/v1/namespaces/{namespace}/events", verb="create", body=body
            )
        except KubeError as e:
            # 409: the same Event exists (recorded before a restart): nothing to add
            if e.status != 409:
                log.warning("event %s on %s not recorded: %s", reason, resource.key, e)
                return False
        self._last[resource.key] = (resource.uid, {**recorded, reason: message})
        return True

    def forget(self, key: ModelKey) -> None:
        self._last.pop(key, None)
