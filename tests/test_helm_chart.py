"""deploy/helm/ome-agent: the chart lints, renders what deploy/ installs (same
containers, arguments, RBAC rules and admission policy, the names and namespace
templated), honours its values, and every rendered object is accepted by the real
API server.

The `helm` binary is the pinned one scripts/build-helm.sh builds from the Go module
proxy into .cache/helm/<version>/; the fixture runs the script, which returns at once
when the binary is there. The ServiceMonitor is checked as rendered; it is applied only
where the API server has the Prometheus Operator's CRD, which the session's server
does not: there it is left out of the apply (see ``_apply_all``).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from tests.cluster.kube import CRD_DIR, DEPLOY_DIR, Cluster, load_manifests, unique_name

CHART = DEPLOY_DIR / "helm" / "ome-agent"
BUILD_HELM = DEPLOY_DIR.parent / "scripts" / "build-helm.sh"
GV = "ome.io/v1beta1"

# agents only on GPU nodes, scraped by the Prometheus Operator, no controller
OVERRIDES: dict[str, Any] = {
    "agent": {
        "nodeSelector": {"nvidia.com/gpu.present": "true"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "models"}],
        "modelsRootDirs": ["/mnt/nvme/models", "/mnt/models"],
        "extraArgs": ["--verify-interval=3600"],
    },
    "controller": {"enabled": False},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
}


@pytest.fixture(scope="session")
def helm() -> Path:
    """The pinned helm binary (built on first use; a few minutes cold)."""
    out = subprocess.run(
        [str(BUILD_HELM)], capture_output=True, text=True, timeout=1800, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return Path(out.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def values_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("helm") / "overrides.yaml"
    path.write_text(yaml.safe_dump(OVERRIDES))
    return path


Render = Callable[..., list[dict[str, Any]]]


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """`helm template` of the chart (CRDs included) → the parsed documents."""

    def run(release: str, namespace: str, values: Path | None = None) -> list[dict[str, Any]]:
        cmd = [str(helm), "template", release, str(CHART), "--namespace", namespace]
        cmd += ["--include-crds"] + (["--values", str(values)] if values else [])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]

    return run


def _one(docs: list[dict[str, Any]], kind: str, component: str | None = None) -> dict[str, Any]:
    (found,) = [
        d
        for d in docs
        if d["kind"] == kind
        and component in (None, d["metadata"].get("labels", {}).get("app.kubernetes.io/component"))
    ]
    return found


def _kinds(docs: list[dict[str, Any]]) -> list[str]:
    return sorted(d["kind"] for d in docs)


def _container(workload: dict[str, Any]) -> dict[str, Any]:
    (c,) = workload["spec"]["template"]["spec"]["containers"]
    assert isinstance(c, dict)
    return c


def _params(args: list[str], command: str = "run") -> dict[str, Any]:
    """The container's arguments as `ome-agent <command>` parses them (the kubelet
    expands $(POD_NAMESPACE) first)."""
    from ome_agent.cli.controller import controller
    from ome_agent.cli.run import run

    assert args[0] == command
    expanded = [a.replace("$(POD_NAMESPACE)", "ome") for a in args[1:]]
    cli = {"run": run, "controller": controller}[command]
    params: dict[str, Any] = cli.make_context(command, expanded).params
    return params


# container fields the chart renders exactly as deploy/ has them, for both workloads
SAME_CONTAINER_FIELDS = (
    "command",
    "terminationMessagePolicy",
    "ports",
    "livenessProbe",
    "readinessProbe",
    "resources",
    "securityContext",
)


def _assert_same_rbac(
    docs: list[dict[str, Any]], manifests: list[dict[str, Any]], component: str
) -> None:
    for kind in ("ClusterRole", "Role"):
        assert _one(docs, kind, component)["rules"] == _one(manifests, kind)["rules"], kind
    for kind in ("ClusterRoleBinding", "RoleBinding"):
        got, exp = _one(docs, kind, component), _one(manifests, kind)
        assert (got["roleRef"], got["subjects"]) == (exp["roleRef"], exp["subjects"]), kind


# ------------------------------------------------------------------ offline checks


def test_lint(helm: Path, values_file: Path) -> None:
    for extra in ([], ["--values", str(values_file)]):
        out = subprocess.run(
            [str(helm), "lint", "--strict", str(CHART), *extra],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr


def _documented_keys(values_yaml: str) -> dict[str, bool]:
    """Dotted path of every key in values.yaml (down to where values are free
    Kubernetes objects) → whether a comment line sits right above it."""
    found: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in values_yaml.splitlines():
        stripped = line.strip()
        key, colon, _ = stripped.partition(":")
        if colon and stripped[0].isalpha() and " " not in key:
            indent = len(line) - len(line.lstrip())
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, key)]
            found[".".join(k for _, k in stack)] = previous.startswith("#")
        if stripped:
            previous = stripped
    return found


def _schema_leaves(schema: dict[str, Any], prefix: str = "") -> list[str]:
    leaves = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        leaves += _schema_leaves(sub, f"{path}.") if "properties" in sub else [path]
    return leaves


def test_every_value_documented_and_in_the_schema() -> None:
    keys = _documented_keys((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    leaves = [k for k in _schema_leaves(schema) if k != "global"]
    assert sorted(set(leaves) - keys.keys()) == []  # in the schema, not in values.yaml
    undocumented = [k for k in leaves if not keys[k]]
    assert undocumented == []


def test_crds_identical_to_deploy() -> None:
    """crds/ is a copy (Helm packages only the chart folder); they never drift."""
    chart = {p.name: p.read_bytes() for p in (CHART / "crds").iterdir()}
    deploy = {p.name: p.read_bytes() for p in CRD_DIR.glob("*.yaml")}
    assert chart.keys() == deploy.keys()
    for name, body in deploy.items():
        assert chart[name] == body, f"copy deploy/crds/{name} to {CHART / 'crds'}"


def test_default_render(render: Render) -> None:
    docs = render("ome-agent", "ome")
    assert _kinds(docs) == sorted(
        ["CustomResourceDefinition"] * 3
        + ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"] * 2
        + ["ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"]
        + ["DaemonSet", "Deployment"]
    )
    assert [d for d in docs if d["kind"] == "CustomResourceDefinition"] == load_manifests([CRD_DIR])
    for d in docs:
        namespaced = d["kind"] in ("ServiceAccount", "Role", "RoleBinding", "DaemonSet")
        if namespaced or d["kind"] == "Deployment":
            assert d["metadata"]["namespace"] == "ome", d["metadata"]["name"]


def test_agent_mirrors_deploy_manifests(render: Render) -> None:
    """Released as `ome-agent` into `ome`, the chart's agent is deploy/agent/: the same
    container (arguments compared as parsed options), pod settings, RBAC rules and
    admission policy."""
    docs = render("ome-agent", "ome")
    manifests = load_manifests([DEPLOY_DIR / "agent"])

    ds, want_ds = _one(docs, "DaemonSet"), _one(manifests, "DaemonSet")
    c, want = _container(ds), _container(want_ds)
    assert _params(c["args"]) == _params(want["args"])
    assert "--health-address=0.0.0.0" in c["args"]  # explicit, as in deploy/agent/
    # a start-up error line becomes the container's termination message
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    for field in ("env", *SAME_CONTAINER_FIELDS):
        assert c[field] == want[field], field
    pod, want_pod = ds["spec"]["template"]["spec"], want_ds["spec"]["template"]["spec"]
    for field in ("serviceAccountName", "terminationGracePeriodSeconds", "tolerations"):
        assert pod[field] == want_pod[field], field
    assert "nodeSelector" not in pod  # every node unless the operator opts in
    assert ds["spec"]["updateStrategy"] == want_ds["spec"]["updateStrategy"]
    annotations = ds["spec"]["template"]["metadata"]["annotations"]
    assert annotations == want_ds["spec"]["template"]["metadata"]["annotations"]
    assert c["volumeMounts"] == want["volumeMounts"]
    assert pod["volumes"] == want_pod["volumes"]

    _assert_same_rbac(docs, manifests, "node-agent")
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        assert _one(docs, kind)["spec"] == _one(manifests, kind)["spec"], kind


def test_controller_mirrors_deploy_manifests(render: Render) -> None:
    """Released as `ome-agent` into `ome`, the chart's controller is deploy/controller/."""
    docs = render("ome-agent", "ome")
    manifests = load_manifests([DEPLOY_DIR / "controller"])

    dep, want_dep = _one(docs, "Deployment"), _one(manifests, "Deployment")
    assert dep["metadata"]["name"] == want_dep["metadata"]["name"]
    assert dep["spec"]["replicas"] == want_dep["spec"]["replicas"] == 2
    c, want = _container(dep), _container(want_dep)
    assert _params(c["args"], "controller") == _params(want["args"], "controller")
    assert "--health-address=0.0.0.0" in c["args"]  # explicit, as in deploy/controller/
    # the pvc:// inspection Jobs run the controller's own image
    env = {e["name"]: e for e in c["env"]}
    assert env.pop("OME_AGENT_IMAGE")["value"] == c["image"]
    want_env = {e["name"]: e for e in want["env"] if e["name"] != "OME_AGENT_IMAGE"}
    assert env == want_env
    for field in SAME_CONTAINER_FIELDS:
        assert c[field] == want[field], field
    pod, want_pod = dep["spec"]["template"]["spec"], want_dep["spec"]["template"]["spec"]
    for field in ("serviceAccountName", "terminationGracePeriodSeconds"):
        assert pod[field] == want_pod[field], field
    annotations = dep["spec"]["template"]["metadata"]["annotations"]
    assert annotations == want_dep["spec"]["template"]["metadata"]["annotations"]
    # the standby on another node when it can; the selector names the release too
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"] == dep["spec"]["selector"]

    _assert_same_rbac(docs, manifests, "controller")
    # agent and controller pods are told apart by their selectors
    ds = _one(docs, "DaemonSet")
    assert dep["spec"]["selector"] != ds["spec"]["selector"]
    assert dep["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "controller"


def test_names_follow_the_release(render: Render) -> None:
    docs = render("rel", "models")
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    assert ("Deployment", "rel-ome-agent-controller") in names
    assert ("DaemonSet", "rel-ome-agent") in names
    assert ("ValidatingAdmissionPolicy", "rel-ome-agent-node-labels") in names
    policy = _one(docs, "ValidatingAdmissionPolicy")
    (match,) = policy["spec"]["matchConditions"]
    assert "'system:serviceaccount:models:rel-ome-agent'" in match["expression"]
    binding = _one(docs, "ClusterRoleBinding", "controller")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "rel-ome-agent-controller", "namespace": "models"}
    ]


