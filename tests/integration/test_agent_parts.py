"""Parts of the Kubernetes adapter that need no API server: the health endpoints, a
resource the core cannot take (skipped with a clear line, counted), the counters'
resource names and the backoff's bounds."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from ome_agent.adapters.kube import agent
from ome_agent.adapters.kube.client import resource_of
from ome_agent.observability import kube_metrics
from ome_agent.observability.health import HealthServer
from ome_agent.reconcile.backoff import Backoff
from tests.cluster.controlplane import free_port
from tests.integration.agent_process import OME_AGENT


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_endpoints() -> None:
    state = {"ready": (False, "first sync not done")}
    port = free_port()

    async def main() -> list[tuple[int, str]]:
        server = HealthServer(port, lambda: state["ready"], host="127.0.0.1")
        await server.start()
        try:
            out = [await asyncio.to_thread(_get, port, "/livez")]
            out.append(await asyncio.to_thread(_get, port, "/healthz"))
            state["ready"] = (True, "ok")
            out.append(await asyncio.to_thread(_get, port, "/healthz"))
            kube_metrics.count_request("get", "configmaps", 200)
            out.append(await asyncio.to_thread(_get, port, "/metrics"))
            return out
        finally:
            await server.stop()

    livez, unready, ready, metrics = asyncio.run(main())
    assert livez == (200, "ok\n")
    assert unready == (503, "first sync not done\n")
    assert ready == (200, "ok\n")
    assert metrics[0] == 200
    assert (
        'ome_agent_kube_requests_total{code="200",resource="configmaps",verb="get"}' in (metrics[1])
    )


def test_unparseable_resource_is_skipped_named_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = {
        "apiVersion": "ome.io/v1beta1",
        "kind": "BaseModel",
        "metadata": {"name": "broken", "namespace": "team"},
        "spec": {
            "storage": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "gpu", "operator": "Near"}]}
                        ]
                    }
                }
            }
        },
    }
    counter = kube_metrics.INVALID_RESOURCES.labels(kind="BaseModel")
    before = counter._value.get()
    with caplog.at_level(logging.ERROR, logger="ome_agent.adapters.kube.agent"):
        assert agent._parse(bad) is None
    assert counter._value.get() == before + 1
    line = caplog.records[-1].getMessage()
    assert line.startswith("skipping BaseModel team/broken: ")
    assert "operator" in line


def test_request_counter_resource_names() -> None:
    assert resource_of("/api/v1/namespaces/ome/configmaps/n1") == "configmaps"
    assert resource_of("/api/v1/nodes/n1") == "nodes"
    assert resource_of("/api/v1/nodes") == "nodes"
    assert resource_of("/apis/ome.io/v1beta1/clusterbasemodels") == "clusterbasemodels"
    assert resource_of("/apis/ome.io/v1beta1/namespaces/a/basemodels/x") == "basemodels"
    assert resource_of("/api/v1/namespaces/ome") == "namespaces"


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    b = Backoff(base=0.2, cap=5.0, jitter=0.5)
    delays = [b.next_delay() for _ in range(12)]
    assert 0.1 <= delays[0] <= 0.2
    assert all(d <= 5.0 for d in delays)
    assert delays[-1] >= 2.5  # capped at 5 s, at least half of it
    b.reset()
    assert b.next_delay() <= 0.2


def test_bad_kubeconfig_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.kubeconfig"
    garbage = tmp_path / "garbage.kubeconfig"
    garbage.write_text("clusters: [this is not a kubeconfig\n")
    for path, expected in ((missing, "no such file"), (garbage, "not YAML at line 2")):
        proc = subprocess.run(
            [
                str(OME_AGENT),
                "run",
                "--kubeconfig",
                str(path),
                "--node-name",
                "n1",
                "--models-root-dir",
                str(tmp_path / "models"),
                "--health-port",
                str(free_port()),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={k: v for k, v in os.environ.items() if k != "KUBECONFIG"},
        )
        assert proc.returncode == 2, proc.stderr
        assert f"--kubeconfig {path}: {expected}" in proc.stderr
        assert "Traceback" not in proc.stderr
