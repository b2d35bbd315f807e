"""``ome-agent controller``: the cluster-wide status writer (docs/architecture.md, layer 6).

Turns the node agents' ConfigMaps into each BaseModel / ClusterBaseModel /
FineTunedWeight ``.status``, back-fills empty spec fields, holds the cleanup
finalizer and reports ``pvc://`` models. Run as a Deployment of two replicas; one
acts at a time through a Lease. The work is in
:mod:`ome_agent.adapters.kube.controller`; this module parses flags.
Exit codes: 0 stopped by SIGTERM/SIGINT, 1 an error (or the Lease lost), 2 bad input.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta

import click

from ome_agent.cli.params import exit_with, health_address_option, log_level_option
from ome_agent.cli.run import event_loop_runner
from ome_agent.errors import BadInput
from ome_agent.observability.logs import configure_logging

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str, flag: str) -> timedelta:
    """Go-style durations: ``15s``, ``10m``, ``1h30m``, ``500ms``."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise BadInput(f"{flag} {text!r}: not a duration; write e.g. 15s, 10m or 1h30m")
    return timedelta(seconds=sum(float(n) * _UNIT[u] for n, u in parts))


@click.command(name="controller")
@click.option(
    "--kubeconfig", type=click.Path(dir_okay=False), help="Kubeconfig [default: in-cluster]."
)
@click.option(
    "--namespace",
    default="ome",
    show_default=True,
    help="The node agents' namespace (their ConfigMaps) and the Lease's.",
)
@click.option("--lease-name", default="ome-agent-controller", show_default=True)
@click.option(
    "--identity",
    envvar="POD_NAME",
    help="This replica's name in the Lease [env: POD_NAME; default: the host name].",
)
@click.option(
    "--lease-duration",
    default="15s",
    show_default=True,
    help="How long a silent leader keeps the Lease before a standby takes over.",
)
@click.option(
    "--finalizer-timeout",
    default="10m",
    show_default=True,
    help="How long a deleted model waits for live nodes to remove their files.",
)
@click.option(
    "--pvc-inspect-image",
    envvar="OME_AGENT_IMAGE",
    help="Image of the Job reading pvc:// models [env: OME_AGENT_IMAGE].",
)
@click.option("--workers", type=int, default=4, show_default=True, help="Reconciles at once.")
@health_address_option
@click.option("--health-port", type=int, default=8081, show_default=True, help="Probes, /metrics.")
@log_level_option
def controller(
    kubeconfig: str | None,
    namespace: str,
    lease_name: str,
    identity: str | None,
    lease_duration: str,
    finalizer_timeout: str,
    pvc_inspect_image: str | None,
    workers: int,
    health_address: str,
    health_port: int,
    log_level: str,
) -> None:
    """Write model resources' status from the nodes' reports (one active replica)."""
    configure_logging(log_level)

    def work() -> int:
        from ome_agent.adapters.kube.clusterconfig import check_cluster_config

        lease = parse_duration(lease_duration, "--lease-duration")
        if lease < timedelta(seconds=1):
            raise BadInput(f"--lease-duration {lease_duration}: must be at least 1s")
        timeout = parse_duration(finalizer_timeout, "--finalizer-timeout")
        if workers < 1:
            raise BadInput(f"--workers {workers}: must be at least 1")
        check_cluster_config(kubeconfig)  # before the client's slow import
        from ome_agent.adapters.kube.controller.controller import ControllerOptions
        from ome_agent.adapters.kube.controller.leader import LeaseSettings
        from ome_agent.adapters.kube.controller.main import ProcessOptions, run_controller

        options = ProcessOptions(
            kubeconfig=kubeconfig,
            health_port=health_port,
            health_address=health_address,
            lease=LeaseSettings(
                namespace=namespace,
                name=lease_name,
                identity=identity or os.environ.get("HOSTNAME") or socket.gethostname(),
                duration=lease.total_seconds(),
            ),
            controller=ControllerOptions(
                namespace=namespace,
                finalizer_timeout=timeout,
                pvc_inspect_image=pvc_inspect_image or None,
                workers=workers,
            ),
        )
        return event_loop_runner()(run_controller(options))

    exit_with(work)


__all__ = ["controller", "parse_duration"]
