"""deploy/controller/rbac.yaml on the real API server: the controller may do what its
code paths need and nothing else (SubjectAccessReview), and a rule taken away shows
up as the missing behaviour, not as a crash.
"""

from __future__ import annotations

from pathlib import Path

from tests.cluster.kube import Cluster, unique_name
from tests.integration.controller_process import RBAC, ControllerProcess, wait_for


def rules(group: str, *specs: str) -> list[tuple[str, str, str, str]]:
    """(verb, resource, group, subresource) of each ``"verb resource[/subresource]"``."""
    out = []
    for rule in specs:
        verb, _, path = rule.partition(" ")
        resource, _, sub = path.partition("/")
        out.append((verb, resource, group, sub))
    return out


ALLOWED = [
    *rules(
        "ome.io", "patch clusterbasemodels", "patch basemodels/status", "watch finetunedweights"
    ),
    *rules("", "list nodes", "create events", "watch persistentvolumeclaims", "watch pods"),
    *rules("batch", "create jobs", "delete jobs"),
]
DENIED = [
    *rules("ome.io", "create clusterbasemodels", "delete basemodels", "update basemodels"),
    *rules("", "patch nodes", "get secrets", "create pods", "update persistentvolumeclaims"),
]


def test_cluster_wide_rules_allow_only_what_the_controller_does(cluster: Cluster) -> None:
    namespace = cluster.make_namespace()
    cluster.service_account_kubeconfig(namespace, "ctl-rbac", rbac_manifest=RBAC)
    user = f"system:serviceaccount:{namespace}:ctl-rbac"
    other = cluster.make_namespace()
    for verb, resource, group, sub in ALLOWED:
        assert cluster.can(user, verb, resource, group=group, namespace=other, subresource=sub), (
            verb,
            resource,
            sub,
        )
    for verb, resource, group, sub in DENIED:
        assert not cluster.can(
            user, verb, resource, group=group, namespace=other, subresource=sub
        ), (verb, resource)
    # ConfigMaps and the Lease: in the agents' namespace only
    for namespace_, allowed in ((namespace, True), (other, False)):
        assert cluster.can(user, "delete", "configmaps", namespace=namespace_) is allowed
        assert (
            cluster.can(user, "update", "leases", group="coordination.k8s.io", namespace=namespace_)
            is allowed
        )
    assert not cluster.can(user, "create", "configmaps", namespace=namespace)


def test_without_configmaps_delete_the_reports_of_a_gone_node_stay(
    cluster: Cluster, tmp_path: Path
) -> None:
    namespace = cluster.make_namespace()
    kubeconfig = cluster.service_account_kubeconfig(
        namespace, "ctl-no-delete", rbac_manifest=RBAC, without=("configmaps", "delete")
    )
    ctl = ControllerProcess(
        kubeconfig=kubeconfig, namespace=namespace, identity="ctl", log_path=tmp_path / "ctl.log"
    )
    ctl.start().wait_leading()
    try:
        node = unique_name("gone")
        cluster.make_node(node, {})
        cluster.core.create_namespaced_config_map(
            namespace,
            {
                "metadata": {
                    "name": node,
                    "labels": {"models.ome/basemodel-status": "true", "node": node},
                }
            },
        )
        cluster.core.delete_node(node)
        wait_for(lambda: "Forbidden" in ctl.log(), 15, f"the refusal logged:\n{ctl.log()}")
        assert cluster.core.read_namespaced_config_map(node, namespace) is not None
        assert ctl.proc is not None
        assert ctl.proc.poll() is None  # still running
    finally:
        assert ctl.stop() == 0