def test_overrides_render(render: Render, values_file: Path) -> None:
    docs = render("gpu", "ome", values_file)
    assert "Deployment" not in _kinds(docs)
    components = {d["metadata"].get("labels", {}).get("app.kubernetes.io/component") for d in docs}
    assert "controller" not in components
    ds = _one(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == OVERRIDES["agent"]["nodeSelector"]
    assert pod["tolerations"] == OVERRIDES["agent"]["tolerations"]
    params = _params(_container(ds)["args"])
    assert params["models_roots"] == ("/mnt/nvme/models", "/mnt/models")
    assert params["verify_interval"] == 3600
    mounts = {m["mountPath"]: m["name"] for m in _container(ds)["volumeMounts"]}
    host = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["volumes"]}
    assert {p: host[n] for p, n in mounts.items() if host[n]} == {
        "/mnt/nvme/models": "/mnt/nvme/models",
        "/mnt/models": "/mnt/models",
    }

    # the ServiceMonitor finds the agent's metrics Service, which finds the agent pods
    monitor, service = _one(docs, "ServiceMonitor"), _one(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["ome"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    (port,) = service["spec"]["ports"]
    assert endpoint["port"] == port["name"] == _container(ds)["ports"][0]["name"]
    assert (
        service["spec"]["selector"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    )


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "agent.serviceAccount.create=false",
            "agent.serviceAccount.name: set the name of an existing ServiceAccount",
        ),
        ("agent.modelsRootDirs=[]", "at '/agent/modelsRootDirs': minItems"),
        ('agent.modelsRootDirs=["models"]', "at '/agent/modelsRootDirs/0'"),
        ('agent.nodeselector={"gpu":"true"}', "at '/agent': additional properties 'nodeselector'"),
        ('agent.healthPort="8080"', "at '/agent/healthPort': got string, want integer"),
        ('controller.finalizerTimeout="10 minutes"', "at '/controller/finalizerTimeout'"),
        ('agent.logLevel="verbose"', "at '/agent/logLevel'"),
    ],
    ids=lambda v: v.split("=")[0] if "=" in v else None,
)
def test_bad_values_are_one_clear_error(helm: Path, setting: str, message: str) -> None:
    """A wrong value is refused before anything is rendered, the value named
    (values.schema.json, or a template's own check)."""
    out = subprocess.run(
        [str(helm), "template", "x", str(CHART), "--set-json", setting],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert message in out.stderr
    assert "goroutine" not in out.stderr


# ------------------------------------------------------------------ real API server


def _apply_all(cluster: Cluster, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Server-side apply of every document. A ServiceMonitor only when the API server
    has the Prometheus Operator's CRD, as on a real install; the session's server has
    none, so there it is left out (its rendering is checked in test_overrides_render)."""
    crds = cluster.request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")
    monitors = "servicemonitors.monitoring.coreos.com" in {
        c["metadata"]["name"] for c in crds["items"]
    }
    return [cluster.apply(d) for d in docs if monitors or d["kind"] != "ServiceMonitor"]


def test_applied_to_api_server(
    cluster: Cluster, render: Render, values_file: Path, kube_namespace: str
) -> None:
    release = unique_name("rel")
    stored = _apply_all(cluster, render(release, kube_namespace))
    assert len(stored) == 17
    second = cluster.make_namespace()
    gpu = unique_name("gpu")
    stored_gpu = _apply_all(cluster, render(gpu, second, values_file))
    assert _kinds(stored_gpu).count("Service") == 1

    ds = cluster.get("apps/v1", "DaemonSet", f"{release}-ome-agent", kube_namespace)
    assert _container(ds)["args"][0] == "run"
    dep = cluster.get("apps/v1", "Deployment", f"{release}-ome-agent-controller", kube_namespace)
    assert dep["spec"]["replicas"] == 2
    gpu_ds = cluster.get("apps/v1", "DaemonSet", f"{gpu}-ome-agent", second)
    assert gpu_ds["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}

    agent = f"system:serviceaccount:{kube_namespace}:{release}-ome-agent"
    controller = f"system:serviceaccount:{kube_namespace}:{release}-ome-agent-controller"
    checks = {
        (agent, "patch", "nodes", "", None, ""): True,
        (agent, "create", "configmaps", "", kube_namespace, ""): True,
        (agent, "create", "configmaps", "", second, ""): False,
        (agent, "patch", "clusterbasemodels", "ome.io", None, "status"): False,
        (controller, "patch", "clusterbasemodels", "ome.io", None, "status"): True,
        (controller, "patch", "basemodels", "ome.io", "team-a", ""): True,
        (controller, "update", "leases", "coordination.k8s.io", kube_namespace, ""): True,
        (controller, "delete", "configmaps", "", kube_namespace, ""): True,
        (controller, "get", "secrets", "", kube_namespace, ""): False,
        (controller, "patch", "nodes", "", None, ""): False,
    }
    got = {
        key: cluster.can(key[0], key[1], key[2], group=key[3], namespace=key[4], subresource=key[5])
        for key in checks
    }
    assert got == checks


def test_wide_printer_columns(cluster: Cluster) -> None:
    """`kubectl get cbm -o wide` answers "is it ready, where": counts, node names and
    the Ready condition's message."""
    name = unique_name("m")
    stored = cluster.create(
        {
            "apiVersion": GV,
            "kind": "ClusterBaseModel",
            "metadata": {"name": name},
            "spec": {"vendor": "meta", "modelParameterSize": "8.03B"},
        }
    )
    stored["status"] = {
        "state": "Ready",
        "nodesReady": ["a", "b"],
        "nodesFailed": ["c"],
        "eligibleNodeCount": 4,
        "readyNodeCount": 2,
        "failedNodeCount": 1,
        "conditions": [
            {
                "type": "Progressing",
                "status": "True",
                "reason": "Downloading",
                "message": "1 node downloading",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
            {
                "type": "Ready",
                "status": "False",
                "reason": "NodesNotReady",
                "message": "2/4 nodes ready: a, b",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
            },
        ],
    }
    path = cluster.path(GV, "ClusterBaseModel", None, name)
    cluster.request("PUT", path + "/status", stored)
    table = cluster.request("GET", path, accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    cells = dict(
        zip(
            [c["name"] for c in table["columnDefinitions"]],
            table["rows"][0]["cells"],
            strict=True,
        )
    )
    assert {k: cells[k] for k in ("State", "Ready", "Eligible", "Failed", "Nodes")} == {
        "State": "Ready",
        "Ready": 2,
        "Eligible": 4,
        "Failed": 1,
        "Nodes": "2/4 nodes ready: a, b",
    }


def test_helm_install_upgrade_uninstall(
    cluster: Cluster, helm: Path, values_file: Path, kube_namespace: str
) -> None:
    """The release life cycle through Helm itself: install (the CRDs exist already,
    Helm leaves them), upgrade to the overrides (the controller goes; the
    ServiceMonitor only where its CRD exists), uninstall (everything of the release
    goes, the CRDs stay)."""
    release = unique_name("rel")
    base = [str(helm), "--kubeconfig", str(cluster.admin_kubeconfig), "-n", kube_namespace]

    def run(*args: str, ok: bool = True) -> str:
        out = subprocess.run(
            [*base, *args], capture_output=True, text=True, timeout=120, check=False
        )
        assert (out.returncode == 0) is ok, out.stdout + out.stderr
        return out.stdout + out.stderr

    def workloads() -> set[tuple[str, str]]:
        found = set()
        for kind, plural in (("DaemonSet", "daemonsets"), ("Deployment", "deployments")):
            items = cluster.request("GET", f"/apis/apps/v1/namespaces/{kube_namespace}/{plural}")
            found |= {(kind, i["metadata"]["name"]) for i in items["items"]}
        return found

    run("install", release, str(CHART))
    assert workloads() == {
        ("DaemonSet", f"{release}-ome-agent"),
        ("Deployment", f"{release}-ome-agent-controller"),
    }
    # a ServiceMonitor without the Prometheus Operator's CRD: refused, and said why
    refused = run("upgrade", release, str(CHART), "--values", str(values_file), ok=False)
    assert 'no matches for kind "ServiceMonitor"' in refused
    no_monitor = ["--set", "metrics.serviceMonitor.enabled=false"]
    run("upgrade", release, str(CHART), "--values", str(values_file), *no_monitor)
    assert workloads() == {("DaemonSet", f"{release}-ome-agent")}
    ds = cluster.get("apps/v1", "DaemonSet", f"{release}-ome-agent", kube_namespace)
    assert ds["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert "STATUS: deployed" in run("status", release)
    run("uninstall", release)
    assert workloads() == set()
    with pytest.raises(ApiException) as gone:
        cluster.get("rbac.authorization.k8s.io/v1", "ClusterRole", f"{release}-ome-agent")
    assert gone.value.status == 404
    assert cluster.get("apiextensions.k8s.io/v1", "CustomResourceDefinition", "basemodels.ome.io")
