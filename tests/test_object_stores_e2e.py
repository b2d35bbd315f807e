"""Object stores end to end through the user-facing paths, against moto's real S3
server: ``ome-agent pull s3://...`` and ``ome-agent inspect s3://...`` as processes
with the vendor's own environment variables (``AWS_ENDPOINT_URL`` included), and the
node agent in standalone mode reading the model's Secret document and reporting the
model Ready with what each file was verified against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.data import tiny_config
from tests.data.safetensors_fixtures import shard_bytes
from tests.pull_helpers import cli_process
from tests.servers import moto_server
from tests.servers.moto_server import REGION, MotoS3

moto_s3 = moto_server.moto_s3  # the session fixture, used by name below

CONFIG = tiny_config(
    "LlamaForCausalLM",
    "llama",
    num_key_value_heads=2,
    max_position_embeddings=4096,
    torch_dtype="bfloat16",
)
SHARD = shard_bytes({"model.embed_tokens.weight": ("BF16", (1000, 64))})


@pytest.fixture
def bucket(moto_s3: MotoS3) -> str:
    name = moto_s3.new_bucket()
    s3 = moto_s3.client()
    s3.put_object(Bucket=name, Key="llama/config.json", Body=json.dumps(CONFIG).encode())
    s3.put_object(Bucket=name, Key="llama/model.safetensors", Body=SHARD)
    s3.put_object(Bucket=name, Key="other/ignored.bin", Body=b"x")
    return name


NO_AWS = ("AWS_",)  # the runner's own AWS variables never reach a process here


def aws_env(moto_s3: MotoS3, home: Path) -> dict[str, str]:
    """Only the SDK's standard variables: no ome-agent flag names the endpoint."""
    return {
        "HOME": str(home),
        "AWS_ENDPOINT_URL": moto_s3.endpoint,
        "AWS_REGION": REGION,
        "AWS_ACCESS_KEY_ID": moto_s3.access_key_id,
        "AWS_SECRET_ACCESS_KEY": moto_s3.secret_access_key,
    }


def test_pull_and_inspect_an_s3_prefix(moto_s3: MotoS3, bucket: str, tmp_path: Path) -> None:
    env = aws_env(moto_s3, tmp_path)
    dest = tmp_path / "dest"
    run = cli_process("pull", f"s3://{bucket}/llama", str(dest), "--json", env=env, drop_env=NO_AWS)
    assert run.code == 0, run.stderr
    summary = run.json()
    assert summary["scheme"] == "s3"
    files = {f["path"]: f for f in summary["files"]}
    assert sorted(files) == ["config.json", "model.safetensors"]
    assert "md5" in files["model.safetensors"]["verified"]
    assert (dest / "model.safetensors").read_bytes() == SHARD
    assert moto_s3.secret_access_key not in run.stdout + run.stderr

    shown = cli_process("inspect", f"s3://{bucket}/llama", "--json", env=env, drop_env=NO_AWS)
    assert shown.code == 0, shown.stderr
    described = shown.json()
    assert described["modelArchitecture"] == "LlamaForCausalLM"
    assert described["parameterCount"] == 1000 * 64
    assert described["maxTokens"] == 4096


def test_pull_verifies_the_crc64nvme_boto3_uploaded_with(moto_s3: MotoS3, tmp_path: Path) -> None:
    """An object boto3 uploaded with ``ChecksumAlgorithm="CRC64NVME"`` (computed by
    the AWS common runtime, stored by moto): ``pull --json`` says crc64nvme was
    checked, and with its value; the object without a checksum still gets its md5."""
    from awscrt import checksums

    name, s3 = moto_s3.new_bucket(), moto_s3.client()
    s3.put_object(Bucket=name, Key="m/model.safetensors", Body=SHARD, ChecksumAlgorithm="CRC64NVME")
    # an explicit MD5 replaces boto3's default CRC32: no checksum moto would return
    s3.put_object(
        Bucket=name, Key="m/config.json", Body=b"{}", ContentMD5="mZFLkyvTelC5g8XnyQrpOw=="
    )
    dest = tmp_path / "dest"
    env = aws_env(moto_s3, tmp_path)
    run = cli_process("pull", f"s3://{name}/m", str(dest), "--json", env=env, drop_env=NO_AWS)
    assert run.code == 0, run.stderr
    files = {f["path"]: f for f in run.json()["files"]}
    shard = files["model.safetensors"]
    assert shard["verified"] == ["size", "crc64nvme"]
    assert shard["crc64nvme"] == checksums.crc64nvme(SHARD).to_bytes(8, "big").hex()
    assert shard["md5"] is None
    assert files["config.json"]["verified"] == ["size", "md5"]
    assert files["config.json"]["crc64nvme"] is None
    assert (dest / "model.safetensors").read_bytes() == SHARD


