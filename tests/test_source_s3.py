"""The ``s3://`` source against moto's S3 server (signatures enforced).

Listing (pages, prefixes, folder markers), what each object is verified with
(crc64nvme, md5, md5-multipart, crc32c), credentials from a Secret or the environment, the
errors users see, throttling through a fault proxy, and downloads through the real
transfer layer (``confined_jobs`` + ``Runner``) with the engine checking digests.
OCI's S3 compatibility endpoint cannot be reached here: the endpoint override is
exercised against moto as a stand-in, and the settings it implies are checked.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
from awscrt import checksums

from ome_agent.errors import BadInput, FailureReason, SourceNotFound, TransferFailed
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.s3 import _settings, resolve_s3
from ome_agent.sources.schemes import parse_source
from ome_agent.transfer.pull import confined_jobs
from tests.pull_helpers import body_of, by_path, download, multipart_md5
from tests.servers import moto_server
from tests.servers.fault_proxy import FaultProxy
from tests.servers.moto_server import MotoS3

moto_s3 = moto_server.moto_s3  # the session fixture, used by name below

MiB = 1024 * 1024
PART = 5 * MiB


def put_crc32c(client: Any, bucket: str, key: str, body: bytes) -> str:
    """PUT with a stored full-object CRC32C (moto records it only with the SDK's
    algorithm header, which boto3 sets itself only with awscrt installed)."""
    value = base64.b64encode(google_crc32c.Checksum(body).digest()).decode()

    def add_algorithm(request: Any, **_: Any) -> None:
        request.headers["x-amz-sdk-checksum-algorithm"] = "CRC32C"

    client.meta.events.register("before-sign.s3.PutObject", add_algorithm)
    client.put_object(Bucket=bucket, Key=key, Body=body, ChecksumCRC32C=value)
    return google_crc32c.Checksum(body).digest().hex()


def put_multipart(client: Any, bucket: str, key: str, body: bytes) -> str:
    """Upload in 5 MiB parts like the aws CLI does; returns S3's ETag (without quotes)."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for n, start in enumerate(range(0, len(body), PART), 1):
        r = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=n, Body=body[start : start + PART]
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return str(done["ETag"]).strip('"')


def crc64nvme_hex(body: bytes) -> str:
    """CRC-64/NVME as S3 gives it (big-endian), from the AWS common runtime: the
    implementation boto3 and moto use, not the engine's."""
    return checksums.crc64nvme(body).to_bytes(8, "big").hex()


def put_crc64nvme_multipart(client: Any, bucket: str, key: str, body: bytes) -> str:
    """Upload in 5 MiB parts with a full-object CRC64NVME, as boto3 does with
    ``ChecksumAlgorithm="CRC64NVME"``; returns the ETag (the multipart md5 form)."""
    upload = client.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    parts = []
    for n, start in enumerate(range(0, len(body), PART), 1):
        r = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
            Body=body[start : start + PART], ChecksumAlgorithm="CRC64NVME",
        )  # fmt: skip
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    done = client.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )
    return str(done["ETag"]).strip('"')


# ------------------------------------------------------------------ parsing
def test_parse_forms() -> None:
    assert parse_source("s3://bucket/a/b").ref.prefix == "a/b"
    assert parse_source("s3://bucket").ref.prefix == ""
    assert parse_source("s3://bucket/dir/").ref.display == "s3://bucket/dir/"
    assert parse_source("S3://my.bucket_1//x").ref.prefix == "x"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("s3:///prefix", "names no bucket"),
        ("s3://b/x", "not a bucket name"),
        ("s3://bucket/x?versionId=3", "query"),
    ],
)
def test_parse_errors_name_the_form(uri: str, says: str) -> None:
    with pytest.raises(BadInput, match=says.replace("?", r"\?").replace("{", r"\{")):
        parse_source(uri)


