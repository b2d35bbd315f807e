"""What a model's spec says about credentials, handed to a source (sources layer input).

The caller resolves it: the node agent reads the Secret named by ``storage.key`` in
the model's own namespace; ``ome-agent pull`` passes ``--param`` flags and leaves the
rest to each vendor SDK's own chain (environment, config files, metadata service).
Secret values are kept out of ``repr`` so they never reach a log line or exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StorageAuth:
    # spec.storage.parameters as written (region, auth / auth_type, endpoint, ...)
    parameters: Mapping[str, str] = field(default_factory=dict)
    # decoded data of the Secret named by spec.storage.key; None when no Secret is named
    secret: Mapping[str, str] | None = field(default=None, repr=False)
    secret_name: str | None = None  # for messages: "Secret 'x' has no key 'y'"

    def param(self, *names: str) -> str | None:
        """The first non-empty parameter among ``names`` (spellings: auth / auth_type)."""
        for n in names:
            v = self.parameters.get(n)
            if v:
                return v
        return None


def first_value(values: Mapping[str, str], names: Iterable[str]) -> tuple[str, str] | None:
    """(name, stripped value) of the first of ``names`` with a non-blank value: a Secret
    key (or variable) may be spelt several ways; the name goes into messages."""
    for name in names:
        value = (values.get(name) or "").strip()
        if value:
            return name, value
    return None
