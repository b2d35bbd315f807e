"""Source ``http(s)://``: one file whose name comes from the URL's last path segment.

Nothing is asked of the server here; the engine learns size, ETag and Range support
on its first request. The user may pin the bytes with ``--sha256`` / ``--md5``.
"""

from __future__ import annotations

from ome_agent.sources.model import RemoteFile, ResolvedSource
from ome_agent.sources.uri import HttpRef


def resolve_http(
    ref: HttpRef, *, file_name: str, sha256: str | None = None, md5: str | None = None
) -> ResolvedSource:
    """``file_name`` is where the bytes go, relative to DEST (chosen by the caller)."""
    file = RemoteFile(path=file_name, url=ref.url, sha256=sha256, md5=md5)
    return ResolvedSource(source=ref.display, scheme="http", files=[file])
