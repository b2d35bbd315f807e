"""What several subcommands share, each flag declared once: ``--param KEY=VALUE`` (an
object store's storage parameters, for ``pull`` and ``inspect``), ``--ca-bundle``
(``pull``, ``inspect``, ``run``), the transfer flags of ``pull`` and ``run``
(:func:`transfer_options`, parsed once into a ``TransferSettings``), and the
``--log-level`` and ``--health-address`` of the long-running ones (``run``,
``controller``) and their exit: one line on stderr, never a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import click

from ome_agent.errors import BadInput, OmeAgentError
from ome_agent.transfer.settings import (
    MAX_UNKNOWN_SIZE,
    SPEED_LIMIT,
    SPEED_TIME,
    TransferSettings,
    parse_size,
)

F = TypeVar("F", bound=Callable[..., Any])

param_option = click.option(
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="Object-store parameter, as in spec.storage.parameters (repeatable).",
)

revision_option = click.option(
    "--revision", help="hf:// branch, tag or commit (the same as @REV after the repo name)."
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


def fail(err: OmeAgentError) -> NoReturn:
    """The one way a command ends on an error: one ``error:`` line, its exit code."""
    click.echo(f"error: {err}", err=True)
    sys.exit(err.exit_code)


def exit_with(work: Callable[[], int]) -> NoReturn:
    """Run ``work`` and exit with its code; errors become one line and an exit code."""
    try:
        code = work()
    except KeyboardInterrupt:
        code = 130
    except OmeAgentError as e:
        fail(e)
    except Exception as e:  # one line, never a traceback
        click.echo(f"error: unexpected {type(e).__name__}: {e}", err=True)
        code = 1
    sys.exit(code)


def transfer_options(func: F) -> F:
    """The engine's flags, shared by ``pull`` and ``run``; the command receives them as
    one ``transfer: TransferSettings`` argument, checked before any work starts."""

    @functools.wraps(func)
    def wrapper(
        *args: Any,
        connections: int | None,
        chunk_size: str | None,
        max_connections: int,
        parallel_files: int,
        direct_io: bool | None,
        ca_bundle: str | None,
        require_digest: bool,
        speed_limit: str,
        speed_time: float,
        max_unknown_size: str,
        **kwargs: Any,
    ) -> Any:
        try:
            kwargs["transfer"] = TransferSettings(
                connections=connections,
                chunk_size=parse_size(chunk_size, "--chunk-size") if chunk_size else None,
                max_connections=max_connections,
                parallel_files=parallel_files,
                direct_io=direct_io,
                ca_bundle=ca_bundle,
                require_digest=require_digest,
                speed_limit=parse_size(speed_limit, "--speed-limit"),
                speed_time=speed_time,
                max_unknown_size=parse_size(max_unknown_size, "--max-unknown-size"),
            )
        except OmeAgentError as e:
            fail(e)
        return func(*args, **kwargs)

    for option in reversed(_TRANSFER_OPTIONS):
        wrapper = option(wrapper)
    return wrapper  # type: ignore[return-value]


_TRANSFER_OPTIONS = (
    click.option("--connections", type=int, help="Parallel ranges per file [default: adaptive]."),
    click.option(
        "--chunk-size", help="Bytes per range request, e.g. 8M, 16MiB [default: adaptive]."
    ),
    click.option(
        "--max-connections",
        type=int,
        default=64,
        show_default=True,
        help="HTTP connections over all files of all downloads.",
    ),
    click.option(
        "--parallel-files",
        type=int,
        default=8,
        show_default=True,
        help="Files fetched at once (per model, for the agent).",
    ),
    click.option(
        "--direct-io/--buffered-io",
        default=None,
        help="Write with O_DIRECT (bypass the page cache) or through it "
        "[default: O_DIRECT for files of 64 MiB or more outside tmpfs].",
    ),
    ca_bundle_option,
    click.option(
        "--require-digest",
        is_flag=True,
        help="Fail, before downloading, on a file with no digest to check (a plain "
        "http(s) URL without --sha256/--md5, an object stored without MD5, CRC32C or CRC64NVME) "
        "instead of accepting it by its size only, unverified.",
    ),
    click.option(
        "--speed-limit",
        metavar="BYTES_PER_S",
        default=str(SPEED_LIMIT),
        show_default=True,
        help="Low-speed limit, as curl's: a request averaging fewer bytes/s (e.g. 1024, "
        "10K) over --speed-time, or whose response headers take longer, fails as slow "
        "and is retried at most twice. 0 turns it off.",
    ),
    click.option(
        "--speed-time",
        metavar="SECONDS",
        type=float,
        default=SPEED_TIME,
        show_default=True,
        help="The period of --speed-limit, and the longest wait for response headers.",
    ),
    click.option(
        "--max-unknown-size",
        metavar="SIZE",
        default=f"{MAX_UNKNOWN_SIZE >> 30}GiB",
        show_default=True,
        help="The most bytes taken from a server that sends no size (no Content-Length): "
        "more fails the file. Raise it for a bigger file from such a server; the free "
        "space of DEST is checked as it goes either way.",
    ),
)
