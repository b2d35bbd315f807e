"""Names that must fit a length budget (layer 0, pure): OME's shortening rule, which
the wire keys follow (:mod:`ome_agent.wire.naming`), and the filesystem's limits the
agent's own file names keep (the reconcile core's layout and manifests, remote-name
confinement).

OME's rule: a part longer than its budget becomes ``sha256(part).hex()[:8] + "-" +
<its tail>``, so two long parts differ even when they share a prefix or a suffix,
and a part that fits is kept unchanged.

Linux limits a path component to 255 bytes (NAME_MAX) and a path to 4096 (PATH_MAX,
with its terminating NUL). Kubernetes allows a ClusterBaseModel or FineTunedWeight
name of 253 characters and a BaseModel's namespace of 63 more, so a name derived
from a resource can fill a component by itself. Every component the agent
generates is therefore at most :data:`NAME_BUDGET` bytes: 40 are left for a
suffix that makes a temporary file beside it unique. A name that fits keeps its
file name, so files written before are found where they are. Resource names are DNS
subdomains (checked when a resource is parsed), so characters and bytes are the
same count.
"""

from __future__ import annotations

import hashlib

HASH_PREFIX = 8  # hex characters of the hash that makes a shortened part unique
NAME_MAX = 255  # bytes in one path component
PATH_MAX = 4096  # bytes in a path, with the terminating NUL
HEADROOM = 40  # for a unique suffix of a temporary file beside a generated name
NAME_BUDGET = NAME_MAX - HEADROOM


def shorten(text: str, budget: int) -> str:
    """``text`` if it fits, else a hash prefix (uniqueness) and its tail (readability)."""
    if len(text) <= budget:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:HASH_PREFIX]
    tail = budget - HASH_PREFIX - 1
    if tail <= 0:
        return digest[:budget]
    return f"{digest}-{text[-tail:]}"


def fit(part: str, budget: int) -> str:
    """``part`` if it takes at most ``budget`` bytes, else its shortened form of exactly
    ``budget`` characters."""
    if len(part.encode()) <= budget:
        return part
    return shorten(part, budget)


def path_fits(path: bytes, extra: int = 0) -> bool:
    """``path`` with ``extra`` more bytes is a path the kernel accepts."""
    return len(path) + extra < PATH_MAX