# ------------------------------------------------------------------ listing
def test_listing_pages_nested_prefixes_and_markers(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    keys = ["m/config.json", "m/a.bin", "m/sub/deep/b.bin", "m/sub/c.bin", "m/tok en.json"]
    for k in keys:
        c.put_object(Bucket=bucket, Key=k, Body=k.encode())
    c.put_object(Bucket=bucket, Key="m/sub/", Body=b"")  # console folder marker
    c.put_object(Bucket=bucket, Key="m-other/x.bin", Body=b"not selected")
    with FaultProxy(moto_s3.endpoint) as proxy:  # counts the listing requests
        auth = moto_s3.auth(endpoint=proxy.url)
        resolved = resolve_s3(parse_source(f"s3://{bucket}/m").ref, auth, page_size=2)
        listings = proxy.requests("GET", f"/{bucket}")
    # the one-object probe, then 6 keys (with the marker) in pages of 2
    assert len(listings) == 4
    assert resolved.scheme == "s3"
    assert resolved.source == f"s3://{bucket}/m"
    assert sorted(f.path for f in resolved.files) == sorted(k[2:] for k in keys)
    by_path = {f.path: f for f in resolved.files}
    assert by_path["sub/deep/b.bin"].size == len(b"m/sub/deep/b.bin")
    assert "/m/tok%20en.json" in by_path["tok en.json"].url
    # the same folder given with a trailing "/" lists the same
    again = resolve_s3(parse_source(f"s3://{bucket}/m/sub/").ref, moto_s3.auth(), page_size=1)
    assert sorted(f.path for f in again.files) == ["c.bin", "deep/b.bin"]


def test_prefix_naming_one_object_and_whole_bucket(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="models/w.safetensors", Body=b"w")
    c.put_object(Bucket=bucket, Key="models/w.safetensors.bak/x", Body=b"x")
    one = resolve_s3(parse_source(f"s3://{bucket}/models/w.safetensors").ref, moto_s3.auth())
    assert [f.path for f in one.files] == ["w.safetensors"]
    whole = resolve_s3(parse_source(f"s3://{bucket}").ref, moto_s3.auth())
    assert sorted(f.path for f in whole.files) == [
        "models/w.safetensors",
        "models/w.safetensors.bak/x",
    ]


def test_digests_single_part_multipart_and_crc32c(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    small = body_of(1000, 1)
    c.put_object(Bucket=bucket, Key="m/small.json", Body=small)
    big = body_of(2 * PART + 4321, 2)
    etag = put_multipart(c, bucket, "m/big.bin", big)
    assert etag == multipart_md5(big, PART)  # moto computes it like S3
    crc_body = body_of(70_000, 3)
    crc = put_crc32c(c, bucket, "m/crc.bin", crc_body)
    files = {
        f.path: f for f in resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth()).files
    }

    assert files["small.json"].md5 == hashlib.md5(small).hexdigest()  # noqa: S324
    assert files["small.json"].unverified is None
    mp = files["big.bin"].md5_multipart
    assert mp is not None
    assert (mp.part_size, mp.digest) == (PART, multipart_md5(big, PART))
    assert files["big.bin"].md5 is None
    assert files["big.bin"].size == len(big)
    assert len(crc) == 8
    assert files["crc.bin"].crc32c == crc
    assert all(f.etag for f in files.values())
    assert all(f.sign is not None and not f.headers for f in files.values())


def test_crc64nvme_is_preferred_and_needs_no_part_heads(moto_s3: MotoS3, tmp_path: Path) -> None:
    """boto3 computes the CRC64NVME on upload, moto stores and returns it (FULL_OBJECT):
    it alone is checked, for a single PUT and a multipart upload, and a multipart one
    needs no ``PartNumber`` HEAD for a part size."""
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    small = body_of(70_000, 4)
    c.put_object(Bucket=bucket, Key="m/one.bin", Body=small, ChecksumAlgorithm="CRC64NVME")
    big = body_of(2 * PART + 777, 5)
    etag = put_crc64nvme_multipart(c, bucket, "m/parts.bin", big)
    assert etag == multipart_md5(big, PART)  # a multipart ETag: md5-multipart was possible
    with FaultProxy(moto_s3.endpoint) as proxy:
        resolved = resolve_s3(
            parse_source(f"s3://{bucket}/m").ref, moto_s3.auth(endpoint=proxy.url)
        )
        heads = proxy.requests("HEAD", f"/{bucket}/m/parts.bin")
        outcomes = by_path(download(resolved, tmp_path / "dest"))
    files = {f.path: f for f in resolved.files}
    assert files["one.bin"].crc64nvme == crc64nvme_hex(small)
    assert files["parts.bin"].crc64nvme == crc64nvme_hex(big)
    for f in files.values():
        assert (f.md5, f.md5_multipart, f.crc32c, f.unverified) == (None, None, None, None)
    assert len(heads) == 1, heads  # the checksum HEAD only, no PartNumber=1
    for name, body in (("one.bin", small), ("parts.bin", big)):
        result = outcomes[name].result
        assert result.verified == ["size", "crc64nvme"]
        assert result.crc64nvme == crc64nvme_hex(body)
        assert (result.md5, result.sha256) == (None, None)  # nothing else was computed
        assert (tmp_path / "dest" / name).read_bytes() == body


def test_multipart_with_unequal_parts_is_left_unverified(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    upload = c.create_multipart_upload(Bucket=bucket, Key="m/odd.bin")["UploadId"]
    parts = []
    for n, size in enumerate((PART, PART + MiB, 10), 1):
        r = c.upload_part(
            Bucket=bucket, Key="m/odd.bin", UploadId=upload, PartNumber=n, Body=b"p" * size
        )
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    c.complete_multipart_upload(
        Bucket=bucket, Key="m/odd.bin", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    (f,) = resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth()).files
    assert f.md5_multipart is None
    assert "not all of one size" in (f.unverified or "")


def test_sse_kms_etag_is_not_taken_for_an_md5(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="m/a", Body=b"a", ServerSideEncryption="aws:kms")
    (f,) = resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth()).files
    assert f.md5 is None
    assert "aws:kms" in (f.unverified or "")


def test_signer_makes_fresh_valid_headers(moto_s3: MotoS3) -> None:
    import urllib.request

    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="f.bin", Body=b"0123456789")
    (f,) = resolve_s3(parse_source(f"s3://{bucket}/f.bin").ref, moto_s3.auth()).files
    assert f.sign is not None
    headers = dict(f.sign())
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    assert moto_s3.secret_access_key not in str(headers)
    # moto checks the signature: a ranged GET with these headers is served
    req = urllib.request.Request(f.url, headers={**headers, "Range": "bytes=2-4"})  # noqa: S310
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - loopback
        assert resp.read() == b"234"


