"""Fixtures of the real-node tier: one node per session, the chart installed once per
module, and the local Hub exposed to pods.

Where it sits: glue between the tests in this folder and ``tests.node.realnode``.
The tier is marked ``node`` (pyproject's ``-m "not node"`` leaves it out of a plain
``pytest``); ``make test`` runs its smoke (test_smoke.py) last and ``make e2e`` all of
it, each after building what it needs. A machine that cannot run a node (not root, a
tool missing, another node running) fails the tier with one line saying why. The node is torn down
(processes stopped by PID, iptables rules and the bridge removed) whatever the tests
did; a failing test gets the tail of every component's log in its report.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.cluster.controlplane import free_port
from tests.cluster.kube import unique_name, wait_until
from tests.node.realnode import GATEWAY, REPO_ROOT, RealNode
from tests.servers.hf_hub_server import HubServer

CHART = REPO_ROOT / "deploy" / "helm" / "ome-agent"
RELEASE = "ome-agent"  # object names: ome-agent (DaemonSet), ome-agent-controller
NAMESPACE = "ome"
IMAGE = {"repository": "localhost/ome-agent", "tag": "e2e", "pullPolicy": "Never"}


@pytest.fixture(scope="session")
def real_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    node = RealNode(tmp_path_factory.mktemp("real-node"), (free_port(), free_port(), free_port()))
    # a machine that cannot run a node fails the tier in one line, never skips it
    if (why := node.check()) is not None:
        pytest.fail(why, pytrace=False)
    try:
        node.up()
        yield node
    finally:
        node.down()


@pytest.fixture(scope="session")
def helm() -> Path:
    out = subprocess.run(
        [str(REPO_ROOT / "scripts" / "build-helm.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return Path(out.stdout.strip().splitlines()[-1])


@dataclass
class Release:
    """The chart installed on the node, and what its pods reach on the host."""

    node: RealNode
    helm: Path
    models_root: Path
    hub: HubServer
    hub_url: str  # the Hub as pods see it
    values: dict[str, Any]

    def upgrade(self, values: dict[str, Any], *, wait: bool = True) -> None:
        """``helm upgrade --install`` with ``values``; with ``wait``, until both workloads
        rolled out (without: a release whose pods are meant never to become Ready)."""
        path = self.models_root.parent / "values.yaml"
        path.write_text(yaml.safe_dump(values))
        waiting = ("--wait", "--timeout", "5m") if wait else ()
        self.node.run(
            str(self.helm), "upgrade", "--install", RELEASE, str(CHART),
            "--namespace", NAMESPACE, "--create-namespace", "--values", str(path), *waiting,
        )  # fmt: skip
        if not wait:
            return
        # helm's --wait counts a DaemonSet with maxUnavailable pods unready as done
        for workload in (f"daemonset/{RELEASE}", f"deployment/{RELEASE}-controller"):
            self.node.kubectl("-n", NAMESPACE, "rollout", "status", workload, "--timeout=300s")
        self.values = values


def chart_values(models_root: Path, hub_url: str) -> dict[str, Any]:
    return {
        "image": IMAGE,
        "agent": {
            "modelsRootDirs": [str(models_root)],
            "extraEnv": [{"name": "HF_ENDPOINT", "value": hub_url}],
        },
        # one replica: the node has two cores and failover is tested elsewhere
        "controller": {"replicas": 1},
    }


@pytest.fixture(scope="module")
def release(
    real_node: RealNode, helm: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    work = tmp_path_factory.mktemp("release")
    models_root = work / "models"
    # pods reach the Hub and its CDN on the bridge gateway; both listen on loopback
    hub_port, cdn_port = free_port(), free_port()
    cdn_url = f"http://{GATEWAY}:{cdn_port}/repos"
    hub = HubServer(
        port=hub_port, cdn_host="127.0.0.1", cdn_port=cdn_port, external_cdn=cdn_url
    ).start()
    try:
        hub_url = real_node.expose(hub_port)
        real_node.expose(cdn_port)
        rel = Release(real_node, helm, models_root, hub, hub_url, {})
        rel.upgrade(chart_values(models_root, hub_url))
        yield rel
        # a test may have uninstalled it already
        real_node.run(
            str(helm), "uninstall", RELEASE, "--namespace", NAMESPACE,
            "--ignore-not-found", "--wait", "--timeout", "3m",
        )  # fmt: skip
    finally:
        hub.stop()


# ------------------------------------------------------- what the tests read and create
def pods(release: Release, component: str) -> list[Any]:
    """The chart's live pods of one component (``node-agent``, ``controller``)."""
    return [
        p
        for p in release.node.core()
        .list_namespaced_pod(NAMESPACE, label_selector=f"app.kubernetes.io/component={component}")
        .items
        if p.metadata.deletion_timestamp is None
    ]


