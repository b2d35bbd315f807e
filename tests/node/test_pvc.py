"""A pvc:// BaseModel on a real PersistentVolume (hostPath), on a real kubelet: the
claim is bound by kube-controller-manager's volume binder, the controller's
inspection Job becomes a Pod through the Job controller, the kubelet runs it with the
claim mounted read-only and writes its termination message (the discovered config),
and the controller turns that into the model's status (Ready, ``ClaimReady``, no
node fields) and the spec's back-filled fields. No node agent downloads anything. A
path on the claim with no model in it: the Pod fails, and its termination message
(one line: config.json not found) is what the model's Failed status says.

Where it sits: the real-node tier (marked ``node``), on the chart ``release`` of
``conftest``; the Job is ``ome_agent.fleet.pvc.inspect_job``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ome_agent.fleet.pvc import LABEL_COMPONENT, LABEL_MODEL_UID
from tests.cluster.kube import unique_name, wait_until
from tests.node.conftest import NAMESPACE, Release, create_base_model
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


@dataclass
class Claim:
    namespace: str
    name: str
    volume: Path  # the host folder behind it


@pytest.fixture
def claim(release: Release, tmp_path: Path) -> Iterator[Claim]:
    """A namespace with a claim bound to a hostPath PersistentVolume holding a model in
    ``llama/`` (readable by the Job's non-root user) and an empty ``empty/``."""
    node = release.node
    volume = tmp_path / "volume"
    (volume / "llama").mkdir(parents=True)
    (volume / "empty").mkdir()
    (volume / "llama" / "config.json").write_text(json.dumps(CONFIG))
    (volume / "llama" / "model.safetensors").write_bytes(SHARD)
    for d in (volume, volume / "llama", volume / "empty"):
        d.chmod(0o755)
    for f in (volume / "llama").iterdir():
        f.chmod(0o644)
    namespace, pv = unique_name("pvc-ns"), unique_name("pv")
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
                "metadata": {"name": "models"},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "storageClassName": "manual",
                    "volumeName": pv,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )
        yield Claim(namespace, "models", volume)
    finally:
        node.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        node.kubectl("delete", "pv", pv, "--wait=false", check=False)


def create_model(release: Release, claim: Claim, name: str, sub: str) -> None:
    create_base_model(release, claim.namespace, name, storageUri=f"pvc://{claim.name}/{sub}")


def created(
    release: Release, claim: Claim, prefix: str, sub: str, state: str
) -> tuple[str, dict[str, Any], float, dict[str, Any]]:
    """A BaseModel of the claim's path ``sub`` created and waited for until ``state``:
    its name, its status, the seconds that took, and its Ready condition."""
    name = unique_name(prefix)
    t0 = time.monotonic()
    create_model(release, claim, name, sub)
    status = wait_state(release, claim, name, state)
    seconds = time.monotonic() - t0
    return name, status, seconds, next(c for c in status["conditions"] if c["type"] == "Ready")


def wait_state(release: Release, claim: Claim, name: str, state: str) -> dict[str, Any]:
    status: dict[str, Any] = wait_until(
        lambda: (
            (s := (get_model(release, claim.namespace, name) or {}).get("status", {})).get("state")
            == state
            and s
        ),
        timeout=240,
        interval=1,
        what=(
            f"{name} {state}; controller says:\n{controller_logs(release)}\npods:\n"
            + release.node.kubectl(
                "get", "pods,jobs,pvc", "-n", claim.namespace, "-o", "wide", check=False
            )
        ),
    )
    return status


def inspection_pods(release: Release, claim: Claim, name: str) -> list[Any]:
    model = get_model(release, claim.namespace, name)
    assert model is not None
    selector = f"{LABEL_COMPONENT}=pvc-inspect,{LABEL_MODEL_UID}={model['metadata']['uid']}"
    return list(
        release.node.core().list_namespaced_pod(claim.namespace, label_selector=selector).items
    )


def delete_model(release: Release, claim: Claim, name: str) -> None:
    release.node.custom().delete_namespaced_custom_object(
        "ome.io", "v1beta1", claim.namespace, "basemodels", name
    )
    wait_until(lambda: get_model(release, claim.namespace, name) is None, 120, 1, f"{name} deleted")


def test_pvc_model_is_read_by_an_inspection_job_the_kubelet_runs(
    release: Release, claim: Claim
) -> None:
    node = release.node
    name, status, ready, ready_cond = created(release, claim, "onclaim", "llama", "Ready")
    assert ready_cond["reason"] == "ClaimReady", ready_cond
    assert not status.get("nodesReady")  # on a volume, not on nodes

    # what the kubelet ran and recorded: the inspection Pod, exit 0, the config as its
    # termination message
    (pod,) = inspection_pods(release, claim, name)
    assert pod.spec.node_name == node.name
    (container,) = pod.status.container_statuses
    done = container.state.terminated
    assert done is not None
    assert done.exit_code == 0, done
    config = json.loads(done.message)
    assert config["modelArchitecture"] == CONFIG["architectures"][0], config
    # the controller back-filled the spec from it
    model = get_model(release, claim.namespace, name)
    assert model is not None
    assert model["spec"]["modelArchitecture"] == CONFIG["architectures"][0], model["spec"]
    # no agent downloaded it, no entry or label on the node
    assert not any(k.endswith(f".basemodel.{name}") for k in node.node_labels())
    print(f"pvc:// model Ready through the inspection Job in {ready:.1f}s")

    delete_model(release, claim, name)
    # the claim's files are the user's: the model's deletion leaves them
    assert (claim.volume / "llama" / "model.safetensors").read_bytes() == SHARD


def test_pvc_path_with_no_model_fails_naming_what_is_missing(
    release: Release, claim: Claim
) -> None:
    """The inspection Pod fails; its termination message (the reason, one line) is what
    the model's status says."""
    name, _, said, ready_cond = created(release, claim, "nomodel", "empty", "Failed")
    assert ready_cond["reason"] == "InspectionFailed", ready_cond
    assert f"reading the model on {claim.namespace}/{claim.name} failed" in ready_cond["message"]
    assert "config.json: not found in the model directory" in ready_cond["message"], ready_cond
    for pod in inspection_pods(release, claim, name):
        (container,) = pod.status.container_statuses
        done = container.state.terminated
        assert done is not None
        assert done.exit_code == 1, done
        assert done.message.startswith("config.json: not found"), done.message
        assert "\n" not in done.message
    print(f"pvc:// path with no model Failed, naming config.json, in {said:.1f}s")
    delete_model(release, claim, name)
