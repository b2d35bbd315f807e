"""The skip-config-parsing annotation, in both spellings (docs/architecture.md, "Field names").

The reconcile core (layer 4) asks this before running discovery (layer 3): the
reference doc writes ``ome.io/skip-config-parsing``, OME's code reads
``ome.oracle.com/skip-config-parsing``; either one set to a true value skips it.
"""

from __future__ import annotations

from collections.abc import Mapping

SKIP_CONFIG_PARSING = ("ome.io/skip-config-parsing", "ome.oracle.com/skip-config-parsing")
_TRUE = frozenset({"true", "1", "yes", "on"})


def skip_config_parsing(annotations: Mapping[str, str] | None) -> bool:
    """True when either annotation says ``"true"`` (case and spaces ignored)."""
    if not annotations:
        return False
    for key in SKIP_CONFIG_PARSING:
        value = annotations.get(key)
        if isinstance(value, str) and value.strip().lower() in _TRUE:
            return True
    return False
