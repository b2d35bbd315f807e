"""Benchmark harness: ours against hf_transfer, huggingface_hub, aria2c, curl and cp.

Entry point: ``python -m benches.run [--scenarios S1,S2] [--runs 5] [--quick]``
(``make bench``). Method, scenarios and results: benches/README.md.

Where it sits: outside the package and outside the test run. It generates
fresh random source files on disk, serves them with Debian nginx on loopback
(tests/servers/nginx.py) or, for the repo scenario, with the local HF Hub server
(tests/servers/hf_hub_server.py, in its own process so it never shares the
harness's interpreter), then runs every tool as a fresh subprocess into a fresh
destination, round-robin with a rotating start, and keeps the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from tests.servers.nginx import NginxServer

from benches import data, objectstore, report
from benches.hub import hub_server
from benches.measure import Run, run_measured

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
OME_AGENT = str(VENV_BIN / "ome-agent")
PY = sys.executable
TMPFS = Path("/dev/shm")
DISK = Path("/var/tmp")
REPO_ID = "bench-org/bench-model"
# The newest huggingface_hub (scripts/install-hub-latest.sh) lives beside the harness's
# venv at the repo root, so S4 can set it against 0.36 (the package's own) in one run.
HUB_LATEST_BIN = VENV_BIN.parent.parent / ".venv-hub-latest" / "bin"

console = Console(highlight=False, width=150)


@dataclass
class Ctx:
    """What one run of one tool needs: the source and a fresh destination."""

    url: str  # file URL (S1-S3) or HF endpoint (S4)
    src: Path  # the source file on disk (cp) or the repo directory
    dest: Path  # destination file (S1-S3) or directory (S4)
    sha256: str
    size: int


@dataclass
class Tool:
    id: str
    label: str
    role: str  # "ours" | "peer" | "reference"
    argv: Callable[[Ctx], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    sync: bool = False  # fsync the output inside the timed window (durable scenario)
    # ours: at least one file verified by sha256 (object stores give md5/crc32c instead)
    require_sha256: bool = True
    subdir: str = ""  # where under DEST the tool puts the files (oci-cli keeps the prefix)
    # variables of the harness's environment the tool must not see
    drop_env: tuple[str, ...] = ()
    output: bool = True  # False for a ceiling that reads the source and writes nothing


@dataclass
class Scenario:
    key: str
    title: str
    dest_fs: Path
    slow: bool = False
    durable: bool = False
    hf: bool = False
    notes: list[str] = field(default_factory=list)


SCENARIOS = {
    "S1": Scenario("S1", "one file, nginx unlimited, destination on tmpfs", TMPFS),
    "S2": Scenario(
        "S2",
        "one file, nginx limit_rate 40m per connection, destination on tmpfs",
        TMPFS,
        slow=True,
    ),
    "S3": Scenario(
        "S3",
        "one file, destination on disk, durable (ours fsyncs; peers + sync FILE)",
        DISK,
        durable=True,
    ),
    "S4": Scenario(
        "S4", "HF-style repo through the local HF Hub server, destination on tmpfs", TMPFS, hf=True
    ),
}
# Object stores (benches/objectstore.py): run by the same rounds, in their own section.
OBJECT_STORE_SCENARIOS = ("O1", "O2")

METHOD = (
    "fresh subprocess and fresh destination per run; tools interleaved "
    "round-robin with a rotating start; page cache warm for all; "
    "median of ok runs; GB/s = bytes/1e9/median seconds; CPU = user+sys "
    "of the child tree (wait4); peak RSS = max ru_maxrss over runs"
)

# Peers must not pick up a user's hf_transfer switch, draw progress bars we'd pay for,
# or (the `hf` CLI) ask the package registry for a newer version inside the clock.
HF_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_ENABLE_HF_TRANSFER": "0",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
}


def _peer(
    tool_id: str,
    label: str,
    peer: str,
    env: dict[str, str],
    *,
    repo: str | None = None,
    sync: bool = False,
    python: str = PY,
) -> Tool:
    """The download ``peer`` of benches/peers.py (huggingface_hub's or hf_transfer's) as
    a peer tool, run by ``python``: of the Hub repo ``repo``, else of the scenario's URL."""
    return Tool(
        tool_id,
        label,
        "peer",
        lambda c: [python, "-m", "benches.peers", peer, repo or c.url, str(c.dest)],
        env=env,
        sync=sync,
    )


