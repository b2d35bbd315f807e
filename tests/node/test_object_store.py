"""An s3:// BaseModel through the agent pod, its key in a Secret of the model's
namespace, against moto's S3 server (SigV4 checked) on the host's loopback, which
pods reach through ``real_node.expose``: the model becomes Ready (node label, entry,
``nodesReady: [node]``, the bucket's bytes in the hostPath), then deleted: files,
label and entry go. A BaseModel whose Secret is missing fails with the Secret and its
namespace named in its status and the node's entry, the agent pod running on; once
the Secret is created the model becomes Ready, and the key is never in a log, status
or ConfigMap.

Where it sits: the real-node tier (marked ``node``), on the chart ``release`` of
``conftest``; moto is ``tests.servers.moto_server``.
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

from ome_agent.api import ModelKey
from ome_agent.wire import conformance, naming
from tests.cluster.kube import unique_name, wait_until
from tests.node.conftest import (
    NAMESPACE,
    Release,
    agent_logs,
    create_base_model,
    node_entry,
    pods,
)
from tests.node.realnode import GATEWAY
from tests.node.test_node_faults import agent_pod
from tests.node.test_smoke import CONFIG, SHARD
from tests.servers.moto_server import REGION, MotoS3, start_moto

pytestmark = pytest.mark.node


@dataclass
class Store:
    moto: MotoS3
    endpoint: str  # moto as pods see it
    namespace: str  # where the models and their Secrets live
    bucket: str


@pytest.fixture(scope="module")
def store(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    moto = start_moto(tmp_path_factory.mktemp("moto"))
    namespace = unique_name("models")
    try:
        port = int(moto.endpoint.rsplit(":", 1)[1])
        endpoint = release.node.expose(port)
        assert endpoint == f"http://{GATEWAY}:{port}"
        release.node.kubectl("create", "namespace", namespace)
        bucket = moto.new_bucket()
        for name, body in (
            ("config.json", json.dumps(CONFIG).encode()),
            ("model.safetensors", SHARD),
        ):
            moto.client().put_object(Bucket=bucket, Key=f"llama/{name}", Body=body)
        yield Store(moto, endpoint, namespace, bucket)
    finally:
        release.node.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        moto.stop()


def create_model(release: Release, store: Store, name: str, secret: str) -> None:
    create_base_model(
        release,
        store.namespace,
        name,
        storageUri=f"s3://{store.bucket}/llama",
        storageKey=secret,
        parameters={"endpoint": store.endpoint, "region": REGION},
    )


def create_secret(release: Release, store: Store, name: str) -> None:
    release.node.core().create_namespaced_secret(
        store.namespace,
        {"metadata": {"name": name}, "type": "Opaque", "stringData": store.moto.secret()},
    )


def model(release: Release, store: Store, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = release.node.custom().get_namespaced_custom_object(
            "ome.io", "v1beta1", store.namespace, "basemodels", name
        )
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return obj


def wait_state(release: Release, store: Store, name: str, state: str) -> dict[str, Any]:
    status: dict[str, Any] = wait_until(
        lambda: (
            (s := (model(release, store, name) or {}).get("status", {})).get("state") == state and s
        ),
        timeout=180,
        interval=1,
        what=f"{name} {state}; agent says:\n{agent_logs(release)}",
    )
    return status


def delete_and_wait_gone(release: Release, store: Store, name: str, path: Path | None) -> float:
    node = release.node
    key = ModelKey("BaseModel", store.namespace, name)
    label, entry_key = naming.node_label_key(key), naming.config_map_key(key)
    t0 = time.monotonic()
    node.custom().delete_namespaced_custom_object(
        "ome.io", "v1beta1", store.namespace, "basemodels", name
    )
    wait_until(
        lambda: (
            model(release, store, name) is None
            and (path is None or not path.exists())
            and label not in node.node_labels()
            and node_entry(release, entry_key) is None
        ),
        timeout=120,
        interval=1,
        what=f"{name}, its files, label and entry gone",
    )
    return time.monotonic() - t0


def assert_key_nowhere(release: Release, store: Store, name: str) -> None:
    secret = store.moto.secret_access_key
    assert secret not in release.node.kubectl(
        "-n", NAMESPACE, "logs", "-l", "app.kubernetes.io/component", "--tail=-1",
        "--prefix", "--all-containers",
    )  # fmt: skip
    cm = release.node.core().read_namespaced_config_map(release.node.name, NAMESPACE)
    assert secret not in json.dumps(cm.data)
    assert secret not in json.dumps(model(release, store, name))


def test_s3_model_with_its_key_in_a_secret_lives_and_dies_through_the_pod(
    release: Release, store: Store
) -> None:
    node = release.node
    name = unique_name("s3")
    key = ModelKey("BaseModel", store.namespace, name)
    create_secret(release, store, "s3-creds")
    t0 = time.monotonic()
    create_model(release, store, name, "s3-creds")
    status = wait_state(release, store, name, "Ready")
    ready = time.monotonic() - t0
    assert status["nodesReady"] == [node.name]
    assert node.node_labels().get(naming.node_label_key(key)) == "Ready"
    entry = node_entry(release, naming.config_map_key(key))
    assert entry is not None
    assert entry["status"] == "Ready"
    conformance.check(json.dumps(entry))
    path = Path(entry["path"])
    assert path.is_relative_to(release.models_root)
    assert (path / "model.safetensors").read_bytes() == SHARD
    assert json.loads((path / "config.json").read_text()) == CONFIG
    assert_key_nowhere(release, store, name)

    gone = delete_and_wait_gone(release, store, name, path)
    print(f"s3:// model Ready through the pod in {ready:.1f}s; gone {gone:.1f}s after delete")


def test_missing_secret_is_named_in_status_and_entry(release: Release, store: Store) -> None:
    node = release.node
    name, secret = unique_name("nokey"), unique_name("absent")
    key = ModelKey("BaseModel", store.namespace, name)
    pod = agent_pod(release)
    where = f"Secret {store.namespace}/{secret} not found"
    t0 = time.monotonic()
    create_model(release, store, name, secret)
    status = wait_state(release, store, name, "Failed")
    said = time.monotonic() - t0
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert where in degraded["message"], degraded
    assert f"namespace {store.namespace!r}" in degraded["message"], degraded
    entry = node_entry(release, naming.config_map_key(key))
    assert entry is not None
    assert entry["status"] == "Failed"
    assert where in entry["message"], entry
    conformance.check(json.dumps(entry))
    assert node.node_labels().get(naming.node_label_key(key)) == "Failed"  # as OME labels it
    # the agent says it once per attempt, as one line, and runs on
    logs = agent_logs(release)
    assert where in logs
    assert "Traceback" not in logs
    assert agent_pod(release) == pod, "the agent pod was replaced or restarted"
    assert all(p.status.phase == "Running" for p in pods(release, "node-agent"))

    # the fix the line names: the Secret, in that namespace; the next retry takes it
    t1 = time.monotonic()
    create_secret(release, store, secret)
    status = wait_state(release, store, name, "Ready")
    recovered = time.monotonic() - t1
    assert status["nodesReady"] == [node.name]
    assert_key_nowhere(release, store, name)
    entry = node_entry(release, naming.config_map_key(key))
    assert entry is not None
    delete_and_wait_gone(release, store, name, Path(entry["path"]))
    print(
        f"missing Secret named in status and entry after {said:.1f}s; "
        f"Ready {recovered:.1f}s after the Secret was created"
    )
