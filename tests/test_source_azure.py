"""az:// source against a real Azurite: listing, credentials, errors, download.

Blobs are uploaded with the azure-storage-blob SDK, listed by ``sources.azure`` and
fetched through the real transfer layer (``confined_jobs`` + ``Runner`` + the Rust
engine), so what is checked here is what a node does.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.credentials import AccessToken
from azure.identity import CredentialUnavailableError
from azure.storage.blob import (
    BlobBlock,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ContentSettings,
    StandardBlobTier,
    generate_container_sas,
)

from ome_agent.errors import BadInput, FailureReason, SourceNotFound, TransferFailed, UnsafePath
from ome_agent.sources import azure
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.azure import AzureRef, resolve_azure
from ome_agent.sources.model import ResolvedSource
from ome_agent.sources.redact import redact_url
from ome_agent.sources.schemes import parse_source
from ome_agent.transfer.engine import build_engine
from ome_agent.transfer.pull import confined_jobs
from ome_agent.transfer.runner import Outcome, Runner
from ome_agent.transfer.settings import TransferSettings
from tests import pull_helpers
from tests.servers.azurite import ACCOUNT, KEY, Azurite, fake_entra_token

MiB = 1024 * 1024
SECRET = "az-creds"  # noqa: S105 - a Secret's name
_names = itertools.count()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite() as server:
        yield server


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()  # noqa: S324 - the digest Azure stores


def key_auth(server: Azurite, **secret: str) -> StorageAuth:
    return StorageAuth(
        parameters={"endpoint": server.endpoint},
        secret=secret or {"AZURE_STORAGE_KEY": KEY},
        secret_name=SECRET,
    )


@pytest.fixture
def container(azurite: Azurite) -> Iterator[ContainerClient]:
    """A fresh container per test (Azurite keeps every test's blobs in memory)."""
    svc = BlobServiceClient(
        azurite.endpoint,
        credential={"account_name": ACCOUNT, "account_key": KEY},
        connection_verify=str(azurite.ca_path),
    )
    client = svc.create_container(f"models{os.getpid()}x{next(_names)}")
    try:
        yield client
    finally:
        client.delete_container()


@pytest.fixture(autouse=True)
def test_env(monkeypatch: pytest.MonkeyPatch, azurite: Azurite) -> None:
    """The runner's own Azure variables must not decide which credential a test uses;
    the SDK (through requests) trusts the emulator's test CA."""
    for name in list(os.environ):
        if name.startswith(("AZURE_STORAGE_", "AZURE_CLIENT_", "AZURE_TENANT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite.ca_path))
    azure.default_credential.cache_clear()  # tests put their own in its place


def staged(client: ContainerClient, name: str, data: bytes, block: int) -> None:
    """Upload as separate blocks + a block list, the way large files are uploaded:
    the service then stores no Content-MD5."""
    blob = client.get_blob_client(name)
    ids: list[BlobBlock] = []
    for i in range(0, len(data), block):
        block_id = base64.b64encode(f"{i:012d}".encode()).decode()
        blob.stage_block(block_id, data[i : i + block])
        ids.append(BlobBlock(block_id))
    blob.commit_block_list(ids)


def download(resolved: ResolvedSource, dest: Path) -> list[Outcome]:
    """As a pull does, trusting Azurite's CA."""
    return pull_helpers.download(
        resolved, dest, TransferSettings(ca_bundle=os.environ["REQUESTS_CA_BUNDLE"])
    )


# ---------------------------------------------------------------- URIs
def test_parse_forms() -> None:
    ref = parse_source("az://acct01/models/llama/3-8b").ref
    assert ref == AzureRef("acct01", "models", "llama/3-8b")
    assert ref.display == "az://acct01/models/llama/3-8b"
    # OME's host form names the same thing
    assert parse_source("az://acct01.blob.core.windows.net/models/llama").ref == AzureRef(
        "acct01", "models", "llama"
    )
    whole = parse_source("az://acct01/models/").ref
    assert whole.prefix == ""
    assert whole.display == "az://acct01/models"


@pytest.mark.parametrize(
    ("uri", "says"),
    [
        ("az://acct01", "needs an account and a container"),
        ("az://Bad_Account/models/x", "is not a storage account name"),
        ("az://acct01/Models/x", "is not a container name"),
        ("az://acct01/a--b/x", "is not a container name"),
        ("az://acct01/models/x?sv=2024&sig=abc", "query or fragment"),
    ],
)
def test_parse_rejects(uri: str, says: str) -> None:
    with pytest.raises(BadInput, match=says) as e:
        parse_source(uri)
    assert "sig=abc" not in str(e.value)


# ---------------------------------------------------------------- listing + download
def test_download_verified_with_pages(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    config = b'{"model_type": "llama"}'
    shard = os.urandom(5 * MiB + 123)
    big = os.urandom(20 * MiB + 7)
    container.upload_blob("m/config.json", config)  # Put Blob: the service stores the MD5
    container.upload_blob(
        "m/w/model-00001.safetensors",
        shard,
        content_settings=ContentSettings(content_md5=bytearray.fromhex(md5(shard))),
    )
    staged(container, "m/w/big.bin", big, 8 * MiB)
    container.upload_blob("m/w/", b"")  # folder marker a console creates
    container.upload_blob("m/empty-dir", b"", metadata={"hdi_isfolder": "true"})
    container.upload_blob("m2/other.bin", b"not under m/")
    before = len(azurite.requests())

    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
    resolved = resolve_azure(ref, key_auth(azurite), page_size=2)

    # 5 blobs under m/, 2 per page (Azurite writes its log a moment after answering)
    deadline = time.monotonic() + 5
    while True:
        lists = [r for r in azurite.requests()[before:] if "comp=list" in r]
        if len(lists) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(lists) == 3, lists
    assert resolved.scheme == "az"
    assert resolved.source == f"az://{ACCOUNT}/{container.container_name}/m"
    files = {f.path: f for f in resolved.files}
    assert set(files) == {"config.json", "w/model-00001.safetensors", "w/big.bin"}
    assert files["config.json"].md5 == md5(config)
    assert files["w/model-00001.safetensors"].md5 == md5(shard)
    assert files["w/big.bin"].md5 is None
    assert files["w/big.bin"].unverified == (
        "no Content-MD5 stored on the blob: size only, unverified"
    )
    assert files["config.json"].unverified is None
    for f in resolved.files:
        query = parse_qs(urlsplit(f.url).query)
        assert query["sp"] == ["r"]  # a read-only SAS for this one blob
        assert query["sr"] == ["b"]
        assert redact_url(f.url).endswith("…")
        assert "sig=" not in redact_url(f.url)
        assert f.etag is not None
        assert f.etag.startswith('"')
        assert f.headers == {"If-Match": f.etag}
        assert f.sign is None
        assert KEY not in repr(f)

    outcomes = download(resolved, tmp_path)
    by_path = {o.job.file.path: o.result for o in outcomes}
    assert (tmp_path / "config.json").read_bytes() == config
    assert (tmp_path / "w/model-00001.safetensors").read_bytes() == shard
    assert (tmp_path / "w/big.bin").read_bytes() == big
    assert "md5" in by_path["w/model-00001.safetensors"].verified
    assert by_path["w/model-00001.safetensors"].md5 == md5(shard)
    assert "md5" in by_path["config.json"].verified
    assert "md5" not in by_path["w/big.bin"].verified
    assert by_path["w/big.bin"].size == len(big)


def test_prefix_naming_one_blob(azurite: Azurite, container: ContainerClient) -> None:
    container.upload_blob("m/model.gguf", b"gguf")
    container.upload_blob("m/model.gguf.sig", b"other")
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m/model.gguf").ref
    resolved = resolve_azure(ref, key_auth(azurite))
    assert [f.path for f in resolved.files] == ["model.gguf"]
    assert resolved.files[0].size == 4


def test_whole_container(azurite: Azurite, container: ContainerClient) -> None:
    container.upload_blob("a.bin", b"a")
    container.upload_blob("d/b.bin", b"b")
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}").ref
    assert sorted(f.path for f in resolve_azure(ref, key_auth(azurite)).files) == [
        "a.bin",
        "d/b.bin",
    ]


# ---------------------------------------------------------------- other credentials
def test_connection_string_sas_token_and_environment(
    azurite: Azurite, container: ContainerClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(MiB + 5)
    container.upload_blob("m/w.bin", data)
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref

    # connection string: its BlobEndpoint is used, no parameter needed
    by_cs = resolve_azure(
        ref,
        StorageAuth(secret={"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string}),
    )
    assert "sig=" in by_cs.files[0].url
    download(by_cs, tmp_path / "cs")
    assert (tmp_path / "cs/w.bin").read_bytes() == data

    # a SAS token that may list and read the container, pasted with its "?"
    sas = generate_container_sas(
        ACCOUNT,
        container.container_name,
        account_key=KEY,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    by_sas = resolve_azure(ref, key_auth(azurite, sasToken="?" + sas))
    assert urlsplit(by_sas.files[0].url).query == sas
    download(by_sas, tmp_path / "sas")
    assert (tmp_path / "sas/w.bin").read_bytes() == data

    # no Secret: the environment variables of the Azure CLI
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    by_env = resolve_azure(ref, StorageAuth(parameters={"endpoint": azurite.endpoint}))
    assert by_env.files[0].md5 == md5(data)


def test_connection_string_of_another_account(azurite: Azurite) -> None:
    other = azurite.connection_string.replace(ACCOUNT, "otheraccount")
    ref = parse_source(f"az://{ACCOUNT}/models/m").ref
    with pytest.raises(BadInput, match="is for storage account 'otheraccount'") as e:
        resolve_azure(ref, StorageAuth(secret={"connectionString": other}, secret_name=SECRET))
    assert KEY not in str(e.value)


# ---------------------------------------------------------------- errors
def test_wrong_key_names_the_secret_key_not_its_value(
    azurite: Azurite, container: ContainerClient
) -> None:
    container.upload_blob("m/a.bin", b"a")
    wrong = base64.b64encode(b"not the key of this account").decode()
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
    with pytest.raises(SourceNotFound) as e:
        resolve_azure(ref, key_auth(azurite, AZURE_STORAGE_KEY=wrong))
    msg = str(e.value)
    assert f"account '{ACCOUNT}'" in msg
    assert repr(container.container_name) in msg
    assert "Secret 'az-creds' key 'AZURE_STORAGE_KEY'" in msg
    assert wrong not in msg
    assert KEY not in msg


def test_malformed_key_and_sas(azurite: Azurite) -> None:
    ref = parse_source(f"az://{ACCOUNT}/models/m").ref
    with pytest.raises(BadInput, match="key 'accountKey' is not a storage account key") as e:
        resolve_azure(ref, key_auth(azurite, accountKey="not base64 at all!"))
    assert "not base64 at all" not in str(e.value)
    with pytest.raises(BadInput, match="is not a SAS token") as e:
        resolve_azure(ref, key_auth(azurite, AZURE_STORAGE_SAS_TOKEN="sv=2024-01-01&sp=r"))  # noqa: S106
    assert "sv=2024" not in str(e.value)
    with pytest.raises(BadInput, match="is not an Azure Storage connection string") as e:
        resolve_azure(ref, key_auth(azurite, AZURE_STORAGE_CONNECTION_STRING="secretgarbage"))
    assert "secretgarbage" not in str(e.value)


def test_secret_without_azure_credentials(azurite: Azurite) -> None:
    ref = parse_source(f"az://{ACCOUNT}/models/m").ref
    with pytest.raises(BadInput, match=r"Secret 'az-creds' .* holds no Azure credentials") as e:
        resolve_azure(ref, key_auth(azurite, token="hf_abc"))  # noqa: S106
    assert "AZURE_STORAGE_KEY" in str(e.value)
    assert "hf_abc" not in str(e.value)


def test_missing_container(azurite: Azurite) -> None:
    for prefix in ("m", ""):  # a HEAD of the prefix first, or a listing straight away
        ref = parse_source(f"az://{ACCOUNT}/nosuchcontainer/{prefix}").ref
        with pytest.raises(SourceNotFound, match="container 'nosuchcontainer' not found"):
            resolve_azure(ref, key_auth(azurite))


def test_missing_prefix(azurite: Azurite, container: ContainerClient) -> None:
    container.upload_blob("m/a.bin", b"a")
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/llama").ref
    with pytest.raises(SourceNotFound, match="has no blob under 'llama/': check the prefix"):
        resolve_azure(ref, key_auth(azurite))


def test_unreachable_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = azure._retry_policy()
    fast.connect_retries = 0  # the message is what is tested here, not the SDK's patience
    monkeypatch.setattr(azure, "_retry_policy", lambda: fast)
    ref = parse_source(f"az://{ACCOUNT}/models/m").ref
    auth = StorageAuth(parameters={"endpoint": "http://127.0.0.1:9/x"}, secret={"accountKey": KEY})
    with pytest.raises(TransferFailed, match=re.escape("cannot reach http://127.0.0.1:9/x")) as e:
        resolve_azure(ref, auth)
    assert e.value.reason is FailureReason.NETWORK
    with pytest.raises(BadInput, match="--param endpoint=ftp://x is not an http"):
        resolve_azure(
            ref, StorageAuth(parameters={"endpoint": "ftp://x"}, secret={"accountKey": KEY})
        )


def test_archived_blob_is_a_clear_error(azurite: Azurite, container: ContainerClient) -> None:
    container.upload_blob("m/a.bin", b"a")
    container.get_blob_client("m/a.bin").set_standard_blob_tier(StandardBlobTier.ARCHIVE)
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
    with pytest.raises(BadInput, match=r"'m/a\.bin' is in the Archive tier.*rehydrate"):
        resolve_azure(ref, key_auth(azurite))


@pytest.mark.parametrize(
    ("name", "rel"),
    [("m/..\\evil", "../evil"), ("m//etc/passwd", "/etc/passwd")],  # Azure turns \ into /
)
def test_hostile_blob_names_are_refused(
    azurite: Azurite, container: ContainerClient, tmp_path: Path, name: str, rel: str
) -> None:
    container.upload_blob(name, b"x")
    container.upload_blob("m/ok.bin", b"ok")
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
    resolved = resolve_azure(ref, key_auth(azurite))
    assert rel in [f.path for f in resolved.files]
    with pytest.raises(UnsafePath):
        confined_jobs(tmp_path / "dest", resolved)
    assert not (tmp_path / "evil").exists()
    assert not (tmp_path / "dest").exists()


def test_blob_overwritten_after_listing_is_not_mixed(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    old = os.urandom(3 * MiB)
    new = os.urandom(3 * MiB)  # same size: a size check alone would not notice
    staged(container, "m/w.bin", old, MiB)  # no Content-MD5: only the ETag can tell
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
    resolved = resolve_azure(ref, key_auth(azurite))
    staged(container, "m/w.bin", new, MiB)
    with pytest.raises(TransferFailed, match=r"HTTP 412|changed upstream") as e:
        download(resolved, tmp_path)
    assert "sig=" not in str(e.value)
    assert not (tmp_path / "w.bin").exists()
    # resolved again, the new version downloads
    download(resolve_azure(ref, key_auth(azurite)), tmp_path)
    assert (tmp_path / "w.bin").read_bytes() == new


# ---------------------------------------------------------------- throttling
class _Proxy(http.server.ThreadingHTTPServer):
    """Forwards to Azurite, answering 503 ServerBusy + Retry-After to the first
    ``busy`` requests (how Azure tells a client to slow down); ``after_first_range``
    runs once, between Azurite's answer to the first ranged GET and its relay."""

    def __init__(
        self,
        server: Azurite,
        *,
        busy: int = 0,
        after_first_range: Callable[[], None] | None = None,
    ) -> None:
        self.upstream = f"https://127.0.0.1:{server.port}"
        self.ca = str(server.ca_path)
        self.busy = busy
        self.after_first_range = after_first_range
        self.seen: list[str] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{ACCOUNT}"

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _Proxy

    def do_GET(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def _forward(self) -> None:
        with self.server.lock:
            self.server.seen.append(f"{self.command} {self.path} {self.headers.get('Range')}")
            busy = self.server.busy > 0
            self.server.busy -= busy
        if busy:
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.send_header("x-ms-error-code", "ServerBusy")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        r = requests.request(
            self.command,
            self.server.upstream + self.path,
            headers=headers,
            timeout=10,
            verify=self.server.ca,
        )
        hook = self.server.after_first_range
        if hook is not None and "Range" in self.headers:
            self.server.after_first_range = None
            hook()
        self.send_response(r.status_code)
        for k, v in r.headers.items():
            if k.lower() not in ("connection", "keep-alive", "transfer-encoding"):
                self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(r.content)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_throttled_listing_and_download_are_retried(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    data = os.urandom(256 * 1024)
    container.upload_blob("m/a.bin", data)
    proxy = _Proxy(azurite, busy=2)
    try:
        ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
        auth = StorageAuth(parameters={"endpoint": proxy.endpoint}, secret={"accountKey": KEY})
        resolved = resolve_azure(ref, auth)  # HEAD, HEAD (both 503), then through
        assert [f.path for f in resolved.files] == ["a.bin"]
        assert len(proxy.seen) >= 4
        proxy.busy = 1  # the engine's first GET is throttled too
        download(resolved, tmp_path)
        assert (tmp_path / "a.bin").read_bytes() == data
        assert proxy.busy == 0
    finally:
        proxy.close()


def test_blob_overwritten_during_the_download_is_not_mixed(
    azurite: Azurite, container: ContainerClient, tmp_path: Path
) -> None:
    old = os.urandom(6 * MiB)
    new = os.urandom(6 * MiB)
    staged(container, "m/w.bin", old, MiB)  # no Content-MD5: only the ETag can tell
    ref = parse_source(f"az://{ACCOUNT}/{container.container_name}/m").ref
    proxy = _Proxy(azurite, after_first_range=lambda: staged(container, "m/w.bin", new, MiB))
    try:
        auth = StorageAuth(parameters={"endpoint": proxy.endpoint}, secret={"accountKey": KEY})
        resolved = resolve_azure(ref, auth)
        settings = TransferSettings(
            ca_bundle=str(azurite.ca_path), chunk_size=MiB, connections=2, resume=False
        )
        runner = Runner(build_engine(settings), confined_jobs(tmp_path, resolved), settings)
        with pytest.raises(TransferFailed, match=r"HTTP 412|changed upstream"):
            runner.run()
    finally:
        proxy.close()
    ranges = [r for r in proxy.seen if r.startswith("GET") and not r.endswith("None")]
    assert len(ranges) >= 2, proxy.seen  # old bytes were served, then the change was seen
    assert not (tmp_path / "w.bin").exists()


# ---------------------------------------------------------------- Entra ID tokens
class _FakeCredential:
    """Stands in for DefaultAzureCredential: hands out Azurite-acceptable tokens."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.lifetime = lifetime
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        assert scopes == (azure.STORAGE_SCOPE,)
        self.calls += 1
        token, exp = fake_entra_token(lifetime=self.lifetime)
        return AccessToken(token, exp)


def test_token_credential_signs_every_request(
    azurite: Azurite, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    svc = BlobServiceClient(
        azurite.endpoint,
        credential={"account_name": ACCOUNT, "account_key": KEY},
        connection_verify=str(azurite.ca_path),
    )
    client = svc.create_container(f"tok{os.getpid()}x{next(_names)}")
    data = os.urandom(100_000)
    client.upload_blob("m/a.bin", data)

    fake = _FakeCredential()
    monkeypatch.setattr("azure.identity.DefaultAzureCredential", lambda: fake)
    ref = parse_source(f"az://{ACCOUNT}/{client.container_name}/m").ref
    resolved = resolve_azure(ref, StorageAuth(parameters={"endpoint": azurite.endpoint}))
    (f,) = resolved.files
    assert urlsplit(f.url).query == ""  # nothing secret in the URL
    assert f.sign is not None
    headers = dict(f.sign())
    assert headers["Authorization"].startswith("Bearer ")
    assert headers["x-ms-version"]
    calls = fake.calls
    f.sign()
    assert fake.calls == calls  # cached while far from expiry
    r = requests.get(
        f.url,
        headers={**headers, **f.headers, "Range": "bytes=10-19"},
        verify=str(azurite.ca_path),
        timeout=10,
    )
    assert r.status_code == 206
    assert r.content == data[10:20]
    r = requests.get(f.url, verify=str(azurite.ca_path), timeout=10)
    assert r.status_code in (401, 403, 404)  # the URL alone grants nothing
    (outcome,) = download(resolved, tmp_path)  # the engine signs each request itself
    assert (tmp_path / "a.bin").read_bytes() == data
    assert "md5" in outcome.result.verified

    short = _FakeCredential(lifetime=60)  # inside the refresh margin: renewed every call
    signer = azure._BearerSigner(short, "2025-01-05")
    signer()
    signer()
    assert short.calls == 2


def test_no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch) -> None:
    class Unavailable:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            raise CredentialUnavailableError("nothing configured")

    monkeypatch.setattr("azure.identity.DefaultAzureCredential", Unavailable)
    ref = parse_source(f"az://{ACCOUNT}/models/m").ref
    with pytest.raises(BadInput, match="no Azure credentials for az://"):
        resolve_azure(ref, StorageAuth(parameters={"endpoint": "https://127.0.0.1:9/x"}))
    with pytest.raises(BadInput, match=r"Entra ID tokens .* only sent over HTTPS"):
        resolve_azure(ref, StorageAuth(parameters={"endpoint": "http://127.0.0.1:9/x"}))


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), ("3600", 60.0), ("soon", None), (None, None)],
)
def test_retry_after_header(header: str | None, seconds: float | None) -> None:
    assert azure._retry_after(header) == seconds


def test_retry_after_as_http_date_and_in_the_listing_policy() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    date = when.strftime("%a, %d %b %Y %H:%M:%S GMT")
    wait = azure._retry_after(date)
    assert wait is not None
    assert 27 <= wait <= 30
    policy = azure._retry_policy()
    busy = SimpleNamespace(http_response=SimpleNamespace(headers={"Retry-After": "4"}))
    assert policy.get_backoff_time({"history": [busy], "count": 1}) == 4.0
    plain = SimpleNamespace(http_response=SimpleNamespace(headers={}))
    assert 0 <= policy.get_backoff_time({"history": [plain], "count": 0}) <= 2
