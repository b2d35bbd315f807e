"""Digests given to the sources layer, as hex: those the user types (``--sha256``,
``--md5``, checked before any byte moves) and the base64 ones object stores list."""

from __future__ import annotations

import base64
import binascii
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


def b64_hex(value: str | None, length: int) -> str | None:
    """Hex of a base64 digest of ``length`` bytes (Content-MD5, CRC32C, CRC64NVME as
    object stores give them, big-endian); None when absent or malformed, so the file
    says what went unverified."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw.hex() if len(raw) == length else None
