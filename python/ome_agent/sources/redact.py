"""URLs as they may be shown (sources layer, docs/architecture.md).

Signed URLs and endpoints carry credentials in their user info and query string:
every message, log line and report shows a URL through :func:`redact_url` only.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(url: str) -> str:
    """Drop user info and query: signed URLs carry credentials there."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))
