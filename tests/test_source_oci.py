"""oci:// sources against the protocol-faithful Object Storage server (tests/servers/oci_server.py).

Listing (forms, prefixes, pagination), the digests each file is checked against,
per-request signatures verified by the server, errors that name the fix and never a
secret, throttling with Retry-After, and downloads through the real transfer runner.
"""

from __future__ import annotations

import email.utils
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google_crc32c
import pytest
import requests

from ome_agent.errors import (
    BadInput,
    FailureReason,
    ParameterError,
    SourceNotFound,
    TransferFailed,
    UriError,
)
from ome_agent.reconcile.core import Reconciler
from ome_agent.reconcile.ports import NodeState
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.model import MultipartMd5, ResolvedSource
from ome_agent.sources.oci import OciRef, parse_part_size, resolve_oci
from ome_agent.sources.schemes import parse_source
from ome_agent.transfer.runner import Outcome
from ome_agent.transfer.settings import TransferSettings
from tests.pull_helpers import download, multipart_md5, pull_process
from tests.servers.oci_server import (
    ApiKey,
    ChangeObject,
    OciServer,
    Status,
    config_profile,
    verify_signature,
)
from tests.test_reconcile_core import MemoryReporter, Secrets, aio, model, options

TENANCY = "ocid1.tenancy.oc1..aaaaaaaatenancyfortests"
USER = "ocid1.user.oc1..aaaaaaaauserfortests"
PASSPHRASE = "correct-horse-battery"  # noqa: S105 - test key material


@pytest.fixture(scope="module")
def api_key() -> ApiKey:
    return ApiKey.generate()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, api_key: ApiKey) -> Iterator[OciServer]:
    with OciServer(tmp_path_factory.mktemp("oci")) as s:
        s.add_user(TENANCY, USER, api_key.fingerprint, api_key.public_pem)
        yield s


@pytest.fixture
def oci(server: OciServer) -> Iterator[OciServer]:
    server.set_faults()
    server.requests.clear()
    yield server
    server.set_faults()


def secret_of(api_key: ApiKey, **extra: str) -> dict[str, str]:
    return {
        "user": USER,
        "tenancy": TENANCY,
        "fingerprint": api_key.fingerprint,
        "key": api_key.private_pem,
        **extra,
    }


def user_auth(server: OciServer, key: ApiKey, **params: str) -> StorageAuth:
    return StorageAuth(
        {"auth": "UserPrincipal", "region": "us-phoenix-1", "endpoint": server.endpoint, **params},
        secret_of(key),
        "oci-creds",
    )


# ---------------------------------------------------------------- URI forms
@pytest.mark.parametrize(
    ("uri", "ref"),
    [
        ("oci://n/ns/b/bkt/o/meta/llama-3/", OciRef("ns", "bkt", "meta/llama-3/")),
        ("oci://n/ns/b/bkt/o/meta/llama-3", OciRef("ns", "bkt", "meta/llama-3")),
        ("oci://n/ns/b/bkt/o/", OciRef("ns", "bkt", "")),
        ("oci://n/ns/b/bkt/o", OciRef("ns", "bkt", "")),
        ("oci://n/ns/b/bkt", OciRef("ns", "bkt", "")),
        ("oci://n/ns/b/bkt/", OciRef("ns", "bkt", "")),
        ("  oci://n/ns/b/bkt/o/a  ", OciRef("ns", "bkt", "a")),
        ("OCI://n/ns/b/bkt/o/a", OciRef("ns", "bkt", "a")),
        ("oci://ns@us-phoenix-1/bkt/models/x", OciRef("ns", "bkt", "models/x", "us-phoenix-1")),
        ("oci://ns@us-phoenix-1/bkt", OciRef("ns", "bkt", "", "us-phoenix-1")),
        ("oci://bkt/models/x", OciRef("", "bkt", "models/x")),
    ],
)
def test_parse_accepts_omes_forms(uri: str, ref: OciRef) -> None:
    assert parse_source(uri).ref == ref


