"""pvc:// models: URI rules, the inspection Job (accepted by a real API server), its
result, and the status written from the claim's phase."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from ome_agent.api import ModelResource, parse_resource
from ome_agent.cli.inspect import inspect as inspect_command
from ome_agent.errors import BadInput
from ome_agent.fleet.pvc import PvcRef, inspect_job, job_name, job_result, parse_pvc_uri, pvc_status
from tests.cluster.kube import Cluster

NOW = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
CONFIG = {"modelType": "llama", "maxTokens": 8192}


def resource(
    uri: str, *, kind: str = "BaseModel", namespace: str = "team-a", **spec: Any
) -> ModelResource:
    meta: dict[str, Any] = {
        "name": "llama",
        "uid": "0f7c5a3e-1b2d-4c5e-8f9a-0123456789ab",
        "generation": 2,
    }
    if kind == "BaseModel":
        meta["namespace"] = namespace
    storage = {"storageUri": uri, **spec}
    return parse_resource({"kind": kind, "metadata": meta, "spec": {"storage": storage}})


def claim(phase: str | None, name: str = "models", namespace: str = "team-a") -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": name, "namespace": namespace}}
    if phase is not None:
        obj["status"] = {"phase": phase}
    return obj


@pytest.mark.parametrize(
    ("uri", "kind", "expected"),
    [
        ("pvc://models/llama/3-70b", "BaseModel", PvcRef("team-a", "models", "llama/3-70b")),
        ("pvc://team-a:models/llama", "BaseModel", PvcRef("team-a", "models", "llama")),
        ("pvc://models", "BaseModel", PvcRef("team-a", "models", "")),
        ("pvc://models//a/./b/", "BaseModel", PvcRef("team-a", "models", "a/b")),
        ("pvc://models/llama", "ClusterBaseModel", PvcRef("ome", "models", "llama")),
        ("pvc://store:models/llama", "ClusterBaseModel", PvcRef("store", "models", "llama")),
    ],
)
def test_parse_pvc_uri(uri: str, kind: str, expected: PvcRef) -> None:
    assert parse_pvc_uri(uri, resource(uri, kind=kind), "ome") == expected


def test_basemodel_may_not_name_another_namespace() -> None:
    uri = "pvc://other:models/llama"
    with pytest.raises(BadInput) as e:
        parse_pvc_uri(uri, resource(uri), "ome")
    message = str(e.value)
    assert "spec.storage.storageUri" in message
    assert "own namespace 'team-a'" in message


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        ("pvc://Models/x", "not a claim name"),
        ("pvc:///x", "not a claim name"),
        ("pvc://Bad_NS:models/x", "not a namespace name"),
        ("pvc://models/../etc", "'..' would leave the claim"),
        ("hf://a/b", "not a pvc:// URI"),
    ],
)
def test_bad_uris_name_the_field(uri: str, words: str) -> None:
    with pytest.raises(BadInput) as e:
        parse_pvc_uri(uri, resource(uri, kind="ClusterBaseModel"), "ome")
    assert words in str(e.value)
    assert "spec.storage.storageUri" in str(e.value)


def test_inspect_job_shape() -> None:
    model = resource("pvc://models/llama", schemaPath="configs/config.json")
    ref = parse_pvc_uri("pvc://models/llama", model, "ome")
    job = inspect_job(ref, model, image="ghcr.io/x/ome-agent:1", job_name="inspect-llama")
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["labels"]["ome.io/model-uid"] == model.uid
    spec = job["spec"]
    assert spec["backoffLimit"] == 1
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["activeDeadlineSeconds"] > 0
    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == [
        "ome-agent",
        "inspect",
        "/model/llama",
        "--json",
        "--termination-log",
        "/dev/termination-log",
        "--schema-path",
        "configs/config.json",
    ]
    # the command is one the image's CLI accepts, and writes where the kubelet reads
    params = inspect_command.make_context("inspect", container["command"][2:]).params
    assert params["termination_log"] == container["terminationMessagePath"]
    assert params["schema_path"] == "configs/config.json"
    assert container["securityContext"]["runAsNonRoot"] is True
    assert {"name": "model", "mountPath": "/model", "readOnly": True} in container["volumeMounts"]
    volume = next(v for v in pod["volumes"] if v["name"] == "model")
    assert volume["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    assert pod["restartPolicy"] == "Never"


def test_inspect_job_accepted_by_the_api_server(cluster: Cluster, kube_namespace: str) -> None:
    uri = f"pvc://{kube_namespace}:models/llama"
    model = resource(uri, namespace=kube_namespace)
    name = job_name(model)  # the namespace is fresh: no clash with earlier runs
    job = inspect_job(
        parse_pvc_uri(uri, model, "ome"), model, image="ome-agent:test", job_name=name
    )
    created = cluster.create(job, namespace=kube_namespace)
    assert created["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"]
    # findable by its labels
    found = cluster.request(
        "GET",
        f"/apis/batch/v1/namespaces/{kube_namespace}/jobs",
        query=[
            (
                "labelSelector",
                f"app.kubernetes.io/component=pvc-inspect,ome.io/model-uid={model.uid}",
            )
        ],
    )
    assert [j["metadata"]["name"] for j in found["items"]] == [name]


def pod(phase: str, state: dict[str, Any] | None = None) -> dict[str, Any]:
    statuses = [{"name": "inspect", "state": state}] if state is not None else []
    return {"status": {"phase": phase, "containerStatuses": statuses}}


def test_job_result_succeeded_reads_the_termination_message() -> None:
    done = pod("Succeeded", {"terminated": {"exitCode": 0, "message": json.dumps(CONFIG)}})
    assert job_result(done) == ("Succeeded", CONFIG, None)


def test_job_result_failed_and_unreadable() -> None:
    failed = pod(
        "Failed",
        {
            "terminated": {
                "exitCode": 2,
                "reason": "Error",
                "message": "error: no config.json in /model/llama\n",
            }
        },
    )
    assert job_result(failed) == (
        "Failed",
        None,
        "Error (exit code 2): error: no config.json in /model/llama",
    )
    garbage = pod("Succeeded", {"terminated": {"exitCode": 0, "message": "not json"}})
    assert job_result(garbage) == ("Failed", None, "the inspection wrote no readable config")


def test_job_result_running_with_waiting_reason() -> None:
    assert job_result(pod("Pending")) == ("Running", None, None)
    pulling = pod("Pending", {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}})
    assert job_result(pulling) == ("Running", None, "ImagePullBackOff: not found")
    assert job_result({}) == ("Running", None, None)


def cond(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_pvc_status_bound_with_config_is_ready() -> None:
    status = pvc_status(
        resource("pvc://models/llama"), claim("Bound"), "Succeeded", CONFIG, None, None, NOW
    )
    assert (status["state"], status["lifecycle"]) == ("Ready", "Ready")
    assert cond(status, "Ready")["status"] == "True"
    assert status["nodesReady"] == []
    assert status["observedGeneration"] == 2


def test_pvc_status_pending_is_in_transit_with_reason() -> None:
    status = pvc_status(
        resource("pvc://models/llama"), claim("Pending"), None, None, None, None, NOW
    )
    assert status["state"] == "In_Transit"
    assert cond(status, "Ready")["reason"] == "ClaimPending"
    assert "team-a/models is Pending" in cond(status, "Ready")["message"]


def test_pvc_status_missing_or_lost_is_failed_naming_the_claim() -> None:
    model = resource("pvc://team-a:models/llama")
    missing = pvc_status(model, None, None, None, None, None, NOW)
    assert missing["state"] == "Failed"
    assert (
        "PersistentVolumeClaim team-a/models does not exist" in cond(missing, "Degraded")["message"]
    )
    lost = pvc_status(model, claim("Lost"), None, None, None, None, NOW)
    assert lost["state"] == "Failed"
    assert cond(lost, "Degraded")["reason"] == "ClaimLost"


def test_pvc_status_job_failed_carries_its_message() -> None:
    status = pvc_status(
        resource("pvc://models/llama"), claim("Bound"), "Failed", None, "no config.json", None, NOW
    )
    assert status["state"] == "Failed"
    assert cond(status, "Degraded")["message"].endswith("failed: no config.json")


def test_pvc_status_bound_while_inspecting() -> None:
    status = pvc_status(
        resource("pvc://models/llama"), claim("Bound"), "Running", None, None, None, NOW
    )
    assert status["state"] == "In_Transit"
    assert cond(status, "Progressing")["status"] == "True"


def test_job_name_is_short_and_changes_with_the_uri_not_the_generation() -> None:
    model = resource("pvc://models/llama")
    name = job_name(model)
    assert name.startswith("ome-inspect-")
    assert len(name) <= 63

    def at(generation: int, uri: str) -> ModelResource:
        meta = {"name": "llama", "namespace": "team-a", "uid": model.uid}
        return parse_resource(
            {
                "kind": "BaseModel",
                "metadata": {**meta, "generation": generation},
                "spec": {"storage": {"storageUri": uri}},
            }
        )

    assert job_name(at(7, "pvc://models/llama")) == name  # e.g. the back-fill's new generation
    assert job_name(at(8, "pvc://models/other")) != name


def test_pvc_status_skip_config_parsing_needs_no_inspection() -> None:
    obj = {
        "kind": "BaseModel",
        "metadata": {
            "name": "llama",
            "namespace": "team-a",
            "annotations": {"ome.io/skip-config-parsing": "true"},
        },
        "spec": {"storage": {"storageUri": "pvc://models/llama"}},
    }
    model = parse_resource(obj)
    assert pvc_status(model, claim("Bound"), None, None, None, None, NOW)["state"] == "Ready"
    assert pvc_status(model, claim("Bound"), "Failed", None, "x", None, NOW)["state"] == "Ready"
    assert pvc_status(model, claim("Pending"), None, None, None, None, NOW)["state"] == "In_Transit"
