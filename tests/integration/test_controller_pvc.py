"""``pvc://`` models through the controller on the real API server.

What the API server alone can show: the claim's phase read through the informer,
the inspection Job created when the claim is Bound (with the claim mounted
read-only), the status and spec back-fill written from the Pod's result, and the
Job deleted afterwards. No kube-controller-manager and no kubelet run here, so the
test does their part by hand, as they would: it sets the claim's phase (the volume
binder), creates the Job's Pod (the Job controller) and writes the Pod's terminated
state with the inspection's JSON as termination message (the kubelet).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ome_agent.fleet.pvc import LABEL_MODEL_UID
from tests.cluster.kube import Cluster, unique_name
from tests.integration.agent_process import API, namespaced_model
from tests.integration.controller_process import (
    ControllerProcess,
    condition,
    controller_in,
    model_object,
    release_finalizers,
    status_of,
    status_when,
    wait_for,
)

IMAGE = "registry.example/ome-agent:test"
CONFIG = {
    "modelType": "llama",
    "modelArchitecture": "LlamaForCausalLM",
    "maxTokens": 8192,
    "modelParameterSize": "8.03B",
    "modelFormat": {"name": "safetensors", "version": "1.0.0"},
    "modelFramework": {"name": "transformers", "version": "4.43.0"},
}


@dataclass
class Env:
    cluster: Cluster
    namespace: str
    controller: ControllerProcess

    def status(self, name: str) -> dict[str, Any]:
        return dict(status_of(self.cluster, "BaseModel", name, self.namespace))

    def claim(self, name: str) -> None:
        self.cluster.core.create_namespaced_persistent_volume_claim(
            self.namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "accessModes": ["ReadOnlyMany"],
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
        )

    def set_phase(self, claim: str, phase: str) -> None:
        """As the volume binder would."""
        self.cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{self.namespace}/persistentvolumeclaims/{claim}/status",
            {"status": {"phase": phase}},
            content_type="application/merge-patch+json",
        )

    def jobs(self, uid: str) -> list[dict[str, Any]]:
        listed = self.cluster.request(
            "GET",
            f"/apis/batch/v1/namespaces/{self.namespace}/jobs",
            query=[("labelSelector", f"{LABEL_MODEL_UID}={uid}")],
        )
        return list(listed.get("items") or [])

    def run_pod(self, job: dict[str, Any], *, exit_code: int, message: str) -> None:
        """The Job controller's Pod, then the kubelet's report of its end."""
        name = job["metadata"]["name"]
        template = job["spec"]["template"]
        labels = {
            **template["metadata"]["labels"],
            "job-name": name,
            "batch.kubernetes.io/job-name": name,
        }
        pod = self.cluster.core.create_namespaced_pod(
            self.namespace,
            {"metadata": {"name": f"{name}-x1", "labels": labels}, "spec": template["spec"]},
        )
        container = template["spec"]["containers"][0]
        self.cluster.request(
            "PATCH",
            f"/api/v1/namespaces/{self.namespace}/pods/{pod.metadata.name}/status",
            {
                "status": {
                    "phase": "Succeeded" if exit_code == 0 else "Failed",
                    "containerStatuses": [
                        {
                            "name": container["name"],
                            "image": container["image"],
                            "imageID": "",
                            "ready": False,
                            "restartCount": 0,
                            "state": {
                                "terminated": {
                                    "exitCode": exit_code,
                                    "reason": "Completed" if exit_code == 0 else "Error",
                                    "message": message,
                                }
                            },
                        }
                    ],
                }
            },
            content_type="application/merge-patch+json",
        )

    def logs(self) -> str:
        return self.controller.log()[-3000:]


@pytest.fixture(scope="module")
def env(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    work = tmp_path_factory.mktemp("controller-pvc")
    namespace = cluster.make_namespace()
    # the ServiceAccount admission needs it for the Pods (no token controller here)
    cluster.apply(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        namespace,
    )
    controller = controller_in(
        cluster, namespace, Path(work), "controller-pvc", ("--pvc-inspect-image", IMAGE)
    ).start()
    controller.wait_leading()
    try:
        yield Env(cluster, namespace, controller)
    finally:
        code = controller.stop()
        release_finalizers(cluster)
        assert code == 0, controller.log()


def test_claim_bound_inspected_ready_backfilled_job_cleaned(env: Env) -> None:
    claim, name = unique_name("claim"), unique_name("onpvc")
    env.claim(claim)
    created = env.cluster.apply(namespaced_model(env.namespace, name, f"pvc://{claim}/llama"))
    uid = created["metadata"]["uid"]

    pending = wait_for(
        lambda: (s := env.status(name)).get("state") and s, 15, f"status:\n{env.logs()}"
    )
    assert pending["state"] == "In_Transit"
    assert condition(pending, "Ready")["reason"] == "ClaimPending"
    assert env.jobs(uid) == []  # nothing to read before the claim is bound

    env.set_phase(claim, "Bound")
    (job,) = wait_for(lambda: env.jobs(uid), 15, f"inspection Job:\n{env.logs()}")
    pod_spec = job["spec"]["template"]["spec"]
    (volume,) = [v for v in pod_spec["volumes"] if "persistentVolumeClaim" in v]
    assert volume["persistentVolumeClaim"] == {"claimName": claim, "readOnly": True}
    container = pod_spec["containers"][0]
    assert container["image"] == IMAGE
    assert "/model/llama" in container["command"]
    assert container["securityContext"]["runAsNonRoot"] is True
    wait_for(
        lambda: condition(env.status(name), "Ready").get("reason") == "Inspecting", 10, "Inspecting"
    )

    env.run_pod(job, exit_code=0, message=json.dumps(CONFIG))
    ready = status_when(env.status, name, "state", "Ready", 15, f"Ready:\n{env.logs()}")
    assert ready["lifecycle"] == "Ready"
    spec = wait_for(
        lambda: (
            (o := model_object(env.cluster, "BaseModel", name, env.namespace))["spec"].get(
                "modelArchitecture"
            )
            and o["spec"]
        ),
        10,
        "back-fill",
    )
    assert spec["modelType"] == "llama"
    assert spec["maxTokens"] == 8192
    wait_for(lambda: env.jobs(uid) == [], 10, "Job deleted")
    # the back-fill's new generation is observed, and no new Job is made for it
    wait_for(
        lambda: (
            env.status(name).get("observedGeneration")
            == model_object(env.cluster, "BaseModel", name, env.namespace)["metadata"]["generation"]
        ),
        10,
        "observedGeneration",
    )
    assert env.status(name)["state"] == "Ready"
    assert env.jobs(uid) == []

    env.cluster.delete(API, "BaseModel", name, env.namespace)
    wait_for(
        lambda: model_object(env.cluster, "BaseModel", name, env.namespace) is None,
        15,
        "deleted",
    )


def test_failed_inspection_missing_claim_and_foreign_namespace(env: Env) -> None:
    claim, broken = unique_name("claim"), unique_name("broken")
    env.claim(claim)
    env.set_phase(claim, "Bound")
    created = env.cluster.apply(namespaced_model(env.namespace, broken, f"pvc://{claim}/x"))
    (job,) = wait_for(lambda: env.jobs(created["metadata"]["uid"]), 15, "Job")
    env.run_pod(job, exit_code=1, message="config.json: not found in /model/x")
    failed = status_when(env.status, broken, "state", "Failed", 15, env.logs())
    assert "config.json: not found" in condition(failed, "Degraded")["message"]
    wait_for(lambda: env.jobs(created["metadata"]["uid"]) == [], 10, "failed Job deleted")

    missing = unique_name("missing")
    env.cluster.apply(namespaced_model(env.namespace, missing, "pvc://no-such-claim/m"))
    failed = status_when(env.status, missing, "state", "Failed", 15, env.logs())
    assert condition(failed, "Ready")["reason"] == "ClaimNotFound"
    assert "no-such-claim" in condition(failed, "Ready")["message"]

    foreign = unique_name("foreign")
    env.cluster.apply(namespaced_model(env.namespace, foreign, f"pvc://other:{claim}/m"))
    failed = status_when(env.status, foreign, "state", "Failed", 15, env.logs())
    message = condition(failed, "Degraded")["message"]
    assert "spec.storage.storageUri" in message
    assert "own namespace" in message
    for name in (broken, missing, foreign):
        env.cluster.delete(API, "BaseModel", name, env.namespace)
    env.cluster.core.delete_namespaced_persistent_volume_claim(claim, env.namespace)
