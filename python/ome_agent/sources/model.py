"""What a source resolves to: the list of files to fetch (sources → transfer).

A source module (``http``, ``hf``, ...) turns a URI into a :class:`ResolvedSource`;
the transfer layer fetches each :class:`RemoteFile` through the engine. Request
headers may carry credentials, so they are kept out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RemoteFile:
    """One file: where to GET it, where it goes under DEST, what it must hash to."""

    path: str  # relative, "/"-separated name under DEST (checked by transfer.confine)
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    git_sha1: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class ResolvedSource:
    """A source pinned to what will be fetched."""

    source: str  # the URI as given, with any query string (signatures) redacted
    scheme: str  # "http" | "hf"
    files: list[RemoteFile]
    revision: str | None = None  # as requested (branch, tag or sha), hf only
    commit: str | None = None  # the commit the revision resolved to, hf only
