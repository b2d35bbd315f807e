"""The fast S3 test server (tests/servers/s3_fast.py) answers as S3 does.

Where it sits: the benchmarks and backend tests trust this server to refuse what
S3 refuses and to serve what S3 serves; these tests hold it to that with the
real clients (boto3, botocore's presigner, urllib for hand-made requests).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import importlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore.auth
import pytest
from awscrt import checksums
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.pull_helpers import multipart_md5
from tests.servers.s3_fast import S3FastServer, s3_etag

AK, SK = "AKIAS3FASTTEST", "s3-fast-test-secret"
MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture(scope="module")
def blob(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s3fast") / "blob.bin"
    path.write_bytes(os.urandom(12 * MiB + 123))
    return path


@pytest.fixture(scope="module")
def server(blob: Path) -> Iterator[S3FastServer]:
    with S3FastServer(access_key=AK, secret_key=SK) as srv:
        srv.add_object("models", "llama/model.safetensors", blob, part_size=PART)
        srv.add_object("models", "llama/single.bin", blob)
        srv.add_object("models", "llama/config.json", b'{"model_type": "llama"}')
        srv.add_object("models", "llama/sub dir/a+b c.txt", b"odd name")
        for i in range(7):
            srv.add_object("models", f"many/{i:02d}.json", b"{}")
        yield srv


def client(server: S3FastServer, secret: str = SK, key: str = AK) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
    )


def error_code(e: ClientError) -> str:
    return str(e.response["Error"]["Code"])


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers=headers or {})  # noqa: S310 - http only
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def refused(answer: tuple[int, bytes], status: int, needle: bytes) -> None:
    assert answer[0] == status, answer
    assert needle in answer[1], answer


# ---------------------------------------------------------------- listing
def test_listing_pages_through_every_key(server: S3FastServer) -> None:
    pages = (
        client(server)
        .get_paginator("list_objects_v2")
        .paginate(Bucket="models", Prefix="many/", PaginationConfig={"PageSize": 3})
    )
    seen = [[o["Key"] for o in page.get("Contents", [])] for page in pages]
    assert seen == [
        ["many/00.json", "many/01.json", "many/02.json"],
        ["many/03.json", "many/04.json", "many/05.json"],
        ["many/06.json"],
    ]


def test_listing_sizes_etags_odd_names_and_delimiter(server: S3FastServer, blob: Path) -> None:
    s3 = client(server)
    listed = {o["Key"]: o for o in s3.list_objects_v2(Bucket="models", Prefix="llama/")["Contents"]}
    assert set(listed) == {
        "llama/config.json",
        "llama/model.safetensors",
        "llama/single.bin",
        "llama/sub dir/a+b c.txt",  # botocore asks for encoding-type=url and decodes it
    }
    data = blob.read_bytes()
    assert listed["llama/single.bin"]["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'  # noqa: S324
    assert listed["llama/single.bin"]["Size"] == len(data)
    top = s3.list_objects_v2(Bucket="models", Delimiter="/")
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["llama/", "many/"]
    assert "Contents" not in top


def test_multipart_etag_and_part_number(server: S3FastServer, blob: Path) -> None:
    data = blob.read_bytes()
    parts = [data[i : i + PART] for i in range(0, len(data), PART)]
    expected = f'"{multipart_md5(data, PART)}"'
    s3 = client(server)
    head = s3.head_object(Bucket="models", Key="llama/model.safetensors", PartNumber=1)
    assert (head["ETag"], head["ContentLength"], head["PartsCount"]) == (expected, PART, 3)
    last = s3.get_object(Bucket="models", Key="llama/model.safetensors", PartNumber=3)
    assert last["Body"].read() == parts[2]
    assert s3_etag(iter([data[:7], data[7:]]), PART) == expected.strip('"')


# ---------------------------------------------------------------- ranges
def test_ranges_suffix_open_and_unsatisfiable(server: S3FastServer, blob: Path) -> None:
    data = blob.read_bytes()
    s3 = client(server)

    def get(rng: str) -> Any:
        return s3.get_object(Bucket="models", Key="llama/single.bin", Range=rng)

    r = get("bytes=100-199")
    assert r["ContentRange"] == f"bytes 100-199/{len(data)}"
    assert r["Body"].read() == data[100:200]
    assert get("bytes=-10")["Body"].read() == data[-10:]
    assert get(f"bytes={len(data) - 5}-")["Body"].read() == data[-5:]
    with pytest.raises(ClientError) as e:
        get(f"bytes={len(data)}-")
    assert error_code(e.value) == "InvalidRange"


def test_whole_download_through_the_transfer_manager(
    server: S3FastServer, blob: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.bin"
    client(server).download_file("models", "llama/model.safetensors", str(out))
    assert out.read_bytes() == blob.read_bytes()
    ranged = [r for r in server.requests if r.range and r.path.endswith("model.safetensors")]
    assert ranged
    assert all(r.auth == "header" and r.status == 206 for r in ranged)


def test_if_match_and_if_range(server: S3FastServer, blob: Path) -> None:
    s3 = client(server)
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="models", Key="llama/single.bin", IfMatch='"0123"')
    assert error_code(e.value) == "PreconditionFailed"
    url = presign(server, "llama/single.bin")
    status, body = http_get(url, {"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert (status, len(body)) == (200, blob.stat().st_size)  # changed: whole object


# ---------------------------------------------------------------- auth
def presign(server: S3FastServer, key: str, expires: int = 600, secret: str = SK) -> str:
    url: str = client(server, secret).generate_presigned_url(
        "get_object", Params={"Bucket": "models", "Key": key}, ExpiresIn=expires
    )
    return url


def test_wrong_secret_is_signature_does_not_match(server: S3FastServer) -> None:
    with pytest.raises(ClientError) as e:
        client(server, secret=SK[::-1]).list_objects_v2(Bucket="models")
    assert error_code(e.value) == "SignatureDoesNotMatch"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    with pytest.raises(ClientError) as e:
        client(server, key="AKIAUNKNOWN").list_objects_v2(Bucket="models")
    assert error_code(e.value) == "InvalidAccessKeyId"


def test_presigned_url_works_and_tampering_fails(server: S3FastServer) -> None:
    url = presign(server, "llama/sub dir/a+b c.txt")
    assert http_get(url) == (200, b"odd name")
    refused(http_get(url.replace("a%2Bb", "a%2Bc")), 403, b"<Code>SignatureDoesNotMatch</Code>")
    refused(
        http_get(url.replace("X-Amz-Expires=600", "X-Amz-Expires=6000")),
        403,
        b"SignatureDoesNotMatch",
    )
    refused(
        http_get(presign(server, "llama/config.json", secret=SK.upper())),
        403,
        b"SignatureDoesNotMatch",
    )


def test_expired_unsigned_sigv2_and_skewed_requests_are_refused(
    server: S3FastServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = f"{server.endpoint}/models/llama/config.json"
    refused(http_get(base), 403, b"<Code>AccessDenied</Code>")
    signed = signed_headers(base, timestamp="20200101T000000Z")
    refused(http_get(base, signed), 403, b"RequestTimeTooSkewed")
    # a URL botocore presigned two hours ago for one hour: validly signed, expired
    two_hours_ago = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    # botocore signs with the AWS common runtime's signer when awscrt is installed
    for signer in (botocore.auth, importlib.import_module("botocore.crt.auth")):
        monkeypatch.setattr(signer, "get_current_datetime", lambda **_: two_hours_ago)
    expired = presign(server, "llama/config.json", expires=3600)
    monkeypatch.undo()
    refused(http_get(expired), 403, b"Request has expired")
    too_long = presign(server, "llama/config.json", expires=8 * 24 * 3600)
    refused(http_get(too_long), 400, b"AuthorizationQueryParametersError")
    refused(
        http_get(f"{base}?AWSAccessKeyId={AK}&Expires=9999999999&Signature=x"),
        400,
        b"AWS4-HMAC-SHA256",
    )


def test_signed_header_changed_after_signing_is_refused(server: S3FastServer) -> None:
    base = f"{server.endpoint}/models/llama/single.bin"
    headers = signed_headers(base, extra={"Range": "bytes=0-9"})
    status, body = http_get(base, headers)
    assert (status, len(body)) == (206, 10)
    refused(http_get(base, {**headers, "Range": "bytes=0-99"}), 403, b"SignatureDoesNotMatch")
    assert server.requests[-1].error == "SignatureDoesNotMatch"


def signed_headers(
    url: str, *, timestamp: str | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """Headers of a GET signed by botocore's S3 SigV4 signer, at ``timestamp`` if given."""
    req = AWSRequest(method="GET", url=url, headers=extra or {})
    signer = S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1")
    if timestamp is None:
        signer.add_auth(req)
    else:
        req.context["timestamp"] = timestamp
        req.headers["X-Amz-Date"] = timestamp
        req.headers["X-Amz-Content-SHA256"] = signer.payload(req)
        canonical = signer.canonical_request(req)
        signature = signer.signature(signer.string_to_sign(req, canonical), req)
        signer._inject_signature_to_request(req, signature)
    return dict(req.headers.items())


