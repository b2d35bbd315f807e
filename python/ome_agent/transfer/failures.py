"""Engine exceptions → ome-agent errors with a one-line message for people.

The engine's exception types are the contract (``_core.pyi``); here they get the
file name in front and the fix behind. Messages carry URLs without query strings
and never request headers, so tokens and signatures stay out of them.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ome_agent import _core
from ome_agent.errors import Interrupted, OmeAgentError, TransferFailed

# retried statuses surface as a TransferError once the retries are spent
_THROTTLED = re.compile(r"\bHTTP (429|503)\b")


def _is_hf(url: str) -> bool:
    """A Hugging Face file URL (the Hub or a mirror: ``<repo>/resolve/<rev>/<file>``)."""
    return "huggingface.co" in urlsplit(url).netloc or "/resolve/" in urlsplit(url).path


def _refused_hint(url: str) -> str:
    if _is_hf(url):
        return ": the server refused access; check the credentials (e.g. HF_TOKEN)"
    return ": the server refused access; check the credentials of this storage"


def describe(path: str, exc: BaseException) -> OmeAgentError:
    """Map an exception raised while fetching ``path``."""
    if isinstance(exc, OmeAgentError):
        return exc
    if isinstance(exc, _core.Cancelled | KeyboardInterrupt):
        return Interrupted(f"{path}: cancelled; rerun the same command to resume")
    if isinstance(exc, _core.ChecksumMismatch):
        if exc.algorithm == "etag":
            return TransferFailed(
                f"{path}: changed upstream since it was listed (ETag {exc.expected}, now "
                f"{exc.actual}): rerun to fetch the new version",
                path=path,
            )
        return TransferFailed(
            f"{path}: {exc.algorithm} mismatch: expected {exc.expected}, got {exc.actual}; "
            "the file was not kept",
            path=path,
        )
    if isinstance(exc, _core.HttpStatusError):
        hint = ""
        if exc.status in (401, 403):
            hint = _refused_hint(exc.url)
        elif exc.status == 404:
            hint = ": the object does not exist; check the URL"
        elif exc.status == 412:  # If-Match on the listed ETag (az://) refused the request
            return TransferFailed(
                f"{path}: changed upstream since it was listed (HTTP 412 from {exc.url}): "
                "rerun to fetch the new version",
                path=path,
            )
        return TransferFailed(f"{path}: HTTP {exc.status} from {exc.url}{hint}", path=path)
    if isinstance(exc, _core.TransferError):
        if _THROTTLED.search(str(exc)):
            return TransferFailed(
                f"{path}: the server kept answering busy after retries: {exc}; "
                "retry later or lower --max-connections",
                path=path,
            )
        return TransferFailed(f"{path}: transfer failed after retries: {exc}", path=path)
    if isinstance(exc, _core.EngineError):
        return TransferFailed(f"{path}: {exc}", path=path)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return TransferFailed(f"{path}: cannot write{where}: {exc.strerror or exc}", path=path)
    return TransferFailed(f"{path}: {type(exc).__name__}: {exc}", path=path)
