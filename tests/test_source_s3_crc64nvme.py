"""``ome-agent pull s3://`` with S3's full-object CRC64NVME, against the fast S3 server
(tests/servers/s3_fast.py): SigV4 enforced, objects uploaded with boto3 as to S3, the
CRC computed by the AWS common runtime on both sides of the upload.

moto (tests/test_source_s3.py, tests/test_object_stores_e2e.py) stores CRC64NVME too;
this server is used here for what moto cannot show: a store that answers a wrong
CRC64NVME, and which requests the source sent (no ``partNumber`` HEAD when the CRC
proves the bytes).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from awscrt import checksums
from botocore.config import Config

from tests.pull_helpers import Run, cli_process
from tests.servers.s3_fast import S3FastServer

AK, SK = "AKIACRC64TEST", "crc64-test-secret"
MiB = 1024 * 1024
PART = 5 * MiB
NO_AWS = ("AWS_",)  # the runner's own AWS variables never reach a process here


@pytest.fixture
def server() -> Iterator[S3FastServer]:
    with S3FastServer(access_key=AK, secret_key=SK) as srv:
        srv.add_bucket("models")
        yield srv


def s3(server: S3FastServer) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=AK,
        aws_secret_access_key=SK,
        region_name="us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def crc64nvme_hex(body: bytes) -> str:
    return checksums.crc64nvme(body).to_bytes(8, "big").hex()


def pull(server: S3FastServer, prefix: str, dest: Path, home: Path) -> Run:
    env = {
        "HOME": str(home),
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": AK,
        "AWS_SECRET_ACCESS_KEY": SK,
    }
    return cli_process(
        "pull", f"s3://models/{prefix}", str(dest), "--json", env=env, drop_env=NO_AWS
    )


def part_heads(server: S3FastServer) -> list[tuple[str, str]]:
    """(path, query) of each HEAD of one part (the source's way to a part size)."""
    heads = [r for r in server.requests if r.method == "HEAD" and "partNumber" in r.query]
    return sorted((r.path, r.query) for r in heads)


def upload_in_parts(client: Any, key: str, body: bytes, **checksum: str) -> None:
    upload = client.create_multipart_upload(Bucket="models", Key=key, **checksum)["UploadId"]
    parts = []
    for n, start in enumerate(range(0, len(body), PART), 1):
        r = client.upload_part(
            Bucket="models", Key=key, UploadId=upload, PartNumber=n,
            Body=body[start : start + PART], **checksum,
        )  # fmt: skip
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    client.complete_multipart_upload(
        Bucket="models", Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
    )


def test_crc64nvme_verifies_single_and_multipart_objects_without_part_heads(
    server: S3FastServer, tmp_path: Path
) -> None:
    client = s3(server)
    single, multi = os.urandom(300_000), os.urandom(2 * PART + 12_345)
    client.put_object(Bucket="models", Key="m/one.bin", Body=single, ChecksumAlgorithm="CRC64NVME")
    upload_in_parts(client, "m/big.safetensors", multi, ChecksumAlgorithm="CRC64NVME")
    server.requests.clear()
    run = pull(server, "m", tmp_path / "dest", tmp_path)
    assert run.code == 0, run.stderr
    files = {f["path"]: f for f in run.json()["files"]}
    for name, body in (("one.bin", single), ("big.safetensors", multi)):
        assert files[name]["verified"] == ["size", "crc64nvme"]
        assert files[name]["crc64nvme"] == crc64nvme_hex(body)
        assert files[name]["md5"] is None
        assert (tmp_path / "dest" / name).read_bytes() == body
    assert part_heads(server) == []  # the CRC proves the bytes: no part size needed


def test_objects_without_a_checksum_fall_back_to_their_etags(
    server: S3FastServer, tmp_path: Path
) -> None:
    client = s3(server)
    single, multi = os.urandom(300_000), os.urandom(2 * PART + 12_345)
    client.put_object(Bucket="models", Key="m/one.bin", Body=single)  # boto3's CRC32: not kept
    upload_in_parts(client, "m/big.safetensors", multi)
    server.requests.clear()
    run = pull(server, "m", tmp_path / "dest", tmp_path)
    assert run.code == 0, run.stderr
    files = {f["path"]: f for f in run.json()["files"]}
    assert files["one.bin"]["verified"] == ["size", "md5"]
    assert files["big.safetensors"]["verified"] == ["size", "md5-multipart"]
    assert all(f["crc64nvme"] is None for f in files.values())
    # the part size from part 1, checked on part N-1
    big = "/models/m/big.safetensors"
    assert part_heads(server) == [(big, "partNumber=1"), (big, "partNumber=2")]


def test_a_wrong_crc64nvme_fails_the_file_and_never_publishes_it(
    server: S3FastServer, tmp_path: Path
) -> None:
    body = os.urandom(2 * PART + 7)
    wrong = base64.b64encode(checksums.crc64nvme(b"other bytes").to_bytes(8, "big")).decode()
    server.add_object("models", "m/model.safetensors", body, part_size=PART, crc64nvme=wrong)
    dest = tmp_path / "dest"
    run = pull(server, "m", dest, tmp_path)
    assert run.code != 0
    assert "Traceback" not in run.stderr
    assert "model.safetensors" in run.stderr
    assert "crc64nvme mismatch" in run.stderr
    assert crc64nvme_hex(body) in run.stderr  # what the bytes hash to, beside what S3 said
    assert not (dest / "model.safetensors").exists()
    assert '"verified"' not in run.stdout  # no summary calls it done
