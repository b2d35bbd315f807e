"""Engine exceptions → ome-agent errors with a reason and a one-line message for people.

The engine's exception types and their typed fields are the contract (``_core.pyi``);
this is the one place they are read: each failure gets its :class:`FailureReason`
from them (never from the message), the file name in front and the fix behind.
Messages carry URLs without query strings and never request headers, so tokens and
signatures stay out of them.
"""

from __future__ import annotations

import errno
from urllib.parse import urlsplit

from ome_agent import _core
from ome_agent.errors import FailureReason, Interrupted, OmeAgentError, TransferFailed

# retried statuses that mean "busy": they surface once the retries are spent
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def _is_hf(url: str) -> bool:
    """A Hugging Face file URL (the Hub or a mirror: ``<repo>/resolve/<rev>/<file>``)."""
    return "huggingface.co" in urlsplit(url).netloc or "/resolve/" in urlsplit(url).path


def _refused_hint(url: str) -> str:
    if _is_hf(url):
        return ": the server refused access; check the credentials (e.g. HF_TOKEN)"
    return ": the server refused access; check the credentials of this storage"


def _checksum(path: str, exc: _core.ChecksumMismatch) -> TransferFailed:
    if exc.algorithm == "etag":
        return TransferFailed(
            f"{path}: changed upstream since it was listed (ETag {exc.expected}, now "
            f"{exc.actual}): rerun to fetch the new version",
            path=path,
            reason=FailureReason.CHANGED_UPSTREAM,
        )
    return TransferFailed(
        f"{path}: {exc.algorithm} mismatch: expected {exc.expected}, got {exc.actual}; "
        "the file was not kept",
        path=path,
        reason=FailureReason.CHECKSUM,
    )


def _refused(path: str, exc: _core.HttpStatusError) -> TransferFailed:
    """A status the engine does not retry."""
    hint, reason = "", FailureReason.SERVER
    if exc.status in (401, 403):
        hint, reason = _refused_hint(exc.url), FailureReason.DENIED
    elif exc.status in (404, 410):
        hint, reason = ": the object does not exist; check the URL", FailureReason.NOT_FOUND
    elif exc.status == 412:  # If-Match on the listed ETag (az://) refused the request
        return TransferFailed(
            f"{path}: changed upstream since it was listed (HTTP 412 from {exc.url}): "
            "rerun to fetch the new version",
            path=path,
            reason=FailureReason.CHANGED_UPSTREAM,
        )
    return TransferFailed(
        f"{path}: HTTP {exc.status} from {exc.url}{hint}", path=path, reason=reason
    )


# failures the engine does not retry (the same answer comes again): the reason, and
# the fix after the engine's message
_NOT_RETRIED = {
    "redirect": (FailureReason.SERVER, ""),
    "dns": (FailureReason.UNKNOWN_HOST, "; check the host name of the URL"),
    "malformed": (
        FailureReason.MALFORMED,
        "; the server (or a proxy on the way) does not speak HTTP/1.1 correctly",
    ),
    "too-large": (
        FailureReason.TOO_LARGE,
        "; raise --max-unknown-size if the file is really that big",
    ),
}


def _gave_up(path: str, exc: _core.TransferError) -> TransferFailed:
    """Every retry failed, or the failure was one no retry heals; ``kind`` says how."""
    if exc.kind in _NOT_RETRIED:
        reason, fix = _NOT_RETRIED[exc.kind]
        return TransferFailed(f"{path}: {exc}{fix}", path=path, reason=reason)
    if exc.kind == "slow":
        return TransferFailed(
            f"{path}: too slow after retries: {exc}; check the network, or lower "
            "--speed-limit / raise --speed-time",
            path=path,
            reason=FailureReason.SLOW,
        )
    if exc.kind == "status" and FailureReason.of_status(exc.status) is FailureReason.THROTTLED:
        return TransferFailed(
            f"{path}: the server kept answering busy after retries: {exc}; "
            "retry later or lower --max-connections",
            path=path,
            reason=FailureReason.THROTTLED,
        )
    reason = {
        "status": FailureReason.SERVER,
        "changed": FailureReason.CHANGED_UPSTREAM,
        "corrupt": FailureReason.CHECKSUM,
        "internal": FailureReason.INTERNAL,
    }.get(exc.kind, FailureReason.NETWORK)
    return TransferFailed(f"{path}: transfer failed after retries: {exc}", path=path, reason=reason)


def describe(path: str, exc: BaseException) -> OmeAgentError:
    """Map an exception raised while fetching ``path``."""
    if isinstance(exc, OmeAgentError):
        return exc
    if isinstance(exc, _core.Cancelled | KeyboardInterrupt):
        return Interrupted(f"{path}: cancelled; rerun the same command to resume")
    if isinstance(exc, _core.ChecksumMismatch):
        return _checksum(path, exc)
    if isinstance(exc, _core.HttpStatusError):
        return _refused(path, exc)
    if isinstance(exc, _core.TransferError):
        return _gave_up(path, exc)
    if isinstance(exc, _core.EngineError):
        return TransferFailed(f"{path}: {exc}", path=path, reason=FailureReason.INTERNAL)
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return TransferFailed(
            f"{path}: cannot write{where}: {exc.strerror or exc}",
            path=path,
            reason=FailureReason.DISK_FULL if exc.errno in _NO_SPACE else FailureReason.DISK,
        )
    return TransferFailed(
        f"{path}: {type(exc).__name__}: {exc}", path=path, reason=FailureReason.INTERNAL
    )
