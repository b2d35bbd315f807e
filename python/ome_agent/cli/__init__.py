"""Command surface of ome-agent (docs/architecture.md, layer 6).

Each subcommand lives in its own module, imported only when that subcommand
runs (a scripted ``pull`` does not pay for ``bench``'s imports); the modules
hold no logic of their own beyond argument handling and output.
"""

from __future__ import annotations

import importlib

import click

from ome_agent import __version__

# name -> (module, attribute) of each subcommand
SUBCOMMANDS = {
    "pull": ("ome_agent.cli.pull", "pull"),
    "bench": ("ome_agent.cli.bench", "bench"),
    "inspect": ("ome_agent.cli.inspect", "inspect"),
    "run": ("ome_agent.cli.run", "run"),
    "status": ("ome_agent.cli.status", "status"),
    "controller": ("ome_agent.cli.controller", "controller"),
    "verify": ("ome_agent.cli.verify", "verify"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module, attr = SUBCOMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ome-agent")
def main() -> None:
    """Put AI models onto nodes: fast, verified, described."""


__all__ = ["main"]
