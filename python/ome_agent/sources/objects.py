"""Object-store URIs (``oci://``, ``s3://``, ``gs://``, ``az://``) → the backend that lists them.

One entry point for the callers (``pull``, ``inspect``, the node agent): parse a URI
into the backend's own reference, then resolve it with the model's credentials into
a :class:`~ome_agent.sources.model.ResolvedSource`. Each backend module keeps its
vendor SDK import inside its functions, so parsing a URI never pays for an SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ome_agent.errors import BadInput
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.model import ResolvedSource

SCHEMES = ("oci", "s3", "gs", "az")
FORMS = (
    "oci://n/{namespace}/b/{bucket}/o/{prefix}, s3://{bucket}/{prefix}, "
    "gs://{bucket}/{prefix}, az://{account}/{container}/{prefix}"
)


class ObjectRef(Protocol):
    """What every backend's reference offers the callers."""

    @property
    def display(self) -> str: ...


@dataclass(frozen=True)
class ObjectSource:
    """SOURCE naming objects in a store (what ``parse_source`` returns for them)."""

    ref: ObjectRef

    @property
    def display(self) -> str:
        return self.ref.display


def scheme_of(uri: str) -> str:
    return uri.strip().partition("://")[0].lower()


def parse_object(uri: str) -> ObjectRef:
    """BadInput (naming the accepted form) for a malformed URI."""
    text = uri.strip()
    scheme = scheme_of(text)
    if scheme == "oci":
        from ome_agent.sources.oci import parse_oci

        return parse_oci(text)
    if scheme == "s3":
        from ome_agent.sources.s3 import parse_s3

        return parse_s3(text)
    if scheme == "gs":
        from ome_agent.sources.gcs import parse_gcs

        return parse_gcs(text)
    if scheme == "az":
        from ome_agent.sources.azure import parse_azure

        return parse_azure(text)
    raise BadInput(f"{scheme}:// is not an object-store scheme: use {FORMS}")


def resolve_object(ref: ObjectRef, auth: StorageAuth) -> ResolvedSource:
    """List the objects under the reference, with what each must verify against."""
    from ome_agent.sources import azure, gcs, oci, s3

    if isinstance(ref, oci.OciRef):
        return oci.resolve_oci(ref, auth)
    if isinstance(ref, s3.S3Ref):
        return s3.resolve_s3(ref, auth)
    if isinstance(ref, gcs.GcsRef):
        return gcs.resolve_gcs(ref, auth)
    if isinstance(ref, azure.AzureRef):
        return azure.resolve_azure(ref, auth)
    raise TypeError(f"not an object-store reference: {type(ref).__name__}")
