"""The chart's workloads on a real kubelet: ``helm upgrade`` with a changed value rolls
both; deleting the agent pod mid-download, its replacement resumes (bytes fetched
twice under a quarter of the file); ``helm uninstall`` leaves no workload, while the
CRDs, the model resources and the downloaded files stay (as the chart's README says).
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import pytest

from tests.cluster.kube import unique_name, wait_until
from tests.data.safetensors_fixtures import shard_bytes
from tests.node.conftest import (
    NAMESPACE,
    RELEASE,
    Release,
    cluster_model,
    create_cluster_model,
    create_ready_model,
    node_entry,
    pods,
)
from tests.node.realnode import pod_ready
from tests.node.test_smoke import CONFIG

pytestmark = pytest.mark.node

# ~12 MB of weights, served slowly enough to interrupt
BIG = shard_bytes({"model.embed_tokens.weight": ("BF16", (2048, 3072))})


def test_upgrade_with_a_changed_value_rolls_both_workloads(release: Release) -> None:
    before = {c: {p.metadata.uid for p in pods(release, c)} for c in ("node-agent", "controller")}
    values = copy.deepcopy(release.values)
    values["agent"]["logLevel"] = "debug"
    values["controller"]["logLevel"] = "debug"
    release.upgrade(values)
    for component, old in before.items():
        new = wait_until(
            lambda c=component: [p for p in pods(release, c) if pod_ready(p)], 120, 1, component
        )
        assert {p.metadata.uid for p in new}.isdisjoint(old), component
        assert "--log-level=debug" in new[0].spec.containers[0].args


def _range_bytes(headers: dict[str, str], size: int) -> int:
    spec = headers.get("Range", "")
    if not spec.startswith("bytes="):
        return size
    start, _, end = spec.removeprefix("bytes=").partition("-")
    return (int(end) if end else size - 1) - int(start) + 1


def test_agent_pod_deleted_mid_download_replacement_resumes(release: Release) -> None:
    """An hf:// download through the CDN redirect, several connections, each range far
    from done when the kubelet stops the pod (SIGTERM): the pieces keep what they
    received, so the replacement pod fetches only what was missing."""
    node = release.node
    release.hub.add_repo(
        "org/big", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": BIG}
    )
    release.hub.throttle = 400_000  # bytes/s per connection
    name = unique_name("big")
    key = f"clusterbasemodel.{name}"
    create_cluster_model(release, name, "org/big")
    try:
        progress = wait_until(
            lambda: (
                (p := ((node_entry(release, key) or {}).get("progress") or {}))
                and p.get("completedBytes", 0) >= 0.3 * len(BIG)
                and p
            ),
            timeout=180,
            interval=0.5,
            what=f"{key} 30% downloaded",
        )
        (agent,) = pods(release, "node-agent")
        node.kubectl("-n", NAMESPACE, "delete", "pod", agent.metadata.name, "--timeout=120s")
        t0 = time.monotonic()
        # the old pod is gone (its connections closed): later requests are the replacement's
        seen = len(release.hub.requests("cdn"))
        status = wait_until(
            lambda: (
                (s := (cluster_model(release, name) or {}).get("status", {})).get("state")
                == "Ready"
                and s
            ),
            timeout=300,
            interval=1,
            what=f"{name} Ready after the pod was replaced",
        )
    finally:
        release.hub.throttle = None
    resumed_seconds = time.monotonic() - t0
    assert status["nodesReady"] == [node.name]
    entry = node_entry(release, key)
    assert entry is not None
    assert (Path(entry["path"]) / "model.safetensors").read_bytes() == BIG
    after = sum(
        _range_bytes(r["headers"], len(BIG))
        for r in release.hub.requests("cdn")[seen:]
        if r["method"] == "GET"
    )
    done = progress["completedBytes"]
    # fetched twice = what the replacement fetched beyond what was missing at deletion
    twice = after - (len(BIG) - done)
    print(
        f"deleted at {done}/{len(BIG)} bytes; replacement fetched {after}; "
        f"twice {max(twice, 0)} ({max(twice, 0) / len(BIG):.0%}); "
        f"Ready {resumed_seconds:.0f}s later"
    )
    assert twice < 0.25 * len(BIG)


def test_uninstall_leaves_no_workload_but_crds_models_and_files(release: Release) -> None:
    node = release.node
    release.hub.add_repo(
        "org/kept", {"config.json": json.dumps(CONFIG).encode(), "model.safetensors": BIG}
    )
    name, path, _ = create_ready_model(release, "org/kept")
    node.run(str(release.helm), "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    wait_until(lambda: not node.core().list_namespaced_pod(NAMESPACE).items, 120, 1, "no pods left")
    workloads = node.kubectl("-n", NAMESPACE, "get", "daemonsets,deployments,jobs", "-o", "name")
    assert workloads.strip() == ""
    crds = node.kubectl("get", "crds", "-o", "name")
    for crd in ("basemodels", "clusterbasemodels", "finetunedweights"):
        assert f"{crd}.ome.io" in crds
    assert cluster_model(release, name) is not None
    assert (path / "model.safetensors").read_bytes() == BIG
    # nobody runs the finalizer now: release it by hand
    node.kubectl(
        "patch", "clusterbasemodel", name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}'
    )
    node.kubectl("delete", "clusterbasemodel", name)
