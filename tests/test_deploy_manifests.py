"""deploy/ on the real API server: the kustomization's files are what an install
applies, the API server accepts them all (the DaemonSet's pod template is validated
in full even though no controller runs), and the RBAC grants the agent's
ServiceAccount exactly what deploy/README.md says, nothing more."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ome_agent.api import parse_resource
from tests.cluster.kube import DEPLOY_DIR, Cluster

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
        if p.name != "kustomization.yaml" and "examples" not in p.parts
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
        "Namespace",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]


def test_daemonset(cluster: Cluster, installed: list[dict[str, Any]]) -> None:
    ds = cluster.apps.read_namespaced_daemon_set("ome-agent", "ome").to_dict()
    pod = ds["spec"]["template"]["spec"]
    assert pod["service_account_name"] == "ome-agent"
    (c,) = pod["containers"]
    env = {e["name"]: e["value_from"]["field_ref"]["field_path"] for e in c["env"]}
    assert env == {"NODE_NAME": "spec.nodeName", "POD_NAMESPACE": "metadata.namespace"}
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
        ("get", "finetunedweights", "ome.io", None, True),
        ("update", "clusterbasemodels", "ome.io", None, False),
        ("patch", "basemodels", "ome.io", "team-a", False),
        ("patch", "nodes", "", None, True),
        ("watch", "nodes", "", None, True),
        ("delete", "nodes", "", None, False),
        ("get", "secrets", "", "team-a", True),
        ("list", "secrets", "", "team-a", False),
        ("watch", "secrets", "", None, False),
        ("create", "events", "", "team-a", True),
        ("create", "events", "events.k8s.io", "team-a", True),
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
