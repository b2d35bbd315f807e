"""Benchmark of the node agent against a real API server (its targets are in benches/README.md).

Entry point: ``python -m benches.agent [--models 500] [--runs 5] [--steady 60]``.
Writes ``benches/results/agent-<time>.json`` and prints a markdown section for
benches/README.md.

Where it sits: outside the package and the test run. It starts its own etcd +
kube-apiserver (tests/cluster/controlplane.py, the binaries the tests use), serves
tiny model files with the fault server (tests/servers/fault_server.py, which logs
every request with its time), and runs ``ome-agent run`` as a subprocess with a
ServiceAccount bound to deploy/agent/rbac.yaml, exactly as the integration tests do.

Measured:
(a) restart with N Ready ClusterBaseModels on disk: time from process start until
    /healthz says the first sync (lists, confirmation of every model from disk) is
    done, and until the API server shows every entry Ready; API requests per model;
    requests the file server saw (downloads: must be 0).
(b) steady state, nothing changing: API writes per minute (target 0).
(c) create -> download started: from the POST of a new model to the first request
    for its file at the file server, median of ``--runs``.
Baseline for (a): the same confirmation written the naive way, one ConfigMap
read+update and one Node patch per model (no coalescing, no skipping unchanged),
run here with the same client library against the same API server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import CRD_DIR, Cluster, unique_name
from tests.integration.agent_process import Agent, cluster_model, wait_for
from tests.servers.fault_server import FaultServer

from benches.run import machine_facts
from ome_agent.adapters.kube.client import Kube, connect
from ome_agent.observability.kube_metrics import WRITE_VERBS, requests_made

RESULTS = Path(__file__).resolve().parent / "results"
SEL = "bench/node"


def ready_count(cluster: Cluster, namespace: str, node: str) -> int:
    try:
        cm = cluster.core.read_namespaced_config_map(node, namespace)
    except Exception:  # not created yet
        return 0
    return sum(1 for v in (cm.data or {}).values() if json.loads(v).get("status") == "Ready")


def api_requests(agent: Agent) -> dict[str, float]:
    status, text = agent.get("/metrics")
    assert status == 200
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("ome_agent_kube_requests_total{"):
            labels, _, value = line.rpartition(" ")
            verb = labels.split('verb="', 1)[1].split('"', 1)[0]
            out[verb] = out.get(verb, 0.0) + float(value)
    return out


def writes_of(counts: dict[str, float]) -> float:
    return sum(v for k, v in counts.items() if k in WRITE_VERBS)


async def naive_confirm(kubeconfig: Path, namespace: str, node: str, n: int) -> dict[str, Any]:
    """One ConfigMap read+update and one Node patch per model, in sequence."""
    kube: Kube = await connect(str(kubeconfig))
    path = f"/api/v1/namespaces/{namespace}/configmaps/{node}"
    before = requests_made()
    t0 = time.monotonic()
    try:
        try:
            await kube.request("GET", path, verb="get")
        except Exception:
            await kube.request(
                "POST",
                path.rsplit("/", 1)[0],
                verb="create",
                body={"metadata": {"name": node, "namespace": namespace}, "data": {}},
            )
        for i in range(n):
            cm = await kube.request("GET", path, verb="get")
            cm.setdefault("data", {})[f"clusterbasemodel.naive-{i}"] = json.dumps(
                {"name": f"naive-{i}", "status": "Ready"}
            )
            await kube.request("PUT", path, verb="update", body=cm)
            await kube.request(
                "PATCH",
                f"/api/v1/nodes/{node}",
                verb="patch",
                body={
                    "metadata": {"labels": {f"models.ome.io/clusterbasemodel.naive-{i}": "Ready"}}
                },
                content_type="application/merge-patch+json",
            )
    finally:
        await kube.close()
    return {"seconds": time.monotonic() - t0, "requests": requests_made() - before}


def on_control_plane(
    name: str,
    bench: Callable[[ControlPlane, Path], dict[str, Any]],
    markdown: Callable[[dict[str, Any], str], str],
) -> None:
    """Run ``bench`` against a fresh etcd + kube-apiserver in a temporary directory
    (removed after a good run, kept with its logs after a failed one), write
    ``benches/results/<name>-<time>.json`` and print its README section (the
    API-server benches: this one and ``benches.controller``)."""
    facts = machine_facts()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    cp = ControlPlane(work / "control-plane")
    cp.start()
    try:
        result = bench(cp, work)
    except BaseException:
        print(f"{name} bench failed: logs kept in {work}", file=sys.stderr)
        raise
    finally:
        cp.stop()
    shutil.rmtree(work, ignore_errors=True)
    facts["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    doc = {"bench": name, "time": stamp, "machine": facts, **result}
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{stamp}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(markdown(doc, out.name))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--models", type=int, default=500)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--steady", type=float, default=60.0, help="seconds of steady state")
    args = p.parse_args(argv)
    on_control_plane("agent", lambda cp, work: _bench(cp, work, args), markdown)


def _bench(cp: ControlPlane, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(cp)
    cluster.apply_manifests([CRD_DIR])
    namespace = cluster.make_namespace("ome")
    node = "bench-node"
    cluster.make_node(node, {SEL: node})
    kubeconfig = cluster.service_account_kubeconfig(namespace, "ome-agent")
    models = work / "models"
    models.mkdir()
    n = args.models
    with FaultServer("127.0.0.1") as files:
        agent = Agent(
            kubeconfig=kubeconfig,
            node=node,
            namespace=namespace,
            models_root=models,
            log_path=work / "agent.log",
            extra_args=("--num-download-worker", "8"),
        )
        # setup: N models, downloaded once by a first run
        t0 = time.monotonic()
        for i in range(n):
            url = files.add(f"/m{i}/w.bin", f"model {i} ".encode() * 10)
            cluster.apply(cluster_model(f"m{i}", url, nodeSelector={SEL: node}))
        create_s = time.monotonic() - t0
        agent.start()
        t0 = time.monotonic()
        wait_for(lambda: ready_count(cluster, namespace, node) >= n, 600, "first run Ready")
        first_run_s = time.monotonic() - t0
        first_counts = api_requests(agent)
        assert agent.stop() == 0

        # (a) restarts
        restarts = []
        for _ in range(args.runs):
            served = len(files.requests)
            t0 = time.monotonic()
            agent.start(wait_ready=False)
            agent.wait_ready(120)
            ready_s = time.monotonic() - t0
            wait_for(lambda: ready_count(cluster, namespace, node) >= n, 60, "all Ready")
            all_ready_s = time.monotonic() - t0
            counts = api_requests(agent)
            restarts.append(
                {
                    "healthz_ready_s": round(ready_s, 3),
                    "all_entries_ready_s": round(all_ready_s, 3),
                    "api_requests": counts,
                    "api_requests_total": sum(counts.values()),
                    "api_writes": writes_of(counts),
                    "downloads": len(files.requests) - served,
                }
            )
            assert agent.stop() == 0

        # (b) steady state on a running agent
        agent.start()
        time.sleep(2.0)  # watches connected
        before = api_requests(agent)
        time.sleep(args.steady)
        after = api_requests(agent)
        steady = {
            "seconds": args.steady,
            "writes_per_minute": (writes_of(after) - writes_of(before)) * 60 / args.steady,
            "requests_per_minute": (sum(after.values()) - sum(before.values())) * 60 / args.steady,
        }

        # (c) create -> first request at the file server
        latencies = []
        for _ in range(args.runs):
            name = unique_name("lat")
            url = files.add(f"/{name}/w.bin", b"latency" * 100)
            t0 = time.time()
            cluster.apply(cluster_model(name, url, nodeSelector={SEL: node}))
            rec = wait_for(lambda name=name: files.requests_for(f"/{name}/w.bin"), 30, name)
            latencies.append(round(rec[0].wall_time - t0, 4))
            time.sleep(0.3)
        assert agent.stop() == 0

    # baseline: the naive per-model writes, same API server, another node's ConfigMap
    cluster.make_node("naive-node")
    naive = asyncio.run(naive_confirm(kubeconfig, namespace, "naive-node", n))

    med = statistics.median
    return {
        "models": n,
        "setup": {
            "create_models_s": round(create_s, 2),
            "first_run_all_ready_s": round(first_run_s, 2),
            "first_run_api_requests": first_counts,
        },
        "restart": {
            "runs": restarts,
            "median_healthz_ready_s": med(r["healthz_ready_s"] for r in restarts),
            "median_all_entries_ready_s": med(r["all_entries_ready_s"] for r in restarts),
            "median_api_requests": med(r["api_requests_total"] for r in restarts),
            "api_requests_per_model": med(r["api_requests_total"] for r in restarts) / n,
            "max_api_writes": max(r["api_writes"] for r in restarts),
            "max_downloads": max(r["downloads"] for r in restarts),
        },
        "steady": steady,
        "create_to_download": {"seconds": latencies, "median_s": med(latencies)},
        "naive_baseline": {
            **naive,
            "seconds": round(naive["seconds"], 2),
            "requests_per_model": naive["requests"] / n,
        },
    }


def markdown(doc: dict[str, Any], file_name: str) -> str:
    m = doc["machine"]
    r, s, c, nb = doc["restart"], doc["steady"], doc["create_to_download"], doc["naive_baseline"]
    n = doc["models"]
    first = doc["setup"]["first_run_api_requests"]
    rows = [
        (
            f"{n} Ready models, agent restart → all confirmed (/healthz ready)",
            "< 10 s",
            f"{r['median_healthz_ready_s']:.2f} s (all entries Ready: "
            f"{r['median_all_entries_ready_s']:.2f} s)",
            r["median_healthz_ready_s"] < 10,
        ),
        (
            "downloads during the restart",
            "0",
            str(r["max_downloads"]),
            r["max_downloads"] == 0,
        ),
        (
            "API requests per model for the restart",
            "proportional to models",
            f"{r['api_requests_per_model']:.3f} ({r['median_api_requests']:.0f} in all, "
            f"{r['max_api_writes']:.0f} writes)",
            r["api_requests_per_model"] <= 1,
        ),
        (
            "steady state API writes",
            "0 per minute",
            f"{s['writes_per_minute']:.1f} per minute "
            f"({s['requests_per_minute']:.1f} requests/min of any kind)",
            s["writes_per_minute"] == 0,
        ),
        (
            "create → download started",
            "< 1 s",
            f"{c['median_s']:.3f} s median of {len(c['seconds'])}",
            c["median_s"] < 1,
        ),
    ]
    lines = [
        "",
        "### Node agent on the API server (`python -m benches.agent`)",
        "",
        f"{doc['time']} · {n} ClusterBaseModels · {len(r['runs'])} restarts · "
        f"{m['nproc']} cores, {m['memory_gib']} GiB, {m['cpu_model']}, kernel {m['kernel']} · "
        f"load average {m['loadavg_start']} at start, {m.get('loadavg_end', '?')} at end · "
        f"`{file_name}`",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        *(f"| {a} | {g} | {v} | {'met' if ok else '**missed**'} |" for a, g, v, ok in rows),
        "",
        f"Naive baseline (one ConfigMap get+update and one Node patch per model, in "
        f"sequence, same client and API server): {nb['seconds']:.2f} s and "
        f"{nb['requests']} requests ({nb['requests_per_model']:.1f} per model) for the "
        f"same {n} Ready reports the agent's restart confirms with "
        f"{r['median_api_requests']:.0f} requests and no write. First run (setup, "
        f"{n} tiny downloads, 8 workers): {doc['setup']['first_run_all_ready_s']:.1f} s, "
        f"in which {2 * n} state changes (Updating, then Ready, per model) cost "
        f"{first.get('create', 0) + first.get('update', 0):.0f} ConfigMap writes and "
        f"{first.get('patch', 0):.0f} Node patches.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