def cluster_model(release: Release, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = release.node.custom().get_cluster_custom_object(
            "ome.io", "v1beta1", "clusterbasemodels", name
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return obj


def node_entry(release: Release, key: str) -> dict[str, Any] | None:
    """This node's ConfigMap entry ``key`` (``clusterbasemodel.NAME``), decoded."""
    try:
        cm = release.node.core().read_namespaced_config_map(release.node.name, NAMESPACE)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    raw = (cm.data or {}).get(key)
    return json.loads(raw) if raw else None


def agent_logs(release: Release) -> str:
    return release.node.kubectl(
        "-n",
        NAMESPACE,
        "logs",
        "-l",
        "app.kubernetes.io/component=node-agent",
        "--tail=40",
        check=False,
    )


def create_cluster_model(release: Release, name: str, repo: str, **storage: Any) -> None:
    """A ClusterBaseModel ``name`` of ``repo`` from the local Hub (``storage``: more of
    its ``spec.storage``)."""
    release.node.custom().create_cluster_custom_object(
        "ome.io",
        "v1beta1",
        "clusterbasemodels",
        {
            "apiVersion": "ome.io/v1beta1",
            "kind": "ClusterBaseModel",
            "metadata": {"name": name},
            "spec": {"storage": {"storageUri": f"hf://{repo}", **storage}},
        },
    )


def create_base_model(release: Release, namespace: str, name: str, **storage: Any) -> None:
    """A BaseModel ``name`` in ``namespace`` whose ``spec.storage`` is ``storage``."""
    release.node.custom().create_namespaced_custom_object(
        "ome.io",
        "v1beta1",
        namespace,
        "basemodels",
        {
            "apiVersion": "ome.io/v1beta1",
            "kind": "BaseModel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"storage": storage},
        },
    )


def create_ready_model(
    release: Release, repo: str, **storage: Any
) -> tuple[str, Path, dict[str, Any]]:
    """A ClusterBaseModel of ``repo`` from the local Hub (``storage``: more of its
    ``spec.storage``), waited for until Ready; its name, files and status."""
    name = unique_name(repo.rsplit("/", 1)[-1])
    create_cluster_model(release, name, repo, **storage)
    status = wait_until(
        lambda: (
            (s := (cluster_model(release, name) or {}).get("status", {})).get("state") == "Ready"
            and s
        ),
        timeout=300,
        interval=1,
        what=f"{name} Ready; agent says:\n{agent_logs(release)}",
    )
    entry = node_entry(release, f"clusterbasemodel.{name}")
    assert entry is not None
    return name, Path(entry["path"]), status


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    node = getattr(item, "funcargs", {}).get("real_node")
    if node is None and "release" in getattr(item, "funcargs", {}):
        node = item.funcargs["release"].node  # type: ignore[attr-defined]
    if report.failed and node is not None:
        report.sections.append(("real node logs", node.logs()))
        report.sections.append(
            ("pods", node.kubectl("get", "pods", "-A", "-o", "wide", check=False))
        )
