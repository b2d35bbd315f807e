"""The ``gs://`` source against gcp-storage-emulator and a local OAuth token endpoint.

Listing (prefixes, folder markers, one object, whole bucket), md5/crc32c from the
listing, credentials (emulator, service-account key from a Secret with real JWT
token exchange, none at all), the errors users see, throttling through a fault
proxy, and downloads through the real transfer layer with per-request Bearer
tokens. The emulator serves every listing in one page, so paging is left to the
SDK's own iterator and not exercised here.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from ome_agent.errors import BadInput, FailureReason, SourceNotFound, TransferFailed
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.gcs import resolve_gcs
from ome_agent.sources.schemes import parse_source
from tests.pull_helpers import body_of, by_path, download
from tests.servers import gcs_emulator as emulator_fixtures
from tests.servers.fault_proxy import FaultProxy
from tests.servers.gcs_emulator import GcsEmulator, TokenServer

gcs_emulator = emulator_fixtures.gcs_emulator  # the session fixture, used by name below

MiB = 1024 * 1024


@pytest.fixture
def via_emulator(gcs_emulator: GcsEmulator, monkeypatch: pytest.MonkeyPatch) -> GcsEmulator:
    """STORAGE_EMULATOR_HOST set, as a developer or CI would: anonymous access."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    return gcs_emulator


@pytest.fixture
def tokens() -> Any:
    with TokenServer() as server:
        yield server


def sa_auth(emulator: GcsEmulator, key_json: str, endpoint: str | None = None) -> StorageAuth:
    return StorageAuth(
        parameters={"endpoint": endpoint or emulator.endpoint},
        secret={"service-account.json": key_json},
        secret_name="gcs-key",  # noqa: S106 - a Secret's name, not a password
    )


def _no_google_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud login
    monkeypatch.setenv("NO_GCE_CHECK", "True")  # no metadata server probe


# ------------------------------------------------------------------ parsing
def test_parse_forms_and_errors() -> None:
    assert parse_source("gs://bucket/a/b/").ref.prefix == "a/b/"
    assert parse_source("gs://bucket").ref.display == "gs://bucket/"
    with pytest.raises(BadInput, match="names no bucket"):
        parse_source("gs:///x")


# ------------------------------------------------------------------ listing
def test_listing_prefixes_markers_and_digests(via_emulator: GcsEmulator) -> None:
    bucket = via_emulator.new_bucket()
    bodies = {
        "m/config.json": b"{}",
        "m/sub/deep/w.bin": body_of(300_000, 1),
        "m/tok en.json": b"x",
        "m/sub/": b"",  # console folder marker
        "m-other/x": b"not selected",
    }
    for name, body in bodies.items():
        bucket.blob(name).upload_from_string(body)
    resolved = resolve_gcs(parse_source(f"gs://{bucket.name}/m").ref, StorageAuth())
    assert resolved.scheme == "gs"
    files = {f.path: f for f in resolved.files}
    assert sorted(files) == ["config.json", "sub/deep/w.bin", "tok en.json"]
    w = files["sub/deep/w.bin"]
    body = bodies["m/sub/deep/w.bin"]
    assert w.size == len(body)
    assert w.md5 == hashlib.md5(body).hexdigest()  # noqa: S324
    assert w.crc32c == google_crc32c.Checksum(body).digest().hex()
    assert "/o/m%2Fsub%2Fdeep%2Fw.bin?alt=media&generation=" in w.url
    assert w.sign is None  # the emulator: anonymous, no Authorization header
    assert w.unverified is None


def test_one_object_and_whole_bucket(via_emulator: GcsEmulator) -> None:
    bucket = via_emulator.new_bucket()
    bucket.blob("models/w.safetensors").upload_from_string(b"w")
    bucket.blob("models/w.safetensors.d/x").upload_from_string(b"x")
    one = resolve_gcs(parse_source(f"gs://{bucket.name}/models/w.safetensors").ref, StorageAuth())
    assert [f.path for f in one.files] == ["w.safetensors"]
    whole = resolve_gcs(parse_source(f"gs://{bucket.name}").ref, StorageAuth())
    assert sorted(f.path for f in whole.files) == [
        "models/w.safetensors",
        "models/w.safetensors.d/x",
    ]


