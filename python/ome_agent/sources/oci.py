"""Source ``oci://``: every object under a prefix of an OCI Object Storage bucket.

Where it sits: sources layer. ``parse_oci`` turns what follows ``oci://`` (the scheme
table, ``sources.schemes``, splits it off) into an :class:`OciRef`; ``resolve_oci``
lists the objects with the oci SDK (its signer, its pagination, its retry strategy)
and hands the transfer layer one
:class:`~ome_agent.sources.model.RemoteFile` per object, each with a ``sign``
callable that has the SDK's signer sign every GET the engine sends: signatures carry
a date and expire after five minutes, so they are made per request, never once.

URI forms (those OME's code accepts):
- ``oci://n/{namespace}/b/{bucket}/o/{prefix}`` — the documented one; ``/o`` and
  the prefix may be left out (the whole bucket);
- ``oci://{namespace}@{region}/{bucket}/{prefix}`` — region in the URI;
- ``oci://{bucket}/{prefix}`` — the namespace is asked of the service (GetNamespace).
A prefix selects the folder ``prefix/`` (as OME does), or the one object named by it.

What each file is checked against (recorded in the manifest through RemoteFile):
- single-part objects: the MD5 of the listing (Content-MD5), and the listing's ETag;
- multipart objects (the listing's MD5 reads ``<base64>-<parts>``): a HEAD gives
  ``opc-content-crc32c`` (the CRC32C of the whole object, when the object has one)
  and ``opc-multipart-md5``. The multipart MD5 can only be checked knowing the
  part size of the upload, which no API returns: ``parameters.multipart_part_size``
  gives it (the CLI and SDK upload 128 MiB parts by default). When neither check
  is possible the file says so in ``unverified`` — never silently size-only.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ome_agent.errors import (
    AccessDenied,
    FailureReason,
    ParameterError,
    SourceNotFound,
    TransferFailed,
    UriError,
)
from ome_agent.sources import prefixes
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.digests import b64_hex
from ome_agent.sources.model import MultipartMd5, RemoteFile, ResolvedSource, SignFn, size_only
from ome_agent.sources.oci_auth import USER, OciCredentials, oci_credentials
from ome_agent.sources.throttle import retry_after

FORMS = "oci://n/{namespace}/b/{bucket}/o/{prefix} or oci://{namespace}@{region}/{bucket}/{prefix}"
FIELD = "spec.storage.storageUri"
LIST_FIELDS = "name,size,etag,md5,timeCreated"
PAGE = 1000  # the service's maximum page size
ENDPOINT_EXAMPLE = "https://objectstorage.us-phoenix-1.oraclecloud.com"
RETRY_ATTEMPTS = 5  # SDK calls (listing, HEAD): tries per call
RETRY_SECONDS = 120  # and the time they may take

# bucket: letters, digits, "-", "_", "." (up to 256); namespace: the tenancy's name
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,255}$")
_REGION = re.compile(r"^[a-z0-9-]{3,64}$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?)b?\s*$", re.IGNORECASE)
# a GET carries no body: the SDK still adds body headers, which must not go out
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


@dataclass(frozen=True)
class OciRef:
    namespace: str  # "" = the namespace of the caller's tenancy (asked of the service)
    bucket: str
    prefix: str  # "" = whole bucket
    region: str | None = None  # from oci://{namespace}@{region}/...

    @property
    def display(self) -> str:
        if not self.namespace:
            return f"oci://{self.bucket}/{self.prefix}"
        return f"oci://n/{self.namespace}/b/{self.bucket}/o/{self.prefix}"


def parse_oci(uri: str, rest: str) -> OciRef:
    """``rest``, what follows ``oci://`` in ``uri`` (``sources.schemes`` splits the
    scheme) → :class:`OciRef`; UriError quoting ``uri`` and naming the accepted forms."""
    if "?" in rest or "#" in rest:
        raise UriError(
            f"{uri!r} has a query or fragment: give only {FORMS} (region, endpoint, "
            "auth are storage parameters)"
        )
    if any(ord(c) < 32 or c == "\x7f" for c in rest):
        raise UriError(f"{uri!r} contains control characters")
    if rest.startswith("n/"):
        ref = _parse_nbo(rest, uri)
    else:
        head, _, prefix = rest.partition("/")
        namespace, at, region = head.partition("@")
        if not at:
            namespace, bucket, region = "", head, ""
        else:
            bucket, _, prefix = prefix.partition("/")
            if not _REGION.match(region):
                raise UriError(
                    f"{uri!r}: {region!r} is not a region (e.g. us-phoenix-1): use {FORMS}"
                )
            _check_name(namespace, "namespace", uri)
        _check_name(bucket, "bucket", uri)
        ref = OciRef(namespace, bucket, prefix.lstrip("/"), region or None)
    return ref


def _parse_nbo(rest: str, uri: str) -> OciRef:
    parts = rest.split("/")
    marker_ok = len(parts) >= 4 and parts[2] == "b"
    # oci://n/ns/b/bucket, .../b/bucket/, .../b/bucket/o, .../b/bucket/o/prefix
    if marker_ok and len(parts) >= 5:
        marker_ok = parts[4] == "o" or (len(parts) == 5 and parts[4] == "")
    if not marker_ok:
        raise UriError(f"{uri!r} is not of the form {FORMS}")
    _check_name(parts[1], "namespace", uri)
    _check_name(parts[3], "bucket", uri)
    return OciRef(parts[1], parts[3], "/".join(parts[5:]).lstrip("/"))


def _check_name(name: str, what: str, uri: str) -> None:
    if not name:
        raise UriError(f"{uri!r} names no {what}: use {FORMS}")
    if not _NAME.match(name) or ".." in name:
        raise UriError(
            f"{uri!r}: {name!r} is not a valid {what} (letters, digits, '.', '-', '_'): use {FORMS}"
        )


def parse_part_size(text: str) -> int:
    """``parameters.multipart_part_size``: bytes, or with a K/M/G/T (binary) suffix."""
    m = _SIZE.match(text)
    if m is None or int(m.group(1)) == 0:
        raise ParameterError(
            "multipart_part_size", "", " is not a size: write e.g. 128Mi or 134217728", value=text
        )
    return int(m.group(1)) * int(1024 ** "_kmgt".index(m.group(2).lower() or "_"))


# ------------------------------------------------------------------- resolve
def resolve_oci(ref: OciRef, auth: StorageAuth, *, page_size: int = PAGE) -> ResolvedSource:
    """List the objects under ``ref`` with the credentials ``auth`` names.

    ``page_size``: objects per ListObjects call (tests page through small listings)."""
    import oci  # type: ignore[import-untyped]  # slow import: only for oci:// sources

    part_size_text = auth.param("multipart_part_size")
    part_size = parse_part_size(part_size_text) if part_size_text else None
    given = auth.param("endpoint")
    explicit = prefixes.check_endpoint(given, ENDPOINT_EXAMPLE) if given else None
    creds = oci_credentials(auth)
    region = _region(ref, auth, creds, explicit)
    endpoint = explicit or oci.regions.endpoint_for("object_storage", region)
    config: dict[str, Any] = {**creds.config, "region": region}
    client = oci.object_storage.ObjectStorageClient(
        config,
        signer=creds.signer,
        service_endpoint=endpoint,
        retry_strategy=retry_after_strategy(),
        timeout=(10, 60),
    )
    lister = _Lister(client, ref, creds, endpoint, page_size)
    namespace = ref.namespace or lister.namespace()
    objects = lister.objects(namespace)
    files = []
    lock = threading.Lock()
    for obj, path in objects:
        url = f"{endpoint}/n/{_q(namespace)}/b/{_q(ref.bucket)}/o/{_q(obj.name)}"
        sign = _sign_fn(creds.signer, url, lock)
        files.append(_remote_file(obj, path, url, sign, lister, namespace, part_size))
    display = OciRef(namespace, ref.bucket, ref.prefix).display
    return ResolvedSource(source=display, scheme="oci", files=files)


def _q(segment: str) -> str:
    return quote(segment, safe="")  # as the SDK does: "/" in an object name too


def _region(ref: OciRef, auth: StorageAuth, creds: OciCredentials, explicit: str | None) -> str:
    param = auth.param("region")
    if ref.region and param and ref.region != param:
        raise ParameterError(
            "region",
            f"{ref.display} names region {ref.region!r} but ",
            " differs: give only one",
            value=param,
        )
    region = ref.region or param or creds.region
    if not region:
        raise ParameterError(
            "region", f"no OCI region for {ref.display}: set ", " (e.g. us-phoenix-1)"
        )
    if explicit is None and not _REGION.match(region):
        raise ParameterError("region", "", " is not a region name", value=region)
    return region


def _sign_fn(signer: Any, url: str, lock: threading.Lock) -> SignFn:
    """Fresh signed headers for one GET of ``url``, made by the SDK's signer.

    ``lock`` is shared by every file of the signer: the SDK's token signers swap
    token and session key in place when they renew, and a signature made while
    another thread swaps could pair the old keyId with the new key (a 401). A
    signature takes well under a millisecond and comes once per range request, so
    serialising costs little."""
    import requests

    def sign() -> Mapping[str, str]:
        request = requests.Request("GET", url).prepare()
        with lock:
            signer(request)  # the SDK signer adds date, host, authorization (+ what it needs)
        return {
            k.lower(): v if isinstance(v, str) else v.decode("latin-1")
            for k, v in request.headers.items()
            if k.lower() not in _BODY_HEADERS
        }

    return sign


def retry_after_strategy() -> Any:
    """The SDK's retry strategy (its checks: 429, 5xx, timeouts, connection errors),
    bounded for a node agent, and sleeping what a 429/503 Retry-After asks.

    The SDK's default tries 8 times over up to 10 minutes, which turns a wrong
    endpoint into a long hang (the agent retries failed models itself); and its
    strategies back off by formula only, while the service says when to come back."""
    import oci

    built = (
        oci.retry.RetryStrategyBuilder()
        .add_max_attempts(max_attempts=RETRY_ATTEMPTS)
        .add_total_elapsed_time(total_elapsed_time_seconds=RETRY_SECONDS)
        .add_service_error_check(
            service_error_retry_config=oci.retry.retry_checkers.RETRYABLE_STATUSES_AND_CODES,
            service_error_retry_on_any_5xx=True,
        )
        .get_retry_strategy()
    )

    class RetryAfter(type(built)):  # type: ignore[misc]
        def do_sleep(self, attempt: int, exception: Exception) -> None:
            headers = getattr(exception, "headers", None) or {}
            wait = retry_after(headers.get("retry-after") or headers.get("Retry-After"))
            if wait is None:
                super().do_sleep(attempt, exception)
            else:
                import time

                time.sleep(wait)

    strategy = RetryAfter.__new__(RetryAfter)
    strategy.__dict__.update(built.__dict__)
    return strategy


# ------------------------------------------------------------------- listing
@dataclass(frozen=True)
class _Lister:
    """Listing and HEAD calls, with the service's errors turned into clear ones."""

    client: Any
    ref: OciRef
    creds: OciCredentials
    endpoint: str
    page_size: int

    def namespace(self) -> str:
        return str(self._call(self.client.get_namespace, "").data)

    def objects(self, namespace: str) -> list[tuple[Any, str]]:
        """(object summary, path relative to the prefix) of every selected object."""
        folder = prefixes.folder_of(self.ref.prefix)
        found = [
            (o, rel)
            for o in self._list(namespace, folder)
            if (rel := prefixes.relative_path(o.name, folder)) is not None
        ]
        if found or not self.ref.prefix or self.ref.prefix.endswith("/"):
            if not found:
                raise SourceNotFound(
                    f"no objects under {self._where(namespace)}: check the prefix in {FIELD}"
                )
            return found
        # the prefix may name one object: it sorts first among the names it starts
        exact = [
            o for o in self._list(namespace, self.ref.prefix, limit=1) if o.name == self.ref.prefix
        ]
        if not exact:
            raise SourceNotFound(
                f"no object {self.ref.prefix!r} and no objects under {self.ref.prefix + '/'!r} "
                f"in {self._bucket(namespace)}: check the prefix in {FIELD}"
            )
        return [(exact[0], prefixes.single_object_name(self.ref.prefix))]

    def _list(self, namespace: str, prefix: str, limit: int | None = None) -> list[Any]:
        """Every object under ``prefix``; with ``limit``: the first ``limit`` only."""
        out: list[Any] = []
        start = None
        while True:
            kwargs: dict[str, Any] = {"fields": LIST_FIELDS, "limit": limit or self.page_size}
            if prefix:
                kwargs["prefix"] = prefix
            if start:
                kwargs["start"] = start
            page = self._call(
                self.client.list_objects, namespace, namespace, self.ref.bucket, **kwargs
            ).data
            out.extend(page.objects or [])
            start = page.next_start_with
            if not start or limit is not None:
                return out

    def head(self, namespace: str, name: str) -> Mapping[str, str]:
        resp = self._call(self.client.head_object, namespace, namespace, self.ref.bucket, name)
        return {k.lower(): v for k, v in resp.headers.items()}

    def _call(self, fn: Any, namespace: str, *args: Any, **kwargs: Any) -> Any:
        import oci

        try:
            return fn(*args, **kwargs)
        except oci.exceptions.ServiceError as e:
            raise self._service_error(e, namespace) from None
        except oci.exceptions.RequestException as e:
            raise TransferFailed(
                f"cannot reach OCI Object Storage at {self.endpoint} ({type(e).__name__}) "
                f"listing {self._bucket(namespace)}: check the network, region and endpoint",
                reason=FailureReason.NETWORK,
            ) from None

    def _service_error(self, e: Any, namespace: str) -> Exception:
        rid = (e.headers or {}).get("opc-request-id")
        what = f"{e.status} {e.code}" + (f", opc-request-id {rid}" if rid else "")
        where = self._bucket(namespace)
        if e.status == 404:
            return SourceNotFound(
                f"{where} not found, or not visible to {self.creds.kind} of {self.creds.origin} "
                f"(OCI answers 404 to both) ({what}): check the namespace and bucket in {FIELD} "
                "and the principal's policy (e.g. 'allow ... to read objects in compartment ...')"
            )
        if e.status == 401:
            fix = (
                "check user, tenancy, fingerprint and key (the fingerprint of the public key "
                "uploaded for the user)"
                if self.creds.kind == USER
                else "the security token was refused: check the principal's tenancy"
            )
            return AccessDenied(
                f"OCI refused the credentials ({self.creds.kind} of {self.creds.origin}) listing "
                f"{where} ({what}): {fix}, and this node's clock"
            )
        if e.status == 403:
            return AccessDenied(
                f"{self.creds.kind} of {self.creds.origin} may not list {where} ({what}): grant "
                "it 'read objects' on the bucket's compartment"
            )
        return TransferFailed(
            f"OCI Object Storage failed listing {where} ({what}): retry later",
            reason=FailureReason.of_status(e.status),
        )

    def _bucket(self, namespace: str) -> str:
        return f"bucket {self.ref.bucket!r} in namespace {namespace!r}"

    def _where(self, namespace: str) -> str:
        return OciRef(namespace, self.ref.bucket, self.ref.prefix).display


