"""``ome-agent status``: what the node agent reports, for people (DESIGN.md §1, layer 6).

Standalone mode: reads the state file written by ``ome-agent run --standalone`` and
prints one row per model (state, path, size, parameter count, message), or the whole
document with ``--json``. Cluster mode (no ``--state-file``) is not available yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ome_agent.errors import BadInput, OmeAgentError


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _params(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _detail(model: dict[str, Any]) -> str:
    if model.get("message"):
        return str(model["message"])
    progress = model.get("progress")
    if isinstance(progress, dict):
        total = progress.get("total_bytes") or 0
        done = progress.get("completed_bytes") or 0
        pct = f" {100 * done / total:.0f}%" if total else ""
        return f"{progress.get('phase', '')}{pct}"
    return ""


@click.command(name="status")
@click.option("--state-file", type=click.Path(dir_okay=False), help="Standalone state file.")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(state_file: str | None, as_json: bool) -> None:
    """Show each model's state on this node."""
    try:
        if state_file is None:
            raise BadInput(
                "status of a cluster node is not available yet: pass --state-file FILE "
                "of a standalone run, or read the node's ConfigMap in the agent's namespace"
            )
        from ome_agent.adapters.standalone.state import read_state

        data = read_state(Path(state_file))
    except OmeAgentError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"node {data.get('node', '?')}", title_justify="left")
    for column in ("MODEL", "STATE", "PATH", "SIZE", "PARAMS"):
        table.add_column(column, no_wrap=True)
    table.add_column("DETAIL", max_width=72, overflow="fold")
    for name, model in sorted(data["models"].items()):
        cells = (
            name,
            str(model.get("state", "?")),
            str(model.get("path") or "-"),
            _size(model.get("sizeBytes")),
            _params(model.get("parameterCount")),
            _detail(model),
        )
        table.add_row(*(Text(c) for c in cells))  # Text: brackets in messages are not markup
    # as wide as the table needs, even into a pipe: paths are long and worth one line
    natural = Console(width=1000).measure(table).maximum
    Console(width=max(Console().width, natural)).print(table)


__all__ = ["status"]
