"""``ome-agent controller`` under test as a real subprocess, and what tests read of
the resources it writes.

Where it sits: glue between the controller integration tests and ``tests.cluster``
(the real control plane). The controller runs as in its Pod: a ServiceAccount
kubeconfig bound to deploy/controller/rbac.yaml, so a missing rule fails a test.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from ome_agent.api import GROUP
from ome_agent.fleet.deletion import FINALIZER
from tests.cluster.kube import DEPLOY_DIR, Cluster, unique_name
from tests.integration.agent_process import API, Agent, sum_metric, wait_for

RBAC = DEPLOY_DIR / "controller" / "rbac.yaml"


class ControllerProcess(Agent):
    """One ``ome-agent controller`` replica; started, probed and logged as
    :class:`Agent`'s."""

    WHAT = "controller"
    DROP_ENV = ("KUBE", "POD_")

    def __init__(
        self,
        *,
        kubeconfig: Path,
        namespace: str,
        identity: str,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            kubeconfig=kubeconfig,
            node=identity,
            namespace=namespace,
            models_root=log_path.parent,
            log_path=log_path,
            extra_args=extra_args,
        )
        self.identity = identity

    def command(self) -> list[str]:
        return ["controller", "--namespace", self.namespace, "--identity", self.identity]

    def kill(self) -> None:
        """SIGKILL: a replica that dies without releasing its Lease."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def wait_leading(self, timeout: float = 60.0) -> ControllerProcess:
        """Until this replica holds the Lease and its caches are synced (a standby is
        ready too, so /healthz's text tells them apart)."""

        self.wait_running(
            lambda: self.get("/healthz") == (200, "ok: leading\n"),
            timeout,
            f"controller {self.identity} leading and synced",
        )
        return self

    def leading(self) -> bool:
        status, text = self.get("/metrics")
        return status == 200 and sum_metric(text, "ome_agent_controller_leader", {}) == 1


def controller_kubeconfig(cluster: Cluster, namespace: str, name: str) -> Path:
    return cluster.service_account_kubeconfig(namespace, name, rbac_manifest=RBAC)


def controller_in(
    cluster: Cluster,
    namespace: str,
    work: Path,
    identity: str = "controller-0",
    extra_args: tuple[str, ...] = (),
) -> ControllerProcess:
    """Replica ``identity`` as ServiceAccount ``ome-agent-controller`` of ``namespace``
    (bound to deploy/controller/rbac.yaml), its log at ``work/controller.log``. Not
    started."""
    return ControllerProcess(
        kubeconfig=controller_kubeconfig(cluster, namespace, "ome-agent-controller"),
        namespace=namespace,
        identity=identity,
        log_path=work / "controller.log",
        extra_args=extra_args,
    )


def model_object(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> Any:
    try:
        return cluster.get(API, kind, name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def status_of(cluster: Cluster, kind: str, name: str, namespace: str | None = None) -> Any:
    obj = model_object(cluster, kind, name, namespace)
    return (obj or {}).get("status") or {}


def status_when(
    status: Callable[[str], dict[str, Any]],
    name: str,
    field: str,
    value: Any,
    timeout: float,
    what: str,
) -> dict[str, Any]:
    """``status(name)`` once its ``field`` is ``value``, waited for up to ``timeout``
    seconds; ``what`` names the wait in a failure."""
    return wait_for(lambda: (s := status(name)).get(field) == value and s, timeout, what)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in status.get("conditions") or []:
        if c.get("type") == kind:
            return dict(c)
    return {}


def mark_node_ready(cluster: Cluster, node: str, ready: bool = True) -> None:
    """Write the Ready condition as a kubelet would (no kubelet runs here)."""
    cluster.request(
        "PATCH",
        f"/api/v1/nodes/{node}/status",
        {
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True" if ready else "False",
                        "reason": "KubeletReady" if ready else "KubeletNotReady",
                        "message": "set by the test",
                    }
                ]
            }
        },
        content_type="application/strategic-merge-patch+json",
    )


def ready_node(cluster: Cluster, prefix: str, labels: dict[str, str]) -> str:
    """A new Node (``<prefix>-...``) with ``labels`` and the Ready condition a kubelet
    would post; its name."""
    node = unique_name(prefix)
    cluster.make_node(node, labels)
    mark_node_ready(cluster, node)
    return node


def release_finalizers(cluster: Cluster) -> None:
    """The controller put its finalizer on every model of the shared API server; with
    it stopped, take it off again so other tests' deletes are not held."""
    for plural in ("clusterbasemodels", "basemodels", "finetunedweights"):
        for obj in cluster.request("GET", f"/apis/{GROUP}/v1beta1/{plural}").get("items") or []:
            meta = obj["metadata"]
            if FINALIZER in (meta.get("finalizers") or []):
                scope = f"namespaces/{meta['namespace']}/" if meta.get("namespace") else ""
                left = [f for f in meta["finalizers"] if f != FINALIZER]
                cluster.request(
                    "PATCH",
                    f"/apis/{GROUP}/v1beta1/{scope}{plural}/{meta['name']}",
                    {"metadata": {"finalizers": left}},
                    content_type="application/merge-patch+json",
                )


__all__ = [
    "ControllerProcess",
    "condition",
    "controller_in",
    "controller_kubeconfig",
    "mark_node_ready",
    "model_object",
    "ready_node",
    "release_finalizers",
    "status_of",
    "status_when",
    "wait_for",
]