@pytest.mark.parametrize(
    "uri",
    [
        "oci://",
        "oci://n/ns",
        "oci://n/ns/x/bkt/o/a",
        "oci://n/ns/b/bkt/x/a",
        "oci://n//b/bkt/o/a",
        "oci://n/ns/b//o/a",
        "oci://n/ns/b/bkt/o/a?versionId=1",
        "oci://n/ns/b/bk t/o/a",
        "oci://ns@/bkt/a",
        "oci://@us-phoenix-1/bkt/a",
        "oci://n/ns/b/bkt/o/a\x00b",
    ],
)
def test_parse_rejects_with_the_field_and_forms(uri: str) -> None:
    with pytest.raises(UriError) as e:
        parse_source(uri)
    assert e.value.problem.startswith(repr(uri))  # names the URI, then what is wrong
    assert str(e.value).startswith("SOURCE ")  # the command line's name for it
    assert str(e.value.named("spec.storage.storageUri")).startswith("spec.storage.storageUri ")


def test_display_is_the_documented_form() -> None:
    assert parse_source("oci://ns@us-phoenix-1/b/p/").ref.display == "oci://n/ns/b/b/o/p/"


@pytest.mark.parametrize(
    ("text", "size"), [("128Mi", 128 << 20), ("134217728", 128 << 20), ("64M", 64 << 20)]
)
def test_part_size(text: str, size: int) -> None:
    assert parse_part_size(text) == size


def test_part_size_rejects_nonsense() -> None:
    with pytest.raises(BadInput, match="multipart_part_size"):
        parse_part_size("big")


# ---------------------------------------------------------------- listing
def test_listing_paginates_past_one_page(oci: OciServer, api_key: ApiKey) -> None:
    names = [f"many/shard-{i:05d}.bin" for i in range(210)]
    for n in names:
        oci.add_object("paged", n, n.encode())
    oci.add_object("paged", "many-more/x.bin", b"x")  # after the folder, not in it
    resolved = resolve_oci(
        parse_source("oci://n/testns/b/paged/o/many").ref, user_auth(oci, api_key), page_size=100
    )
    assert sorted(f.path for f in resolved.files) == sorted(n[len("many/") :] for n in names)
    lists = oci.records("list")
    assert len(lists) == 3  # 100 + 100 + 10, following nextStartWith
    assert "start=" not in lists[0].target
    assert "start=many%2Fshard-00100.bin" in lists[1].target
    assert "start=many%2Fshard-00200.bin" in lists[2].target
    assert all(r.auth_error is None for r in oci.requests)
    assert resolved.scheme == "oci"
    assert resolved.source == "oci://n/testns/b/paged/o/many"


def test_prefix_selects_a_folder_or_one_object(oci: OciServer, api_key: ApiKey) -> None:
    for name in ("llama/a.json", "llama/sub/b.bin", "llama-2/c.bin", "llama/", "other.bin"):
        oci.add_object("sel", name, name.encode())
    auth = user_auth(oci, api_key)
    folder = resolve_oci(parse_source("oci://n/testns/b/sel/o/llama").ref, auth)
    assert sorted(f.path for f in folder.files) == ["a.json", "sub/b.bin"]
    oci.add_object("sel", "llama/sub/b.bin.sig", b"after b.bin, with its name as prefix")
    oci.requests.clear()
    one = resolve_oci(parse_source("oci://n/testns/b/sel/o/llama/sub/b.bin").ref, auth)
    assert [f.path for f in one.files] == ["b.bin"]
    assert "limit=1&" in oci.records("list")[-1].target
    assert one.files[0].url.endswith("/n/testns/b/sel/o/llama%2Fsub%2Fb.bin")
    whole = resolve_oci(parse_source("oci://n/testns/b/sel/o/").ref, auth)
    assert sorted(f.path for f in whole.files) == [
        "llama-2/c.bin",
        "llama/a.json",
        "llama/sub/b.bin",
        "llama/sub/b.bin.sig",
        "other.bin",
    ]


