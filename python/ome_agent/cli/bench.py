"""``ome-agent bench SOURCE``: sweep transfer settings against the user's own source.

Where it sits: command surface only (docs/architecture.md, layer 6). The sweep and the
measurements live in ``ome_agent.transfer.sweep``; this module parses flags, reports
progress on stderr and prints the table (or one JSON document) on stdout,
ending with the ``pull`` flags of the recommended setting.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from ome_agent import _core
from ome_agent.transfer.sweep import (
    DEFAULT_CHUNK_SIZES,
    DEFAULT_CONNECTIONS,
    TIE_TOLERANCE,
    Measurement,
    TuningInputError,
    format_size,
    grid,
    parse_int_list,
    parse_size,
    parse_size_list,
    probe,
    recommend,
    resolve_source,
    sweep,
)


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f}"


def _table(measurements: list[Measurement], best: Measurement | None) -> Table:
    table = Table(title="ome-agent bench", title_justify="left")
    for col in ("setting", "GB/s", "CPU s/GB", "peak RSS MB", "seconds", "runs", "note"):
        table.add_column(col, justify="left" if col in ("setting", "note") else "right")
    for m in measurements:
        if not m.ok:
            table.add_row(m.setting.label, "-", "-", "-", "-", "0", m.error or "no run")
            continue
        note = "recommended" if m is best else ""
        if not all(s.complete for s in m.samples):
            note = (note + " " if note else "") + "stopped at --max-bytes"
        table.add_row(
            m.setting.label,
            f"{m.gbps:.3f}",
            f"{m.cpu_seconds_per_gb:.2f}",
            _mb(m.peak_rss),
            f"{m.seconds:.2f}",
            str(len(m.samples)),
            note,
        )
    return table


def _fail(message: str, code: int) -> NoReturn:
    """One ``error:`` line and the exit code, as every other command does."""
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


@click.command()
@click.argument("source")
@click.option(
    "--connections",
    "connections_text",
    default=",".join(map(str, DEFAULT_CONNECTIONS)),
    show_default=True,
    help="Comma-separated connection counts to try.",
)
@click.option(
    "--chunk-sizes",
    "--chunk-size",
    "chunk_sizes_text",
    default=",".join(format_size(s) for s in DEFAULT_CHUNK_SIZES),
    show_default=True,
    help="Comma-separated range sizes to try (bytes or 4MiB, 16MB, ...).",
)
@click.option(
    "--auto/--no-auto",
    "include_auto",
    default=True,
    show_default=True,
    help="Also measure the engine's adaptive default (what pull does without tuning flags).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Downloads per setting; the table shows medians.",
)
@click.option(
    "--max-bytes",
    "max_bytes_text",
    default=None,
    help="Stop each download after this many bytes (e.g. 2GiB) and measure until then.",
)
@click.option(
    "--dest-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write into a temporary directory on this filesystem (default: the system temp dir).",
)
@click.option(
    "--no-verify",
    is_flag=True,
    help="Do not hash while downloading (pull --no-verify).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
def bench(
    source: str,
    connections_text: str,
    chunk_sizes_text: str,
    include_auto: bool,
    runs: int,
    max_bytes_text: str | None,
    dest_dir: Path | None,
    no_verify: bool,
    as_json: bool,
) -> None:
    """Measure throughput of SOURCE over connection counts and chunk sizes.

    SOURCE is an http(s):// URL or an hf://org/name/path/to/file[@revision]
    file. Object stores (s3://, gs://, az://, oci://) and local paths are not
    benchmarked here: bench one object through a presigned http(s) URL. Every
    setting downloads the file into a fresh temporary file, which is deleted
    afterwards; the recommended setting is the fastest, ties (within 5%)
    going to the one with the least CPU per GB. A short unmeasured warm-up
    download comes first. CPU is this process's (engine threads included); peak
    RSS is this process's resident memory sampled during each download.
    """
    try:
        resolved = resolve_source(source)
        connections = parse_int_list(connections_text, what="--connections")
        chunk_sizes = parse_size_list(chunk_sizes_text, what="--chunk-sizes")
        max_bytes = (
            parse_size(max_bytes_text, what="--max-bytes") if max_bytes_text is not None else None
        )
    except TuningInputError as e:
        _fail(str(e), 2)
    if dest_dir is not None and not dest_dir.is_dir():
        _fail(f"--dest-dir: {dest_dir} does not exist; create it or pick another directory", 2)

    err = Console(stderr=True, highlight=False)
    try:
        size = probe(resolved)
    except _core.EngineError as e:
        _fail(f"cannot reach {resolved.display}: {e}", 1)

    settings = grid(connections, chunk_sizes, include_auto=include_auto)
    total = len(settings) * runs
    done = [0]

    def on_sample(m: Measurement, round_: int) -> None:
        done[0] += 1
        if m.ok and len(m.samples) == round_ + 1:
            s = m.samples[-1]
            line = f"{s.bytes / 1e9 / s.seconds:.3f} GB/s" if s.seconds > 0 else "-"
        else:
            line = m.error or "failed"
        err.print(f"[{done[0]}/{total}] {m.setting.label}: {line}")

    size_text = f"{size / 1e9:.3f} GB" if size is not None else "unknown size"
    err.print(f"bench {resolved.display} ({size_text}): {len(settings)} settings x {runs} run(s)")
    try:
        measurements = sweep(
            resolved,
            settings,
            dest_dir=dest_dir,
            runs=runs,
            max_bytes=max_bytes,
            verify=not no_verify,
            on_sample=on_sample,
        )
    except TuningInputError as e:
        _fail(str(e), 2)

    best = recommend(measurements)
    flags = best.setting.pull_flags() if best is not None else []
    if no_verify and best is not None:
        flags = [*flags, "--no-verify"]
    if as_json:
        doc = {
            "source": resolved.display,
            "size": size,
            "runs": runs,
            "max_bytes": max_bytes,
            "verify": not no_verify,
            "tie_tolerance": TIE_TOLERANCE,
            "results": [m.to_json() for m in measurements],
            "recommended": ({**best.to_json(), "pull_flags": flags} if best is not None else None),
        }
        click.echo(json.dumps(doc, indent=2))
    else:
        out = Console(highlight=False)
        out.print(_table(measurements, best))
        if best is not None:
            out.print(f"recommended: {best.setting.label} ({best.gbps:.3f} GB/s)")
            shown = " ".join(flags) if flags else "(no flags: the defaults are best)"
            out.print(f"pull flags: {shown}")
    if best is None:
        # Every setting failed: nothing to recommend is a transfer failure (exit 1).
        sys.exit(1)
