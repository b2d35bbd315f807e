"""The reconcile core's boundary: what it reports and asks for (docs/architecture.md, layers 4-5).

The core decides and acts on the node; adapters carry its results out and bring
credentials in. The Kubernetes adapter writes reports to the node's ConfigMap and
labels and reads Secrets through the API server; the standalone adapter writes a
state file and reads tokens from the environment. Both implement these protocols,
which is what lets one core run in either mode.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from ome_agent.api import ModelKey
from ome_agent.errors import BadInput, FailureReason


class NodeState(enum.StrEnum):
    """A model's state on one node, as OME writes it (docs/wire.md)."""

    READY = "Ready"
    UPDATING = "Updating"
    FAILED = "Failed"


@dataclass(frozen=True)
class Progress:
    """Download progress while Updating (docs/wire.md ``progress``)."""

    phase: str  # e.g. "Listing", "Downloading", "Verifying", "Discovering"
    total_bytes: int
    completed_bytes: int
    total_files: int
    completed_files: int
    speed_bytes_per_sec: float
    last_updated: datetime  # timezone-aware UTC


@dataclass(frozen=True)
class NodeReport:
    """Everything the node says about one model; adapters serialise it (``ome_agent.wire``)."""

    key: ModelKey
    uid: str  # metadata.uid, for the ``models.ome/<uid>`` label
    state: NodeState
    config: Mapping[str, Any] | None = None  # docs/wire.md ``config``, Ready only
    progress: Progress | None = None  # Updating only
    # Failed: the reason, naming the field and the fix; Updating: why, when the model
    # was Ready (files the scrub found wrong and fetches again)
    error: str | None = None
    reason: FailureReason | None = None  # Failed only: why, typed (not on the wire)
    storage_uri: str | None = None  # redacted: no query strings, no credentials
    path: str | None = None  # where the files are on the node
    revision: str | None = None  # resolved revision (e.g. the hf commit)
    manifest_digest: str | None = None  # digest of the local manifest (files, sizes, hashes)
    # Ready only: the model whose files these are, and its path (downloadPolicy
    # ReuseIfExists); the wire names it in ``config.artifact.parentPath``
    parent: tuple[ModelKey, str] | None = None


class Reporter(Protocol):
    """Where node reports go. Implementations write only what changed: publishing the
    same report twice costs no write (steady state makes zero API writes)."""

    async def publish(self, report: NodeReport) -> None: ...

    async def withdraw(self, key: ModelKey, uid: str | None) -> None:
        """The model left this node: remove its entry and labels (idempotent)."""
        ...

    async def reported(self) -> Mapping[ModelKey, NodeState]:
        """What the store holds for this node now (for start-up: confirm, clean leftovers)."""
        ...


class CredentialError(BadInput):
    """A credential a model names cannot be read. The message names the Secret and key,
    never a value."""

    reason = FailureReason.CREDENTIALS


class SecretReader(Protocol):
    """Reads one credential value. Kubernetes: a Secret in ``namespace`` (the model's
    own, or the agent's for cluster-scoped models); standalone: the environment."""

    async def read(self, namespace: str, name: str, key: str) -> str:
        """Raise :class:`CredentialError` if the Secret or key is missing or unreadable."""
        ...

    async def read_all(self, namespace: str, name: str) -> Mapping[str, str]:
        """Every key of the Secret (object stores take several: key, fingerprint, ...).
        Raise :class:`CredentialError` if it is missing or unreadable."""
        ...
