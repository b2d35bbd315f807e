"""Validation of digests the user types (``--sha256``, ``--md5``) before any byte moves."""

from __future__ import annotations

import string

from ome_agent.errors import BadInput

_LENGTHS = {"sha256": 64, "md5": 32, "git-sha1": 40}


def check_hex(value: str | None, algorithm: str, flag: str) -> str | None:
    """Return the digest in lower case, or raise BadInput naming the flag and the fix."""
    if value is None:
        return None
    digest = value.strip().lower()
    want = _LENGTHS[algorithm]
    if len(digest) != want or any(c not in string.hexdigits for c in digest):
        raise BadInput(
            f"{flag} {value!r} is not a {algorithm} digest: give {want} hexadecimal characters"
        )
    return digest
