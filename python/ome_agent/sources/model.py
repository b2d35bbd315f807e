"""What a source resolves to: the list of files to fetch (sources → transfer).

A source module (``http``, ``hf``, ...) turns a URI into a :class:`ResolvedSource`;
the transfer layer fetches each :class:`RemoteFile` through the engine. Request
headers may carry credentials, so they are kept out of ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

# Fresh request headers for one request (e.g. a new OCI signature with a new date):
# the engine calls it before every request it sends for the file, so signatures
# never outlive their validity window however long the file takes.
SignFn = Callable[[], Mapping[str, str]]

# what every file checked by its size alone says, wherever it is reported (the pull
# summary, the manifest, the node's entry, ``status``)
SIZE_ONLY = "size only, unverified"


def size_only(why: str) -> str:
    """``RemoteFile.unverified`` for a file with no digest to check: why, then SIZE_ONLY."""
    return f"{why}: {SIZE_ONLY}"


@dataclass(frozen=True)
class MultipartMd5:
    """An object uploaded in parts: its digest is md5(concat(md5(part_i))) + "-N"."""

    part_size: int  # every part but the last has this size
    digest: str  # as the service gives it, e.g. "9b2cf535f27731c974343645a3985328-12" (hex)


@dataclass(frozen=True)
class RemoteFile:
    """One file: where to GET it, where it goes under DEST, what it must hash to."""

    path: str  # relative, "/"-separated name under DEST (checked by transfer.confine)
    url: str
    size: int | None = None
    sha256: str | None = None
    md5: str | None = None
    git_sha1: str | None = None
    crc32c: str | None = None  # hex (8 digits, big-endian) of the whole object's CRC32C
    # hex (16 digits, big-endian) of the whole object's CRC-64/NVME (S3's default)
    crc64nvme: str | None = None
    md5_multipart: MultipartMd5 | None = None
    etag: str | None = None  # from the listing: a different ETag at fetch time = changed upstream
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    sign: SignFn | None = field(default=None, repr=False, compare=False)
    # why no digest can be checked (made with size_only), for the summary and the
    # manifest; None when a digest is checked
    unverified: str | None = None

    @property
    def has_digest(self) -> bool:
        """A digest of the whole file is known, so its bytes are checked, not only its size."""
        digests = (self.sha256, self.md5, self.git_sha1, self.crc32c, self.crc64nvme)
        return any(digests) or self.md5_multipart is not None


@dataclass(frozen=True)
class ResolvedSource:
    """A source pinned to what will be fetched."""

    source: str  # the URI as given, with any query string (signatures) redacted
    scheme: str  # "http" | "hf" | "oci" | "s3" | "gs" | "az"
    files: list[RemoteFile]
    revision: str | None = None  # as requested (branch, tag or sha), hf only
    commit: str | None = None  # the commit the revision resolved to, hf only
    # what the source fell back from (e.g. a mirror without the tree API): one line each
    warnings: tuple[str, ...] = ()
