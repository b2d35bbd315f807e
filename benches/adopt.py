"""Benchmark of adoption: how fast the agent checks a model another agent already put
on the node, against ``sha256sum`` of the same files as the ceiling.

Entry point: ``python -m benches.adopt [--gb 3] [--shards 12] [--runs 3]``. Writes
``benches/results/adopt-<time>.json`` and prints a markdown section for
benches/README.md.

Where it sits: outside the package and the test run. It generates an HF-style repo of
random safetensors shards on tmpfs (``benches.data``), serves it from the local Hub
server (tests/servers/hf_hub_server.py, in this process: it answers only the listing
during the measurement and counts requests, so "no file fetched" is checked), and
hard-links the files as a node's model directory. Each round, interleaved with a
rotating start: (a) adoption as the agent does it (``sources.resolve_hf``: the
listing; ``reconcile.localcheck.check_local``: every file hashed and compared, sha256
for LFS shards, git blob sha1 for the rest); (b) ``sha256sum`` of all files, one
process, and one process per core (``xargs -P``); (c) the same with ``openssl dgst
-sha256``, the library ``hashlib`` uses (SHA-NI where the CPU has it, which coreutils'
``sha256sum`` 9.1 does not use). Files on tmpfs are in memory: this measures the
hashing, the part adoption adds per byte; on a disk, its read rate caps them all alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.servers.hf_hub_server import HubServer

from benches import data
from benches.run import machine_facts
from ome_agent.reconcile.localcheck import check_local
from ome_agent.sources import HfRef, parse_source, resolve_hf

RESULTS = Path(__file__).resolve().parent / "results"
REPO_ID = "bench-org/adopt-model"
SHA256SUM = ["sha256sum"]
# the library hashlib uses (SHA-NI where the CPU has it); coreutils 9.1 does not
OPENSSL = ["openssl", "dgst", "-sha256"]


def adopt_once(target: Path, ref: HfRef, hub: HubServer) -> dict[str, float]:
    hub.clear_requests()
    started = time.monotonic()
    resolved = resolve_hf(ref)
    listed = time.monotonic()
    check = check_local(target, resolved, workers=os.cpu_count() or 1)
    done = time.monotonic()
    fetched = [r for r in hub.requests("hub") if "/resolve/" in r["path"]] + hub.requests("cdn")
    if check.mismatches or fetched:
        raise SystemExit(f"adoption was not clean: {check.mismatches} {fetched}")
    return {
        "seconds": done - started,
        "listing_seconds": listed - started,
        "check_seconds": done - listed,
        "bytes": check.checked_bytes,
        "files": len(check.kept),
        "requests": len(hub.requests("hub")),
    }


def hash_tool(argv: list[str], files: list[Path], parallel: int) -> dict[str, float]:
    """``argv`` over every file: one process, or one per file ``parallel`` at a time."""
    started = time.monotonic()
    if parallel == 1:
        subprocess.run([*argv, *map(str, files)], check=True, capture_output=True)
    else:
        subprocess.run(
            ["xargs", "-0", "-n1", "-P", str(parallel), *argv],
            input=b"\0".join(str(f).encode() for f in files),
            check=True,
            capture_output=True,
        )
    return {"seconds": time.monotonic() - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=3.0, help="size of the model (GB)")
    parser.add_argument("--shards", type=int, default=12)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tmpfs", type=Path, default=Path("/dev/shm"))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="ome-adopt-bench-", dir=args.tmpfs))
    try:
        shard = int(args.gb * 1e9 / args.shards)
        sources = data.hf_repo(work / "hub", REPO_ID, shards=args.shards, shard_size=shard)
        node_dir = work / "node" / "model"
        node_dir.mkdir(parents=True)
        for f in sources:  # the node's copy: hard links, no second copy in memory
            os.link(f.path, node_dir / f.path.name)
        files = sorted(node_dir.iterdir())
        total = sum(f.size for f in sources)
        hub = HubServer(work / "hub").start()  # hashes the repo now, outside the clock
        os.environ["HF_ENDPOINT"] = hub.endpoint
        ncpu = os.cpu_count() or 1
        ref = parse_source(f"hf://{REPO_ID}")
        assert isinstance(ref, HfRef)
        facts = machine_facts()
        contenders: dict[str, Callable[[], dict[str, float]]] = {
            "adoption": lambda: adopt_once(node_dir, ref, hub),
            "sha256sum": lambda: hash_tool(SHA256SUM, files, 1),
            f"sha256sum x{ncpu}": lambda: hash_tool(SHA256SUM, files, ncpu),
            "openssl sha256": lambda: hash_tool(OPENSSL, files, 1),
            f"openssl sha256 x{ncpu}": lambda: hash_tool(OPENSSL, files, ncpu),
        }
        names = list(contenders)
        runs: dict[str, list[dict[str, float]]] = {n: [] for n in names}
        try:
            data.warm(files)
            for r in range(args.runs):
                for i in range(len(names)):
                    name = names[(r + i) % len(names)]
                    runs[name].append(contenders[name]())
        finally:
            hub.stop()
        facts["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary: dict[str, Any] = {}
    for name in names:
        seconds = statistics.median(x["seconds"] for x in runs[name])
        summary[name] = {"median_seconds": seconds, "gb_per_s": total / 1e9 / seconds}
    adoption = runs["adoption"]
    summary["adoption"]["median_check_seconds"] = statistics.median(
        x["check_seconds"] for x in adoption
    )
    summary["adoption"]["median_listing_seconds"] = statistics.median(
        x["listing_seconds"] for x in adoption
    )
    summary["adoption"]["hub_requests"] = adoption[0]["requests"]
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = {
        "bytes": total,
        "files": len(sources),
        "runs": runs,
        "summary": summary,
        "machine": facts,
    }
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"adopt-{stamp}.json"
    path.write_text(json.dumps(out, indent=1))
    print(report(out, path.name))


def report(out: dict[str, Any], name: str) -> str:
    m = out["machine"]
    lines = [
        f"{out['bytes'] / 1e9:.2f} GB in {out['files']} files on tmpfs · median of "
        f"{len(out['runs']['adoption'])} runs · {m['nproc']} cores, {m['memory_gib']} GiB, "
        f"{m['cpu_model']}, kernel {m['kernel']} · load average {m['loadavg_start']} at "
        f"start, {m['loadavg_end']} at end · `{name}`",
        "",
        "| | GB/s | median s | adoption ÷ it |",
        "|---|---:|---:|---:|",
    ]
    adoption = out["summary"]["adoption"]["gb_per_s"]
    for tool, s in out["summary"].items():
        lines.append(
            f"| {tool} | {s['gb_per_s']:.2f} | {s['median_seconds']:.2f} | "
            f"{adoption / s['gb_per_s']:.2f}x |"
        )
    a = out["summary"]["adoption"]
    lines.append("")
    lines.append(
        f"Adoption: listing {a['median_listing_seconds']:.2f} s ({a['hub_requests']} Hub API "
        f"requests, no file fetched), hashing {a['median_check_seconds']:.2f} s."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
