"""What the controller watches (docs/architecture.md, layer 5: input of the controller).

One :class:`~ome_agent.adapters.kube.informer.Informer` per kind, reused from the node
agent's adapter; label selectors keep the per-node ConfigMaps, the inspection Jobs and
their Pods to what the controller owns, so it never holds the cluster's other objects.
"""

from __future__ import annotations

from ome_agent.adapters.kube.informer import Target
from ome_agent.fleet.pvc import COMPONENT, LABEL_COMPONENT
from ome_agent.wire.naming import STATUS_LABEL

# the inspection Jobs (and, through their template, their Pods) carry this label
INSPECT_SELECTOR = f"{LABEL_COMPONENT}={COMPONENT}"


def config_map_target(namespace: str) -> Target:
    return Target(
        "configmaps",
        f"/api/v1/namespaces/{namespace}/configmaps",
        label_selector=f"{STATUS_LABEL}=true",
    )


NODES = Target("nodes", "/api/v1/nodes")
PVCS = Target("persistentvolumeclaims", "/api/v1/persistentvolumeclaims")
JOBS = Target("jobs", "/apis/batch/v1/jobs", label_selector=INSPECT_SELECTOR)
PODS = Target("pods", "/api/v1/pods", label_selector=INSPECT_SELECTOR)
