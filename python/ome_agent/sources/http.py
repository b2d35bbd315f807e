"""Source ``http(s)://``: one file whose name comes from the URL's last path segment.

Nothing is asked of the server here; the engine learns size, ETag and Range support
on its first request. The user may pin the bytes with ``--sha256`` / ``--md5``;
without them the file is checked by its size only, and says so (``unverified``): a
short 200 or an error page served as the file would pass.
"""

from __future__ import annotations

from ome_agent.sources.model import RemoteFile, ResolvedSource, size_only
from ome_agent.sources.uri import HttpRef


def resolve_http(
    ref: HttpRef, *, file_name: str, sha256: str | None = None, md5: str | None = None
) -> ResolvedSource:
    """``file_name`` is where the bytes go, relative to DEST (chosen by the caller)."""
    why = None if sha256 or md5 else size_only("the server gave no digest")
    file = RemoteFile(path=file_name, url=ref.url, sha256=sha256, md5=md5, unverified=why)
    return ResolvedSource(source=ref.display, scheme="http", files=[file])