# ------------------------------------------------------------------- digests
def _remote_file(
    obj: Any,
    path: str,
    url: str,
    sign: SignFn,
    lister: _Lister,
    namespace: str,
    part_size: int | None,
) -> RemoteFile:
    size = int(obj.size) if obj.size is not None else None
    etag = obj.etag or None
    listed_md5 = obj.md5 or None
    if listed_md5 and "-" not in listed_md5:
        md5 = b64_hex(listed_md5, 16)
        if md5 is not None:
            return RemoteFile(path=path, url=url, size=size, md5=md5, etag=etag, sign=sign)
    # multipart (or no MD5 listed): the object's own headers say what it has
    headers = lister.head(namespace, obj.name)
    etag = etag or headers.get("etag")
    crc32c = b64_hex(headers.get("opc-content-crc32c"), 4)
    single_md5 = b64_hex(headers.get("content-md5"), 16)
    multipart_text = headers.get("opc-multipart-md5") or (listed_md5 if listed_md5 else None)
    multipart, why = _multipart(multipart_text, size, part_size)
    if single_md5 is not None:
        multipart, why = None, None
    elif crc32c is not None:
        why = None  # the CRC32C covers the whole object
    elif multipart is None and why is None:
        why = size_only("OCI gave no MD5 or CRC32C for this object")
    return RemoteFile(
        path=path,
        url=url,
        size=size,
        md5=single_md5,
        crc32c=crc32c,
        md5_multipart=multipart,
        etag=etag,
        sign=sign,
        unverified=why,
    )


def _multipart(
    text: str | None, size: int | None, part_size: int | None
) -> tuple[MultipartMd5 | None, str | None]:
    """(MultipartMd5 to check, or the reason it cannot be checked)."""
    if not text:
        return None, None
    digest_b64, _, count_text = text.rpartition("-")
    digest = b64_hex(digest_b64, 16)
    if digest is None or not count_text.isdigit():
        return None, size_only(f"OCI gave a malformed multipart MD5 {text!r}")
    parts = int(count_text)
    if part_size is None:
        return None, size_only(
            f"multipart object ({parts} parts) without a CRC32C: its multipart MD5 needs the "
            "upload's part size (spec.storage.parameters.multipart_part_size)"
        )
    if size is not None and max(1, -(-size // part_size)) != parts:
        return None, size_only(
            f"multipart object of {parts} parts was not uploaded in parts of "
            f"multipart_part_size {part_size} bytes"
        )
    return MultipartMd5(part_size, f"{digest}-{parts}"), None
