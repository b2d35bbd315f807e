"""Benchmark of ``ome-agent controller`` against a real API server (target:
work proportional to what changed), side by side with an OME-style controller.

Entry point: ``python -m benches.controller [--nodes 200] [--models 100] [--steady 30]``.
Writes ``benches/results/controller-<time>.json`` and prints a markdown section for
benches/README.md.

Where it sits: outside the package and the test run. It starts its own etcd +
kube-apiserver (tests/cluster/controlplane.py), creates N live Nodes (Ready condition
written as a kubelet would) and M ClusterBaseModels eligible on every node, and
writes the N per-node ConfigMaps (M Ready entries each, ``wire.entry.encode_entry``)
directly, as N agents would, instead of running N agent processes.

Two controllers, each on its own copy of the reports (own namespace, own models):
- ours: ``ome-agent controller`` as a subprocess with a ServiceAccount bound to
  deploy/controller/rbac.yaml;
- baseline: OME's pattern, built in here on the same client library: one reconcile
  at a time (controller-runtime's default), each lists every labelled ConfigMap
  and gets every Node named in them, writes the status when it changed (the same
  ``aggregate`` as ours, so only the I/O pattern differs) and requeues the model
  after 5 s; it runs in a child process so its CPU time is its own.

Measured for each: time from the first ConfigMap write until every model's status
shows all N nodes ready; API requests and writes (from the client's own counters)
per changed entry; CPU seconds of the controller process and of the API server;
then a steady state of ``--steady`` seconds with nothing changing (writes and lists
per minute); for ours also one changed entry → requests and time to the new status.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.kube import CRD_DIR, Cluster
from tests.integration.agent_process import cluster_model, sum_metric, wait_for
from tests.integration.controller_process import (
    ControllerProcess,
    controller_kubeconfig,
    mark_node_ready,
)

from benches.agent import on_control_plane, writes_of
from ome_agent.adapters.kube.client import Kube, connect
from ome_agent.adapters.kube.controller.cache import node_view
from ome_agent.api import GROUP, ModelKey, parse_resource
from ome_agent.fleet.status import aggregate, entries_of_configmap, entry_key, status_changed
from ome_agent.reconcile.ports import NodeReport, NodeState
from ome_agent.wire.entry import encode_entry
from ome_agent.wire.naming import config_map_metadata

POOL = "bench/pool"
REQUEUE_SECONDS = 5.0  # OME's controller requeues every model this often
TICKS = os.sysconf("SC_CLK_TCK")
CONFIG = {
    "modelType": "llama",
    "modelArchitecture": "LlamaForCausalLM",
    "modelParameterSize": "8.03B",
    "maxTokens": 131072,
    "modelFormat": {"name": "safetensors", "version": "1.0.0"},
    "modelFramework": {"name": "transformers", "version": "4.43.0"},
    "modelCapabilities": ["TEXT_GENERATION"],
}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def apiserver_pid() -> int:
    """The kube-apiserver this process started (a child of ours)."""
    me = str(os.getpid())
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm == "kube-apiserver" and stat.rsplit(")", 1)[1].split()[1] == me:
            return int(d.name)
    raise RuntimeError("kube-apiserver child not found")


def entries(models: list[dict[str, Any]]) -> dict[str, str]:
    """One node's ConfigMap data: every model Ready."""
    out = {}
    for m in models:
        key = ModelKey("ClusterBaseModel", None, m["metadata"]["name"])
        report = NodeReport(key=key, uid=m["metadata"]["uid"], state=NodeState.READY, config=CONFIG)
        out[entry_key(parse_resource(m))] = encode_entry(report)
    return out


def converged(cluster: Cluster, prefix: str, n_models: int, n_nodes: int) -> bool:
    items = cluster.request("GET", f"/apis/{GROUP}/v1beta1/clusterbasemodels")["items"]
    mine = [o for o in items if o["metadata"]["name"].startswith(prefix)]
    done = [o for o in mine if (o.get("status") or {}).get("readyNodeCount") == n_nodes]
    return len(mine) == n_models and len(done) == n_models


def seen(cluster: Cluster, prefix: str, n_models: int, n_nodes: int) -> bool:
    """Every model has its first status (all nodes eligible, none reported yet)."""
    items = cluster.request("GET", f"/apis/{GROUP}/v1beta1/clusterbasemodels")["items"]
    mine = [o for o in items if o["metadata"]["name"].startswith(prefix)]
    firsts = [o for o in mine if (o.get("status") or {}).get("eligibleNodeCount") == n_nodes]
    return len(firsts) == n_models


def write_reports(
    cluster: Cluster, namespace: str, nodes: list[str], models: list[dict[str, Any]]
) -> None:
    data = entries(models)
    for node in nodes:
        cluster.core.create_namespaced_config_map(
            namespace, {"metadata": config_map_metadata(node, namespace), "data": data}
        )


