"""``ome-agent verify``: hash models on this node against their manifests, for
operators (docs/architecture.md, layer 6).

The agent's restart trusts sizes and mtimes and its scrub reads slowly on purpose;
this command reads at full speed, now: every file a model's manifest records is
hashed against the digest the engine computed when it wrote it
(``reconcile.localcheck``), and a symbolic link out of the model directory is a
mismatch. One line per file (``OK``, ``MISMATCH`` with the reason, ``MISSING``) and
one summary line; exit 0 only when everything matches, 1 otherwise, 2 on bad input
(one ``error:`` line). Read-only: repairing is the agent's job.

Which models: ``PATH`` (a model directory), ``--state-file`` (every model of a
standalone node's state file) or ``--all`` (every manifest). Manifests live under
``<models root>/.ome-agent/manifests/``; the models root is ``--models-root-dir`` or,
without it, the nearest parent of the model directory holding ``.ome-agent``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ome_agent.cli.params import exit_with
from ome_agent.errors import BadInput

if TYPE_CHECKING:
    from ome_agent.reconcile.manifest import Manifest


def _state_dir(root: Path) -> Path:
    from ome_agent.reconcile.options import STATE_DIR_NAME

    return root / STATE_DIR_NAME


def _root_of(path: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    for parent in path.parents:
        if (_state_dir(parent) / "manifests").is_dir():
            return parent
    raise BadInput(
        f"{path}: no models root with an .ome-agent folder above it: "
        "give the agent's first --models-root-dir"
    )


def _manifests_for(paths: list[Path], given: Path | None) -> list[Manifest]:
    """The manifest of each model directory in ``paths`` (BadInput naming a path with none)."""
    from ome_agent.reconcile.manifest import ManifestStore

    found = []
    for path in paths:
        root = _root_of(path, given)
        real = os.path.realpath(path)
        match = [
            m
            for m in ManifestStore(_state_dir(root)).all()
            if os.path.realpath(m.identity.path) == real
        ]
        if not match:
            raise BadInput(
                f"{path}: no manifest under {_state_dir(root) / 'manifests'} names this "
                "directory: give a model directory the agent downloaded"
            )
        found.append(match[0])
    return found


@click.command(name="verify")
@click.argument("path", required=False, type=click.Path(file_okay=False))
@click.option(
    "--state-file",
    type=click.Path(dir_okay=False),
    help="Every model of a standalone node's state file.",
)
@click.option("--all", "every", is_flag=True, help="Every model with a manifest.")
@click.option(
    "--models-root-dir",
    "models_root",
    type=click.Path(file_okay=False),
    help="The agent's first models root (where .ome-agent/ is) [default: found above "
    "PATH; with --all: /mnt/models].",
)
def verify(path: str | None, state_file: str | None, every: bool, models_root: str | None) -> None:
    """Hash models' files against their manifests: exit 0 only if all match."""

    def work() -> int:
        from ome_agent.reconcile.localcheck import Status, check_manifest
        from ome_agent.reconcile.manifest import ManifestStore

        if sum((path is not None, state_file is not None, every)) != 1:
            raise BadInput("give exactly one of PATH, --state-file FILE or --all")
        given = Path(models_root).absolute() if models_root else None
        manifests: list[Manifest]
        if every:
            root = given or Path("/mnt/models")
            manifests = ManifestStore(_state_dir(root)).all()
            if not manifests:
                raise BadInput(
                    f"--all: no manifest under {_state_dir(root) / 'manifests'}: "
                    "give the agent's first --models-root-dir"
                )
        elif state_file is not None:
            from ome_agent.adapters.standalone.state import read_state

            records = read_state(Path(state_file))["models"].values()
            # a model reported from a manifest (Ready) names its digest; a vendor's or
            # one still Updating has no files of ours to verify
            paths = [
                Path(str(r["path"]))
                for r in records
                if isinstance(r, dict) and r.get("path") and r.get("manifestDigest")
            ]
            if not paths:
                raise BadInput(
                    f"--state-file {state_file}: no model there is Ready from a manifest"
                )
            manifests = _manifests_for(paths, given)
        else:
            assert path is not None
            target = Path(path).absolute()
            if not target.is_dir():
                raise BadInput(f"{path}: not a directory: give a model directory")
            manifests = _manifests_for([target], given)
        started = time.monotonic()
        counts = dict.fromkeys(Status, 0)
        hashed = 0
        for manifest in manifests:
            click.echo(f"{manifest.key} {manifest.identity.path}")
            for check in check_manifest(manifest, workers=os.cpu_count() or 1):
                counts[check.status] += 1
                hashed += check.read
                reason = f": {check.reason}" if check.status is Status.MISMATCH else ""
                click.echo(f"  {check.status.value} {check.path}{reason}")
        bad = counts[Status.MISMATCH] + counts[Status.MISSING]
        click.echo(
            f"{'all match' if not bad else 'MISMATCH'}: {len(manifests)} models, "
            f"{sum(counts.values())} files, {counts[Status.OK]} ok, "
            f"{counts[Status.MISMATCH]} mismatched, {counts[Status.MISSING]} missing; "
            f"{hashed / 1e6:.1f} MB hashed in {time.monotonic() - started:.1f} s"
        )
        return 0 if not bad else 1

    exit_with(work)


__all__ = ["verify"]
