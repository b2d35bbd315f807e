"""Python-side error types of ome-agent and the exit code each one maps to.

Sources and the transfer orchestration raise these; the CLI turns them into one
line on stderr and an exit code. Engine errors (``ome_agent._core``) are wrapped
into :class:`TransferFailed` by the orchestration so callers see one family.
Messages never carry credentials: they name the field at fault and the fix.

Each error carries a :class:`FailureReason`, decided where the failure is first
understood (the engine's typed exceptions are read once, in
``ome_agent.transfer.failures``); the reconcile core, the metrics and the reports
read that field, never the message.
"""

from __future__ import annotations

import enum


class FailureReason(enum.StrEnum):
    """Why something failed, as callers act on it."""

    SPEC = "spec"  # the resource or the command line is wrong: not retried
    UNSUPPORTED = "unsupported"  # a storage scheme this agent lacks: not retried
    CREDENTIALS = "credentials"  # a Secret or token cannot be read
    SOURCE = "source"  # the source's API failed (listing, metadata)
    NOT_FOUND = "not-found"  # the object is gone (HTTP 404/410) or the repo/revision
    DENIED = "denied"  # the server refused the credentials (HTTP 401/403)
    THROTTLED = "throttled"  # the server stayed busy (HTTP 429/503) through the retries
    SERVER = "server"  # another status: retried ones kept coming, or one not retried
    NETWORK = "network"  # no connection, reset, stall or timeout through the retries
    # below --speed-limit for --speed-time (or headers as late) on every try
    SLOW = "slow"
    UNKNOWN_HOST = "unknown-host"  # the host name does not exist (NXDOMAIN): not retried
    # the answer is not HTTP (status line, Content-Length, header size): not retried
    MALFORMED = "malformed-response"
    # no size given and the body passed --max-unknown-size: not retried
    TOO_LARGE = "too-large"
    CHANGED_UPSTREAM = "changed-upstream"  # the object changed since it was listed
    CHECKSUM = "checksum"  # a digest or the size of the bytes differs from the listing's
    # --require-digest, and the source gives no digest for a file (only its size could be
    # checked): not retried
    NO_DIGEST = "no-digest"
    DISK_FULL = "disk-full"  # no space (or quota) left where the files go
    DISK = "disk"  # another local file error
    CANCELLED = "cancelled"  # stopped on request
    INTERNAL = "internal"  # a bug: anything else

    @property
    def category(self) -> str:
        """The coarse group the failure metric counts it under (a small fixed set, so
        dashboards keep their series): spec, unsupported, credentials, source, verify,
        disk or internal."""
        return _CATEGORIES.get(self, "source")

    @classmethod
    def of_status(cls, status: int | None) -> FailureReason:
        """What an HTTP status a source's API answered means for the caller."""
        if status in (401, 403):
            return cls.DENIED
        if status in (404, 410):
            return cls.NOT_FOUND
        if status in (429, 503):
            return cls.THROTTLED
        return cls.SERVER


# reasons counted under another group than "source"
_CATEGORIES = {
    FailureReason.SPEC: "spec",
    FailureReason.UNSUPPORTED: "unsupported",
    FailureReason.CREDENTIALS: "credentials",
    FailureReason.DENIED: "credentials",  # the server refused the credentials given
    FailureReason.CHECKSUM: "verify",
    FailureReason.NO_DIGEST: "verify",
    FailureReason.DISK_FULL: "disk",
    FailureReason.DISK: "disk",
    FailureReason.INTERNAL: "internal",
}


class OmeAgentError(Exception):
    """Base of every error ome-agent raises on purpose."""

    exit_code: int = 1
    reason: FailureReason = FailureReason.SOURCE


class BadInput(OmeAgentError, ValueError):
    """The user asked for something malformed or impossible; rerunning won't help.

    Exit code 2 (the usual code of a usage error)."""

    exit_code = 2
    reason = FailureReason.SPEC


class UriError(BadInput):
    """A storage URI that does not parse. ``problem`` says what is wrong with the URI
    without naming where it came from: the caller names its own field (``SOURCE`` on
    the command line, ``spec.storage.storageUri`` in the agent) with :meth:`named`."""

    def __init__(self, problem: str, field: str = "SOURCE") -> None:
        super().__init__(f"{field} {problem}")
        self.problem = problem
        self.field = field

    def named(self, field: str) -> UriError:
        return UriError(self.problem, field)


class ParameterError(BadInput):
    """A storage parameter (an object store's ``auth``, ``region``, ``endpoint``, ...)
    missing or wrong. As with :class:`UriError`, the source states the problem without
    naming where the parameter came from: the message is ``before``, the parameter as
    the caller names it, then ``after``. The default names the command line's flag
    (``--param auth=…``); the agent names its CRD field
    (``spec.storage.parameters.auth``) with :meth:`in_spec`."""

    def __init__(
        self,
        parameter: str,
        before: str,
        after: str,
        *,
        value: str | None = None,  # as given, already redacted; None when not set
        in_spec: bool = False,
    ) -> None:
        self.parameter, self.value, self.spec = parameter, value, in_spec
        self._around = (before, after)  # the words before and after the field
        super().__init__(f"{before}{self.field}{after}")

    @property
    def field(self) -> str:
        """The parameter as the caller names it, with its value when it has one."""
        if self.spec:
            named = f"spec.storage.parameters.{self.parameter}"
            return named if self.value is None else f"{named} {self.value!r}"
        return f"--param {self.parameter}={'…' if self.value is None else self.value}"

    def in_spec(self) -> ParameterError:
        """The same problem, naming the resource's field."""
        return ParameterError(self.parameter, *self._around, value=self.value, in_spec=True)


class UnsafePath(BadInput):
    """A remote file name would land outside the destination directory."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"refusing remote file name {name!r}: {why}")
        self.name = name
        self.why = why  # not `reason`: that is the FailureReason every error carries


class SourceNotFound(BadInput):
    """The repository, revision or object named by the source does not exist
    (or is not visible with the credentials given)."""

    reason = FailureReason.NOT_FOUND


class AccessDenied(SourceNotFound):
    """The store refused the credentials given, or they may not list or read the source
    (HTTP 401/403): not found as far as this node can see, and the fix is the credentials."""

    reason = FailureReason.DENIED


class NoDigest(BadInput):
    """``--require-digest``: a file has no digest to check, only its size. Exit code 2:
    the same command fails again until a digest is given or the flag dropped."""

    reason = FailureReason.NO_DIGEST


class TransferFailed(OmeAgentError):
    """Bytes could not be fetched or did not verify. Exit code 1."""

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        reason: FailureReason = FailureReason.SOURCE,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


class Interrupted(OmeAgentError):
    """The pull was cancelled (Ctrl-C); transfers were stopped, partial files kept
    for a resume. Exit code 130 like a shell's SIGINT."""

    exit_code = 130
    reason = FailureReason.CANCELLED


__all__ = [
    "BadInput",
    "FailureReason",
    "Interrupted",
    "NoDigest",
    "OmeAgentError",
    "SourceNotFound",
    "TransferFailed",
    "UnsafePath",
]
