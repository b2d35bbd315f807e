"""Command surface of ome-agent (DESIGN.md §1, layer 6).

Each subcommand lives in its own module and is registered here; the modules
hold no logic of their own beyond argument handling and output.
"""

from __future__ import annotations

import click

from ome_agent import __version__
from ome_agent.cli.bench import bench
from ome_agent.cli.pull import pull


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ome-agent")
def main() -> None:
    """Put AI models onto nodes: fast, verified, described."""


main.add_command(pull)
main.add_command(bench)

__all__ = ["main"]
