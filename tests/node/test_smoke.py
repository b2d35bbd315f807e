"""Smoke of the real-node tier: the chart's pods on a real kubelet serve one model's
whole life. ``helm install`` of deploy/helm/ome-agent on the image built from
deploy/Dockerfile; the agent DaemonSet pod and the controller Deployment become Ready;
an hf:// ClusterBaseModel from the local Hub (reached by the pod through the bridge)
becomes Ready on the node (label, ConfigMap entry in OME's format, status
``nodesReady``); deleting it removes files, label and entry, and the finalizer lets go.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ome_agent.wire import conformance
from tests.cluster.kube import unique_name, wait_until
from tests.data.safetensors_fixtures import shard_bytes
from tests.node.conftest import (
    NAMESPACE,
    Release,
    agent_logs,
    cluster_model,
    create_cluster_model,
    node_entry,
)
from tests.node.realnode import pod_ready

pytestmark = pytest.mark.node

CONFIG = json.loads(
    (Path(__file__).parents[1] / "data" / "hf-configs" / "llama3_1.json").read_text()
)
SHARD = shard_bytes({"model.embed_tokens.weight": ("BF16", (64, 32))})


def test_hf_model_lives_and_dies_through_the_daemonset_pod(release: Release) -> None:
    node = release.node
    pods = node.core().list_namespaced_pod(NAMESPACE).items
    by_component = {p.metadata.labels["app.kubernetes.io/component"]: p for p in pods}
    # helm --wait returned: both workloads are Ready, on this node
    assert pod_ready(by_component["node-agent"]), by_component["node-agent"].status
    assert pod_ready(by_component["controller"]), by_component["controller"].status
    assert by_component["node-agent"].spec.node_name == node.name

    release.hub.add_repo(
        "org/tiny", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": SHARD}
    )
    name = unique_name("tiny")
    key = f"clusterbasemodel.{name}"
    label = f"models.ome.io/{key}"
    t0 = time.monotonic()
    create_cluster_model(release, name, "org/tiny")
    status = wait_until(
        lambda: (
            (s := (cluster_model(release, name) or {}).get("status", {})).get("state") == "Ready"
            and s
        ),
        timeout=180,
        interval=1,
        what=f"{name} Ready; agent says:\n{agent_logs(release)}",
    )
    ready_seconds = time.monotonic() - t0
    assert status["nodesReady"] == [node.name]
    assert node.node_labels().get(label) == "Ready"
    entry = node_entry(release, key)
    assert entry is not None
    assert entry["status"] == "Ready"
    conformance.check(json.dumps(entry))  # against OME's schema (tests/conftest.py names it)
    # written by the pod into the hostPath the chart mounts at the same path
    path = Path(entry["path"])
    assert path.is_relative_to(release.models_root)
    assert (path / "model.safetensors").read_bytes() == SHARD
    assert json.loads((path / "config.json").read_text()) == CONFIG
    print(
        f"node Ready in {node.ready_seconds:.0f}s; "
        f"model Ready through the pod in {ready_seconds:.1f}s"
    )

    node.custom().delete_cluster_custom_object("ome.io", "v1beta1", "clusterbasemodels", name)
    wait_until(
        lambda: cluster_model(release, name) is None,
        timeout=120,
        interval=1,
        what=f"{name} gone (finalizer released)",
    )
    # the agent reports the removal after the files went; label and entry may trail it
    wait_until(
        lambda: (
            not path.exists()
            and label not in node.node_labels()
            and node_entry(release, key) is None
        ),
        timeout=30,
        interval=1,
        what=f"files, label and entry of {name} gone",
    )
