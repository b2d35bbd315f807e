"""deploy/ on the real API server: the kustomization's files are what an install
applies, the API server accepts them all (the DaemonSet's pod template is validated
in full even though no controller runs), and the RBAC grants the agent's
ServiceAccount exactly what deploy/README.md says, nothing more."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ome_agent.api import parse_resource
from tests.cluster.kube import DEPLOY_DIR, Cluster, unique_name, wait_until

AGENT = "system:serviceaccount:ome:ome-agent"
AGENT_GROUPS = ["system:serviceaccounts", "system:serviceaccounts:ome"]


def _kustomization() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((DEPLOY_DIR / "kustomization.yaml").read_text())
    return doc


@pytest.fixture(scope="module")
def installed(cluster: Cluster) -> list[dict[str, Any]]:
    """Everything `kubectl apply -k deploy/` applies, then the example."""
    files = [DEPLOY_DIR / f for f in _kustomization()["resources"]]
    stored = cluster.apply_manifests(files)
    stored += cluster.apply_manifests([DEPLOY_DIR / "examples"])
    return stored


def test_kustomization_lists_every_manifest() -> None:
    listed = {DEPLOY_DIR / f for f in _kustomization()["resources"]}
    on_disk = {
        p
        for p in DEPLOY_DIR.rglob("*.yaml")
        if p.name != "kustomization.yaml" and "examples" not in p.parts and "helm" not in p.parts
    }
    assert listed == on_disk


def test_everything_accepted(installed: list[dict[str, Any]]) -> None:
    kinds = sorted({o["kind"] for o in installed})
    assert kinds == [
        "ClusterBaseModel",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "DaemonSet",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]


def test_daemonset(cluster: Cluster, installed: list[dict[str, Any]]) -> None:
    ds = cluster.apps.read_namespaced_daemon_set("ome-agent", "ome").to_dict()
    pod = ds["spec"]["template"]["spec"]
    assert pod["service_account_name"] == "ome-agent"
    (c,) = pod["containers"]
    env = {
        e["name"]: e["value_from"]["field_ref"]["field_path"] for e in c["env"] if e["value_from"]
    }
    assert env == {"NODE_NAME": "spec.nodeName", "POD_NAMESPACE": "metadata.namespace"}
    mounted = {m["mount_path"] for m in c["volume_mounts"]}
    if c["security_context"]["read_only_root_filesystem"]:
        # every path the agent or its libraries write must be a volume
        for e in c["env"]:
            if e["name"] in ("HF_HOME", "XDG_CACHE_HOME"):
                assert any(e["value"].startswith(m + "/") for m in mounted), e
    assert c["command"] == ["ome-agent"]
    assert c["args"][0] == "run"
    assert "--models-root-dir=/mnt/models" in c["args"]
    assert c["liveness_probe"]["http_get"]["path"] == "/livez"
    assert c["readiness_probe"]["http_get"]["path"] == "/healthz"
    assert c["ports"][0]["container_port"] == 8080
    assert c["resources"]["requests"]
    assert c["resources"]["limits"]["memory"]
    mounts = {m["name"]: m["mount_path"] for m in c["volume_mounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["models"]["host_path"]["path"] == mounts["models"] == "/mnt/models"
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "8080"


def test_daemonset_args_are_options_of_run(installed: list[dict[str, Any]]) -> None:
    """The container's arguments parse as `ome-agent run` options (kubelet expands
    $(POD_NAMESPACE) first), and the probed port is the health port."""
    from ome_agent.cli.run import run

    (ds,) = [o for o in installed if o["kind"] == "DaemonSet"]
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    assert c["args"][0] == "run"
    args = [a.replace("$(POD_NAMESPACE)", "ome") for a in c["args"][1:]]
    params = run.make_context("run", args).params
    assert params["health_port"] == c["ports"][0]["containerPort"]
    assert params["namespace"] == "ome"
    # set explicitly: the kubelet probes the Pod's IP, whatever the flag's default
    assert "--health-address=0.0.0.0" in c["args"]
    assert params["health_address"] == "0.0.0.0"  # noqa: S104 - the Pod's every address


def test_example_model_parses(installed: list[dict[str, Any]]) -> None:
    (example,) = [o for o in installed if o["kind"] == "ClusterBaseModel"]
    resource = parse_resource(example)
    assert resource.storage is not None
    assert resource.storage.storage_uri == "hf://Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.parametrize(
    ("verb", "resource", "group", "namespace", "allowed"),
    [
        ("watch", "clusterbasemodels", "ome.io", None, True),
        ("list", "basemodels", "ome.io", None, True),
        ("watch", "finetunedweights", "ome.io", None, True),  # placed beside their base
        ("patch", "finetunedweights", "ome.io", None, False),
        ("update", "clusterbasemodels", "ome.io", None, False),
        ("patch", "basemodels", "ome.io", "team-a", False),
        ("patch", "nodes", "", None, True),
        ("watch", "nodes", "", None, True),
        ("delete", "nodes", "", None, False),
        ("get", "secrets", "", "team-a", True),
        ("list", "secrets", "", "team-a", False),
        ("watch", "secrets", "", None, False),
        # the node agent emits no events (per-node state is in its ConfigMap entry)
        ("create", "events", "", "team-a", False),
        ("create", "events", "events.k8s.io", "team-a", False),
        ("update", "configmaps", "", "ome", True),
        ("create", "configmaps", "", "ome", True),
        ("create", "configmaps", "", "default", False),
        ("list", "configmaps", "", None, False),
        ("list", "pods", "", None, False),
    ],
)
def test_agent_rbac_is_least_privilege(
    cluster: Cluster,
    installed: list[dict[str, Any]],
    verb: str,
    resource: str,
    group: str,
    namespace: str | None,
    allowed: bool,
) -> None:
    assert (
        cluster.can(AGENT, verb, resource, group=group, namespace=namespace, groups=AGENT_GROUPS)
        is allowed
    )


def test_agent_cannot_write_model_status(cluster: Cluster, installed: list[dict[str, Any]]) -> None:
    """Only the controller aggregates status; an agent never writes a model resource."""
    assert not cluster.can(
        AGENT,
        "update",
        "clusterbasemodels",
        group="ome.io",
        subresource="status",
        groups=AGENT_GROUPS,
    )


def _pod_bound_agent(cluster: Cluster, node: str, tmp_path: Path) -> client.CoreV1Api:
    """A client holding what the kubelet gives the agent's pod: a token of
    ome:ome-agent bound to a pod on ``node`` (so it names the node)."""
    pod = cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": unique_name("ome-agent")},
            "spec": {
                "nodeName": node,
                "serviceAccountName": "ome-agent",
                "containers": [{"name": "agent", "image": "ome-agent:latest"}],
            },
        },
        "ome",
    )
    bound = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"]}
    token = cluster.request(
        "POST",
        "/api/v1/namespaces/ome/serviceaccounts/ome-agent/token",
        {"spec": {"audiences": [], "boundObjectRef": {**bound, "uid": pod["metadata"]["uid"]}}},
    )["status"]["token"]
    kubeconfig = cluster.control_plane.write_kubeconfig(
        tmp_path / "agent.kubeconfig", "ome-agent", {"token": token}
    )
    return client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]


def _status(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiException as e:
        return int(e.status or 0)
    return 200


def test_node_policy_keeps_the_agent_to_its_node_and_model_labels(
    cluster: Cluster, installed: list[dict[str, Any]], tmp_path: Path
) -> None:
    own, other = unique_name("node"), unique_name("node")
    cluster.make_node(own, {"gpu": "a100"})
    cluster.make_node(other)
    agent = _pod_bound_agent(cluster, own, tmp_path)

    def labels(node: str, new: dict[str, str | None]) -> Callable[[], object]:
        return lambda: agent.patch_node(node, {"metadata": {"labels": new}})

    # the policy starts being enforced a moment after it is created
    wait_until(lambda: _status(labels(other, {"models.ome.io/x": "Ready"})) == 403, 10)
    assert _status(labels(own, {"models.ome.io/clusterbasemodel.m": "Ready"})) == 200
    assert _status(labels(own, {"models.ome/1234-uid": "Ready"})) == 200
    assert _status(labels(own, {"models.ome/1234-uid": None})) == 200
    assert cluster.core.read_node(own).metadata.labels == {  # type: ignore[union-attr]
        "gpu": "a100",
        "models.ome.io/clusterbasemodel.m": "Ready",
    }
    denied = {
        "other node": labels(other, {"models.ome.io/clusterbasemodel.m": "Ready"}),
        "other label": labels(own, {"gpu": "h100"}),
        "new label": labels(own, {"team": "x"}),
        "removed label": labels(own, {"gpu": None}),
        "annotation": lambda: agent.patch_node(own, {"metadata": {"annotations": {"a": "b"}}}),
        "spec": lambda: agent.patch_node(own, {"spec": {"unschedulable": True}}),
    }
    assert {what: _status(call) for what, call in denied.items()} == dict.fromkeys(denied, 403)


def test_node_policy_leaves_other_users_alone(
    cluster: Cluster, installed: list[dict[str, Any]], kube_namespace: str
) -> None:
    """Only ome:ome-agent is matched: the agent of another namespace (as the
    integration tests run it) and admins are not constrained by it."""
    node = unique_name("node")
    cluster.make_node(node)
    kubeconfig = cluster.service_account_kubeconfig(kube_namespace, "agent")
    core = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))  # type: ignore[no-untyped-call]
    core.patch_node(node, {"metadata": {"labels": {"models.ome.io/m": "Ready"}}})
    cluster.label_node(node, {"anything": "goes"})
