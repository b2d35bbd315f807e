"""The API server connection of the Kubernetes adapter (docs/architecture.md, layer 5).

kubernetes_asyncio does the authentication (kubeconfig from ``--kubeconfig`` or
``KUBECONFIG``, else the in-cluster ServiceAccount) and the TLS; this module gives the
rest of the adapter one narrow request path on top of it: raw JSON in and out (the
model resources are parsed by ``ome_agent.api``, not by the generated client
classes), a timeout on every call, every request counted in ``observability.kube_metrics``, and one
error type, :class:`KubeError`, carrying the HTTP status and the server's message.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from kubernetes_asyncio import client as kclient
from kubernetes_asyncio import config as kconfig

from ome_agent.adapters.kube.clusterconfig import check_cluster_config
from ome_agent.errors import BadInput
from ome_agent.observability import kube_metrics

log = logging.getLogger(__name__)

# Plain requests: a few seconds to connect, and a bound on the whole call, so a hung
# API server turns into a retry rather than a stuck reconcile.
CONNECT_TIMEOUT = 5.0
REQUEST_TIMEOUT = 30.0
# Watches: the server ends each watch after ``timeoutSeconds``; a silent connection
# for longer than that plus this grace is dead (e.g. a half-open TCP connection).
WATCH_READ_GRACE = 30.0

Query = Sequence[tuple[str, str]]


class KubeError(Exception):
    """A request failed: ``status`` is the HTTP code (0 when no response came)."""

    def __init__(self, status: int, reason: str, message: str, *, what: str) -> None:
        self.status = status
        self.reason = reason  # the Status reason, e.g. "Conflict", "NotFound", "Expired"
        self.message = message
        self.what = what  # "GET /api/v1/..."
        detail = f"{status} {reason}" if status else reason
        super().__init__(f"{what}: {detail}: {message}" if message else f"{what}: {detail}")


@dataclass
class ApiHealth:
    """When the API server last answered: read by ``/healthz``."""

    last_ok: float = field(default_factory=time.monotonic)
    # informers whose watch is connected right now; an open watch proves reachability
    # even when nothing changes for a long time
    watching: set[str] = field(default_factory=set)
    expected_watches: int = 0

    def ok(self) -> None:
        self.last_ok = time.monotonic()

    def reachable(self, within: float) -> bool:
        if self.expected_watches and len(self.watching) >= self.expected_watches:
            return True
        return time.monotonic() - self.last_ok <= within


def resource_of(path: str) -> str:
    """``/api/v1/namespaces/ome/configmaps/n1`` → ``configmaps`` (for the counters)."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    # /api/v1/... or /apis/<group>/<version>/...
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    if len(rest) >= 3 and rest[0] == "namespaces":
        rest = rest[2:]
    return rest[0] if rest else "namespaces"


class Kube:
    """One authenticated connection pool to the API server."""

    def __init__(self, api: kclient.ApiClient) -> None:
        self.api = api
        self.health = ApiHealth()

    @property
    def server(self) -> str:
        return str(self.api.configuration.host)

    async def close(self) -> None:
        await self.api.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        verb: str,
        query: Query = (),
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        timeout: float = REQUEST_TIMEOUT,
    ) -> dict[str, Any]:
        """One request; the decoded JSON body of a 2xx answer, else :class:`KubeError`."""
        resp = await self._send(method, path, verb, query, body, content_type, timeout)
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, TimeoutError) as e:
            raise KubeError(0, type(e).__name__, str(e), what=f"{method} {path}") from e
        finally:
            resp.release()
        if not 200 <= resp.status <= 299:
            raise _error(resp.status, raw, f"{method} {path}")
        self.health.ok()
        decoded: dict[str, Any] = json.loads(raw) if raw else {}
        return decoded

    async def stream(
        self, path: str, *, query: Query, server_timeout: int
    ) -> aiohttp.ClientResponse:
        """Open a watch; the caller reads lines and closes the response."""
        resp = await self._send(
            "GET",
            path,
            "watch",
            query,
            None,
            "application/json",
            aiohttp.ClientTimeout(
                sock_connect=CONNECT_TIMEOUT, sock_read=server_timeout + WATCH_READ_GRACE
            ),
        )
        if resp.status != 200:
            try:
                raw = await resp.read()
            finally:
                resp.release()
            raise _error(resp.status, raw, f"GET {path} (watch)")
        self.health.ok()
        return resp

    async def _send(
        self,
        method: str,
        path: str,
        verb: str,
        query: Query,
        body: Mapping[str, Any] | None,
        content_type: str,
        timeout: float | aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        resource = resource_of(path)
        if isinstance(timeout, int | float):
            timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=CONNECT_TIMEOUT)
        try:
            resp: aiohttp.ClientResponse = await self.api.call_api(
                path,
                method,
                query_params=list(query),
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=dict(body) if body is not None else None,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=timeout,
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            kube_metrics.count_request(verb, resource, "error")
            reason = "Timeout" if isinstance(e, TimeoutError) else "Unreachable"
            raise KubeError(0, reason, _short(e), what=f"{method} {path}") from e
        kube_metrics.count_request(verb, resource, resp.status)
        return resp


def _short(e: BaseException) -> str:
    text = str(e) or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _error(status: int, raw: bytes, what: str) -> KubeError:
    reason, message = "", ""
    try:
        st = json.loads(raw)
        if isinstance(st, dict):
            reason = str(st.get("reason") or "")
            message = str(st.get("message") or "")
    except ValueError:
        message = raw[:200].decode(errors="replace")
    return KubeError(status, reason or _REASONS.get(status, "Error"), message, what=what)


_REASONS = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    410: "Gone",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


async def connect(kubeconfig: str | None) -> Kube:
    """A :class:`Kube` from ``kubeconfig`` (or ``KUBECONFIG``), else the in-cluster
    ServiceAccount. Raises :class:`BadInput` naming the file when none works."""
    check_cluster_config(kubeconfig)
    configuration = kclient.Configuration()
    path = kubeconfig or os.environ.get("KUBECONFIG") or None
    if path:
        try:
            await kconfig.load_kube_config(
                config_file=path, client_configuration=configuration, persist_config=False
            )
        except Exception as e:  # the loader raises bare exceptions of many kinds
            raise BadInput(f"--kubeconfig {path}: cannot be used: {_short(e)}") from None
    else:
        try:
            kconfig.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        except kconfig.ConfigException as e:
            raise BadInput(
                "no cluster configuration: pass --kubeconfig (or set KUBECONFIG), "
                f"or run inside a Pod with a ServiceAccount ({_short(e)})"
            ) from None
    return Kube(kclient.ApiClient(configuration))