def test_short_forms_resolve(oci: OciServer, api_key: ApiKey) -> None:
    oci.add_object("short", "m/config.json", b"{}")
    auth = StorageAuth(
        {"auth": "user_principal", "endpoint": oci.endpoint}, secret_of(api_key), "oci-creds"
    )
    with_region = resolve_oci(parse_source("oci://testns@us-phoenix-1/short/m").ref, auth)
    assert [f.path for f in with_region.files] == ["config.json"]
    # no namespace in the URI: GetNamespace asks the service
    oci.requests.clear()
    no_ns = resolve_oci(parse_source("oci://short/m").ref, user_auth(oci, api_key))
    assert no_ns.source == "oci://n/testns/b/short/o/m"
    assert oci.records("namespace")


def test_region_conflict_is_bad_input(oci: OciServer, api_key: ApiKey) -> None:
    with pytest.raises(BadInput, match="give only one"):
        resolve_oci(parse_source("oci://testns@us-ashburn-1/short/m").ref, user_auth(oci, api_key))


# ---------------------------------------------------------------- digests
def test_digests_for_single_and_multipart_objects(oci: OciServer, api_key: ApiKey) -> None:
    part = 1 << 20
    single = os.urandom(5000)
    multi = os.urandom(3 * part + 17)
    oci.add_object("dig", "m/single.bin", single)
    oci.add_object("dig", "m/crc.bin", multi, multipart_part_size=part)
    oci.add_object("dig", "m/md5only.bin", multi, multipart_part_size=part, crc32c=False)
    auth = user_auth(oci, api_key)
    files = {
        f.path: f for f in resolve_oci(parse_source("oci://n/testns/b/dig/o/m").ref, auth).files
    }

    assert files["single.bin"].md5 == hashlib.md5(single).hexdigest()  # noqa: S324
    assert files["single.bin"].unverified is None
    assert files["single.bin"].etag == oci.get_object("dig", "m/single.bin").etag

    crc = files["crc.bin"]
    assert crc.crc32c == google_crc32c.Checksum(multi).digest().hex()
    assert crc.md5 is None
    assert crc.unverified is None

    # multipart MD5 without CRC32C: not checkable without the part size, and said so
    assert files["md5only.bin"].crc32c is None
    assert files["md5only.bin"].md5_multipart is None
    assert "multipart_part_size" in (files["md5only.bin"].unverified or "")

    expected = multipart_md5(multi, part)
    assert expected.endswith("-4")
    sized = resolve_oci(
        parse_source("oci://n/testns/b/dig/o/m/md5only.bin").ref,
        user_auth(oci, api_key, multipart_part_size="1Mi"),
    ).files[0]
    assert sized.md5_multipart == MultipartMd5(part, expected)
    assert sized.unverified is None

    wrong = resolve_oci(
        parse_source("oci://n/testns/b/dig/o/m/md5only.bin").ref,
        user_auth(oci, api_key, multipart_part_size="64Mi"),
    ).files[0]
    assert wrong.md5_multipart is None
    assert "was not uploaded in parts" in (wrong.unverified or "")
    # the listing's MD5 suffices for single-part objects: HEAD only for multipart ones
    heads = [r.target for r in oci.records("head")]
    assert all("single.bin" not in t for t in heads)


# ---------------------------------------------------------------- signing
def test_sign_gives_sdk_signed_headers_the_server_accepts(oci: OciServer, api_key: ApiKey) -> None:
    oci.add_object("sig", "m/w.bin", b"weights")
    f = resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, user_auth(oci, api_key)).files[0]
    assert f.sign is not None
    headers = dict(f.sign())
    assert set(headers) == {"date", "host", "authorization"}
    assert 'headers="date (request-target) host"' in headers["authorization"]
    assert f'keyId="{TENANCY}/{USER}/{api_key.fingerprint}"' in headers["authorization"]
    r = requests.get(f.url, headers=headers, timeout=10)
    assert (r.status_code, r.content) == (200, b"weights")
    # the same headers do not authorize another object, nor the request without them
    other = f.url.replace("w.bin", "x.bin")
    assert requests.get(other, headers=headers, timeout=10).status_code == 401
    assert requests.get(f.url, timeout=10).status_code == 401
    # a new call signs anew (a new date once a second has passed)
    time.sleep(1.05)
    assert dict(f.sign())["date"] != headers["date"]


