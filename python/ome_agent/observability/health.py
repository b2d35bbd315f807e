"""Probes and metrics over HTTP (docs/architecture.md, layer 5/6: how the DaemonSet is watched).

A tiny aiohttp server on ``--health-port``:

- ``/livez``: the event loop answers (a wedged loop fails the kubelet's liveness probe);
- ``/healthz``: ready: the first sync is done (lists handed to the reconcile core,
  Ready models confirmed from disk) and the API server answered recently (or every
  watch is connected: a quiet cluster sends nothing for minutes);
- ``/metrics``: prometheus_client's default registry in the text format.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest


class HealthServer:
    """Serves the three endpoints; ``ready`` returns ``(ok, reason)``."""

    def __init__(
        self,
        port: int,
        ready: Callable[[], tuple[bool, str]],
        *,
        host: str = "0.0.0.0",  # noqa: S104 - the kubelet probes the Pod's IP
    ) -> None:
        self.port = port
        self.host = host
        self._ready = ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/livez", self._livez)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _livez(self, _: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _healthz(self, _: web.Request) -> web.Response:
        ok, reason = self._ready()
        return web.Response(text=f"{reason}\n", status=200 if ok else 503)

    async def _metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
