"""``scheme://bucket/prefix`` URIs, endpoints and what a prefix selects (sources layer,
object stores).

Shared by the ``s3``, ``gcs``, ``azure`` and ``oci`` backends, whose stores have flat
key spaces:
- a prefix that names one object selects that object alone (it lands under its
  last path segment);
- otherwise it selects every object under ``prefix/``, each landing at its key
  relative to that folder (an empty prefix: the whole bucket);
- keys ending in "/" are the "folder" markers consoles create: they hold no model
  bytes and are skipped.
Names are not sanitised here: ``transfer.confine`` refuses unsafe ones later.
``parameters.endpoint`` (another host for the store's API) is checked here too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Self
from urllib.parse import urlsplit

from ome_agent.errors import ParameterError, UriError
from ome_agent.sources.redact import redact_url

# loose on purpose: legacy S3 buckets allow upper case and "_"; the store itself
# rejects what it does not know, here we only refuse what cannot be a bucket name
_BUCKET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,220}[A-Za-z0-9]$")


@dataclass(frozen=True)
class BucketRef:
    """``{scheme}://{bucket}/{prefix}``; each backend subclasses it with its scheme."""

    scheme: ClassVar[str]
    bucket: str
    prefix: str  # "" = the whole bucket

    @property
    def display(self) -> str:
        return f"{self.scheme}://{self.bucket}/{self.prefix}"

    @classmethod
    def parse(cls, uri: str, rest: str) -> Self:
        """``rest``, what follows ``{scheme}://`` in ``uri`` (``sources.schemes`` splits
        the scheme) → the reference; UriError quoting ``uri`` and naming the form."""
        return cls(*split_bucket(uri, rest, cls.scheme))


def split_bucket(uri: str, rest: str, scheme: str) -> tuple[str, str]:
    """``rest``, what follows ``scheme://`` in ``uri`` (split by ``sources.schemes``) →
    (bucket, prefix); UriError quoting ``uri`` and naming the form."""
    form = f"{scheme}://{{bucket}}/{{prefix}}"
    if "?" in rest or "#" in rest:
        raise UriError(
            f"{uri!r} has a query or fragment: give only {form} "
            "(region, endpoint, ... are storage parameters)"
        )
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise UriError(f"{uri!r} names no bucket: use {form}")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise UriError(
            f"{uri!r}: {bucket!r} is not a bucket name (3-222 letters, digits, "
            f"'.', '-', '_'): use {form}"
        )
    if any(ord(c) < 32 for c in prefix):
        raise UriError(f"{uri!r} has a control character in its prefix")
    return bucket, prefix.lstrip("/")


def check_endpoint(url: str, example: str) -> str:
    """An endpoint for a store's API: an http(s) URL without user info or query (a
    credential there would end up in logs), returned without its trailing "/"."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ParameterError(
            "endpoint", "", f" is not an http(s) URL: write e.g. {example}", value=redact_url(text)
        )
    if parts.username or parts.password or parts.query:
        raise ParameterError(
            "endpoint",
            "",
            " carries user info or a query: give only scheme://host[:port][/path]; "
            "credentials belong in the Secret named by storage.key",
        )
    return text.rstrip("/")


def folder_of(prefix: str) -> str:
    """The key prefix that lists a folder: "a/b" → "a/b/", "" → "" (whole bucket)."""
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


def single_object_name(prefix: str) -> str:
    """Where an object named by the prefix itself lands: its last path segment."""
    return prefix.rsplit("/", 1)[-1]


def relative_path(key: str, folder: str) -> str | None:
    """``key`` relative to ``folder``; None for folder markers and keys outside it."""
    if not key.startswith(folder) or key.endswith("/"):
        return None
    rel = key[len(folder) :]
    return rel or None
