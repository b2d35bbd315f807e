"""``ome-agent pull SOURCE DEST``: fetch a model or a file, verified."""

from __future__ import annotations

import click


@click.command()
@click.argument("source")
@click.argument("dest")
def pull(source: str, dest: str) -> None:
    """Download SOURCE (http(s):// file or hf://org/name[@rev]) into DEST."""
    raise click.ClickException("pull is being built")
