"""The test control plane itself: the API server answers, RBAC from deploy/ is
enforced on ServiceAccount tokens, the ome.io CRDs are established, and data
survives an API server restart. Everything else that runs on the cluster builds
on these four facts."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import ControlPlaneError, binaries_dir
from tests.cluster.kube import Cluster, unique_name


def test_api_server_answers_as_admin(cluster: Cluster) -> None:
    names = {ns.metadata.name for ns in cluster.core.list_namespace().items}
    assert {"default", "kube-system"} <= names
    assert cluster.server.startswith("https://127.0.0.1:")


def test_crds_established(cluster: Cluster) -> None:
    for name in ("basemodels.ome.io", "clusterbasemodels.ome.io", "finetunedweights.ome.io"):
        crd = cluster.apiext.read_custom_resource_definition(name)
        conds = {c.type: c.status for c in crd.status.conditions}
        assert conds["Established"] == "True", name
        assert conds["NamesAccepted"] == "True", name
    assert cluster.resource("ome.io/v1beta1", "ClusterBaseModel") == ("clusterbasemodels", False)
    assert cluster.resource("ome.io/v1beta1", "BaseModel") == ("basemodels", True)


def test_nodes_secrets_and_labels(cluster: Cluster, kube_namespace: str) -> None:
    node = unique_name("node")
    cluster.make_node(node, {"gpu": "a100"})
    cluster.label_node(node, {"gpu": None, "tier": "nvme"})
    labels = cluster.core.read_node(node).metadata.labels
    assert labels["tier"] == "nvme"
    assert "gpu" not in labels
    cluster.make_secret(kube_namespace, "hf", {"token": "hf_x"})
    secret = cluster.core.read_namespaced_secret("hf", kube_namespace)
    assert secret.data == {"token": "aGZfeA=="}


def _sa_api(kubeconfig: str) -> client.ApiClient:
    return config.new_client_from_config(kubeconfig)


def test_service_account_gets_exactly_deploy_rbac(cluster: Cluster, kube_namespace: str) -> None:
    kubeconfig = cluster.service_account_kubeconfig(kube_namespace, "agent")
    assert "token" in kubeconfig.read_text()
    api = _sa_api(str(kubeconfig))
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    cluster.make_secret(kube_namespace, "creds", {"value": "t"})

    # granted: read one Secret by name, list models, write ConfigMaps in its namespace
    assert core.read_namespaced_secret("creds", kube_namespace).data == {"value": "dA=="}
    custom.list_cluster_custom_object("ome.io", "v1beta1", "clusterbasemodels")
    core.create_namespaced_config_map(
        kube_namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="node-a"))
    )
    # denied: listing Secrets, writing models, ConfigMaps outside its namespace
    for call in (
        lambda: core.list_namespaced_secret(kube_namespace),
        lambda: custom.create_cluster_custom_object(
            "ome.io",
            "v1beta1",
            "clusterbasemodels",
            {
                "apiVersion": "ome.io/v1beta1",
                "kind": "ClusterBaseModel",
                "metadata": {"name": unique_name("m")},
                "spec": {},
            },
        ),
        lambda: core.list_namespaced_config_map("default"),
    ):
        with pytest.raises(ApiException) as e:
            call()
        assert e.value.status == 403


def test_removed_rule_is_denied(cluster: Cluster, kube_namespace: str) -> None:
    node = unique_name("node")
    cluster.make_node(node)
    kubeconfig = cluster.service_account_kubeconfig(
        kube_namespace, "no-patch", without=("nodes", "patch")
    )
    core = client.CoreV1Api(_sa_api(str(kubeconfig)))
    assert core.read_node(node).metadata.name == node  # get kept
    with pytest.raises(ApiException) as e:
        core.patch_node(node, {"metadata": {"labels": {"x": "y"}}})
    assert e.value.status == 403
    with pytest.raises(ValueError, match="no rule grants"):
        cluster.service_account_kubeconfig(kube_namespace, "bad", without=("pods", "get"))


def test_kubeconfig_loads_in_kubernetes_asyncio(cluster: Cluster, kube_namespace: str) -> None:
    from kubernetes_asyncio import client as aclient
    from kubernetes_asyncio import config as aconfig

    kubeconfig = cluster.service_account_kubeconfig(kube_namespace, "async-agent")

    async def main() -> list[str]:
        api = await aconfig.new_client_from_config(config_file=str(kubeconfig))
        async with api:
            items = await aclient.CustomObjectsApi(api).list_cluster_custom_object(
                "ome.io", "v1beta1", "clusterbasemodels"
            )
            cms = await aclient.CoreV1Api(api).list_namespaced_config_map(kube_namespace)
        return [items["kind"], cms.kind]

    assert asyncio.run(main()) == ["ClusterBaseModelList", "ConfigMapList"]


def test_restart_keeps_data(cluster: Cluster) -> None:
    name = unique_name("restart")
    cluster.make_node(name, {"kept": "yes"})
    t0 = time.monotonic()
    cluster.control_plane.restart_apiserver()
    took = time.monotonic() - t0
    assert cluster.core.read_node(name).metadata.labels["kept"] == "yes"
    assert took < 60


def test_missing_binaries_name_the_build_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OME_CONTROL_PLANE_DIR", str(tmp_path))
    with pytest.raises(ControlPlaneError, match=r"scripts/build-control-plane\.sh"):
        binaries_dir()
