"""The node agent's Ready entry for every storage scheme, checked against OME's schema.

One ``ome-agent run --standalone --once`` process per scheme, each against the server
the scheme's own tests use: the local Hub (hf://), nginx (https?://), a local folder,
moto's S3 server (s3://), the GCS emulator (gs://), Azurite (az://), the signature-
checking Object Storage stand-in (oci://), and vendor:// (no download). The entry the
agent wrote into its state file is validated with the ``jsonschema`` package against
``docs/ome-modelentry.schema.json`` — the types OME's controller decodes — and must be
Ready with the artifact in OME's shape (``parentPath`` a map, ``childrenPaths`` a list,
``sha`` the resolved revision or, without one, the manifest digest).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.conftest import WIRE_SCHEMA
from tests.data.safetensors_fixtures import shard_bytes
from tests.pull_helpers import cli_process
from tests.servers import gcs_emulator as emulator_fixtures
from tests.servers import moto_server
from tests.servers.azurite import ACCOUNT, KEY, Azurite
from tests.servers.gcs_emulator import GcsEmulator
from tests.servers.hf_hub_server import HubServer
from tests.servers.moto_server import REGION, MotoS3
from tests.servers.nginx import NginxServer
from tests.servers.oci_server import ApiKey, OciServer

moto_s3 = moto_server.moto_s3  # session fixtures, used by name below
gcs_emulator = emulator_fixtures.gcs_emulator

CONFIG = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 4096,
    "torch_dtype": "bfloat16",
}
FILES = {
    "config.json": json.dumps(CONFIG).encode(),
    "model.safetensors": shard_bytes({"model.embed_tokens.weight": ("BF16", (1000, 64))}),
}
TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancyforwire"
USER = "ocid1.user.oc1..aaaaaaaauserforwire"


@dataclass
class Case:
    """What one scheme needs: the model's storage spec, Secrets, environment, flags."""

    storage: dict[str, Any]
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    downloads: bool = True


def hf_case(tmp: Path) -> Iterator[Case]:
    with HubServer() as hub:
        hub.add_repo("acme/tiny", FILES)
        yield Case({"storageUri": "hf://acme/tiny"}, env={"HF_ENDPOINT": hub.endpoint})


def http_case(tmp: Path) -> Iterator[Case]:
    root = tmp / "www"
    root.mkdir()
    (root / "model.safetensors").write_bytes(FILES["model.safetensors"])
    with NginxServer(root, workdir=tmp / "nginx") as nginx:
        yield Case({"storageUri": f"{nginx.base_url}model.safetensors"})


def local_case(tmp: Path) -> Iterator[Case]:
    source = tmp / "source"
    source.mkdir()
    for name, data in FILES.items():
        (source / name).write_bytes(data)
    yield Case({"storageUri": str(source)}, args=["--local-source-dir", str(source)])


def vendor_case(tmp: Path) -> Iterator[Case]:
    yield Case({"storageUri": "vendor://nvidia/nim/llama-3"}, downloads=False)


def s3_case(tmp: Path, moto: MotoS3) -> Iterator[Case]:
    bucket = moto.new_bucket()
    for name, data in FILES.items():
        moto.client().put_object(Bucket=bucket, Key=f"llama/{name}", Body=data)
    yield Case(
        {
            "storageUri": f"s3://{bucket}/llama",
            "storageKey": "creds",
            "parameters": {"endpoint": moto.endpoint, "region": REGION},
        },
        secrets={"creds": moto.secret()},
    )


def gs_case(tmp: Path, emulator: GcsEmulator) -> Iterator[Case]:
    bucket = emulator.new_bucket()
    for name, data in FILES.items():
        bucket.blob(f"llama/{name}").upload_from_string(data)
    # anonymous access to the emulator, as a developer's or CI's STORAGE_EMULATOR_HOST
    yield Case(
        {"storageUri": f"gs://{bucket.name}/llama"},
        env={"STORAGE_EMULATOR_HOST": emulator.endpoint, "NO_GCE_CHECK": "True"},
    )


