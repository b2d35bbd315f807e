"""``ome-agent pull SOURCE DEST``: fetch a model or a file, verified.

Argument handling and output only; the work is ``ome_agent.transfer.pull``.
Exit codes: 0 done, 1 transfer failure, 2 bad input (message names the fix),
130 interrupted. Progress goes to stderr and only on a terminal; stdout gets the
result (one line, or one JSON document with ``--json``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from types import TracebackType
from typing import TYPE_CHECKING

import click

from ome_agent.cli.params import (
    fail,
    param_option,
    parse_params,
    revision_option,
    transfer_options,
)
from ome_agent.errors import BadInput, Interrupted, OmeAgentError
from ome_agent.transfer import PullSummary, Snapshot, TransferSettings
from ome_agent.transfer import pull as run_pull
from ome_agent.transfer.progress import RetryNotice

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

HELP = """Download SOURCE into DEST, every byte verified.

\b
SOURCE is one of:
  http(s)://host/path/file   one file; DEST is a directory if it ends with '/' or
                             exists as one (the file keeps the URL's name),
                             otherwise DEST is the file's own path
  hf://org/name[@revision]   a whole Hugging Face model repo into directory DEST;
                             HF_ENDPOINT and HF_TOKEN are read from the environment
  oci://n/NS/b/BUCKET/o/PREFIX   every object under PREFIX into directory DEST
  s3://BUCKET/PREFIX              (likewise; credentials, region and endpoint come
  gs://BUCKET/PREFIX              from each vendor SDK's own chain: environment,
  az://ACCOUNT/CONTAINER/PREFIX   config files, metadata service; --param overrides)


--param KEY=VALUE sets what spec.storage.parameters would on a BaseModel, e.g.
  --param region=us-phoenix-1 --param auth=InstancePrincipal
  --param endpoint=https://objectstorage.example:8443
"""


class ProgressView:
    """One rich bar on stderr for the whole pull (nothing when disabled), and one line
    per retry above it (on stderr without a bar)."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if enabled:
            # rich is imported only for a terminal: scripted pulls start faster
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )

    def __enter__(self) -> ProgressView:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("resolving", total=None)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def retried(self, notice: RetryNotice) -> None:
        if self._progress is not None:
            self._progress.console.print(notice.line(), markup=False, highlight=False)
        else:
            click.echo(notice.line(), err=True)

    def update(self, snap: Snapshot) -> None:
        if self._progress is None or self._task is None:
            return
        self._progress.update(
            self._task,
            completed=snap.done_bytes,
            total=snap.total_bytes,
            description=f"{snap.files_done}/{snap.files_total} files",
        )


@click.command(help=HELP)
@click.argument("source")
@click.argument("dest", required=False, type=click.Path(file_okay=True, dir_okay=True))
@revision_option
@click.option("--include", multiple=True, help="Only repo files matching this glob (repeatable).")
@click.option("--exclude", multiple=True, help="Skip repo files matching this glob (repeatable).")
@click.option("--sha256", help="Expected sha256 of an http(s) file (hex).")
@click.option("--md5", help="Expected md5 of an http(s) file (hex).")
@param_option
@transfer_options
@click.option(
    "--no-verify",
    is_flag=True,
    help="UNSAFE: skip all digest checks and hashing (for benchmarks only).",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    help="hf:// only, instead of DEST: the Hugging Face cache layout in this folder "
    "(models--org--name/{blobs,snapshots,refs}), as huggingface_hub writes it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary on stdout.")
def pull_command(
    source: str,
    dest: str | None,
    revision: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    sha256: str | None,
    md5: str | None,
    params: tuple[str, ...],
    transfer: TransferSettings,
    no_verify: bool,
    cache_dir: str | None,
    as_json: bool,
) -> None:
    try:
        if (dest is None) == (cache_dir is None):
            raise BadInput("give DEST or --cache-dir DIR (hf:// only), one of them")
        settings = dataclasses.replace(transfer, verify=not no_verify)
        if no_verify:
            click.echo("warning: --no-verify: files are NOT checked against any digest", err=True)
        with ProgressView(enabled=sys.stderr.isatty()) as view:
            summary = run_pull(
                source,
                dest,
                settings,
                revision=revision,
                include=include,
                exclude=exclude,
                sha256=sha256,
                md5=md5,
                params=parse_params(params),
                on_progress=view.update,
                cache_dir=cache_dir,
                on_retry=view.retried,
            )
    except KeyboardInterrupt:
        fail(Interrupted("interrupted"))
    except OmeAgentError as e:
        fail(e)
    except ValueError as e:  # anything the engine rejects as an argument
        fail(BadInput(str(e)))
    except Exception as e:  # one line, never a traceback
        fail(OmeAgentError(f"unexpected {type(e).__name__}: {e}"))
    else:
        _print(summary, as_json)


def _print(summary: PullSummary, as_json: bool) -> None:
    for warning in summary.warnings:
        click.echo(f"warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
    else:
        click.echo(summary.describe())


pull = pull_command
pull.name = "pull"

__all__ = ["pull"]