def test_server_rejects_stale_dates_and_tampering(api_key: ApiKey) -> None:
    import oci as sdk  # type: ignore[import-untyped]
    from cryptography.hazmat.primitives import serialization

    from ome_agent.sources.oci import _sign_fn

    signer = sdk.signer.Signer(
        TENANCY, USER, api_key.fingerprint, None, private_key_content=api_key.private_pem
    )
    url = "http://127.0.0.1:1/n/ns/b/b/o/x"
    headers = dict(_sign_fn(signer, url, threading.Lock())())
    public = serialization.load_pem_public_key(api_key.public_pem.encode())

    def lookup(key_id: str) -> Any:
        return public if key_id == f"{TENANCY}/{USER}/{api_key.fingerprint}" else None

    assert verify_signature("GET", "/n/ns/b/b/o/x", headers, b"", lookup) == (
        f"{TENANCY}/{USER}/{api_key.fingerprint}",
        None,
    )
    late = verify_signature("GET", "/n/ns/b/b/o/x", headers, b"", lookup, now=time.time() + 301)
    assert late[1] == "date more than 5 minutes off"
    moved = verify_signature("GET", "/n/ns/b/b/o/y", headers, b"", lookup)
    assert moved[1] == "signature does not verify"


# ---------------------------------------------------------------- errors
def assert_no_secret(text: str, key: ApiKey) -> None:
    body = "".join(key.private_pem.splitlines()[1:-1])
    assert key.private_pem not in text
    assert body[:40] not in text
    assert PASSPHRASE not in text


def test_wrong_key_is_a_clear_401_without_secrets(
    oci: OciServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    oci.add_object("sig", "m/w.bin", b"weights")
    stranger = ApiKey.generate()  # same user and fingerprint, another private key
    auth = StorageAuth(
        {"auth": "UserPrincipal", "region": "us-phoenix-1", "endpoint": oci.endpoint},
        {**secret_of(stranger), "fingerprint": oci_fingerprint(oci)},
        "oci-creds",
    )
    with pytest.raises(BadInput) as e:
        resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, auth)
    message = str(e.value)
    assert "401 NotAuthenticated" in message
    assert "Secret 'oci-creds'" in message
    assert "fingerprint" in message
    assert_no_secret(message + caplog.text, stranger)
    assert oci.records("list")[0].auth_error == "signature does not verify"


def test_node_clock_off_by_more_than_five_minutes(
    oci: OciServer, api_key: ApiKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = email.utils.formatdate
    # the SDK dates its signatures with email.utils.formatdate: a clock 400 s behind
    monkeypatch.setattr(
        email.utils, "formatdate", lambda *a, **k: real(time.time() - 400, usegmt=True)
    )
    with pytest.raises(BadInput, match="this node's clock"):
        resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, user_auth(oci, api_key))
    assert oci.records("list")[0].auth_error == "date more than 5 minutes off"


def oci_fingerprint(server: OciServer) -> str:
    """The fingerprint of the user the module's server knows."""
    key_id = next(k for k in server._keys if k.startswith(f"{TENANCY}/{USER}/"))
    return key_id.rsplit("/", 1)[1]


def test_missing_bucket_and_objects(oci: OciServer, api_key: ApiKey) -> None:
    auth = user_auth(oci, api_key)
    with pytest.raises(SourceNotFound) as e:
        resolve_oci(parse_source("oci://n/testns/b/nosuch/o/m").ref, auth)
    assert "bucket 'nosuch' in namespace 'testns'" in str(e.value)
    assert "404 BucketNotFound" in str(e.value)
    with pytest.raises(SourceNotFound) as e:
        resolve_oci(parse_source("oci://n/othertenancy/b/sig/o/m").ref, auth)
    assert "namespace 'othertenancy'" in str(e.value)
    oci.add_object("empty-prefix", "x/y.bin", b"y")
    with pytest.raises(SourceNotFound, match="no object 'nothing'"):
        resolve_oci(parse_source("oci://n/testns/b/empty-prefix/o/nothing").ref, auth)


