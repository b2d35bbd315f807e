"""The storage schemes, one line each (sources layer; the first step of every caller).

A storage URI is split into its scheme here and nowhere else: planning in the node
agent (``reconcile.sources``), ``pull``, ``inspect`` (``discovery.remote``) and
``bench`` all call :func:`split_scheme` / :func:`parse_source` and receive a typed
reference. Each scheme's line in :data:`SCHEMES` says its accepted form (quoted in
messages), what its files are verified against, whether ``pull``/``inspect`` can
fetch it, and the functions that parse and list it. The caller names the field in
messages (``spec.storage.storageUri`` for the agent, ``SOURCE`` for the CLI).

Adding a scheme is one backend module plus one line here (CONTRIBUTING.md). Backend
modules import their vendor SDK inside their functions, so this table costs no SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ome_agent.errors import BadInput, UriError
from ome_agent.sources import azure, gcs, oci, s3
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.model import ResolvedSource
from ome_agent.sources.objects import ObjectRef, ObjectSource
from ome_agent.sources.redact import redact_url
from ome_agent.sources.uri import HfRef, HttpRef, SourceRef, parse_hf, parse_http

Parse = Callable[[str, str, str | None, str], SourceRef]


@dataclass(frozen=True)
class Scheme:
    name: str  # as written before "://", lower case
    form: str  # the accepted form, for messages
    verifies: str  # what its files are checked against (docs, `--help`)
    parse: Parse  # (uri, rest after "://", revision, the revision's field) -> reference
    fetchable: bool = True  # pull / inspect / the agent download it (pvc://, vendor:// not)
    # object stores: their reference type and the listing with a model's credentials
    ref_type: type | None = None
    resolve: Callable[[Any, StorageAuth], ResolvedSource] | None = None


def _no_revision(scheme: str, revision: str | None, field: str) -> None:
    if revision is not None:
        raise BadInput(f"{field} applies to hf:// sources only: drop it for {scheme}://")


def _http(uri: str, rest: str, revision: str | None, field: str) -> SourceRef:
    _no_revision("http(s)", revision, field)
    return parse_http(uri)


def _hf(uri: str, rest: str, revision: str | None, field: str) -> SourceRef:
    return parse_hf(rest, uri, revision, field)


def _object_store(
    name: str,
    form: str,
    verifies: str,
    parse: Callable[[str, str], ObjectRef],
    ref_type: type,
    resolve: Callable[[Any, StorageAuth], ResolvedSource],
) -> Scheme:
    """An object store's line: its backend parses what follows the scheme into its
    reference (the whole URI given for messages)."""

    def parse_store(uri: str, rest: str, revision: str | None, field: str) -> SourceRef:
        _no_revision(name, revision, field)
        return ObjectSource(parse(uri, rest))

    return Scheme(name, form, verifies, parse_store, ref_type=ref_type, resolve=resolve)


def _elsewhere(why: str) -> Parse:
    def refuse(uri: str, rest: str, revision: str | None, field: str) -> SourceRef:
        raise UriError(f"{uri!r}: {why}")

    return refuse


_HTTP_FORM = "http(s)://host/path/file"
_HTTP_VERIFIES = "the sha256/md5 given with it; else size only, unverified"
SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme("http", _HTTP_FORM, _HTTP_VERIFIES, _http),
        Scheme("https", _HTTP_FORM, _HTTP_VERIFIES, _http),
        Scheme(
            "hf",
            "hf://org/name[@revision]",
            "LFS sha256; else the git blob sha1; else size only, unverified",
            _hf,
        ),
        _object_store(
            "oci",
            oci.FORMS,
            "MD5, multipart MD5 or CRC32C from the listing",
            oci.parse_oci,
            oci.OciRef,
            oci.resolve_oci,
        ),
        _object_store(
            "s3",
            "s3://{bucket}/{prefix}",
            "full-object CRC64NVME or CRC32C, or MD5 ETag; multipart MD5 with part sizes",
            s3.S3Ref.parse,
            s3.S3Ref,
            s3.resolve_s3,
        ),
        _object_store(
            "gs",
            "gs://{bucket}/{prefix}",
            "MD5 or CRC32C from the listing",
            gcs.GcsRef.parse,
            gcs.GcsRef,
            gcs.resolve_gcs,
        ),
        _object_store(
            "az",
            azure.FORM,
            "Content-MD5 of the blob; else size only, unverified",
            azure.parse_azure,
            azure.AzureRef,
            azure.resolve_azure,
        ),
        Scheme(
            "pvc",
            "pvc://[namespace:]claim/sub-path",
            "nothing: the model already lives on its claim",
            _elsewhere(
                "a pvc:// model already lives on its claim; nothing to pull. Mount the "
                "claim (or run `ome-agent inspect` in a pod that mounts it)"
            ),
            fetchable=False,
        ),
        Scheme(
            "vendor",
            "vendor://{vendor}/{resource-type}/{resource-path}",
            "nothing: the vendor's own system provides the files",
            _elsewhere("a vendor:// model is provided by the vendor's own system; nothing to pull"),
            fetchable=False,
        ),
    )
}
OBJECT_SCHEMES = tuple(name for name, s in SCHEMES.items() if s.resolve is not None)
OBJECT_FORMS = ", ".join(SCHEMES[name].form for name in OBJECT_SCHEMES)
FETCHABLE_FORMS = ", ".join(
    dict.fromkeys(s.form for s in SCHEMES.values() if s.fetchable)  # http and https once
)


def split_scheme(uri: str) -> tuple[str, str]:
    """``"HF://org/name"`` → ``("hf", "org/name")``: the one place a URI is split.

    UriError (for the caller to name) when there is no scheme; the scheme may still be
    one no line of :data:`SCHEMES` knows."""
    scheme, sep, rest = uri.strip().partition("://")
    if not sep or not scheme:
        raise UriError(f"{redact_url(uri)!r} has no scheme: use {FETCHABLE_FORMS}")
    return scheme.lower(), rest


def parse_source(
    source: str, revision: str | None = None, revision_field: str = "--revision"
) -> SourceRef:
    """A storage URI → its typed reference; ``revision`` is given apart from it (hf
    only) by the caller's ``revision_field``. A malformed URI raises :class:`UriError`,
    which the caller names (``SOURCE`` unless it says otherwise)."""
    text = source.strip()
    name, rest = split_scheme(text)
    scheme = SCHEMES.get(name)
    if scheme is None:
        raise UriError(f"scheme '{name}://' is not supported: use {FETCHABLE_FORMS}")
    return scheme.parse(text, rest, revision, revision_field)


def resolve_object(ref: ObjectRef, auth: StorageAuth) -> ResolvedSource:
    """List the objects under an object-store reference, with what each must verify
    against, through its scheme's backend."""
    for scheme in SCHEMES.values():
        if scheme.ref_type is not None and isinstance(ref, scheme.ref_type):
            assert scheme.resolve is not None
            return scheme.resolve(ref, auth)
    raise TypeError(f"not an object-store reference: {type(ref).__name__}")


__all__ = [
    "FETCHABLE_FORMS",
    "OBJECT_FORMS",
    "OBJECT_SCHEMES",
    "SCHEMES",
    "HfRef",
    "HttpRef",
    "Scheme",
    "parse_source",
    "resolve_object",
    "split_scheme",
]
