"""Sources: storage URI → list of files to fetch (docs/architecture.md, layer 2).

``schemes`` is the table of storage schemes, one line each: the one place a URI is
split, each scheme's form, what it verifies against, its parser and lister. One
module per scheme (``http``/``hf`` with their references in ``uri``, ``oci``, ``s3``,
``gcs``, ``azure``); ``auth`` carries a model's credentials to them; ``filters``
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
from ome_agent.sources.objects import ObjectSource
from ome_agent.sources.redact import redact_url
from ome_agent.sources.schemes import parse_source, resolve_object, split_scheme
from ome_agent.sources.uri import HfRef, HttpRef, SourceRef

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
    "split_scheme",
]