def controller_requests(proc: ControllerProcess, leases: bool = False) -> dict[str, float]:
    """The controller's API requests by verb: those of its work, or (``leases``) those
    renewing its Lease, which every replicated controller makes alike."""
    _, text = proc.get("/metrics")
    out: dict[str, float] = {}
    name = "ome_agent_kube_requests_total"
    for verb in ("get", "list", "watch", "create", "update", "patch", "delete"):
        lease = sum_metric(text, name, {"verb": verb, "resource": "leases"})
        out[verb] = lease if leases else sum_metric(text, name, {"verb": verb}) - lease
    return out


def diff(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


# ---------------------------------------------------------------- OME-style baseline
def _counts() -> dict[str, float]:
    from ome_agent.observability.kube_metrics import API_REQUESTS

    counts: dict[str, float] = {}
    for metric in API_REQUESTS.collect():
        for s in metric.samples:
            if s.name.endswith("_total"):
                counts[s.labels["verb"]] = counts.get(s.labels["verb"], 0.0) + s.value
    return counts


async def _baseline(kubeconfig: str, namespace: str, prefix: str, mark: Any, stop: Any) -> Any:
    """Runs until ``stop``; returns the request counts when ``mark`` was first seen set
    (the parent saw every status converge) and at the end."""
    kube: Kube = await connect(kubeconfig)
    queue: dict[str, float] = {}  # model name -> due (monotonic)
    path = f"/apis/{GROUP}/v1beta1/clusterbasemodels"
    listed = await kube.request("GET", path, verb="list")
    for o in listed["items"]:
        if o["metadata"]["name"].startswith(prefix):
            queue[o["metadata"]["name"]] = 0.0
    at_mark: dict[str, float] | None = None
    while not stop.is_set():
        if at_mark is None and mark.is_set():
            at_mark = _counts()
        name, due = min(queue.items(), key=lambda kv: kv[1])
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        obj = await kube.request("GET", f"{path}/{name}", verb="get")
        resource = parse_resource({**obj, "kind": "ClusterBaseModel"})
        cms = await kube.request(
            "GET",
            f"/api/v1/namespaces/{namespace}/configmaps",
            verb="list",
            query=[("labelSelector", "models.ome/basemodel-status=true")],
        )
        nodes, found = {}, {}
        for cm in cms["items"]:
            node = cm["metadata"]["name"]
            try:
                nodes[node] = node_view(
                    await kube.request("GET", f"/api/v1/nodes/{node}", verb="get")
                )
            except Exception:  # noqa: S112 - a missing Node: its entries are skipped
                continue
            mine = entries_of_configmap(node, cm.get("data") or {}).get(entry_key(resource))
            if mine is not None:
                found[node] = mine
        previous = obj.get("status")
        new = aggregate(resource, found, nodes, previous, dt.datetime.now(dt.UTC))
        if status_changed(previous, new):
            await kube.request(
                "PATCH",
                f"{path}/{name}/status",
                verb="patch",
                body={"status": new},
                content_type="application/merge-patch+json",
            )
        queue[name] = time.monotonic() + REQUEUE_SECONDS
    await kube.close()
    return {"converge": at_mark or _counts(), "end": _counts()}


def baseline_worker(
    kubeconfig: str, namespace: str, prefix: str, mark: Any, stop: Any, out: str
) -> None:
    Path(out).write_text(
        json.dumps(asyncio.run(_baseline(kubeconfig, namespace, prefix, mark, stop)))
    )


# ---------------------------------------------------------------- the bench
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--nodes", type=int, default=200)
    p.add_argument("--models", type=int, default=100)
    p.add_argument("--steady", type=float, default=30.0, help="seconds of steady state")
    p.add_argument("--timeout", type=float, default=600.0, help="cap on each convergence")
    args = p.parse_args(argv)
    on_control_plane("controller", lambda cp, work: _bench(cp, work, args), markdown)


def _make_models(cluster: Cluster, prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        cluster.apply(cluster_model(f"{prefix}{i}", "hf://org/m", nodeSelector={POOL: "gpu"}))
        for i in range(n)
    ]


def _bench(cp: ControlPlane, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    cluster = Cluster(cp)
    cluster.apply_manifests([CRD_DIR])
    api_pid = apiserver_pid()
    nodes = [f"node-{i:03d}" for i in range(args.nodes)]
    for node in nodes:
        cluster.make_node(node, {POOL: "gpu"})
        mark_node_ready(cluster, node)
    n_entries = args.nodes * args.models

    # ---- ours
    ours_ns = cluster.make_namespace("ome")
    kubeconfig = controller_kubeconfig(cluster, ours_ns, "ome-agent-controller")
    ctl = ControllerProcess(
        kubeconfig=kubeconfig, namespace=ours_ns, identity="bench", log_path=work / "ctl.log"
    )
    ctl.start().wait_leading(120)
    models = _make_models(cluster, "ours-", args.models)
    wait_for(lambda: seen(cluster, "ours-", args.models, args.nodes), 120, "first statuses")
    assert ctl.proc is not None
    before, cpu0, api0 = controller_requests(ctl), cpu_seconds(ctl.proc.pid), cpu_seconds(api_pid)
    status0 = ctl.metric("ome_agent_controller_writes_total", what="status")
    t0 = time.monotonic()
    write_reports(cluster, ours_ns, nodes, models)
    write_s = time.monotonic() - t0
    wait_for(lambda: converged(cluster, "ours-", args.models, args.nodes), args.timeout, "ours")
    ours_s = time.monotonic() - t0
    time.sleep(1.0)
    conv = diff(controller_requests(ctl), before)
    status_writes = ctl.metric("ome_agent_controller_writes_total", what="status") - status0
    ours_cpu, ours_api_cpu = cpu_seconds(ctl.proc.pid) - cpu0, cpu_seconds(api_pid) - api0

    # one changed entry: node-000 reports model 0 Failed
    before = controller_requests(ctl)
    cm = cluster.core.read_namespaced_config_map(nodes[0], ours_ns)
    data = dict(cm.data or {})
    key = entry_key(parse_resource(models[0]))
    data[key] = json.dumps({**json.loads(data[key]), "status": "Failed", "message": "disk full"})
    t1 = time.monotonic()
    cluster.core.patch_namespaced_config_map(nodes[0], ours_ns, {"data": data})
    name0 = models[0]["metadata"]["name"]
    wait_for(
        lambda: (
            (cluster.get(f"{GROUP}/v1beta1", "ClusterBaseModel", name0).get("status") or {}).get(
                "failedNodeCount"
            )
            == 1
        ),
        30,
        "one change",
    )
    one_s = time.monotonic() - t1
    time.sleep(1.0)
    one = diff(controller_requests(ctl), before)

    before, cpu0 = controller_requests(ctl), cpu_seconds(ctl.proc.pid)
    leases0 = controller_requests(ctl, leases=True)
    time.sleep(args.steady)
    steady = diff(controller_requests(ctl), before)
    lease_steady = diff(controller_requests(ctl, leases=True), leases0)
    steady_cpu = cpu_seconds(ctl.proc.pid) - cpu0
    assert ctl.stop() == 0

    # ---- baseline, on its own copy
    base_ns = cluster.make_namespace("ome-baseline")
    base_models = _make_models(cluster, "base-", args.models)
    write_reports(cluster, base_ns, nodes, base_models)
    out = work / "baseline.json"
    admin = str(cp.admin_kubeconfig)
    mp = multiprocessing.get_context("spawn")
    mark, stop = mp.Event(), mp.Event()
    api0 = cpu_seconds(api_pid)
    proc = mp.Process(target=baseline_worker, args=(admin, base_ns, "base-", mark, stop, str(out)))
    t0 = time.monotonic()
    proc.start()
    assert proc.pid is not None
    base_converged = True
    try:
        wait_for(
            lambda: converged(cluster, "base-", args.models, args.nodes), args.timeout, "baseline"
        )
    except AssertionError:
        base_converged = False
    base_s = time.monotonic() - t0
    mark.set()
    base_cpu, base_api_cpu = cpu_seconds(proc.pid), cpu_seconds(api_pid) - api0
    # steady: the baseline keeps requeueing; its rate over the window
    c0, a0 = cpu_seconds(proc.pid), cpu_seconds(api_pid)
    time.sleep(args.steady)
    base_steady_cpu, base_steady_api = cpu_seconds(proc.pid) - c0, cpu_seconds(api_pid) - a0
    stop.set()
    proc.join()
    base_counts = json.loads(out.read_text())
    rq = base_counts["converge"]
    base_steady = diff(base_counts["end"], rq)

    def per_min(x: float, s: float) -> float:
        return round(x * 60 / s, 1)

    return {
        "nodes": args.nodes,
        "models": args.models,
        "entries": n_entries,
        "report_write_s": round(write_s, 2),
        "ours": {
            "converge_s": round(ours_s, 2),
            "requests": conv,
            "requests_total": sum(v for k, v in conv.items() if k != "watch"),
            "writes": writes_of(conv),
            "status_writes": status_writes,
            "requests_per_entry": sum(v for k, v in conv.items() if k != "watch") / n_entries,
            "writes_per_entry": writes_of(conv) / n_entries,
            "cpu_s": round(ours_cpu, 2),
            "apiserver_cpu_s": round(ours_api_cpu, 2),
            "one_change": {"seconds": round(one_s, 3), "requests": one},
            "steady": {
                "seconds": args.steady,
                "writes_per_min": per_min(writes_of(steady), args.steady),
                "lists_per_min": per_min(steady.get("list", 0.0), args.steady),
                "requests_per_min": per_min(sum(steady.values()) - steady["watch"], args.steady),
                "cpu_s": round(steady_cpu, 2),
                "lease_requests_per_min": per_min(sum(lease_steady.values()), args.steady),
            },
        },
        "baseline": {
            "converged": base_converged,
            "converge_s": round(base_s, 2),
            "requests": rq,
            "requests_total": sum(v for k, v in rq.items() if k != "watch"),
            "writes": writes_of(rq),
            "cpu_s_to_converge": round(base_cpu, 2),
            "apiserver_cpu_s_to_converge": round(base_api_cpu, 2),
            "steady": {
                "seconds": args.steady,
                "writes_per_min": per_min(writes_of(base_steady), args.steady),
                "lists_per_min": per_min(base_steady.get("list", 0.0), args.steady),
                "requests_per_min": per_min(sum(base_steady.values()), args.steady),
                "cpu_s": round(base_steady_cpu, 2),
                "apiserver_cpu_s": round(base_steady_api, 2),
            },
        },
    }


def markdown(doc: dict[str, Any], file_name: str) -> str:
    m, o, b = doc["machine"], doc["ours"], doc["baseline"]
    os_, bs = o["steady"], b["steady"]

    def ratio(theirs: float, ours: float) -> str:
        return f"{theirs / ours:.1f}x" if ours > 0 else "-"

    capped = "" if b["converged"] else " (cap reached: not converged)"
    lines = [
        "### Controller on the API server (`python -m benches.controller`)",
        "",
        f"{doc['time']} · {doc['nodes']} Nodes x {doc['models']} ClusterBaseModels "
        f"({doc['entries']} Ready entries in {doc['nodes']} ConfigMaps, written in "
        f"{doc['report_write_s']} s) · {m.get('nproc')} cores, {m.get('memory_gib')} GiB, "
        f"{m.get('cpu_model')} · load average {m.get('loadavg_start')} at start, "
        f"{m.get('loadavg_end')} at end · `{file_name}`",
        "",
        "| | ours | OME-style baseline | baseline ÷ ours |",
        "|---|---:|---:|---:|",
        f"| time to converge all statuses | {o['converge_s']} s | {b['converge_s']} s{capped} | "
        f"{ratio(b['converge_s'], o['converge_s'])} |",
        f"| API requests to converge (per entry) | {o['requests_total']:.0f} "
        f"({o['requests_per_entry']:.4f}) | {b['requests_total']:.0f} "
        f"({b['requests_total'] / doc['entries']:.4f}) | "
        f"{ratio(b['requests_total'], o['requests_total'])} |",
        f"| writes to converge (per entry) | {o['writes']:.0f} ({o['writes_per_entry']:.4f}) | "
        f"{b['writes']:.0f} ({b['writes'] / doc['entries']:.4f}) | "
        f"{ratio(b['writes'], o['writes'])} |",
        f"| of which status writes | {o['status_writes']:.0f} | {b['writes']:.0f} | "
        f"{ratio(b['writes'], o['status_writes'])} |",
        f"| controller CPU s to converge | {o['cpu_s']} | {b['cpu_s_to_converge']} | "
        f"{ratio(b['cpu_s_to_converge'], o['cpu_s'])} |",
        f"| API server CPU s to converge | {o['apiserver_cpu_s']} | "
        f"{b['apiserver_cpu_s_to_converge']} | "
        f"{ratio(b['apiserver_cpu_s_to_converge'], o['apiserver_cpu_s'])} |",
        f"| steady state ({os_['seconds']:.0f} s, nothing changes): writes/min | "
        f"{os_['writes_per_min']} | {bs['writes_per_min']} | - |",
        f"| steady state: lists/min | {os_['lists_per_min']} | {bs['lists_per_min']} | - |",
        f"| steady state: requests/min (watches aside) | {os_['requests_per_min']} | "
        f"{bs['requests_per_min']} | - |",
        f"| steady state: controller CPU s | {os_['cpu_s']} | {bs['cpu_s']} | - |",
        f"| steady state: Lease renewals (requests/min, apart from the above) | "
        f"{os_['lease_requests_per_min']} | - | - |",
        f"| one changed entry → status written | {o['one_change']['seconds']} s, "
        f"{sum(o['one_change']['requests'].values()):.0f} request(s), "
        f"{writes_of(o['one_change']['requests']):.0f} write | - | - |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
