"""Python-side error types of ome-agent and the exit code each one maps to.

Sources and the transfer orchestration raise these; the CLI turns them into one
line on stderr and an exit code. Engine errors (``ome_agent._core``) are wrapped
into :class:`TransferFailed` by the orchestration so callers see one family.
Messages never carry credentials: they name the field at fault and the fix.
"""

from __future__ import annotations


class OmeAgentError(Exception):
    """Base of every error ome-agent raises on purpose."""

    exit_code: int = 1


class BadInput(OmeAgentError, ValueError):
    """The user asked for something malformed or impossible; rerunning won't help.

    Exit code 2 (the usual code of a usage error)."""

    exit_code = 2


class UnsafePath(BadInput):
    """A remote file name would land outside the destination directory."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"refusing remote file name {name!r}: {reason}")
        self.name = name
        self.reason = reason


class SourceNotFound(BadInput):
    """The repository, revision or object named by the source does not exist
    (or is not visible with the credentials given)."""


class TransferFailed(OmeAgentError):
    """Bytes could not be fetched or did not verify. Exit code 1."""

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class Interrupted(OmeAgentError):
    """The pull was cancelled (Ctrl-C); transfers were stopped, partial files kept
    for a resume. Exit code 130 like a shell's SIGINT."""

    exit_code = 130


__all__ = [
    "BadInput",
    "Interrupted",
    "OmeAgentError",
    "SourceNotFound",
    "TransferFailed",
    "UnsafePath",
]
