"""The token principals of oci:// end to end: the SDK's own signers against local stand-ins.

InstancePrincipal (metadata service + X.509 federation), ResourcePrincipal (v2.2
environment) and OkeWorkloadIdentity (proxymux over TLS) each obtain a security
token from tests/servers/oci_metadata.py; the Object Storage stand-in then checks
every listing and GET signed with it (keyId ``ST$<token>``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import oci.auth.rpt_path_providers as rpt  # type: ignore[import-untyped]
import pytest
import requests

from ome_agent.errors import BadInput
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.oci import resolve_oci
from ome_agent.sources.schemes import parse_source
from ome_agent.transfer.settings import TransferSettings
from tests.pull_helpers import download
from tests.servers.oci_metadata import (
    IdentityServer,
    ProxymuxServer,
    resource_principal_env,
    service_account_token,
)
from tests.servers.oci_server import OciServer

URI = "oci://n/testns/b/models/o/llama"
BIG = bytes(range(256)) * 1024  # 256 KiB: several ranges of 64 KiB


@pytest.fixture
def oci(tmp_path: Path) -> Iterator[OciServer]:
    with OciServer(tmp_path / "store") as s:
        s.add_object("models", "llama/config.json", b'{"model_type": "llama"}')
        s.add_object("models", "llama/model.safetensors", BIG)
        yield s


def check_signed_with_tokens(oci: OciServer, tokens: list[str], auth: StorageAuth) -> None:
    """Listing and GETs carry ST$<token> signatures the server accepts."""
    resolved = resolve_oci(parse_source(URI).ref, auth)
    assert sorted(f.path for f in resolved.files) == ["config.json", "model.safetensors"]
    for f in resolved.files:
        assert f.sign is not None
        r = requests.get(f.url, headers=dict(f.sign()), timeout=10)
        assert r.status_code == 200
    assert oci.requests
    assert all(r.auth_error is None for r in oci.requests)
    assert {r.key_id for r in oci.requests} == {f"ST${t}" for t in tokens}


def test_instance_principal(
    oci: OciServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with IdentityServer(oci, region="phx") as ids:
        monkeypatch.setenv("OCI_METADATA_BASE_URL", ids.metadata_base_url)
        auth = StorageAuth(
            {
                "auth_type": "InstancePrincipal",
                "endpoint": oci.endpoint,
                "federation_endpoint": ids.federation_endpoint,
            }
        )
        check_signed_with_tokens(oci, ids.tokens, auth)
        assert len(ids.tokens) == 1
        assert ("POST", "/v1/x509") in ids.requests
        assert ("GET", "/opc/v2/identity/cert.pem") in ids.requests
        assert ids.tokens[0] not in caplog.text


def test_instance_principal_renews_tokens_during_a_download(
    oci: OciServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with IdentityServer(oci) as ids:
        ids.token_lifetime = 59  # expired for the SDK at once: renewed before each request
        monkeypatch.setenv("OCI_METADATA_BASE_URL", ids.metadata_base_url)
        auth = StorageAuth(
            {
                "auth": "InstancePrincipal",
                "endpoint": oci.endpoint,
                "federation_endpoint": ids.federation_endpoint,
            }
        )
        resolved = resolve_oci(parse_source(URI).ref, auth)
        oci.requests.clear()
        download(
            resolved, tmp_path / "model", TransferSettings(connections=4, chunk_size=64 * 1024)
        )
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == BIG
    gets = oci.records("get")
    assert all(r.auth_error is None for r in gets)
    used = {r.key_id for r in gets}
    assert len(used) == len(gets) >= len(BIG) // (64 * 1024)  # one fresh token per request
    assert used <= {f"ST${t}" for t in ids.tokens}


def test_instance_principal_refused_by_the_auth_service(
    oci: OciServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with IdentityServer(oci) as ids:
        ids.fail_federation = 401
        monkeypatch.setenv("OCI_METADATA_BASE_URL", ids.metadata_base_url)
        auth = StorageAuth(
            {
                "auth": "instance_principal",
                "endpoint": oci.endpoint,
                "federation_endpoint": ids.federation_endpoint,
            }
        )
        with pytest.raises(BadInput) as e:
            resolve_oci(parse_source(URI).ref, auth)
    assert "InstancePrincipal: could not get a security token (401" in str(e.value)
    assert "OCI compute instances" in str(e.value)
    assert not oci.requests  # nothing reached Object Storage


def test_resource_principal(
    oci: OciServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = resource_principal_env(oci, tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    token = Path(env["OCI_RESOURCE_PRINCIPAL_RPST"]).read_text()
    auth = StorageAuth({"auth": "ResourcePrincipal", "endpoint": oci.endpoint})
    check_signed_with_tokens(oci, [token], auth)
    # and through the engine: every range request signed with the session key
    oci.requests.clear()
    resolved = resolve_oci(parse_source(URI).ref, auth)
    download(resolved, tmp_path / "model", TransferSettings(chunk_size=64 * 1024))
    assert (tmp_path / "model" / "model.safetensors").read_bytes() == BIG
    gets = oci.records("get")
    assert len(gets) >= len(BIG) // (64 * 1024)
    assert {(r.key_id, r.auth_error) for r in gets} == {(f"ST${token}", None)}


def test_resource_principal_without_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_VERSION", raising=False)
    with pytest.raises(BadInput, match="OCI_RESOURCE_PRINCIPAL_VERSION is not set"):
        resolve_oci(parse_source(URI).ref, StorageAuth({"auth": "ResourcePrincipal"}))


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A pod's service-account token file where the SDK reads it."""
    token = tmp_path / "sa-token"
    token.write_text(service_account_token())
    monkeypatch.setattr(rpt, "OCI_KUBERNETES_SERVICE_ACCOUNT_TOKEN_PATH", str(token))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-phoenix-1")
    return token


def test_oke_workload_identity(
    oci: OciServer, tmp_path: Path, pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ProxymuxServer(oci, tmp_path, pod.read_text()) as mux:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", mux.host)
        monkeypatch.setenv("OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", str(mux.ca_path))
        auth = StorageAuth({"auth": "OkeWorkloadIdentity", "endpoint": oci.endpoint})
        check_signed_with_tokens(oci, mux.tokens, auth)
        assert len(mux.tokens) == 1


def test_oke_workload_identity_refused(
    oci: OciServer, tmp_path: Path, pod: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ProxymuxServer(oci, tmp_path, "another-token") as mux:
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", mux.host)
        monkeypatch.setenv("OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH", str(mux.ca_path))
        with pytest.raises(BadInput) as e:
            resolve_oci(parse_source(URI).ref, StorageAuth({"auth": "oke_workload_identity"}))
    assert "OkeWorkloadIdentity: could not get a security token (401" in str(e.value)
    assert pod.read_text() not in str(e.value)


def test_oke_workload_identity_outside_kubernetes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(BadInput, match="KUBERNETES_SERVICE_HOST is not set"):
        resolve_oci(parse_source(URI).ref, StorageAuth({"auth": "OkeWorkloadIdentity"}))
