"""S3's additional checksums as the fast S3 server (tests/servers/s3_fast.py) keeps
them: CRC64NVME only, full-object, base64 of the 8-byte big-endian CRC.

Where it sits: beside ``s3_fast``, which stores an object's CRC64NVME when the
client asks for one on upload (``x-amz-checksum-crc64nvme`` or
``x-amz-sdk-checksum-algorithm: CRC64NVME``, on a PUT or a multipart upload) or
when an object is registered with ``crc64nvme=True``, and answers it on HEAD/GET
with ``x-amz-checksum-mode: ENABLED``. The CRC comes from the AWS common runtime
(the code boto3 and moto use), never from the engine under test.
"""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass

from awscrt import checksums

ALGORITHM = "CRC64NVME"
VALUE_HEADER = "x-amz-checksum-crc64nvme"
FULL_OBJECT = "FULL_OBJECT"


def crc64nvme_b64(chunks: Iterable[bytes]) -> str:
    """CRC64NVME of the bytes ``chunks`` make, as S3 spells it (base64, big-endian)."""
    crc = 0
    for c in chunks:
        crc = checksums.crc64nvme(c, crc)
    return base64.b64encode(crc.to_bytes(8, "big")).decode()


def response_headers(value: str | None) -> dict[str, str]:
    """What S3 adds for a stored CRC64NVME (upload answers, HEAD/GET in checksum mode)."""
    if value is None:
        return {}
    return {VALUE_HEADER: value, "x-amz-checksum-type": FULL_OBJECT}


@dataclass(frozen=True)
class CompletedPart:
    number: int
    etag: str  # without quotes
    crc64nvme: str | None


def completed_parts(body: bytes) -> list[CompletedPart]:
    """The parts a CompleteMultipartUpload body lists, in its order (S3's namespace or none)."""
    root = ET.fromstring(body)  # noqa: S314 - test server, loopback clients only
    parts = []
    for part in root.iter():
        if part.tag.rsplit("}", 1)[-1] != "Part":
            continue
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "") for child in part}
        parts.append(
            CompletedPart(
                int(fields.get("PartNumber", "0")),
                fields.get("ETag", "").strip('"'),
                fields.get("ChecksumCRC64NVME"),
            )
        )
    return parts
