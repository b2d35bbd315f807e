"""storage.storageUri → what the agent does for it on this node (reconcile core, layer 4).

Supported here:
- ``hf://org/name[@revision]`` (revision also from ``parameters.revision``): the repo,
  every file verified against the digests of its listing;
- ``http(s)://host/path/file``: one file into the model directory;
- a local path (``file:///abs/dir`` or ``/abs/dir``): the directory (or file) is
  hard-linked into the model directory when on the same filesystem, else copied;
  checked by size;
- ``oci://``, ``s3://``, ``gs://``, ``az://``: every object under the prefix, listed
  by the vendor's SDK with the Secret named by ``storage.key`` (else the SDK's own
  chain), each file verified against the digests the store gives;
- ``vendor://...``: the vendor's own system provides the files (OME semantics): the
  agent downloads nothing and reports the model Ready at its path, with no files;
- ``pvc://[namespace:]claim/sub-path``: the model already lives on a claim that pods
  mount; nothing belongs on the node, so the agent neither downloads nor reports it
  (the controller reports the claim, see ``ome_agent.fleet.pvc``).

An unknown scheme fails at once with :class:`Unsupported`, whose message names the
scheme: the model is Failed on this node, never stuck Updating.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ome_agent.api import StorageSpec
from ome_agent.errors import BadInput, FailureReason, UriError
from ome_agent.reconcile import hubcache
from ome_agent.sources import HfRef, HttpRef, ObjectSource, SourceRef, parse_source, redact_url
from ome_agent.sources.schemes import FETCHABLE_FORMS, OBJECT_SCHEMES, SCHEMES, split_scheme

SUPPORTED = f"{FETCHABLE_FORMS}, {SCHEMES['pvc'].form}, {SCHEMES['vendor'].form}, a local path"


FIELD = "spec.storage.storageUri"


class Unsupported(BadInput):
    """The storage scheme has no implementation in this agent version."""

    reason = FailureReason.UNSUPPORTED


@dataclass(frozen=True)
class SourcePlan:
    scheme: str  # "hf" | "http" | "local" | "vendor" | "pvc" | an object store's
    display: str  # the URI with credentials and query strings redacted
    revision: str | None  # as requested (hf only)
    hf: HfRef | None = None
    http: HttpRef | None = None
    local: Path | None = None
    objects: ObjectSource | None = None
    vendor: dict[str, str] | None = None  # vendor://{vendor}/{resourceType}/{resourcePath}
    cache_dir: Path | None = None  # hf: parameters.cache_dir, as written (reconcile.hubcache)


def plan_source(storage: StorageSpec | None) -> SourcePlan:
    """BadInput (naming ``spec.storage.storageUri``) for a missing or malformed URI."""
    uri = (storage.storage_uri if storage else None) or ""
    uri = uri.strip()
    if not uri:
        raise BadInput(
            f"spec.storage.storageUri is missing: give where the model comes from ({SUPPORTED})"
        )
    if uri.startswith("/"):
        hubcache.only_hf(storage, "a local path")
        return SourcePlan("local", uri, None, local=Path(uri))
    try:
        scheme, rest = split_scheme(uri)
    except UriError:
        raise BadInput(f"{FIELD} {redact_url(uri)!r} has no scheme: use {SUPPORTED}") from None
    assert storage is not None
    if scheme != "hf":
        hubcache.only_hf(storage, f"{scheme}://")
    if scheme == "file":
        path = unquote(urlsplit(uri).path)
        if not path.startswith("/"):
            raise BadInput(f"spec.storage.storageUri {uri!r}: give an absolute path, file:///dir")
        return SourcePlan("local", uri, None, local=Path(path))
    if scheme == "vendor":
        return SourcePlan("vendor", uri, None, vendor=_vendor_parts(uri, rest))
    if scheme == "pvc":
        return SourcePlan("pvc", uri, None)
    if scheme in OBJECT_SCHEMES:
        ref_objects = _parse(uri)
        assert isinstance(ref_objects, ObjectSource)
        return SourcePlan(scheme, ref_objects.display, None, objects=ref_objects)
    if scheme == "hf":
        ref = _parse(uri, storage.parameters.get("revision") or None)
        assert isinstance(ref, HfRef)
        return SourcePlan(
            "hf", ref.display, ref.revision, hf=ref, cache_dir=hubcache.parse(storage)
        )
    if scheme in ("http", "https"):
        ref_http = _parse(uri)
        assert isinstance(ref_http, HttpRef)
        if ref_http.file_name is None:
            raise BadInput(
                f"spec.storage.storageUri {ref_http.display!r} names no file (ends with '/'): "
                "give the URL of one file"
            )
        return SourcePlan("http", ref_http.display, None, http=ref_http)
    raise Unsupported(
        f"{scheme}:// is not a storage scheme this agent knows: spec.storage.storageUri "
        f"{redact_url(uri)!r} cannot be fetched on this node; supported: {SUPPORTED}"
    )


def _parse(uri: str, revision: str | None = None) -> SourceRef:
    """``parse_source``, its URI errors naming this field."""
    try:
        return parse_source(uri, revision, revision_field="spec.storage.parameters.revision")
    except UriError as e:
        raise e.named(FIELD) from None


def _vendor_parts(uri: str, after_scheme: str) -> dict[str, str]:
    vendor, _, rest = after_scheme.partition("/")
    resource_type, _, resource_path = rest.partition("/")
    if not vendor or not resource_type or not resource_path.strip("/"):
        raise BadInput(
            f"spec.storage.storageUri {uri!r}: use vendor://{{vendor}}/{{resource-type}}/"
            "{resource-path}, e.g. vendor://nvidia/models/llama-70b-tensorrt"
        )
    return {"vendor": vendor, "resourceType": resource_type, "resourcePath": resource_path}
