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

# name -> (module, attribute, one-line help). The help line is here so that
# `ome-agent --help` lists the subcommands without importing any of them
# (their imports reach pydantic and the storage SDKs); a test keeps each
# line equal to the command's own docstring.
SUBCOMMANDS = {
    "pull": ("ome_agent.cli.pull", "pull", "Download SOURCE into DEST, every byte verified."),
    "bench": (
        "ome_agent.cli.bench",
        "bench",
        "Measure throughput of SOURCE over connection counts and chunk sizes.",
    ),
    "inspect": (
        "ome_agent.cli.inspect",
        "inspect",
        "Describe a model: type, architecture, exact parameter count, context length,"
        " dtype, capabilities, quantization.",
    ),
    "run": (
        "ome_agent.cli.run",
        "run",
        "Run the node agent: keep this node's models present, verified and reported.",
    ),
    "status": (
        "ome_agent.cli.status",
        "status",
        "Show each model's state: on every node of the cluster, or (with --state-file)"
        " on this standalone node.",
    ),
    "controller": (
        "ome_agent.cli.controller",
        "controller",
        "Write model resources' status from the nodes' reports (one active replica).",
    ),
    "verify": (
        "ome_agent.cli.verify",
        "verify",
        "Hash models' files against their manifests: exit 0 only if all match.",
    ),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in SUBCOMMANDS:
            return None
        module, attr, _ = SUBCOMMANDS[cmd_name]
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

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table, shortened the way click does it."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)
        # a bare command shortens its help exactly like the real one would
        rows = [
            (n, click.Command(n, help=SUBCOMMANDS[n][2]).get_short_help_str(limit)) for n in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ome-agent")
def main() -> None:
    """Put AI models onto nodes: fast, verified, described."""


__all__ = ["main"]