def _verified_pull(exe: str) -> Callable[[Ctx], list[str]]:
    """``exe pull URL DEST --sha256 HEX --json``: the headline command of S1-S3."""
    return lambda c: [exe, "pull", c.url, str(c.dest), "--sha256", c.sha256, "--json"]


def _baseline(label: str, argv: Callable[[Ctx], list[str]], env: dict[str, str]) -> Tool:
    """Another build of ours (``--baseline``), run like a reference: a restructuring
    or an engine change is measured against the code before it in the same run."""
    # PYTHONPATH would make the other build import the sources ours runs from; a
    # source tree is benchmarked through a wrapper script that sets its own
    return Tool(
        "baseline",
        f"{label} (baseline build)",
        "reference",
        argv,
        env=env,
        drop_env=("PYTHONPATH",),
    )


# One core hashing the source file's bytes from the page cache with OpenSSL's sha256
# (hashlib), 16 MiB reads: the ceiling of any client that verifies sha256 in order.
SHA256_ONE_CORE = (
    "import hashlib, sys\n"
    "h = hashlib.sha256()\n"
    "with open(sys.argv[1], 'rb', buffering=0) as f:\n"
    "    buf = bytearray(16 << 20)\n"
    "    view = memoryview(buf)\n"
    "    while n := f.readinto(buf):\n"
    "        h.update(view[:n])\n"
    "print(h.hexdigest())\n"
)


def file_tools(sc: Scenario, baseline: str | None = None) -> list[Tool]:
    sync = sc.durable
    plus = " + sync" if sync else ""
    tools = [
        Tool("ours", "ome-agent pull --sha256", "ours", _verified_pull(OME_AGENT)),
        Tool(
            "ours-noverify",
            "ome-agent pull --no-verify",
            "ours",
            lambda c: [OME_AGENT, "pull", c.url, str(c.dest), "--no-verify", "--json"],
        ),
    ]
    if sc.durable:
        tools.append(
            Tool(
                "ours-directio",
                "ome-agent pull --sha256 --direct-io",
                "ours",
                lambda c: [
                    OME_AGENT,
                    "pull",
                    c.url,
                    str(c.dest),
                    "--sha256",
                    c.sha256,
                    "--direct-io",
                    "--json",
                ],
            )
        )
    if baseline:
        tools.append(_baseline("ome-agent pull --sha256", _verified_pull(baseline), {}))
    tools += [
        _peer(
            "hf_transfer",
            f"hf_transfer.download (100 x 10 MiB){plus}",
            "hf_transfer",
            HF_ENV,
            sync=sync,
        ),
        _peer("hf_http_get", f"huggingface_hub http_get{plus}", "hf_http_get", HF_ENV, sync=sync),
        Tool(
            "aria2c",
            f"aria2c -x16 -s16 -k8M{plus}",
            "peer",
            lambda c: [
                "aria2c",
                "-x16",
                "-s16",
                "-k8M",
                "-q",
                "--allow-overwrite=true",
                "--auto-file-renaming=false",
                "-d",
                str(c.dest.parent),
                "-o",
                c.dest.name,
                c.url,
            ],
            sync=sync,
        ),
        Tool(
            "curl",
            f"curl -o{plus}",
            "peer",
            lambda c: ["curl", "-sS", "--fail", "-o", str(c.dest), c.url],
            sync=sync,
        ),
        Tool(
            "cp",
            f"cp (physical reference){plus}",
            "reference",
            lambda c: ["cp", str(c.src), str(c.dest)],
            sync=sync,
        ),
        Tool(
            "sha256",
            "sha256 of the source on one core (hashlib: the verified ceiling)",
            "reference",
            lambda c: [PY, "-c", SHA256_ONE_CORE, str(c.src)],
            output=False,
        ),
    ]
    return tools


def _hf_pull(exe: str) -> Callable[[Ctx], list[str]]:
    """``exe pull hf://ORG/NAME DEST --json``: the headline command of S4."""
    return lambda c: [exe, "pull", f"hf://{REPO_ID}", str(c.dest), "--json"]