def test_key_escaping_the_destination_is_refused(moto_s3: MotoS3, tmp_path: Path) -> None:
    from ome_agent.errors import UnsafePath

    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="m/../../etc/cron.d/x", Body=b"x")
    resolved = resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth())
    assert [f.path for f in resolved.files] == ["../../etc/cron.d/x"]  # not sanitised here
    with pytest.raises(UnsafePath):
        confined_jobs(tmp_path / "dest", resolved)


# ------------------------------------------------------------------ credentials and errors
def test_lower_case_secret_keys(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="a", Body=b"a")
    secret = {
        "access_key_id": moto_s3.access_key_id,
        "secret_access_key": moto_s3.secret_access_key + "\n",  # `echo` into a Secret
    }
    assert len(resolve_s3(parse_source(f"s3://{bucket}/a").ref, moto_s3.auth(secret)).files) == 1


@pytest.mark.parametrize("key", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
def test_wrong_credentials_name_the_secret_key_not_the_value(moto_s3: MotoS3, key: str) -> None:
    bucket = moto_s3.new_bucket()
    wrong = "WRONGVALUEwrongvalue0123456789"
    secret = {**moto_s3.secret(), key: wrong}
    with pytest.raises(BadInput) as err:
        resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth(secret))
    message = str(err.value)
    assert f"Secret 's3-creds' (key {key})" in message
    assert wrong not in message
    assert moto_s3.secret_access_key not in message


def test_secret_without_keys(moto_s3: MotoS3) -> None:
    with pytest.raises(BadInput, match="has no key AWS_SECRET_ACCESS_KEY"):
        resolve_s3(
            parse_source("s3://bucket/m").ref,
            moto_s3.auth({"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"}),
        )


def test_access_denied(moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    with pytest.raises(SourceNotFound, match=r"access denied to s3://.*s3:ListBucket") as e:
        resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth(moto_s3.denied_key))
    assert e.value.reason is FailureReason.DENIED


