"""``ome-agent bench SOURCE``: sweep transfer settings against the user's own source."""

from __future__ import annotations

import click


@click.command()
@click.argument("source")
def bench(source: str) -> None:
    """Measure throughput of SOURCE over connection counts and chunk sizes."""
    raise click.ClickException("bench is being built")
