"""Sources: storage URI → list of files to fetch (docs/architecture.md, layer 2).

One module per scheme (``http``, ``hf``, ``oci``, ``s3``, ``gcs``, ``azure``);
``objects`` dispatches the object-store URIs; ``auth`` carries a model's
credentials to them; ``uri`` parses SOURCE, ``filters``
applies include/exclude globs, ``digests`` checks user-given digests. Byte
transfer is not done here: the ``transfer`` package hands files to the engine.
"""

from __future__ import annotations

from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.digests import check_hex
from ome_agent.sources.filters import check_globs, select
from ome_agent.sources.hf import resolve_hf
from ome_agent.sources.http import resolve_http
from ome_agent.sources.model import MultipartMd5, RemoteFile, ResolvedSource
from ome_agent.sources.objects import ObjectSource, resolve_object
from ome_agent.sources.redact import redact_url
from ome_agent.sources.uri import HfRef, HttpRef, SourceRef, parse_source

__all__ = [
    "HfRef",
    "HttpRef",
    "MultipartMd5",
    "ObjectSource",
    "RemoteFile",
    "ResolvedSource",
    "SourceRef",
    "StorageAuth",
    "check_globs",
    "check_hex",
    "parse_source",
    "redact_url",
    "resolve_hf",
    "resolve_http",
    "resolve_object",
    "select",
]
