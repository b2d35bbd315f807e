"""What the object stores' references (``oci://``, ``s3://``, ``gs://``, ``az://``) offer
their callers (sources layer). Each backend module parses its own form and lists its
objects; ``sources.schemes`` dispatches to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


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