def az_case(tmp: Path) -> Iterator[Case]:
    from azure.storage.blob import BlobServiceClient

    with Azurite() as azurite:
        service = BlobServiceClient(
            azurite.endpoint,
            credential={"account_name": ACCOUNT, "account_key": KEY},
            connection_verify=str(azurite.ca_path),
        )
        container = service.create_container(f"wire{os.getpid()}")
        for name, data in FILES.items():
            container.upload_blob(f"llama/{name}", data)
        yield Case(
            {
                "storageUri": f"az://{ACCOUNT}/{container.container_name}/llama",
                "storageKey": "creds",
                "parameters": {"endpoint": azurite.endpoint},
            },
            secrets={"creds": {"AZURE_STORAGE_KEY": KEY}},
            env={"REQUESTS_CA_BUNDLE": str(azurite.ca_path)},
            args=["--ca-bundle", str(azurite.ca_path)],
        )


def oci_case(tmp: Path) -> Iterator[Case]:
    key = ApiKey.generate()
    with OciServer(tmp / "oci") as oci:
        oci.add_user(TENANCY, USER, key.fingerprint, key.public_pem)
        oci.add_bucket("models")
        for name, data in FILES.items():
            oci.add_object("models", f"llama/{name}", data)
        secret = {"user": USER, "tenancy": TENANCY, "fingerprint": key.fingerprint}
        yield Case(
            {
                "storageUri": f"oci://n/{oci.namespace}/b/models/o/llama",
                "storageKey": "creds",
                "parameters": {
                    "auth": "UserPrincipal",
                    "region": "us-phoenix-1",
                    "endpoint": oci.endpoint,
                },
            },
            secrets={"creds": {**secret, "key": key.private_pem}},
        )


SCHEMES = ["hf", "http", "local", "vendor", "s3", "gs", "az", "oci"]


@pytest.fixture(params=SCHEMES)
def case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    scheme: str = request.param
    tmp = tmp_path / "servers"
    tmp.mkdir()
    makers: dict[str, Callable[[], Iterator[Case]]] = {
        "hf": lambda: hf_case(tmp),
        "http": lambda: http_case(tmp),
        "local": lambda: local_case(tmp),
        "vendor": lambda: vendor_case(tmp),
        "s3": lambda: s3_case(tmp, request.getfixturevalue("moto_s3")),
        "gs": lambda: gs_case(tmp, request.getfixturevalue("gcs_emulator")),
        "az": lambda: az_case(tmp),
        "oci": lambda: oci_case(tmp),
    }
    yield from makers[scheme]()


def test_ready_entry_of_every_scheme_decodes_as_omes(case: Case, tmp_path: Path) -> None:
    manifests, models, state = tmp_path / "m", tmp_path / "models", tmp_path / "state.json"
    manifests.mkdir()
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": "team"},
            "stringData": data,
        }
        for name, data in case.secrets.items()
    ]
    docs.append(
        {
            "apiVersion": "ome.io/v1beta1",
            "kind": "BaseModel",
            "metadata": {"name": "llama", "namespace": "team", "uid": "u-1"},
            "spec": {"storage": case.storage},
        }
    )
    (manifests / "models.yaml").write_text("\n---\n".join(json.dumps(d) for d in docs))
    run = cli_process(
        "run", "--standalone", "--once", "--manifests", str(manifests),
        "--models-root-dir", str(models), "--state-file", str(state), "--node-name", "box",
        *case.args,
        env={"HOME": str(tmp_path), **case.env},
        drop_env=("AWS_", "HF_", "AZURE_", "GOOGLE_", "OCI_", "STORAGE_EMULATOR"),
    )  # fmt: skip
    assert run.code == 0, run.stderr
    reported = json.loads(state.read_text())["models"]["BaseModel/team/llama"]
    entry = json.loads(reported["entry"])

    schema = json.loads(WIRE_SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(entry)]
    assert not errors, errors
    assert entry["status"] == "Ready", entry
    if not case.downloads:
        assert entry["config"]["vendorSource"]
        return
    artifact = entry["config"]["artifact"]
    assert artifact["parentPath"] == {}
    assert artifact["childrenPaths"] == []
    assert artifact["sha"]
    (manifest_file,) = (models / ".ome-agent" / "manifests").glob("BaseModel.team.llama.json")
    manifest = json.loads(manifest_file.read_text())
    assert artifact["sha"] in (manifest["commit"], manifest["digest"])
    if "config.json" in {f["path"] for f in manifest["files"]}:
        decoded = entry["config"]["decodedModelConfiguration"]
        assert decoded["parameter_count"] == "64K"
        assert decoded["model_size_bytes"] == 64_000 * 2
