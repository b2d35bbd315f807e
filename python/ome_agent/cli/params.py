"""``--param KEY=VALUE`` of ``pull`` and ``inspect``: an object store's storage parameters."""

from __future__ import annotations

from ome_agent.errors import BadInput


def parse_params(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--param {pair!r}: give KEY=VALUE, e.g. --param region=us-ashburn-1")
        out[key.strip()] = value
    return out
