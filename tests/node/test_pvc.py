"""A pvc:// BaseModel on a real PersistentVolume (hostPath), on a real kubelet: the
claim is bound by kube-controller-manager's volume binder, the controller's
inspection Job becomes a Pod through the Job controller, the kubelet runs it with the
claim mounted read-only and writes its termination message (the discovered config),
and the controller turns that into the model's status (Ready, ``ClaimReady``, no
node fields) and the spec's back-filled fields. No node agent downloads anything.

Where it sits: the real-node tier (marked ``node``), on the chart ``release`` of
``conftest``; the Job is ``ome_agent.fleet.pvc.inspect_job``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ome_agent.fleet.pvc import LABEL_COMPONENT, LABEL_MODEL_UID
from tests.cluster.kube import unique_name, wait_until
from tests.node.conftest import NAMESPACE, Release
from tests.node.test_smoke import CONFIG, SHARD

pytestmark = pytest.mark.node


def controller_logs(release: Release) -> str:
    return release.node.kubectl(
        "-n", NAMESPACE, "logs", "-l", "app.kubernetes.io/component=controller", "--tail=40",
        check=False,
    )  # fmt: skip


def get_model(release: Release, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = release.node.custom().get_namespaced_custom_object(
            "ome.io", "v1beta1", namespace, "basemodels", name
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return obj


def test_pvc_model_is_read_by_an_inspection_job_the_kubelet_runs(
    release: Release, tmp_path: Path
) -> None:
    node = release.node
    # the volume: a host folder, readable by the Job's non-root user
    volume = tmp_path / "volume"
    (volume / "llama").mkdir(parents=True)
    (volume / "llama" / "config.json").write_text(json.dumps(CONFIG))
    (volume / "llama" / "model.safetensors").write_bytes(SHARD)
    for p in (volume, volume / "llama"):
        p.chmod(0o755)
    for p in (volume / "llama").iterdir():
        p.chmod(0o644)
    namespace, pv, claim, name = (
        unique_name("pvc-ns"),
        unique_name("pv"),
        "models",
        unique_name("onclaim"),
    )
    node.kubectl("create", "namespace", namespace)
    try:
        core = node.core()
        core.create_persistent_volume(
            {
                "metadata": {"name": pv},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadOnlyMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": "manual",
                    "hostPath": {"path": str(volume), "type": "Directory"},
                },
            }
        )
        core.create_namespaced_persistent_volume_claim(
            namespace,
            {
                "metadata": {"name": claim},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "manual",
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        t0 = time.monotonic()
        node.custom().create_namespaced_custom_object(
            "ome.io", "v1beta1", namespace, "basemodels",
            {
                "apiVersion": "ome.io/v1beta1",
                "kind": "BaseModel",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {"storage": {"storageUri": f"pvc://{claim}/llama"}},
            },
        )  # fmt: skip
        status = wait_until(
            lambda: (
                (s := (get_model(release, namespace, name) or {}).get("status", {})).get("state")
                == "Ready"
                and s
            ),
            timeout=240,
            interval=1,
            what=(
                f"{name} Ready; controller says:\n{controller_logs(release)}\npods:\n"
                + node.kubectl("get", "pods,jobs,pvc", "-n", namespace, "-o", "wide", check=False)
            ),
        )
        ready = time.monotonic() - t0
        ready_cond = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready_cond["reason"] == "ClaimReady", ready_cond
        assert not status.get("nodesReady")  # on a volume, not on nodes

        # what the kubelet ran and recorded: the inspection Pod, exit 0, the config as
        # its termination message
        model = get_model(release, namespace, name)
        assert model is not None
        uid = model["metadata"]["uid"]
        (pod,) = core.list_namespaced_pod(
            namespace, label_selector=f"{LABEL_COMPONENT}=pvc-inspect,{LABEL_MODEL_UID}={uid}"
        ).items
        assert pod.spec.node_name == node.name
        (container,) = pod.status.container_statuses
        done = container.state.terminated
        assert done is not None
        assert done.exit_code == 0, done
        config = json.loads(done.message)
        assert config["modelArchitecture"] == CONFIG["architectures"][0], config
        # the controller back-filled the spec from it
        assert model["spec"]["modelArchitecture"] == CONFIG["architectures"][0], model["spec"]
        # no agent downloaded it, no entry or label on the node
        assert not any(k.endswith(f".basemodel.{name}") for k in node.node_labels())
        print(f"pvc:// model Ready through the inspection Job in {ready:.1f}s")

        node.custom().delete_namespaced_custom_object(
            "ome.io", "v1beta1", namespace, "basemodels", name
        )
        wait_until(lambda: get_model(release, namespace, name) is None, 120, 1, f"{name} deleted")
        # the claim's files are the user's: the model's deletion leaves them
        assert (volume / "llama" / "model.safetensors").read_bytes() == SHARD
    finally:
        node.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        node.kubectl("delete", "pv", pv, "--wait=false", check=False)
