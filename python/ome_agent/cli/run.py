"""``ome-agent run``: the node agent, on a cluster or standalone (docs/architecture.md, layer 6).

Flags follow OME's model agent (``--models-root-dir``, ``--namespace``,
``--num-download-worker``, ``--node-name``/``NODE_NAME``); transfer knobs are those of
``ome-agent pull``. Cluster mode hands over to :mod:`ome_agent.adapters.kube.agent`;
``--standalone`` to :mod:`ome_agent.adapters.standalone`. Logs are one line per event
on stderr: ``time level logger message key=value ...``; they never carry secrets.
Every ``--models-root-dir`` is checked at start-up (:mod:`ome_agent.adapters.rootcheck`:
in a Pod, on a volume of the Pod; not read-only; writable) and locked while the agent
runs (:mod:`ome_agent.adapters.rootlock`): a second agent on one root refuses to start.
Exit codes: 0 done (or ``--once`` with every model Ready), 1 a model failed, 2 bad input.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ome_agent.adapters.standalone.documents import MAX_DOCUMENTS, MAX_FILE_BYTES, ManifestLimits
from ome_agent.cli.params import (
    exit_with,
    health_address_option,
    log_level_option,
    transfer_options,
)
from ome_agent.errors import BadInput
from ome_agent.observability.logs import configure_logging

if TYPE_CHECKING:
    from ome_agent.reconcile.options import AgentOptions
    from ome_agent.transfer import TransferSettings


def event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    try:
        import uvloop  # optional: a faster event loop

        return uvloop.run
    except ImportError:
        return asyncio.run


def _cap(default: int, text: str) -> dict[str, Any]:
    """A manifest limit of documents.ManifestLimits as a flag (its default shown)."""
    return {"type": click.IntRange(min=1), "default": default, "show_default": True, "help": text}


@click.command(name="run")
@click.option(
    "--models-root-dir",
    "models_roots",
    multiple=True,
    default=("/mnt/models",),
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where models are stored (repeatable; the first holds models without an "
    "absolute storage.path).",
)
@click.option(
    "--local-source-dir",
    "local_source_dirs",
    multiple=True,
    type=click.Path(file_okay=False),
    help="A folder a local-path storageUri may read besides the models roots (repeatable).",
)
@click.option("--namespace", default="ome", show_default=True, help="The agent's namespace.")
@click.option(
    "--num-download-worker",
    "download_workers",
    type=int,
    default=2,
    show_default=True,
    help="Models downloaded at once.",
)
@click.option(
    "--node-name",
    envvar="NODE_NAME",
    help="This node's name [env: NODE_NAME; standalone default: the host name].",
)
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Cluster mode: kubeconfig.")
@health_address_option
@click.option("--health-port", type=int, default=8080, show_default=True, help="/healthz port.")
@log_level_option
@transfer_options
@click.option(
    "--progress-interval",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between progress reports of a model being downloaded.",
)
@click.option(
    "--verify-interval",
    type=float,
    help="Seconds between re-checks of Ready models' sizes and mtimes against their "
    "manifests (the scrub hashes the bytes) [default: off].",
)
@click.option(
    "--scrub-rate",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="MB/s the background scrub may read, over all Ready models, to re-hash them "
    "against their manifests (0: off).",
)
@click.option("--standalone", is_flag=True, help="No cluster: manifests in, state file out.")
@click.option("--manifests", type=click.Path(file_okay=False), help="Standalone: manifest dir.")
@click.option("--node-labels", help="Standalone: this node's labels, k=v,k2=v2.")
@click.option("--state-file", type=click.Path(dir_okay=False), help="Standalone: state file.")
@click.option("--once", is_flag=True, help="Standalone: reconcile until idle, then exit.")
@click.option(
    "--max-manifest-bytes",
    **_cap(MAX_FILE_BYTES, "Standalone: a larger manifest file is refused, naming it."),
)
@click.option(
    "--max-documents",
    **_cap(MAX_DOCUMENTS, "Standalone: a manifest file with more YAML documents is refused."),
)
def run(
    models_roots: tuple[str, ...],
    local_source_dirs: tuple[str, ...],
    namespace: str,
    download_workers: int,
    node_name: str | None,
    kubeconfig: str | None,
    health_address: str,
    health_port: int,
    log_level: str,
    transfer: TransferSettings,
    progress_interval: float,
    verify_interval: float | None,
    scrub_rate: float,
    standalone: bool,
    manifests: str | None,
    node_labels: str | None,
    state_file: str | None,
    once: bool,
    max_manifest_bytes: int,
    max_documents: int,
) -> None:
    """Run the node agent: keep this node's models present, verified and reported."""
    configure_logging(log_level)

    def work() -> int:
        from ome_agent.reconcile.options import AgentOptions

        if not standalone and (manifests or node_labels or state_file or once):
            raise BadInput("--manifests, --node-labels, --state-file and --once need --standalone")
        options = AgentOptions(
            owner=f"standalone:{Path(manifests).absolute()}" if manifests else "cluster",
            node_name=node_name or (socket.gethostname() if standalone else ""),
            models_roots=tuple(Path(r).absolute() for r in models_roots),
            local_source_dirs=tuple(Path(d).absolute() for d in local_source_dirs),
            namespace=namespace,
            download_workers=download_workers,
            transfer=transfer,
            progress_interval=progress_interval,
            verify_interval=verify_interval,
            scrub_rate=scrub_rate * 1e6,
        )
        from ome_agent.adapters.rootcheck import check_roots, mount_points
        from ome_agent.adapters.rootlock import hold_roots

        if standalone:
            _check_standalone(manifests, state_file)
        else:
            from ome_agent.adapters.kube.clusterconfig import check_cluster_config

            check_cluster_config(kubeconfig)  # before the client's slow import
        # the kubelet sets KUBERNETES_SERVICE_HOST in every container of a Pod
        in_pod = bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        check_roots(options.models_roots, in_pod=in_pod, mounts=mount_points() if in_pod else ())
        with hold_roots(options.models_roots):
            if standalone:
                limits = ManifestLimits(max_manifest_bytes, max_documents)
                return _standalone(options, manifests, node_labels, state_file, once, limits)
            from ome_agent.adapters.kube.agent import run_cluster

            return run_cluster(
                options, kubeconfig=kubeconfig, health_address=health_address,
                health_port=health_port,
            )  # fmt: skip

    exit_with(work)


def _check_standalone(manifests: str | None, state_file: str | None) -> None:
    if not manifests:
        raise BadInput("--standalone needs --manifests DIR: the folder of model manifests")
    if not state_file:
        raise BadInput("--standalone needs --state-file FILE: where the node's reports go")


def _standalone(
    options: AgentOptions,
    manifests: str | None,
    node_labels: str | None,
    state_file: str | None,
    once: bool,
    limits: ManifestLimits,
) -> int:
    from ome_agent.adapters.standalone import parse_node_labels, run_standalone

    assert manifests is not None
    assert state_file is not None
    return event_loop_runner()(
        run_standalone(
            options,
            manifests=Path(manifests),
            node_labels=parse_node_labels(node_labels),
            state_file=Path(state_file),
            once=once,
            limits=limits,
        )
    )


__all__ = ["event_loop_runner", "run"]
