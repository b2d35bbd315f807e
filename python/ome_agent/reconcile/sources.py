"""storage.storageUri → what the agent does for it on this node (reconcile core, layer 4).

Supported here:
- ``hf://org/name[@revision]`` (revision also from ``parameters.revision``): the repo,
  every file verified against the digests of its listing;
- ``http(s)://host/path/file``: one file into the model directory;
- a local path (``file:///abs/dir`` or ``/abs/dir``): the directory (or file) is
  hard-linked into the model directory when on the same filesystem, else copied;
  checked by size;
- ``vendor://...``: the vendor's own system provides the files (OME semantics): the
  agent downloads nothing and reports the model Ready at its path, with no files.

Every other scheme (``oci://``, ``s3://``, ``gs://``, ``az://``, ``pvc://``, unknown)
fails at once with :class:`Unsupported`, whose message names the scheme: the model is
Failed on this node, never stuck Updating.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ome_agent.api import StorageSpec
from ome_agent.errors import BadInput
from ome_agent.sources import HfRef, HttpRef, parse_source, redact_url

SUPPORTED = "hf://org/name[@revision], http(s)://host/path/file, a local path, vendor://"


class Unsupported(BadInput):
    """The storage scheme has no implementation in this agent version."""


@dataclass(frozen=True)
class SourcePlan:
    scheme: str  # "hf" | "http" | "local" | "vendor"
    display: str  # the URI with credentials and query strings redacted
    revision: str | None  # as requested (hf only)
    hf: HfRef | None = None
    http: HttpRef | None = None
    local: Path | None = None


def plan_source(storage: StorageSpec | None) -> SourcePlan:
    """BadInput (naming ``spec.storage.storageUri``) for a missing or malformed URI."""
    uri = (storage.storage_uri if storage else None) or ""
    uri = uri.strip()
    if not uri:
        raise BadInput(
            f"spec.storage.storageUri is missing: give where the model comes from ({SUPPORTED})"
        )
    if uri.startswith("/"):
        return SourcePlan("local", uri, None, local=Path(uri))
    scheme, sep, _ = uri.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise BadInput(
            f"spec.storage.storageUri {redact_url(uri)!r} has no scheme: use {SUPPORTED}"
        )
    assert storage is not None
    if scheme == "file":
        path = unquote(urlsplit(uri).path)
        if not path.startswith("/"):
            raise BadInput(f"spec.storage.storageUri {uri!r}: give an absolute path, file:///dir")
        return SourcePlan("local", uri, None, local=Path(path))
    if scheme == "vendor":
        return SourcePlan("vendor", uri, None)
    if scheme == "hf":
        try:
            ref = parse_source(uri, storage.parameters.get("revision") or None)
        except BadInput as e:
            raise BadInput(f"spec.storage.storageUri: {e}") from None
        assert isinstance(ref, HfRef)
        return SourcePlan("hf", ref.display, ref.revision, hf=ref)
    if scheme in ("http", "https"):
        try:
            ref_http = parse_source(uri)
        except BadInput as e:
            raise BadInput(f"spec.storage.storageUri: {e}") from None
        assert isinstance(ref_http, HttpRef)
        if ref_http.file_name is None:
            raise BadInput(
                f"spec.storage.storageUri {ref_http.display!r} names no file (ends with '/'): "
                "give the URL of one file"
            )
        return SourcePlan("http", ref_http.display, None, http=ref_http)
    raise Unsupported(
        f"{scheme}:// is not supported by this agent version: spec.storage.storageUri "
        f"{redact_url(uri)!r} cannot be fetched on this node; supported: {SUPPORTED}"
    )