def hf_tools(endpoint: str, baseline: str | None = None) -> list[Tool]:
    env = {**HF_ENV, "HF_ENDPOINT": endpoint}
    label = "ome-agent pull hf:// (sha256 / git-sha1)"
    return [
        Tool("ours", label, "ours", _hf_pull(OME_AGENT), env=env),
        *([_baseline(label, _hf_pull(baseline), env)] if baseline else []),
        Tool(  # like for like with snapshot_download, which checks no digest
            "ours-noverify",
            "ome-agent pull hf:// --no-verify",
            "ours",
            lambda c: [OME_AGENT, "pull", f"hf://{REPO_ID}", str(c.dest), "--no-verify", "--json"],
            env=env,
        ),
        _peer(
            "snapshot_download",
            f"huggingface_hub {_py_version('huggingface_hub')} snapshot_download (8 workers)",
            "snapshot_download",
            env,
            repo=REPO_ID,
        ),
        *_hf_transfer_tools(env),
        *hub_latest_tools(env),
    ]


def _hf_transfer_tools(env: dict[str, str]) -> list[Tool]:
    """0.36's snapshot_download through hf_transfer, when the harness's venv has it
    (scripts/bootstrap.sh bench installs it; without it 0.36 refuses to start)."""
    if importlib.util.find_spec("hf_transfer") is None:
        console.print(
            "S4: skipping snapshot_download with HF_HUB_ENABLE_HF_TRANSFER=1: hf_transfer "
            "is not installed (scripts/bootstrap.sh bench installs it)",
            markup=False,
        )
        return []
    return [
        _peer(
            "snapshot_download+hf_transfer",
            "snapshot_download with HF_HUB_ENABLE_HF_TRANSFER=1",
            "snapshot_download",
            {**env, "HF_HUB_ENABLE_HF_TRANSFER": "1"},
            repo=REPO_ID,
        )
    ]


def hub_latest_tools(env: dict[str, str]) -> list[Tool]:
    """The newest huggingface_hub's ``snapshot_download`` and its ``hf download`` CLI,
    each with its defaults (8 workers). Its speed switch, ``HF_XET_HIGH_PERFORMANCE``,
    applies to Xet transfers only, and the local Hub serves none (benches/README.md,
    S4), so nothing else is set; ``hf_transfer`` is no longer used by 1.x and later."""
    python, hf = HUB_LATEST_BIN / "python", HUB_LATEST_BIN / "hf"
    if not (os.access(python, os.X_OK) and os.access(hf, os.X_OK)):
        console.print(
            f"S4: skipping the newest huggingface_hub's rows: no {HUB_LATEST_BIN} "
            "(scripts/install-hub-latest.sh installs it)",
            markup=False,
        )
        return []
    version = _hub_latest_version()
    return [
        _peer(
            "snapshot_download-latest",
            f"huggingface_hub {version} snapshot_download (8 workers)",
            "snapshot_download",
            env,
            repo=REPO_ID,
            python=str(python),
        ),
        Tool(
            "hf-download",
            f"hf download --local-dir (huggingface_hub {version})",
            "peer",
            lambda c: [str(hf), "download", REPO_ID, "--local-dir", str(c.dest)],
            env=env,
        ),
    ]


# ---------------------------------------------------------------- facts
def _first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unavailable ({e})"
    text = (p.stdout or p.stderr).strip()
    return text.splitlines()[0] if text else "unknown"


def _py_version(module: str) -> str:
    code = f"import {module}; print(getattr({module}, '__version__', 'unknown'))"
    return _first_line([PY, "-c", code])


def _hub_latest_version() -> str:
    code = "import huggingface_hub; print(huggingface_hub.__version__)"
    python = HUB_LATEST_BIN / "python"
    if not os.access(python, os.X_OK):
        return "not installed"
    return _first_line([str(python), "-c", code])


def machine_facts() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        m = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        mem_kib = int(m.group(1)) if m else 0
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def tool_versions() -> dict[str, str]:
    return {
        "ome-agent": _first_line([OME_AGENT, "--version"]),
        "python": platform.python_version(),
        "hf_transfer": _py_version("hf_transfer"),
        "huggingface_hub": _py_version("huggingface_hub"),
        "huggingface_hub (.venv-hub-latest)": _hub_latest_version(),
        "aria2c": _first_line(["aria2c", "--version"]),
        "curl": _first_line(["curl", "--version"]),
        "cp": _first_line(["cp", "--version"]),
        "nginx": _first_line(["nginx", "-v"]),
    }


