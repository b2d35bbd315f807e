"""Summaries, tables and the README results section of the benchmark harness.

Where it sits: after ``benches.run`` has measured; it turns raw runs into
medians, GB/s, CPU-seconds per GB, peak RSS, ratios and the targets of benches/README.md,
prints them (rich), and renders the same numbers as Markdown between the results
markers of ``benches/README.md`` (one section for the HTTP/Hub scenarios S*, one
for the object stores O*, ``benches.objectstore``). It reads only the JSON files
in ``benches/results``, so the README can be regenerated without measuring again.
"""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS_DIR = Path(__file__).parent / "results"
README = Path(__file__).parent / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
# README sections: markers and the result files each one shows
SECTIONS = (
    (START, END, "S*-*.json"),
    ("<!-- objectstore:start -->", "<!-- objectstore:end -->", "O*-*.json"),
)
# O1/O2: each vendor tool our rows must beat, and by how much
OBJECT_STORE_GOALS = {"O1": [("oci-cli", 2.0)], "O2": [("aws-cli", 2.0), ("boto3", 2.0)]}


def summarize(runs: list[dict[str, Any]], nbytes: int) -> dict[str, Any]:
    """Medians over the good runs of one tool (a broken run is never counted)."""
    ok = [r for r in runs if r["ok"]]
    if not ok:
        return {"ok_runs": 0, "runs": len(runs)}
    secs = statistics.median(r["seconds"] for r in ok)
    cpu = statistics.median(r["cpu_seconds"] for r in ok)
    reported = [r["reported_seconds"] for r in ok if r.get("reported_seconds")]
    extra: dict[str, Any] = {}
    if reported:
        inner = statistics.median(reported)
        extra = {
            "median_reported_seconds": round(inner, 4),
            "reported_gb_per_s": round(nbytes / 1e9 / inner, 4),
        }
    return {
        **extra,
        "ok_runs": len(ok),
        "runs": len(runs),
        "median_seconds": round(secs, 4),
        "min_seconds": round(min(r["seconds"] for r in ok), 4),
        "max_seconds": round(max(r["seconds"] for r in ok), 4),
        "gb_per_s": round(nbytes / 1e9 / secs, 4),
        "cpu_seconds_per_gb": round(cpu / (nbytes / 1e9), 4),
        "peak_rss_mb": round(max(r["max_rss_bytes"] for r in ok) / 1e6, 1),
    }