def test_missing_bucket_and_prefix(via_emulator: GcsEmulator) -> None:
    with pytest.raises(SourceNotFound, match="bucket 'no-such-bucket-here' does not exist"):
        resolve_gcs(parse_source("gs://no-such-bucket-here/m").ref, StorageAuth())
    bucket = via_emulator.new_bucket()
    bucket.blob("other/x").upload_from_string(b"x")
    with pytest.raises(SourceNotFound, match=r"no object at .* or under it.*check the prefix"):
        resolve_gcs(parse_source(f"gs://{bucket.name}/models/llama").ref, StorageAuth())


# ------------------------------------------------------------------ credentials
def test_service_account_key_from_secret(
    gcs_emulator: GcsEmulator, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_google_env(monkeypatch, tmp_path)
    bucket = gcs_emulator.new_bucket()
    bucket.blob("m/a").upload_from_string(b"a")
    resolved = resolve_gcs(
        parse_source(f"gs://{bucket.name}/m").ref, sa_auth(gcs_emulator, tokens.service_account())
    )
    (f,) = resolved.files
    assert f.sign is not None
    header = dict(f.sign())["Authorization"]
    assert header.startswith("Bearer ya29.test-")
    assert header.removeprefix("Bearer ") in tokens.issued  # a token the endpoint issued


def test_refused_key_names_the_secret_key_not_its_content(
    gcs_emulator: GcsEmulator, tokens: TokenServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_google_env(monkeypatch, tmp_path)
    bucket = gcs_emulator.new_bucket()
    key = tokens.service_account()
    tokens.service_account()  # the same account gets a new key: the old one is refused
    with pytest.raises(BadInput) as err:
        resolve_gcs(parse_source(f"gs://{bucket.name}/m").ref, sa_auth(gcs_emulator, key))
    message = str(err.value)
    assert "Secret 'gcs-key' key service-account.json" in message
    assert json.loads(key)["private_key_id"] not in message
    assert "PRIVATE KEY" not in message
    assert tokens.refused >= 1


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ({}, "has no key service-account.json"),
        ({"service-account.json": "-----BEGIN PRIVATE KEY-----\nMIIE"}, "not a service account"),
        ({"service-account.json": '{"type": "service_account"}'}, "not a service account"),
        (
            {"service-account.json": '{"type": "external_account", "credential_source": {}}'},
            "not a service account",
        ),
    ],
)
def test_bad_secret(secret: dict[str, str], says: str) -> None:
    with pytest.raises(BadInput, match=says) as err:
        resolve_gcs(
            parse_source("gs://bucket/m").ref,
            StorageAuth(secret=secret, secret_name="gcs-key"),  # noqa: S106 - a name
        )
    assert "MIIE" not in str(err.value)


def test_no_credentials_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _no_google_env(monkeypatch, tmp_path)
    with pytest.raises(BadInput, match=r"no Google credentials.*storage\.key"):
        resolve_gcs(parse_source("gs://bucket/m").ref, StorageAuth())


def test_bad_endpoint() -> None:
    with pytest.raises(BadInput, match=r"--param endpoint=gopher://x is not an http"):
        resolve_gcs(
            parse_source("gs://bucket/m").ref, StorageAuth(parameters={"endpoint": "gopher://x"})
        )


def test_throttled_listing_is_retried(gcs_emulator: GcsEmulator, tokens: TokenServer) -> None:
    bucket = gcs_emulator.new_bucket()
    bucket.blob("m/a").upload_from_string(b"a")
    listing = f"/storage/v1/b/{bucket.name}/o"
    with FaultProxy(gcs_emulator.endpoint) as proxy:
        proxy.throttle("GET", listing, times=1, status=429, retry_after=0)
        auth = sa_auth(gcs_emulator, tokens.service_account(), endpoint=proxy.url)
        resolved = resolve_gcs(parse_source(f"gs://{bucket.name}/m/").ref, auth)
        statuses = [s.status for s in proxy.requests("GET", listing)]
    assert [f.path for f in resolved.files] == ["a"]
    assert statuses == [429, 200]