# ---------------------------------------------------------------- servers
# ---------------------------------------------------------------- checks
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(16 * 1024 * 1024):
            h.update(block)
    return h.hexdigest()


def check_file(ctx: Ctx, *, full: bool) -> str | None:
    """None when the output is right; else what is wrong."""
    if not ctx.dest.is_file():
        return f"no output file at {ctx.dest}"
    size = ctx.dest.stat().st_size
    if size != ctx.size:
        return f"size {size} != {ctx.size}"
    if full and _sha256(ctx.dest) != ctx.sha256:
        return "sha256 differs from the source"
    return None


def check_digest(stdout: str, want: str) -> str | None:
    """None when a ceiling that prints a hex digest printed the source's."""
    got = stdout.strip()
    return None if got == want else f"printed {got[:64]!r}, not the source's sha256"


def check_repo(
    dest: Path, expected: dict[str, int], digests: dict[str, str] | None = None
) -> str | None:
    """Every file there with its size; with ``digests`` (name -> sha256) its bytes too."""
    for name, size in expected.items():
        p = dest / name
        if not p.is_file():
            return f"missing {name}"
        if p.stat().st_size != size:
            return f"{name}: size {p.stat().st_size} != {size}"
        if digests is not None and _sha256(p) != digests[name]:
            return f"{name}: sha256 differs from the source"
    return None


