"""Leader election on a coordination.k8s.io/v1 Lease (docs/architecture.md, layer 5: which
controller replica acts).

The controller runs as a Deployment of several replicas; only the holder of the Lease
watches and writes. The loop follows client-go's leaderelection, on the adapter's own
:class:`~ome_agent.adapters.kube.client.Kube` (so its requests are counted with the
rest, and a release on SIGTERM is one PUT we control):

- a candidate reads the Lease every ``retry`` seconds; it takes the Lease when nobody
  holds it, or when the holder's record has not changed for ``duration`` seconds of
  the candidate's *own* clock (renew times written by another machine are never
  compared with the local clock, so clock skew cannot steal a Lease);
- every write is a PUT carrying the resourceVersion read, so two candidates racing
  for a free Lease cannot both win (the loser gets 409 Conflict);
- the leader renews every ``retry`` seconds with one PUT of the Lease it last wrote
  (read again only on a conflict); when it cannot renew for ``renew_deadline``
  seconds it has lost the Lease and must stop acting;
- :meth:`LeaseElector.release` empties ``holderIdentity`` so a waiting replica takes
  over within one retry period instead of a whole lease duration.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Gauge

from ome_agent.adapters.kube.client import Kube, KubeError

log = logging.getLogger(__name__)

LEADER = Gauge(
    "ome_agent_controller_leader", "1 while this controller replica holds the Lease, else 0"
)


@dataclass(frozen=True)
class LeaseSettings:
    namespace: str
    name: str
    identity: str
    duration: float = 15.0  # seconds a silent holder keeps the Lease

    @property
    def retry(self) -> float:
        # client-go's defaults keep these ratios: 15 s lease, 10 s renew deadline, 2 s retry
        return max(0.2, self.duration * 2 / 15)

    @property
    def renew_deadline(self) -> float:
        return self.duration * 2 / 3


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    """Acquire, hold and release one Lease."""

    def __init__(self, kube: Kube, settings: LeaseSettings) -> None:
        self.kube = kube
        self.s = settings
        self.path = (
            f"/apis/coordination.k8s.io/v1/namespaces/{settings.namespace}/leases/{settings.name}"
        )
        self.leading = False
        # the holder's record as last seen and when (local monotonic clock) it changed
        self._observed: tuple[str, str] | None = None
        self._observed_at = 0.0
        self._lease: dict[str, Any] | None = None

    async def acquire(self) -> None:
        """Return once this replica holds the Lease (waits as long as it takes)."""
        waiting_logged = False
        while True:
            try:
                if await self._try_acquire():
                    self.leading = True
                    LEADER.set(1)
                    log.info("leader election: %s holds Lease %s", self.s.identity, self.s.name)
                    return
            except KubeError as e:
                log.warning("leader election: Lease %s: %s", self.s.name, e)
            if not waiting_logged:
                holder = self._observed[0] if self._observed else "?"
                log.info("leader election: Lease %s is held by %s; waiting", self.s.name, holder)
                waiting_logged = True
            await asyncio.sleep(self.s.retry)

    async def hold(self) -> None:
        """Renew the Lease until it is lost; returns (having logged why) when lost.
        Cancel it to stop renewing."""
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(self.s.retry)
            try:
                if await self._renew() or await self._try_acquire():
                    last_ok = time.monotonic()
                    continue
                log.error("leader election: Lease %s taken by another replica", self.s.name)
            except KubeError as e:
                if time.monotonic() - last_ok < self.s.renew_deadline:
                    log.warning("leader election: renewing Lease %s failed: %s", self.s.name, e)
                    continue
                log.error(
                    "leader election: could not renew Lease %s for %.0f s: %s",
                    self.s.name,
                    self.s.renew_deadline,
                    e,
                )
            self.leading = False
            LEADER.set(0)
            return

    async def release(self) -> None:
        """Give the Lease up now (on SIGTERM), so another replica need not wait it out."""
        if not self.leading or self._lease is None:
            return
        self.leading = False
        LEADER.set(0)
        lease = self._lease
        spec = dict(lease.get("spec") or {})
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_now())
        try:
            await self.kube.request(
                "PUT", self.path, verb="update", body={**lease, "spec": spec}, timeout=5.0
            )
            log.info("leader election: released Lease %s", self.s.name)
        except KubeError as e:
            log.warning("leader election: releasing Lease %s failed: %s", self.s.name, e)

    # ------------------------------------------------------------ one attempt
    async def _renew(self) -> bool:
        """One PUT of the Lease as last written (no GET first); False when it changed
        meanwhile (409), and the caller reads it again."""
        if self._lease is None:
            return False
        spec = {**(self._lease.get("spec") or {}), "renewTime": _now()}
        return await self._write("PUT", self.path, {**self._lease, "spec": spec})

    async def _try_acquire(self) -> bool:
        try:
            lease = await self.kube.request("GET", self.path, verb="get")
        except KubeError as e:
            if e.status != 404:
                raise
            return await self._create()
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        record = (holder, str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed, self._observed_at = record, time.monotonic()
        duration = float(spec.get("leaseDurationSeconds") or self.s.duration)
        expired = time.monotonic() - self._observed_at > duration
        if holder and holder != self.s.identity and not expired:
            self._lease = None
            return False
        now = _now()
        new_spec = {
            **spec,
            "holderIdentity": self.s.identity,
            "leaseDurationSeconds": round(self.s.duration),
            "renewTime": now,
        }
        if holder != self.s.identity:
            new_spec["acquireTime"] = now
            new_spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        return await self._write("PUT", self.path, {**lease, "spec": new_spec})

    async def _create(self) -> bool:
        now = _now()
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.s.name, "namespace": self.s.namespace},
            "spec": {
                "holderIdentity": self.s.identity,
                "leaseDurationSeconds": round(self.s.duration),
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }
        return await self._write("POST", self.path.rsplit("/", 1)[0], body)

    async def _write(self, method: str, path: str, body: dict[str, Any]) -> bool:
        """Create (POST) or update (PUT) the Lease; False on 409 Conflict: another
        candidate wrote first, or the Lease changed since it was read."""
        verb = "create" if method == "POST" else "update"
        try:
            lease = await self.kube.request(method, path, verb=verb, body=body)
        except KubeError as e:
            if e.status == 409:
                return False
            raise
        self._remember(lease)
        return True

    def _remember(self, lease: dict[str, Any]) -> None:
        self._lease = lease
        spec = lease.get("spec") or {}
        self._observed = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        self._observed_at = time.monotonic()