def test_missing_bucket_and_prefix(moto_s3: MotoS3) -> None:
    with pytest.raises(SourceNotFound, match="bucket 'no-such-bucket-here' does not exist"):
        resolve_s3(parse_source("s3://no-such-bucket-here/m").ref, moto_s3.auth())
    bucket = moto_s3.new_bucket()
    moto_s3.client().put_object(Bucket=bucket, Key="other/x", Body=b"x")
    with pytest.raises(SourceNotFound, match=r"no object at .* or under it.*check the prefix"):
        resolve_s3(parse_source(f"s3://{bucket}/models/llama").ref, moto_s3.auth())


def _clean_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_environment_endpoint_and_credentials(
    moto_s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """No Secret, no parameters: botocore's own AWS_ENDPOINT_URL and key variables;
    the bucket's region (not AWS_REGION's) goes into the signatures."""
    c, bucket = moto_s3.client(), f"eu-{uuid.uuid4().hex[:12]}"
    c.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    c.put_object(Bucket=bucket, Key="m/a", Body=b"a")
    _clean_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_s3.secret_access_key)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    (f,) = resolve_s3(parse_source(f"s3://{bucket}/m").ref, StorageAuth()).files
    assert f.url.startswith(moto_s3.endpoint + "/")
    assert f.sign is not None
    assert "/eu-west-1/s3/aws4_request" in f.sign()["Authorization"]


def test_no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_aws_env(monkeypatch, tmp_path)
    with pytest.raises(BadInput, match=r"no AWS credentials.*storage\.key"):
        resolve_s3(
            parse_source("s3://bucket/m").ref, StorageAuth(parameters={"region": "us-east-1"})
        )


def test_missing_profile(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    with pytest.raises(TransferFailed, match=r"ProfileNotFound.*credential chain"):
        resolve_s3(
            parse_source("s3://bucket/m").ref, StorageAuth(parameters={"region": "us-east-1"})
        )


def test_endpoint_override_path_style(moto_s3: MotoS3) -> None:
    """The mechanism OCI's S3 compatibility endpoint needs, against moto as a stand-in."""
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="m/a", Body=b"a")
    auth = moto_s3.auth(addressing_style="path")
    (f,) = resolve_s3(parse_source(f"s3://{bucket}/m").ref, auth).files
    assert f.url == f"{moto_s3.endpoint}/{bucket}/m/a"


def test_oci_compat_endpoint_implies_path_style_and_region() -> None:
    host = "https://axaxnpcrorw5.compat.objectstorage.eu-frankfurt-1.oraclecloud.com"
    s = _settings(StorageAuth(parameters={"endpoint": host}))
    assert (s.region, s.addressing_style, s.endpoint) == ("eu-frankfurt-1", "path", host)
    given = _settings(
        StorageAuth(parameters={"endpoint_url": host, "region": "x-1", "addressing_style": "auto"})
    )
    assert (given.region, given.addressing_style) == ("x-1", "auto")


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"endpoint": "ftp://x"}, "--param endpoint=ftp://x is not an http"),
        ({"endpoint": "https://user:pw@s3.example.com"}, "--param endpoint=… carries user info"),
        ({"addressing_style": "sideways"}, "--param addressing_style=sideways is not one of"),
    ],
)
def test_bad_parameters(params: dict[str, str], says: str) -> None:
    with pytest.raises(BadInput, match=says) as err:
        resolve_s3(parse_source("s3://bucket/m").ref, StorageAuth(parameters=params))
    assert "pw" not in str(err.value)


def test_throttled_listing_is_retried(moto_s3: MotoS3) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="m/a", Body=b"a")
    with FaultProxy(moto_s3.endpoint) as proxy:
        proxy.throttle("GET", f"/{bucket}", times=1, retry_after=0)
        resolved = resolve_s3(
            parse_source(f"s3://{bucket}/m").ref, moto_s3.auth(endpoint=proxy.url)
        )
        statuses = [s.status for s in proxy.requests("GET", f"/{bucket}")]
    assert [f.path for f in resolved.files] == ["a"]
    assert statuses[:2] == [503, 200]