def test_throttled_listing_waits_for_retry_after(oci: OciServer, api_key: ApiKey) -> None:
    oci.add_object("slow", "m/a.bin", b"a")
    oci.set_faults(Status(code=429, retry_after=1.2, on=("list",), times=1))
    started = time.monotonic()
    resolved = resolve_oci(parse_source("oci://n/testns/b/slow/o/m").ref, user_auth(oci, api_key))
    assert [f.path for f in resolved.files] == ["a.bin"]
    lists = oci.records("list")
    assert [r.status for r in lists] == [429, 200]
    assert lists[1].time - lists[0].time >= 1.15
    assert time.monotonic() - started < 10


def test_denied_and_unavailable_listings(oci: OciServer, api_key: ApiKey) -> None:
    oci.add_object("deny", "m/a.bin", b"a")
    auth = user_auth(oci, api_key)
    ref = parse_source("oci://n/testns/b/deny/o/m").ref
    oci.set_faults(Status(code=403, on=("list",), times=1))
    with pytest.raises(BadInput, match=r"may not list bucket 'deny' .*403 NotAuthorized") as denied:
        resolve_oci(ref, auth)
    assert denied.value.reason is FailureReason.DENIED
    oci.requests.clear()
    oci.set_faults(Status(code=503, retry_after=0.1, on=("list",), times=2))
    assert [f.path for f in resolve_oci(ref, auth).files] == ["a.bin"]
    assert [r.status for r in oci.records("list")] == [503, 503, 200]
    oci.requests.clear()
    oci.set_faults(Status(code=503, retry_after=0.1, on=("list",), times=None))
    with pytest.raises(TransferFailed, match=r"503 ServiceUnavailable.*retry later") as busy:
        resolve_oci(ref, auth)
    assert busy.value.reason is FailureReason.THROTTLED
    assert len(oci.records("list")) == 5  # the SDK's tries, bounded


# ---------------------------------------------------------------- credentials
@pytest.mark.parametrize(
    ("drop", "named"), [("fingerprint", "'fingerprint'"), ("key", "'key'"), ("user", "'user'")]
)
def test_secret_missing_keys_are_named(
    oci: OciServer, api_key: ApiKey, drop: str, named: str
) -> None:
    secret = secret_of(api_key)
    del secret[drop]
    auth = StorageAuth(
        {"auth": "UserPrincipal", "region": "r-1", "endpoint": oci.endpoint}, secret, "creds"
    )
    with pytest.raises(BadInput) as e:
        resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, auth)
    assert "Secret 'creds'" in str(e.value)
    assert named in str(e.value)
    assert_no_secret(str(e.value), api_key)


def test_malformed_secret_values_are_named_not_echoed(oci: OciServer, api_key: ApiKey) -> None:
    secret = secret_of(api_key, fingerprint="not-a-fingerprint", tenancy_ocid="x")
    auth = StorageAuth({"auth": "UserPrincipal", "region": "r-1"}, secret, "creds")
    with pytest.raises(BadInput) as e:
        resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, auth)
    assert "Secret 'creds' key 'fingerprint' is malformed" in str(e.value)
    assert "not-a-fingerprint" not in str(e.value)

    garbage = StorageAuth(
        {"auth": "UserPrincipal", "region": "r-1"},
        secret_of(api_key, key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"),
        "creds",
    )
    with pytest.raises(BadInput, match="Secret 'creds': key 'key' is not a PEM private key"):
        resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, garbage)


