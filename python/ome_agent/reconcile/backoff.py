"""Per-key exponential backoff with jitter (reconcile core, docs/architecture.md, layer 4).

A Failed model is retried, not left Failed until a restart (docs/architecture.md, "Where
OME's agent falls short"): the reconciler asks :meth:`Backoff.next_delay` for the delay
before the next attempt and re-queues the model with it; a success calls
:meth:`Backoff.reset`. Jitter spreads the retries of many nodes that failed together (a
registry outage) so they do not return in lockstep. The Kubernetes adapter uses the same
class, keyless, for its watches and writes. Pure: no I/O, no clock.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

from ome_agent.errors import FailureReason

DEFAULT_BASE = 5.0
DEFAULT_CAP = 600.0
# failures that do not pass by themselves: retried only when the resource changes
NO_RETRY = (FailureReason.SPEC, FailureReason.UNSUPPORTED, FailureReason.NO_DIGEST)


class Backoff:
    """Delay n (counting from 0) is ``min(cap, base * factor**n)``, scaled by a random
    factor in ``[1 - jitter, 1]`` so it never exceeds the cap."""

    def __init__(
        self,
        base: float = DEFAULT_BASE,
        cap: float = DEFAULT_CAP,
        factor: float = 2.0,
        jitter: float = 0.2,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < base <= cap:
            raise ValueError(f"backoff: need 0 < base <= cap, got base={base}, cap={cap}")
        if factor < 1:
            raise ValueError(f"backoff: factor must be at least 1, got {factor}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"backoff: jitter must be within [0, 1], got {jitter}")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()  # noqa: S311 - spreads retries; not a secret
        self._failures: dict[Hashable, int] = {}

    def next_delay(self, key: Hashable = None) -> float:
        """Seconds to wait before retrying ``key``; each call counts one more failure."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        try:
            delay = min(self.cap, self.base * self.factor**n)
        except OverflowError:  # thousands of failures: long past the cap
            delay = self.cap
        return delay * (1 - self.jitter * self._rng.random())

    def failures(self, key: Hashable = None) -> int:
        """How many delays ``key`` has had since its last reset."""
        return self._failures.get(key, 0)

    def reset(self, key: Hashable = None) -> None:
        """``key`` succeeded (or left): its next failure starts again from ``base``."""
        self._failures.pop(key, None)


class Retries:
    """When each failed model is tried again: a spec error, an unsupported scheme or a
    file ``--require-digest`` refuses waits until the resource changes (:meth:`reset`);
    any other failure is retried after its key's next :class:`Backoff` delay."""

    def __init__(self, base: float, cap: float) -> None:
        self._backoff = Backoff(base=base, cap=cap)
        self._waiting: set[Hashable] = set()  # failed until the resource changes

    def after(self, key: Hashable, reason: FailureReason) -> float | None:
        """Seconds until ``key`` is tried again, or None to wait for a change."""
        if reason in NO_RETRY:
            self._waiting.add(key)
            return None
        return self._backoff.next_delay(key)

    def waiting(self, key: Hashable) -> bool:
        return key in self._waiting

    def succeeded(self, key: Hashable) -> None:
        self._backoff.reset(key)

    def reset(self, key: Hashable) -> None:
        """``key``'s resource changed or left: it starts again with no failure."""
        self._waiting.discard(key)
        self._backoff.reset(key)