def test_listing_follows_every_page(gcs_emulator: GcsEmulator, tokens: TokenServer) -> None:
    """The emulator answers in one page; the proxy pages its answer as GCS does."""
    bucket = gcs_emulator.new_bucket()
    names = [f"m/shard-{i}" for i in range(5)]
    for name in names:
        bucket.blob(name).upload_from_string(name.encode())
    listing = f"/storage/v1/b/{bucket.name}/o"
    with FaultProxy(gcs_emulator.endpoint) as proxy:
        proxy.page_gcs_listings()
        auth = sa_auth(gcs_emulator, tokens.service_account(), endpoint=proxy.url)
        resolved = resolve_gcs(parse_source(f"gs://{bucket.name}/m/").ref, auth, page_size=2)
        pages = proxy.requests("GET", listing)
    assert sorted(f.path for f in resolved.files) == [n.removeprefix("m/") for n in names]
    assert [s.status for s in pages] == [200, 200, 200]


def test_denied_listing_names_the_roles(gcs_emulator: GcsEmulator, tokens: TokenServer) -> None:
    """The emulator checks no rights: the proxy answers 403 as GCS does for them."""
    bucket = gcs_emulator.new_bucket()
    listing = f"/storage/v1/b/{bucket.name}/o"
    with FaultProxy(gcs_emulator.endpoint) as proxy:
        proxy.throttle("GET", listing, times=1, status=403)
        auth = sa_auth(gcs_emulator, tokens.service_account(), endpoint=proxy.url)
        with pytest.raises(SourceNotFound, match=r"access denied.*storage\.objects\.list") as e:
            resolve_gcs(parse_source(f"gs://{bucket.name}/m/").ref, auth)
        assert e.value.reason is FailureReason.DENIED


# ------------------------------------------------------------------ downloads
def test_download_with_refreshed_tokens_and_retry_after(
    gcs_emulator: GcsEmulator, tmp_path: Path
) -> None:
    """Every GET carries a Bearer token; tokens near expiry are refreshed per request;
    a 503 with Retry-After is waited out; md5 and crc32c are verified."""
    bucket = gcs_emulator.new_bucket()
    big, small = body_of(3 * MiB + 5, 2), b'{"model_type": "llama"}'
    bucket.blob("m/w.bin").upload_from_string(big)
    bucket.blob("m/config.json").upload_from_string(small)
    # google-auth refreshes tokens within 3m45s of expiry: 60 s means on every request
    with TokenServer(lifetime=60) as tokens, FaultProxy(gcs_emulator.endpoint) as proxy:
        auth = sa_auth(gcs_emulator, tokens.service_account(), endpoint=proxy.url)
        resolved = resolve_gcs(parse_source(f"gs://{bucket.name}/m").ref, auth)
        media = f"/storage/v1/b/{bucket.name}/o/m%2Fw.bin"
        proxy.throttle("GET", media, times=1, status=503, retry_after=1)
        started = time.monotonic()
        outcomes = by_path(download(resolved, tmp_path / "dest"))
        gets = proxy.requests("GET", media)
    assert (tmp_path / "dest/w.bin").read_bytes() == big
    assert (tmp_path / "dest/config.json").read_bytes() == small
    for path in ("w.bin", "config.json"):
        assert {"md5", "crc32c"} <= set(outcomes[path].result.verified)
    assert gets[0].status == 503
    assert gets[1].time - gets[0].time >= 0.9
    assert time.monotonic() - started >= 0.9
    bearer = [g.headers.get("authorization", "") for g in gets]
    assert all(b.startswith("Bearer ya29.test-") for b in bearer)
    assert len(set(bearer)) == len(bearer)  # a fresh token each time


def test_object_replaced_upstream_fails_without_a_file(
    via_emulator: GcsEmulator, tmp_path: Path
) -> None:
    """Real GCS answers 404 for the listed generation; the emulator ignores the
    generation and serves the new bytes, which the listed digests then refuse."""
    bucket = via_emulator.new_bucket()
    bucket.blob("m/w.bin").upload_from_string(body_of(200_000, 3))
    resolved = resolve_gcs(parse_source(f"gs://{bucket.name}/m").ref, StorageAuth())
    bucket.blob("m/w.bin").upload_from_string(body_of(200_000, 4))
    with pytest.raises(TransferFailed, match="mismatch"):
        download(resolved, tmp_path / "dest")
    assert not (tmp_path / "dest/w.bin").exists()