def test_pull_with_wrong_key_is_one_line_without_the_secret(
    moto_s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    env = aws_env(moto_s3, tmp_path)
    env["AWS_SECRET_ACCESS_KEY"] = "wrong-" + moto_s3.secret_access_key
    run = cli_process("pull", f"s3://{bucket}/llama", str(tmp_path / "d"), env=env, drop_env=NO_AWS)
    assert run.code != 0
    assert "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "secret access key" in run.stderr
    assert "does not match" in run.stderr
    assert moto_s3.secret_access_key not in run.stderr


def test_param_flag_is_for_object_stores_only(tmp_path: Path) -> None:
    run = cli_process("pull", "http://127.0.0.1:1/x.bin", str(tmp_path), "--param", "region=x")
    assert run.code == 2
    assert "--param applies to object stores" in run.stderr
    run = cli_process("pull", "s3://bucket/x", str(tmp_path), "--param", "novalue")
    assert run.code == 2
    assert "give KEY=VALUE" in run.stderr


def test_standalone_agent_reads_the_models_secret_and_reports_verified_files(
    moto_s3: MotoS3, bucket: str, tmp_path: Path
) -> None:
    manifests, models, state = tmp_path / "m", tmp_path / "models", tmp_path / "state.json"
    manifests.mkdir()
    # one object with S3's default full-object CRC64NVME, the shard with its md5 only
    moto_s3.client().put_object(
        Bucket=bucket, Key="llama/config.json", Body=json.dumps(CONFIG).encode(),
        ChecksumAlgorithm="CRC64NVME",
    )  # fmt: skip
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s3-creds", "namespace": "team"},
            "stringData": moto_s3.secret(),
        },
        {
            "apiVersion": "ome.io/v1beta1",
            "kind": "BaseModel",
            "metadata": {"name": "llama", "namespace": "team"},
            "spec": {
                "storage": {
                    "storageUri": f"s3://{bucket}/llama",
                    "storageKey": "s3-creds",
                    "parameters": {"endpoint": moto_s3.endpoint, "region": REGION},
                }
            },
        },
    ]
    (manifests / "models.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    run = cli_process(
        "run", "--standalone", "--once", "--manifests", str(manifests),
        "--models-root-dir", str(models), "--state-file", str(state), "--node-name", "box",
        env={"HOME": str(tmp_path)},  # no shared AWS config: the Secret is the only key
        drop_env=NO_AWS,
    )  # fmt: skip
    assert run.code == 0, run.stderr
    entry = json.loads(state.read_text())["models"]["BaseModel/team/llama"]
    assert entry["state"] == "Ready"
    assert moto_s3.secret_access_key not in state.read_text() + run.stderr + run.stdout
    (manifest_file,) = (models / ".ome-agent" / "manifests").glob("BaseModel.team.llama.json")
    manifest = json.loads(manifest_file.read_text())
    verified = {f["path"]: f["verified"] for f in manifest["files"]}
    assert "md5" in verified["model.safetensors"]
    assert verified["config.json"] == ["size", "crc64nvme"]
    digests = {f["path"]: f["digests"] for f in manifest["files"]}
    assert len(digests["config.json"]["crc64nvme"]) == 16
    assert (models / "team" / "llama" / "model.safetensors").read_bytes() == SHARD