def test_missing_bucket_and_key(server: S3FastServer) -> None:
    s3 = client(server)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket="nope")
    assert error_code(e.value) == "NoSuchBucket"
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket="models", Key="llama/absent")
    assert error_code(e.value) == "NoSuchKey"


# ------------------------------------------------------------------ uploads and CRC64NVME
def crc64nvme_b64(body: bytes) -> str:
    """Computed here with the AWS common runtime, as boto3 does on upload."""
    return base64.b64encode(checksums.crc64nvme(body).to_bytes(8, "big")).decode()


def test_put_with_crc64nvme_is_stored_and_answered_in_checksum_mode_only(
    server: S3FastServer,
) -> None:
    s3 = client(server)
    body = os.urandom(100_000)
    put = s3.put_object(Bucket="models", Key="up/one.bin", Body=body, ChecksumAlgorithm="CRC64NVME")
    assert put["ChecksumCRC64NVME"] == crc64nvme_b64(body)
    head = s3.head_object(Bucket="models", Key="up/one.bin", ChecksumMode="ENABLED")
    assert head["ChecksumCRC64NVME"] == crc64nvme_b64(body)
    assert head["ChecksumType"] == "FULL_OBJECT"
    assert head["ETag"] == f'"{hashlib.md5(body, usedforsecurity=False).hexdigest()}"'
    assert "ChecksumCRC64NVME" not in s3.head_object(Bucket="models", Key="up/one.bin")
    got = s3.get_object(Bucket="models", Key="up/one.bin", ChecksumMode="ENABLED")
    assert got["ChecksumCRC64NVME"] == crc64nvme_b64(body)  # botocore also checked the body
    assert got["Body"].read() == body
    ranged = s3.get_object(
        Bucket="models", Key="up/one.bin", ChecksumMode="ENABLED", Range="bytes=0-9"
    )
    assert "ChecksumCRC64NVME" not in ranged
    assert ranged["Body"].read() == body[:10]
    # boto3's default (CRC32) is accepted and not stored
    s3.put_object(Bucket="models", Key="up/plain.bin", Body=b"plain")
    plain = s3.head_object(Bucket="models", Key="up/plain.bin", ChecksumMode="ENABLED")
    assert "ChecksumCRC64NVME" not in plain


