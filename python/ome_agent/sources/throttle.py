"""How long a throttled object store asks to wait (sources layer, docs/architecture.md).

Every backend's listing retries read the store's ``Retry-After`` through
:func:`retry_after`; the engine honours it on downloads itself.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is capped


def retry_after(value: str | None) -> float | None:
    """Seconds a throttled store asks to wait (Retry-After: seconds or an HTTP date),
    at most MAX_RETRY_AFTER; None when absent or unreadable (the SDK's backoff then)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