def check_ours_json(tool: Tool, run: Run) -> str | None:
    """Our own ``--json`` summary must show that every file was verified by a digest
    (sha256 for LFS and single files, git-sha1 for small repo files) and that no
    byte came from a resume journal (a fresh destination has none)."""
    if tool.role != "ours":
        return None
    try:
        doc = json.loads(run.stdout)
        files = doc["files"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return "pull --json printed no summary with files"
    for f in files:
        if f.get("resumed_bytes"):
            return f"{f.get('path')}: {f['resumed_bytes']} bytes resumed in a fresh destination"
        if tool.id != "ours-noverify" and not set(f.get("verified", [])) - {"size"}:
            return f"{f.get('path')}: not verified by a digest ({f.get('verified')})"
    if (
        tool.id in ("ours", "ours-directio")
        and tool.require_sha256
        and not any("sha256" in f["verified"] for f in files)
    ):
        return "no file was verified by sha256"
    return None


def reported_seconds(tool: Tool, run: Run) -> float | None:
    """Ours' own transfer time from its --json summary: the wall time minus this is
    process start-up, imports and resolution, which the table's numbers include."""
    if tool.role != "ours":
        return None
    try:
        return round(float(json.loads(run.stdout)["seconds"]), 4)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


# ---------------------------------------------------------------- rounds
def fresh(path: Path) -> None:
    """Remove a previous output (file, directory, and the tools' side files)."""
    if path.is_dir():
        shutil.rmtree(path)
    for p in path.parent.glob(path.name + "*"):
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink()


def run_scenario(
    sc: Scenario,
    tools: list[Tool],
    base_ctx: Ctx,
    *,
    runs: int,
    expected_files: dict[str, int] | None,
    expected_digests: dict[str, str] | None = None,
    workdir: Path,
    check_all: bool,
) -> dict[str, Any]:
    dest_dir = Path(tempfile.mkdtemp(prefix=f"ome-bench-{sc.key}-", dir=sc.dest_fs))
    results: dict[str, list[dict[str, Any]]] = {t.id: [] for t in tools}
    timeout = max(300.0, base_ctx.size / 20e6)  # far above curl at 40 MB/s
    try:
        for r in range(runs):
            order = tools[r % len(tools) :] + tools[: r % len(tools)]
            for tool in order:
                dest = dest_dir / ("repo" if sc.hf else "out.bin")
                ctx = Ctx(base_ctx.url, base_ctx.src, dest, base_ctx.sha256, base_ctx.size)
                fresh(dest)
                if sc.durable:
                    # Start every durable run with no one else's dirty pages queued.
                    os.sync()
                env = {**os.environ, **tool.env}
                for name in tool.drop_env:
                    env.pop(name, None)
                run = run_measured(
                    tool.argv(ctx),
                    env=env,
                    timeout=timeout,
                    then_sync=dest if tool.sync else None,
                    logdir=workdir / "logs" / sc.key / f"{r}-{tool.id}",
                )
                # Peers' bytes are hashed on the first round (and with --check-all):
                # a tool that writes garbage is caught without doubling every run.
                full = tool.role != "ours" and (r == 0 or check_all)
                error: str | None = None
                if run.timed_out:
                    error = f"timed out after {timeout:.0f}s"
                elif run.exit_code != 0:
                    error = f"exit {run.exit_code}: {run.stderr.strip()[-300:]}"
                elif not tool.output:
                    error = check_digest(run.stdout, ctx.sha256)
                elif expected_files is not None:
                    digests = expected_digests if full else None
                    error = check_repo(dest / tool.subdir, expected_files, digests)
                else:
                    error = check_file(ctx, full=full)
                error = error or check_ours_json(tool, run)
                results[tool.id].append(
                    {
                        "round": r,
                        "ok": error is None,
                        "error": error,
                        "seconds": round(run.seconds, 4),
                        "cpu_seconds": round(run.cpu_seconds, 4),
                        "max_rss_bytes": run.max_rss_bytes,
                        "reported_seconds": reported_seconds(tool, run),
                    }
                )
                gbps = base_ctx.size / 1e9 / run.seconds if run.seconds else 0.0
                status = "ok" if error is None else f"BROKEN ({error})"
                console.print(
                    f"  {sc.key} round {r + 1}/{runs} {tool.label:<48} "
                    f"{run.seconds:7.2f} s {gbps:6.3f} GB/s cpu {run.cpu_seconds:6.2f} s "
                    f"rss {run.max_rss_bytes / 1e6:6.0f} MB {status}",
                    markup=False,
                )
                fresh(dest)
    finally:
        shutil.rmtree(dest_dir, ignore_errors=True)
    tool_docs = [
        {
            "id": t.id,
            "label": t.label,
            "role": t.role,
            "command": [Path(a).name if a in (PY, OME_AGENT) else a for a in t.argv(base_ctx)],
            "env": t.env,
            "durable_sync": t.sync,
            "runs": results[t.id],
            "summary": report.summarize(results[t.id], base_ctx.size),
        }
        for t in tools
    ]
    return {"tools": tool_docs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.run", description=__doc__)
    p.add_argument(
        "--scenarios", default="S1,S2,S3,S4,O1,O2", help="comma-separated, e.g. S1,S3,O2"
    )
    p.add_argument("--runs", type=int, default=None, help="runs per tool (default 5, quick 3)")
    p.add_argument(
        "--quick", action="store_true", help="256 MiB files, 3 runs: checks the harness itself"
    )
    p.add_argument(
        "--check-all", action="store_true", help="sha256 every peer output, not just round 1"
    )
    p.add_argument(
        "--baseline",
        metavar="EXE",
        help="another build's ome-agent executable, run beside ours in the same rounds "
        "(before/after a change); its results go to results/builds/, not the README",
    )
    p.add_argument(
        "--tools",
        metavar="IDS",
        help="run only these tool ids, e.g. ours,baseline (results go to results/builds/)",
    )
    p.add_argument(
        "--readme-only",
        action="store_true",
        help="regenerate the README results section from benches/results and exit",
    )
    a = p.parse_args(argv)
    if a.readme_only:
        report.update_readme()
        console.print(f"updated {report.README}")
        return 0
    everything = [*SCENARIOS, *OBJECT_STORE_SCENARIOS]
    keys = [k.strip().upper() for k in a.scenarios.split(",") if k.strip()]
    unknown = [k for k in keys if k not in everything]
    if unknown or not keys:
        p.error(f"--scenarios: unknown {unknown}; choose from {', '.join(everything)}")
    store_keys = [k for k in keys if k in OBJECT_STORE_SCENARIOS]
    keys = [k for k in keys if k in SCENARIOS]
    if store_keys and (missing := objectstore.missing_peers()):
        p.error(f"{', '.join(missing)} missing: run scripts/install-bench-peers.sh first")
    runs = a.runs if a.runs is not None else (3 if a.quick else 5)
    if runs < 1:
        p.error("--runs: must be at least 1")
    if a.baseline and not os.access(a.baseline, os.X_OK):
        p.error(f"--baseline: {a.baseline} is not an executable")
    only = {t.strip() for t in a.tools.split(",") if t.strip()} if a.tools else None
    # a partial table must not replace the README's full one
    partial = bool(a.baseline or only)
    file_size = (256 if a.quick else 2048) * 1024 * 1024
    shards, shard_size = (4, 32 * 1024 * 1024) if a.quick else (16, 128 * 1024 * 1024)

    machine, versions = machine_facts(), tool_versions()
    if store_keys:
        versions |= objectstore.peer_versions()
    console.print(f"machine: {machine}", markup=False)
    console.print(f"versions: {versions}", markup=False)
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out_dir = report.RESULTS_DIR
    if a.quick or partial:
        out_dir = out_dir / ("quick" if a.quick else "builds")
    out_dir.mkdir(parents=True, exist_ok=True)

    def base_doc(key: str, title: str) -> dict[str, Any]:
        """What every scenario's result document starts with (taken after its runs)."""
        return {
            "scenario": key,
            "title": title,
            "date": date,
            "quick": a.quick,
            "runs_per_tool": runs,
            "machine": {**machine, "loadavg_end": " ".join(f"{x:.2f}" for x in os.getloadavg())},
            "versions": versions,
            "method": METHOD,
        }

    def publish(doc: dict[str, Any]) -> None:
        doc["ratios"] = report.ratios(doc["tools"])
        doc["targets"] = report.evaluate_targets(doc)
        path = out_dir / f"{doc['scenario']}-{date}.json"
        path.write_text(json.dumps(doc, indent=2) + "\n")
        doc["results_file"] = str(path)
        report.print_table(doc, console)
        console.print(f"results: {path.relative_to(ROOT)}")

    workdir = Path(tempfile.mkdtemp(prefix="ome-bench-", dir=DISK))
    try:
        www = workdir / "www"
        www.mkdir()
        t0 = time.perf_counter()
        src = (
            data.random_file(www / "file.bin", file_size)
            if {"S1", "S2", "S3"} & set(keys)
            else None
        )
        repo_files = (
            data.hf_repo(workdir / "hub", REPO_ID, shards=shards, shard_size=shard_size)
            if "S4" in keys
            else []
        )
        console.print(f"generated source data in {time.perf_counter() - t0:.1f}s")
        data.warm([f.path for f in ([src] if src else []) + repo_files])
        with contextlib.ExitStack() as stack:
            nginx = stack.enter_context(
                NginxServer(www, limit_rate="40m", workdir=workdir / "nginx")
            )
            cdn = www / "cdn"  # nginx serves LFS objects by sha256, like the Hub's CDN
            cdn.mkdir(exist_ok=True)
            for f in repo_files:
                with contextlib.suppress(FileExistsError):
                    os.link(f.path, cdn / f.sha256)
            endpoint = (
                stack.enter_context(hub_server(workdir / "hub", workdir, nginx.base_url + "cdn"))
                if repo_files
                else ""
            )
            # only when asked: it generates and reads 4.3 GB of objects first
            for doc in (
                objectstore.run(
                    store_keys,
                    runs=runs,
                    quick=a.quick,
                    check_all=a.check_all,
                    workdir=workdir,
                    base_doc=base_doc,
                )
                if store_keys
                else []
            ):
                publish(doc)
            for key in keys:
                sc = SCENARIOS[key]
                console.print(f"[bold]{key}[/]: {sc.title}")
                expected: dict[str, int] | None = None
                if sc.hf:
                    repo_dir = workdir / "hub" / REPO_ID
                    expected = {f.path.relative_to(repo_dir).as_posix(): f.size for f in repo_files}
                    total = sum(expected.values())
                    ctx = Ctx(endpoint, repo_dir, Path(), "", total)
                    tools = hf_tools(endpoint, a.baseline)
                    nfiles = len(expected)
                else:
                    assert src is not None
                    base = nginx.slow_url if sc.slow else nginx.base_url
                    ctx = Ctx(base + src.path.name, src.path, Path(), src.sha256, src.size)
                    tools = file_tools(sc, a.baseline)
                    nfiles = 1
                if only is not None:
                    tools = [t for t in tools if t.id in only]
                body = run_scenario(
                    sc,
                    tools,
                    ctx,
                    runs=runs,
                    expected_files=expected,
                    workdir=workdir,
                    check_all=a.check_all,
                )
                publish(
                    {
                        **base_doc(key, sc.title),
                        "bytes": ctx.size,
                        "files": nfiles,
                        "destination_fs": str(sc.dest_fs),
                        **body,
                    }
                )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if not (a.quick or partial) and report.update_readme():
        console.print(f"updated the results sections of {report.README.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