def test_a_wrong_crc64nvme_or_payload_hash_is_refused(server: S3FastServer) -> None:
    s3 = client(server)
    with pytest.raises(ClientError) as e:
        s3.put_object(
            Bucket="models", Key="up/bad.bin", Body=b"abc", ChecksumCRC64NVME=crc64nvme_b64(b"abd")
        )
    assert error_code(e.value) == "BadDigest"
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        s3.head_object(Bucket="models", Key="up/bad.bin")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404  # nothing stored
    # validly signed for the body b"x", sent with another body
    url = f"{server.endpoint}/models/up/forged.bin"
    signed = AWSRequest(method="PUT", url=url, data=b"x")
    S3SigV4Auth(Credentials(AK, SK), "s3", "us-east-1").add_auth(signed)
    headers = dict(signed.headers.items())
    req = urllib.request.Request(url, data=b"y", method="PUT", headers=headers)  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)  # noqa: S310
    assert err.value.code == 400
    assert b"XAmzContentSHA256Mismatch" in err.value.read()


def test_multipart_upload_with_crc64nvme(server: S3FastServer) -> None:
    s3 = client(server)
    body = os.urandom(2 * PART + 999)
    upload = s3.create_multipart_upload(
        Bucket="models", Key="up/parts.bin", ChecksumAlgorithm="CRC64NVME"
    )["UploadId"]
    parts = []
    for n, start in enumerate(range(0, len(body), PART), 1):
        chunk = body[start : start + PART]
        r = s3.upload_part(
            Bucket="models", Key="up/parts.bin", UploadId=upload, PartNumber=n, Body=chunk,
            ChecksumAlgorithm="CRC64NVME",
        )  # fmt: skip
        assert r["ChecksumCRC64NVME"] == crc64nvme_b64(chunk)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    with pytest.raises(ClientError) as e:  # a part named with another ETag
        s3.complete_multipart_upload(
            Bucket="models", Key="up/parts.bin", UploadId=upload,
            MultipartUpload={"Parts": [{**parts[0], "ETag": '"00"'}, *parts[1:]]},
        )  # fmt: skip
    assert error_code(e.value) == "InvalidPart"
    done = s3.complete_multipart_upload(
        Bucket="models", Key="up/parts.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    assert done["ChecksumCRC64NVME"] == crc64nvme_b64(body)
    assert done["ETag"] == f'"{multipart_md5(body, PART)}"'
    head = s3.head_object(Bucket="models", Key="up/parts.bin", ChecksumMode="ENABLED")
    assert (head["ChecksumCRC64NVME"], head["ChecksumType"]) == (crc64nvme_b64(body), "FULL_OBJECT")
    part = s3.head_object(Bucket="models", Key="up/parts.bin", PartNumber=2, ChecksumMode="ENABLED")
    assert "ChecksumCRC64NVME" not in part
    assert part["ContentLength"] == PART