def test_encrypted_key_needs_its_passphrase(
    oci: OciServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    locked = ApiKey.generate(passphrase=PASSPHRASE)
    oci.add_user(TENANCY, USER, locked.fingerprint, locked.public_pem)
    oci.add_object("locked", "m/w.bin", b"w")
    params = {"auth": "UserPrincipal", "region": "us-phoenix-1", "endpoint": oci.endpoint}
    with pytest.raises(BadInput) as e:
        resolve_oci(
            parse_source("oci://n/testns/b/locked/o/m").ref,
            StorageAuth(params, secret_of(locked), "c"),
        )
    assert "Secret 'c': key 'key' is an encrypted private key" in str(e.value)
    assert "give its passphrase in key 'passphrase'" in str(e.value)
    wrong = secret_of(locked, passphrase="not-it")  # noqa: S106
    with pytest.raises(BadInput) as e:
        resolve_oci(
            parse_source("oci://n/testns/b/locked/o/m").ref, StorageAuth(params, wrong, "c")
        )
    assert "'passphrase' is wrong" in str(e.value)
    assert "not-it" not in str(e.value)
    right = secret_of(locked, passphrase=PASSPHRASE)
    files = resolve_oci(
        parse_source("oci://n/testns/b/locked/o/m").ref, StorageAuth(params, right, "c")
    )
    assert [f.path for f in files.files] == ["w.bin"]
    assert_no_secret(caplog.text + repr(files), locked)


def test_config_file_profile(
    oci: OciServer, api_key: ApiKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key.pem"
    key_file.write_text(api_key.private_pem)
    config = tmp_path / "config"
    who = {"user": USER, "tenancy": TENANCY, "region": "us-phoenix-1"}
    wrong = ":".join(["00"] * 16)
    config.write_text(
        config_profile("DEFAULT", fingerprint=wrong, key_file=key_file, **who)
        + config_profile("MODELS", fingerprint=api_key.fingerprint, key_file=key_file, **who)
        + config_profile(
            "MOVED", fingerprint=api_key.fingerprint, key_file=tmp_path / "gone.pem", **who
        )
    )
    monkeypatch.setenv("OCI_CONFIG_FILE", str(config))
    oci.add_object("cfg", "m/w.bin", b"w")
    # no auth parameter, no Secret: the config file is the default
    auth = StorageAuth({"endpoint": oci.endpoint, "profile": "MODELS"})
    assert [
        f.path for f in resolve_oci(parse_source("oci://n/testns/b/cfg/o/m").ref, auth).files
    ] == ["w.bin"]
    with pytest.raises(BadInput, match=r"\[DEFAULT\].*401 NotAuthenticated"):
        resolve_oci(
            parse_source("oci://n/testns/b/cfg/o/m").ref, StorageAuth({"endpoint": oci.endpoint})
        )
    with pytest.raises(BadInput, match=r"\[MOVED\]: its key_file is not a file"):
        resolve_oci(
            parse_source("oci://n/testns/b/cfg/o/m").ref,
            StorageAuth({"endpoint": oci.endpoint, "profile": "MOVED"}),
        )
    with pytest.raises(BadInput, match="no such profile"):
        resolve_oci(
            parse_source("oci://n/testns/b/cfg/o/m").ref,
            StorageAuth({"endpoint": oci.endpoint, "profile": "NOPE"}),
        )


def test_no_credentials_at_all_names_the_auth_parameter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCI_CONFIG_FILE", str(tmp_path / "absent"))
    with pytest.raises(ParameterError) as missing:
        resolve_oci(parse_source("oci://n/ns/b/b/o/m").ref, StorageAuth({"region": "us-phoenix-1"}))
    assert (missing.value.parameter, missing.value.value) == ("auth", None)
    with pytest.raises(ParameterError) as wrong:
        resolve_oci(parse_source("oci://n/ns/b/b/o/m").ref, StorageAuth({"auth": "Kerberos"}))
    assert (wrong.value.parameter, wrong.value.value) == ("auth", "Kerberos")
    assert str(wrong.value).startswith("--param auth=Kerberos is not an OCI principal")
    assert str(wrong.value.in_spec()).startswith(
        "spec.storage.parameters.auth 'Kerberos' is not an OCI principal"
    )


def test_missing_auth_names_the_flag_on_the_command_line(tmp_path: Path) -> None:
    run = pull_process(
        "oci://n/ns/b/b/o/m", str(tmp_path / "out"), "--param", "region=us-phoenix-1",
        env={"OCI_CONFIG_FILE": str(tmp_path / "absent")},
    )  # fmt: skip
    assert run.code == 2
    assert "oci:// needs credentials: set --param auth=… to UserPrincipal" in run.stderr
    assert "spec.storage.parameters" not in run.stderr


@aio
async def test_missing_auth_names_the_crd_field_in_the_agent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OCI_CONFIG_FILE", str(tmp_path / "absent"))
    reporter = MemoryReporter()
    rec = Reconciler(options(tmp_path / "models"), reporter, Secrets())
    rec.set_node("node-a", {})
    rec.apply(model("m", "oci://n/ns/b/b/o/m", path="m", storage={"parameters": {"region": "x-1"}}))
    await rec.start()
    assert not await rec.run_until_idle()
    report = reporter.report("m")
    assert (report.state, report.reason) == (NodeState.FAILED, FailureReason.SPEC)
    assert report.error is not None
    assert "oci:// needs credentials: set spec.storage.parameters.auth to" in report.error
    assert "--param" not in report.error


def test_region_is_required(oci: OciServer, api_key: ApiKey) -> None:
    auth = StorageAuth({"auth": "UserPrincipal"}, secret_of(api_key), "c")
    with pytest.raises(ParameterError, match=r"no OCI region for .*: set --param region=…") as e:
        resolve_oci(parse_source("oci://n/testns/b/sig/o/m").ref, auth)
    assert e.value.parameter == "region"


# ---------------------------------------------------------------- downloads
def fetch(resolved: ResolvedSource, dest: Path, **settings: Any) -> list[Outcome]:
    """The real transfer path of a pull, in ranges small enough that a few MiB make
    several."""
    options = {"connections": 2, "chunk_size": 256 * 1024, "max_connections": 8} | settings
    return download(resolved, dest, TransferSettings(**options))


def test_download_verifies_every_digest_and_signs_every_request(
    oci: OciServer, api_key: ApiKey, tmp_path: Path
) -> None:
    part = 1 << 20
    blobs = {
        "m/single.bin": (os.urandom(2 * part + 3), None, True),
        "m/crc.bin": (os.urandom(3 * part + 17), part, True),
        "m/parts.bin": (os.urandom(2 * part + 5), part, False),
    }
    for name, (data, part_size, crc) in blobs.items():
        oci.add_object("dl", name, data, multipart_part_size=part_size, crc32c=crc)
    auth = user_auth(oci, api_key, multipart_part_size="1Mi")
    resolved = resolve_oci(parse_source("oci://n/testns/b/dl/o/m").ref, auth)
    oci.requests.clear()
    outcomes = {o.job.file.path: o.result for o in fetch(resolved, tmp_path / "model")}

    for name, (data, _, _) in blobs.items():
        assert (tmp_path / "model" / name[2:]).read_bytes() == data
    assert "md5" in outcomes["single.bin"].verified
    assert "crc32c" in outcomes["crc.bin"].verified
    assert "md5-multipart" in outcomes["parts.bin"].verified
    gets = oci.records("get")
    assert len(gets) >= sum(len(d) // (256 * 1024) for d, _, _ in blobs.values())
    assert all(r.auth_error is None and r.status in (200, 206) for r in gets)
    assert all(r.key_id == f"{TENANCY}/{USER}/{api_key.fingerprint}" for r in gets)


def test_download_waits_for_retry_after(oci: OciServer, api_key: ApiKey, tmp_path: Path) -> None:
    data = os.urandom(600 * 1024)
    oci.add_object("dl429", "m/w.bin", data)
    resolved = resolve_oci(parse_source("oci://n/testns/b/dl429/o/m").ref, user_auth(oci, api_key))
    oci.requests.clear()
    oci.set_faults(Status(code=429, retry_after=1.0, on=("get",), times=1))
    fetch(resolved, tmp_path / "model")
    assert (tmp_path / "model" / "w.bin").read_bytes() == data
    gets = oci.records("get")
    assert gets[0].status == 429
    assert gets[1].time - gets[0].time >= 0.95  # a fresh signature for the retry, too
    assert all(r.auth_error is None for r in gets)


@pytest.mark.parametrize("if_range", [True, False], ids=["if-range", "no-if-range"])
def test_object_changed_during_download_fails(
    oci: OciServer, api_key: ApiKey, tmp_path: Path, if_range: bool
) -> None:
    oci.add_object("chg", "m/w.bin", os.urandom(2 << 20))
    resolved = resolve_oci(parse_source("oci://n/testns/b/chg/o/m").ref, user_auth(oci, api_key))
    oci.honor_if_range = if_range
    oci.set_faults(ChangeObject(after_gets=2, body=os.urandom(2 << 20), bucket="chg", times=None))
    try:
        with pytest.raises(TransferFailed) as e:
            fetch(resolved, tmp_path / "model", connections=1)
    finally:
        oci.honor_if_range = False
    # with If-Range the engine sees the change itself; without, a 206 of the new
    # object comes back and the object's MD5 (or an If-Match the engine sends) catches it
    changed = "changed upstream since it was listed" in str(e.value)
    assert changed or (not if_range and "md5 mismatch" in str(e.value)), str(e.value)
    assert not (tmp_path / "model" / "w.bin").exists()
    assert [r.status for r in oci.records("get")][:2] == [206, 206]


def test_revoked_key_mid_pull_is_a_clear_error(
    oci: OciServer, api_key: ApiKey, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    revoked = ApiKey.generate()
    oci.add_user(TENANCY, USER, revoked.fingerprint, revoked.public_pem)
    oci.add_object("rev", "m/w.bin", b"w" * 1000)
    resolved = resolve_oci(parse_source("oci://n/testns/b/rev/o/m").ref, user_auth(oci, revoked))
    # the user's key is replaced between listing and download
    oci.add_user(TENANCY, USER, revoked.fingerprint, ApiKey.generate().public_pem)
    with pytest.raises(TransferFailed) as e:
        fetch(resolved, tmp_path / "model")
    assert "401" in str(e.value)
    assert_no_secret(str(e.value) + caplog.text, revoked)


# ---------------------------------------------------------------- CLI
def test_pull_cli_with_config_file_never_prints_the_key(oci: OciServer, tmp_path: Path) -> None:
    locked = ApiKey.generate(passphrase=PASSPHRASE)
    oci.add_user(TENANCY, USER, locked.fingerprint, locked.public_pem)
    data = os.urandom(3 << 20)
    oci.add_object("cli", "m/w.bin", data, multipart_part_size=1 << 20)
    key_file = tmp_path / "key.pem"
    key_file.write_text(locked.private_pem)
    config = tmp_path / "config"
    profile = (
        f"user={USER}\ntenancy={TENANCY}\nfingerprint={locked.fingerprint}\n"
        f"region=us-phoenix-1\nkey_file={key_file}\n"
    )
    config.write_text(
        f"[DEFAULT]\n{profile}pass_phrase={PASSPHRASE}\n[WRONG]\n{profile}pass_phrase=nope\n"
    )
    env = {"OCI_CONFIG_FILE": str(config)}
    uri = "oci://n/testns/b/cli/o/m"
    ok = pull_process(
        uri, str(tmp_path / "out"), "--param", f"endpoint={oci.endpoint}", "--json", env=env
    )
    assert ok.code == 0, ok.stderr
    assert ok.json()["files"][0]["verified"] == ["size", "crc32c"]
    assert (tmp_path / "out" / "w.bin").read_bytes() == data
    bad = pull_process(
        uri, str(tmp_path / "out2"), "--param", f"endpoint={oci.endpoint}", "--param",
        "profile=WRONG", env=env,
    )  # fmt: skip
    assert bad.code == 2
    assert "[WRONG]: key_file is not a PEM private key, or pass_phrase is wrong" in bad.stderr
    for run in (ok, bad):
        assert_no_secret(run.stdout + run.stderr, locked)
