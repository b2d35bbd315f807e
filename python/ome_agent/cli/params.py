"""What several subcommands share: ``--param KEY=VALUE`` (an object store's storage
parameters, for ``pull`` and ``inspect``), ``--ca-bundle`` (``pull``, ``inspect``,
``run``), and the ``--log-level`` and
``--health-address`` of the long-running ones (``run``, ``controller``) and their
exit: one line on stderr, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import NoReturn

import click

from ome_agent.errors import BadInput, OmeAgentError

param_option = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Object-store parameter, as in spec.storage.parameters (repeatable).",
)

ca_bundle_option = click.option(
    "--ca-bundle",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of extra CA certificates (an internal mirror's, a private endpoint's).",
)

log_level_option = click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)


health_address_option = click.option(
    "--health-address",
    default="0.0.0.0",  # noqa: S104 - the kubelet probes the Pod's IP
    show_default=True,
    help="Address of /healthz, /livez and /metrics (127.0.0.1: this host only).",
)


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--param {pair!r}: give KEY=VALUE, e.g. --param region=us-ashburn-1")
        out[key.strip()] = value
    return out


def exit_with(work: Callable[[], int]) -> NoReturn:
    """Run ``work`` and exit with its code; errors become one line and an exit code."""
    try:
        code = work()
    except KeyboardInterrupt:
        code = 130
    except OmeAgentError as e:
        click.echo(f"error: {e}", err=True)
        code = e.exit_code
    except Exception as e:  # one line, never a traceback
        click.echo(f"error: unexpected {type(e).__name__}: {e}", err=True)
        code = 1
    sys.exit(code)
