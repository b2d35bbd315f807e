"""How long the names of the files and directories the agent creates may be (used by
the reconcile core's layout and manifests, layer 4, and by remote-name confinement).

Linux limits a path component to 255 bytes (NAME_MAX) and a path to 4096 (PATH_MAX,
with its terminating NUL). Kubernetes allows a ClusterBaseModel or FineTunedWeight
name of 253 characters and a BaseModel's namespace of 63 more, so a name derived
from a resource can fill a component by itself. Every component the agent
generates is therefore at most :data:`NAME_BUDGET` bytes: 40 are left for a
suffix that makes a temporary file beside it unique.

A part that does not fit is shortened by the rule OME applies to its wire keys
(:func:`ome_agent.wire.naming.shorten`: a hash of the whole part, then as much of
its tail as fits), so two long names differ even when they share a prefix or a
suffix, and a name that fits is kept unchanged: files written before are found
where they are. Resource names are DNS subdomains (checked when a resource is
parsed), so characters and bytes are the same count.
Pure: no I/O.
"""

from __future__ import annotations

from ome_agent.wire.naming import shorten

NAME_MAX = 255  # bytes in one path component
PATH_MAX = 4096  # bytes in a path, with the terminating NUL
HEADROOM = 40  # for a unique suffix of a temporary file beside a generated name
NAME_BUDGET = NAME_MAX - HEADROOM


def fit(part: str, budget: int) -> str:
    """``part`` if it takes at most ``budget`` bytes, else its shortened form of exactly
    ``budget`` characters."""
    if len(part.encode()) <= budget:
        return part
    return shorten(part, budget)


def path_fits(path: bytes, extra: int = 0) -> bool:
    """``path`` with ``extra`` more bytes is a path the kernel accepts."""
    return len(path) + extra < PATH_MAX
