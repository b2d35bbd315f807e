"""The ``ome-agent controller`` process (docs/architecture.md, layer 5; the CLI, layer 6,
calls :func:`run_controller`).

Start-up: health server, then the Lease. A replica that does not hold the Lease is
alive and ready (its probes pass) but watches nothing. The leader syncs its caches
and reconciles until SIGTERM/SIGINT, then stops its work and releases the Lease so a
waiting replica takes over at once; exit code 0. A leader that loses its Lease (it
could not renew in time) stops at once with exit code 1: another replica may already
be acting, and the kubelet restarts this one as a fresh candidate.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from ome_agent.adapters.kube.client import connect
from ome_agent.adapters.kube.controller.controller import Controller, ControllerOptions
from ome_agent.adapters.kube.controller.events import EventRecorder
from ome_agent.adapters.kube.controller.leader import LeaseElector, LeaseSettings
from ome_agent.errors import BadInput
from ome_agent.observability.health import HealthServer

log = logging.getLogger(__name__)

API_GRACE_SECONDS = 60.0


@dataclass(frozen=True)
class ProcessOptions:
    kubeconfig: str | None
    health_port: int
    health_address: str
    lease: LeaseSettings
    controller: ControllerOptions


async def run_controller(options: ProcessOptions) -> int:
    kube = await connect(options.kubeconfig)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    elector = LeaseElector(kube, options.lease)
    controller = Controller(kube, options.controller, EventRecorder(kube, options.lease.identity))

    def ready() -> tuple[bool, str]:
        if not elector.leading:
            return True, "standby: waiting for the Lease"
        if not controller.synced:
            return False, "first sync not done"
        if not kube.health.reachable(API_GRACE_SECONDS):
            return False, f"API server not reached for over {API_GRACE_SECONDS:.0f} s"
        return True, "ok: leading"

    health = HealthServer(options.health_port, ready, host=options.health_address)
    try:
        try:
            await health.start()
        except OSError as e:
            raise BadInput(
                f"--health-address {options.health_address} --health-port "
                f"{options.health_port}: cannot listen ({e.strerror})"
            ) from None
        log.info(
            "controller %s starting against %s; health on %s:%d",
            options.lease.identity,
            kube.server,
            options.health_address,
            options.health_port,
        )
        return await _lead(elector, controller, stop)
    finally:
        await health.stop()
        await kube.close()


async def _lead(elector: LeaseElector, controller: Controller, stop: asyncio.Event) -> int:
    stopping = asyncio.create_task(stop.wait(), name="stop")
    acquire = asyncio.create_task(elector.acquire(), name="acquire")
    await asyncio.wait({stopping, acquire}, return_when=asyncio.FIRST_COMPLETED)
    if not acquire.done():
        acquire.cancel()
        await asyncio.gather(acquire, return_exceptions=True)
        log.info("controller stopping (was on standby)")
        return 0
    work = asyncio.create_task(controller.run(), name="controller")
    hold = asyncio.create_task(elector.hold(), name="lease")
    done, _ = await asyncio.wait({stopping, work, hold}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if hold in done:
        log.error("controller stopping: the Lease was lost")
        code = 1
    elif work in done:
        log.error("controller stopped on an error: %r", work.exception())
        code = 1
    controller.close()
    for t in (work, hold, stopping):
        t.cancel()
    await asyncio.gather(work, hold, stopping, return_exceptions=True)
    if hold not in done:  # still ours: hand it over now rather than at expiry
        await elector.release()
    log.info("controller stopped")
    return code