def test_throttled_listing_gives_up_clearly(moto_s3: MotoS3) -> None:
    bucket = moto_s3.new_bucket()
    with FaultProxy(moto_s3.endpoint) as proxy:
        proxy.throttle("GET", f"/{bucket}", times=50, retry_after=0, code="ServiceUnavailable")
        with pytest.raises(TransferFailed, match=r"kept throttling.*try again later") as e:
            resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth(endpoint=proxy.url))
        assert e.value.reason is FailureReason.THROTTLED
        assert len(proxy.requests("GET", f"/{bucket}")) >= 5  # botocore retried


# ------------------------------------------------------------------ downloads
def test_download_verifies_every_kind(moto_s3: MotoS3, tmp_path: Path) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    small, big, crc_body = body_of(3000, 4), body_of(2 * PART + 777, 5), body_of(9 * MiB, 6)
    c.put_object(Bucket=bucket, Key="m/config.json", Body=small)
    c.put_object(Bucket=bucket, Key="m/empty.txt", Body=b"")
    put_multipart(c, bucket, "m/shards/model-1.safetensors", big)
    put_crc32c(c, bucket, "m/shards/model-2.safetensors", crc_body)
    resolved = resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth())
    outcomes = by_path(download(resolved, tmp_path / "dest"))
    assert (tmp_path / "dest/config.json").read_bytes() == small
    assert (tmp_path / "dest/empty.txt").read_bytes() == b""
    assert (tmp_path / "dest/shards/model-1.safetensors").read_bytes() == big
    assert (tmp_path / "dest/shards/model-2.safetensors").read_bytes() == crc_body
    assert "md5" in outcomes["config.json"].result.verified
    assert "md5-multipart" in outcomes["shards/model-1.safetensors"].result.verified
    crc_verified = outcomes["shards/model-2.safetensors"].result.verified
    assert "crc32c" in crc_verified
    assert "md5" in crc_verified


def test_download_wrong_multipart_digest_fails(moto_s3: MotoS3, tmp_path: Path) -> None:
    """The engine really checks md5-multipart: a listing whose part size is off fails."""
    from dataclasses import replace

    from ome_agent.sources.model import MultipartMd5

    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    put_multipart(c, bucket, "m/big.bin", body_of(PART + 10, 7))
    resolved = resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth())
    (f,) = resolved.files
    assert f.md5_multipart is not None
    bad = replace(f, md5_multipart=MultipartMd5(PART // 2, f.md5_multipart.digest))
    with pytest.raises(TransferFailed, match="md5-multipart"):
        download(replace(resolved, files=[bad]), tmp_path / "dest")
    assert not (tmp_path / "dest/big.bin").exists()


def test_download_honours_retry_after_on_gets(moto_s3: MotoS3, tmp_path: Path) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    body = body_of(100_000, 8)
    c.put_object(Bucket=bucket, Key="m/w.bin", Body=body)
    with FaultProxy(moto_s3.endpoint) as proxy:
        resolved = resolve_s3(
            parse_source(f"s3://{bucket}/m").ref, moto_s3.auth(endpoint=proxy.url)
        )
        proxy.throttle("GET", f"/{bucket}/m/w.bin", times=2, retry_after=1)
        started = time.monotonic()
        outcomes = by_path(download(resolved, tmp_path / "dest"))
        seen = proxy.requests("GET", f"/{bucket}/m/w.bin")
    assert (tmp_path / "dest/w.bin").read_bytes() == body
    assert [s.status for s in seen[:2]] == [503, 503]
    assert seen[1].time - seen[0].time >= 0.9  # Retry-After: 1
    assert seen[2].time - seen[1].time >= 0.9
    assert time.monotonic() - started >= 1.8
    assert outcomes["w.bin"].result.retries >= 2


def test_object_changed_upstream_after_listing(moto_s3: MotoS3, tmp_path: Path) -> None:
    c, bucket = moto_s3.client(), moto_s3.new_bucket()
    c.put_object(Bucket=bucket, Key="m/w.bin", Body=body_of(50_000, 9))
    resolved = resolve_s3(parse_source(f"s3://{bucket}/m").ref, moto_s3.auth())
    c.put_object(Bucket=bucket, Key="m/w.bin", Body=body_of(50_000, 10))
    with pytest.raises(TransferFailed, match="changed upstream"):
        download(resolved, tmp_path / "dest")
    assert not (tmp_path / "dest/w.bin").exists()