def ratios(tools: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """GB/s of each of our rows divided by each other row's."""
    out: dict[str, dict[str, float]] = {}
    for ours in (t for t in tools if t["role"] == "ours" and t["summary"].get("gb_per_s")):
        out[ours["id"]] = {
            t["id"]: round(ours["summary"]["gb_per_s"] / t["summary"]["gb_per_s"], 3)
            for t in tools
            if t["id"] != ours["id"] and t["summary"].get("gb_per_s")
        }
    return out


def _by_id(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["id"]: t for t in doc["tools"]}


def evaluate_targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The targets (benches/README.md) that this scenario's numbers can decide."""
    tools = _by_id(doc)
    rat = doc.get("ratios", {})
    out: list[dict[str, Any]] = []

    def target(what: str, goal: str, value: str | None, met: bool | None) -> None:
        out.append({"target": what, "goal": goal, "value": value, "met": met})

    def ratio(what: str, ours: str, peer: str, goal: float) -> None:
        value = rat.get(ours, {}).get(peer)
        shown = None if value is None else f"{value:.2f}x"
        target(what, f">= {goal}x", shown, None if value is None else value >= goal)

    def summary(tool: str, key: str) -> float | None:
        value = tools.get(tool, {}).get("summary", {}).get(key)
        return float(value) if value is not None else None

    sc = doc["scenario"]
    if sc == "S1":
        ratio("ours (sha256) vs hf_transfer", "ours", "hf_transfer", 1.0)
        ratio("ours (no verify) vs hf_transfer", "ours-noverify", "hf_transfer", 1.3)
        ratio("ours (sha256) vs curl", "ours", "curl", 1.0)
        ratio("ours (sha256) vs huggingface_hub http_get", "ours", "hf_http_get", 1.0)
        ratio("ours (sha256) vs one-core sha256 of the same bytes", "ours", "sha256", 0.9)
        rss = summary("ours", "peak_rss_mb")
        rss_shown = None if rss is None else f"{rss:.0f} MB"
        target("ours peak RSS", "<= 150 MB", rss_shown, None if rss is None else rss <= 150)
        cpu = summary("ours", "cpu_seconds_per_gb")
        cpu_shown = None if cpu is None else f"{cpu:.2f}"
        target("ours CPU s/GB", "<= 1.5", cpu_shown, None if cpu is None else cpu <= 1.5)
    elif sc == "S2":
        ratio("ours (sha256) vs hf_transfer", "ours", "hf_transfer", 1.2)
        ratio("ours (sha256) vs curl", "ours", "curl", 10.0)
    elif sc == "S3":
        ratio("ours (sha256) vs hf_transfer + sync", "ours", "hf_transfer", 2.0)
    elif sc == "S4":
        ratio("ours (sha256) vs snapshot_download", "ours", "snapshot_download", 1.2)
    elif sc in OBJECT_STORE_GOALS:
        # the vendor tools verify no digest: ours without verification is the like for like
        rows = (
            ("ours", "ours (verified)"),
            ("ours-noverify", "ours (no verify)"),
            ("ours-chunk64", "ours --chunk-size 64M (verified)"),
        )
        for ours, what in rows:
            if ours in tools:
                for peer, goal in OBJECT_STORE_GOALS[sc]:
                    ratio(f"{what} vs {peer}", ours, peer, goal)
    if sc in ("S1", "S2", "S3"):
        mine, theirs = (
            summary("ours", "cpu_seconds_per_gb"),
            summary("hf_transfer", "cpu_seconds_per_gb"),
        )
        met = None if mine is None or theirs is None else mine <= theirs
        shown = (
            None if mine is None else f"{mine:.2f} vs {'-' if theirs is None else f'{theirs:.2f}'}"
        )
        target("ours CPU s/GB vs hf_transfer", "<= hf_transfer", shown, met)
    return out


# ---------------------------------------------------------------- terminal
def print_table(doc: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    ours = doc.get("ratios", {}).get("ours", {})
    table = Table(
        title=f"{doc['scenario']}: {doc['title']} — median of {doc['runs_per_tool']} runs",
        title_justify="left",
    )
    for col in ("tool", "GB/s", "CPU s/GB", "peak RSS MB", "median s", "ok runs", "ours ÷ tool"):
        table.add_column(col, justify="left" if col == "tool" else "right")
    for t in doc["tools"]:
        s = t["summary"]
        if not s.get("ok_runs"):
            table.add_row(t["label"], "-", "-", "-", "-", f"0/{s['runs']}", "-")
            continue
        r = ours.get(t["id"])
        table.add_row(
            t["label"],
            f"{s['gb_per_s']:.3f}",
            f"{s['cpu_seconds_per_gb']:.2f}",
            f"{s['peak_rss_mb']:.0f}",
            f"{s['median_seconds']:.2f}",
            f"{s['ok_runs']}/{s['runs']}",
            "-" if r is None else f"{r:.2f}x",
        )
    console.print(table)
    for t in doc["tools"]:
        if t["summary"].get("reported_gb_per_s"):
            console.print(
                f"  {t['label']}: {t['summary']['reported_gb_per_s']:.3f} GB/s by its own "
                f"--json timing ({t['summary']['median_reported_seconds']:.2f} s, no start-up)"
            )
    for tg in doc.get("targets", []):
        mark = {True: "met", False: "MISSED", None: "n/a"}[tg["met"]]
        line = f"  target {tg['target']} {tg['goal']}: {tg['value'] or '-'} [{mark}]"
        console.print(line, markup=False)


# ---------------------------------------------------------------- README
def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    ours = doc.get("ratios", {}).get("ours", {})
    lines = [
        f"### {doc['scenario']}: {doc['title']}",
        "",
        f"{doc['date']} · {doc['bytes'] / 1e9:.2f} GB in {doc['files']} file(s) · "
        f"median of {doc['runs_per_tool']} runs · {m['nproc']} cores, "
        f"{m['memory_gib']} GiB, {m['cpu_model']}, kernel {m['kernel']} · "
        f"load average (1/5/15 min) {m['loadavg_start']} at start, "
        f"{m.get('loadavg_end', '?')} at end · "
        f"`{Path(doc['results_file']).name}`",
        "",
        # object stores: ours verifies with the service's digests (md5, crc32c), not sha256
        f"| tool | GB/s | CPU s/GB | peak RSS MB | median s | ok runs | ours "
        f"({'verified' if doc['scenario'] in OBJECT_STORE_GOALS else 'sha256'}) ÷ tool |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for t in doc["tools"]:
        s = t["summary"]
        if not s.get("ok_runs"):
            lines.append(f"| {t['label']} | - | - | - | - | 0/{s['runs']} | - |")
            continue
        r = ours.get(t["id"])
        lines.append(
            f"| {t['label']} | {s['gb_per_s']:.3f} | {s['cpu_seconds_per_gb']:.2f} | "
            f"{s['peak_rss_mb']:.0f} | {s['median_seconds']:.2f} | {s['ok_runs']}/{s['runs']} | "
            f"{'-' if r is None else f'{r:.2f}x'} |"
        )
    inner = [
        f"{t['label']}: {t['summary']['reported_gb_per_s']:.3f} GB/s over its own "
        f"{t['summary']['median_reported_seconds']:.2f} s"
        for t in doc["tools"]
        if t["summary"].get("reported_gb_per_s")
    ]
    if inner:
        lines += [
            "",
            "Transfer time as ours reports it in `--json` (without process start-up and "
            "imports, which the table includes): " + "; ".join(inner) + ".",
        ]
    if doc.get("targets"):
        lines += ["", "| target | goal | measured | |", "|---|---|---|---|"]
        for tg in doc["targets"]:
            mark = {True: "met", False: "**missed**", None: "n/a"}[tg["met"]]
            lines.append(f"| {tg['target']} | {tg['goal']} | {tg['value'] or '-'} | {mark} |")
    if doc.get("notes"):
        lines += ["", *[f"- {n}" for n in doc["notes"]]]
    if doc.get("object_layout"):
        extra = f"Objects: {doc['object_layout']}."
        moto = doc.get("moto_ceiling")
        if moto and moto.get("gb_per_s"):
            extra += (
                f" moto's ceiling, for comparison: {moto['gb_per_s']:.3f} GB/s "
                f"({moto['client']}, {moto['bytes'] / 1e9:.2f} GB in {moto['files']} objects, "
                f"median of {moto['ok_runs']})."
            )
        lines += ["", extra]
    return "\n".join(lines) + "\n"


def latest_results(
    results_dir: Path = RESULTS_DIR, pattern: str = "S*-*.json"
) -> list[dict[str, Any]]:
    """The newest full (non-quick) result file of each scenario, in scenario order."""
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    for p in results_dir.glob(pattern):
        doc = json.loads(p.read_text())
        doc["results_file"] = str(p)
        doc["targets"] = evaluate_targets(doc)  # current rules and formatting
        key = doc["scenario"]
        if key not in newest or doc["date"] > newest[key][0]:
            newest[key] = (doc["date"], doc)
    return [newest[k][1] for k in sorted(newest)]


def update_readme(readme: Path = README, results_dir: Path = RESULTS_DIR) -> bool:
    """Replace the text between each section's markers; prose elsewhere stays as
    written. False when a section's markers are missing (that section is left out)."""
    text = readme.read_text()
    found = True
    for start, end, files in SECTIONS:
        if start not in text or end not in text:
            found = False
            continue
        docs = latest_results(results_dir, files)
        body = "\n".join(markdown(d) for d in docs) if docs else "_No results yet._\n"
        section = f"{start}\n{body}{end}"
        between = re.escape(start) + r".*?" + re.escape(end)
        text = re.sub(between, lambda _m, section=section: section, text, flags=re.DOTALL)
    readme.write_text(text)
    return found
