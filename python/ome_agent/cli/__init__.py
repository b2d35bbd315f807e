"""Command surface of ome-agent (docs/architecture.md, layer 6).

Each subcommand lives in its own module, imported only when that subcommand
runs (a scripted ``pull`` does not pay for ``bench``'s imports); the modules
hold no logic of their own beyond argument handling and output. Every error, click's
own usage errors included, is one ``error:`` line on stderr (exit code 2 for usage).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, NoReturn

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

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        """click's main, but a usage error is one line (click prints four)."""
        kwargs["standalone_mode"] = False
        kwargs.setdefault("prog_name", "ome-agent")  # also when run as python -c / -m
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else "ome-agent"
            click.echo(f"error: {e.format_message()} (see {where} --help)", err=True)
            sys.exit(e.exit_code)
        except click.ClickException as e:
            click.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)  # --help and --version give 0


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ome-agent")
def main() -> None:
    """Put AI models onto nodes: fast, verified, described."""


__all__ = ["main"]
