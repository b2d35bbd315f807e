"""Source ``s3://bucket/prefix``: objects in Amazon S3 or an S3-compatible store.

Where it sits: sources layer (docs/architecture.md, layer 2). boto3 does all the talking —
credential chain, endpoint resolution, SigV4 signing, listing pagination, retries —
and this module turns its answers into :class:`RemoteFile`\\ s for the engine.

Credentials, in order:
1. the Secret named by ``storage.key``: ``AWS_ACCESS_KEY_ID`` and
   ``AWS_SECRET_ACCESS_KEY`` (optionally ``AWS_SESSION_TOKEN``); the lower-case
   ``access_key_id`` / ``secret_access_key`` / ``session_token`` and the shared
   credentials file's ``aws_access_key_id`` / ... spellings work too;
2. otherwise boto3's standard chain: ``AWS_*`` environment variables, shared
   config/credentials files (``AWS_PROFILE``), web identity (IRSA on EKS),
   container and instance metadata.

``spec.storage.parameters``:
- ``region``: the bucket's region (else the chain's, e.g. ``AWS_REGION``; without
  an endpoint override, the region S3 gives in HeadBucket wins);
- ``endpoint`` (or ``endpoint_url``): an S3-compatible store. Without it botocore
  honours ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` itself. OCI Object
  Storage's S3 compatibility endpoint is
  ``https://{namespace}.compat.objectstorage.{region}.oraclecloud.com``: it needs
  path-style addressing and the OCI region in the signature, both taken from the
  host name unless given;
- ``addressing_style``: ``path`` | ``virtual`` | ``auto`` (botocore's default).

Downloads: each file's URL is the plain object URL and its ``sign`` callable adds
fresh SigV4 headers to every request the engine sends. Unlike a presigned URL the
signature never outlives the transfer, even with short-lived credentials (IRSA
sessions last an hour; a model can take longer), since botocore refreshes them.

Verification, decided per object from one HEAD (``ChecksumMode=ENABLED``), sent
concurrently for all objects:
- a ``ChecksumCRC64NVME`` → ``crc64nvme`` alone, whatever the ETag: S3 stores this
  full-object CRC for every new upload unless told another algorithm, single-part
  or multipart, encrypted or not, and it costs a fraction of an md5 to check
  (no part HEADs either). Taken when ``ChecksumType`` is ``FULL_OBJECT`` or absent
  (S3 has no composite CRC64NVME; a store that says otherwise is not trusted);
- else a full-object ``ChecksumCRC32C`` → ``crc32c``, with the ETag's digest below
  when there is one;
- a plain ETag (32 hex) → ``md5``, unless the object is encrypted with SSE-KMS or
  SSE-C, whose ETags are not MD5s;
- a multipart ETag (``hex-N``) → ``md5_multipart`` with the part size from a second
  HEAD of part 1 (``PartNumber=1``), if N parts of that size make up the object
  (with N ≥ 3, part N-1 is looked at too: equal parts are assumed, not proven);
- anything else is recorded in ``unverified`` (size still checked).

Listing retries: botocore's "standard" mode (5 attempts, exponential backoff with
jitter; it waits for ``x-amz-retry-after`` when the store sends it, not for a plain
``Retry-After``). The engine retries GETs itself and honours ``Retry-After``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ome_agent import __version__
from ome_agent.errors import (
    AccessDenied,
    BadInput,
    FailureReason,
    ParameterError,
    SourceNotFound,
    TransferFailed,
)
from ome_agent.sources.auth import StorageAuth, first_value
from ome_agent.sources.digests import b64_hex
from ome_agent.sources.model import MultipartMd5, RemoteFile, ResolvedSource, SignFn, size_only
from ome_agent.sources.prefixes import (
    BucketRef,
    check_endpoint,
    folder_of,
    relative_path,
    single_object_name,
)
from ome_agent.sources.redact import redact_url

# Secret keys for each credential, first spelling preferred in messages
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "access_key_id": ("AWS_ACCESS_KEY_ID", "access_key_id", "aws_access_key_id"),
    "secret_access_key": ("AWS_SECRET_ACCESS_KEY", "secret_access_key", "aws_secret_access_key"),
    "session_token": ("AWS_SESSION_TOKEN", "session_token", "aws_session_token"),
}
PAGE_SIZE = 1000  # S3's own maximum per ListObjectsV2 page
HEAD_WORKERS = 16
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_MULTIPART = re.compile(r"^[0-9a-f]{32}-([0-9]+)$")
_OCI_COMPAT = re.compile(r"^[^.]+\.compat\.objectstorage\.([a-z0-9-]+)\.oraclecloud\.com$")
_ADDRESSING = ("path", "virtual", "auto")
_KMS = ("aws:kms", "aws:kms:dsse")


@dataclass(frozen=True)
class S3Ref(BucketRef):
    scheme = "s3"


@dataclass(frozen=True)
class _Settings:
    region: str | None
    endpoint: str | None
    addressing_style: str | None


@dataclass(frozen=True)
class _Listed:
    path: str  # where it lands under DEST
    key: str


def resolve_s3(ref: S3Ref, auth: StorageAuth, *, page_size: int = PAGE_SIZE) -> ResolvedSource:
    """List the objects ``ref`` selects, each with its digests and a signer."""
    boto3 = _sdk("boto3")
    errors = _sdk("botocore.exceptions")
    ClientError, BotoCoreError = errors.ClientError, errors.BotoCoreError
    NoCredentialsError = errors.NoCredentialsError

    settings = _settings(auth)
    keys = _secret_credentials(auth)
    where = _Where(ref, auth, keys)
    try:
        # inside the try: a missing AWS_PROFILE or a broken config file raises here
        session = boto3.session.Session(
            aws_access_key_id=keys["access_key_id"][1] if keys else None,
            aws_secret_access_key=keys["secret_access_key"][1] if keys else None,
            aws_session_token=keys["session_token"][1]
            if keys and "session_token" in keys
            else None,
            region_name=settings.region,
        )
        credentials = session.get_credentials()
        if credentials is None:
            raise NoCredentialsError()
        client = _client(session, settings)
        where.endpoint = client.meta.endpoint_url
        listed = _list(client, ref, page_size)
        if not listed:
            raise SourceNotFound(
                f"no object at {ref.display} or under it (bucket {ref.bucket!r} at "
                f"{where.endpoint_text}): check the prefix"
            )
        heads = _head_all(client, ref.bucket, listed)
        bucket_region = _bucket_region(client, ref.bucket) if settings.endpoint is None else None
        if bucket_region and bucket_region != client.meta.region_name:
            # the SDK's own calls follow S3's region redirects; our URLs and
            # signatures must name the bucket's region themselves
            client = _client(session, _Settings(bucket_region, None, settings.addressing_style))
        signer = _Signer(credentials, client.meta.region_name)
        files = [
            _remote_file(item, head, _object_url(client, ref.bucket, item.key), signer)
            for item, head in zip(listed, heads, strict=True)
        ]
    except ClientError as e:
        raise where.client_error(e) from None
    except NoCredentialsError:
        raise BadInput(
            f"no AWS credentials for {ref.display}: name a Secret in storage.key with "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the node credentials "
            "(AWS_* environment, ~/.aws files, IRSA, instance profile)"
        ) from None
    except BotoCoreError as e:
        # botocore's messages can quote request details; the type and endpoint suffice
        raise TransferFailed(
            f"cannot list {ref.display} at {where.endpoint_text} ({type(e).__name__}): check "
            "parameters.endpoint / region, the network, and the credential chain"
        ) from None
    return ResolvedSource(source=ref.display, scheme="s3", files=files)


def _sdk(module: str) -> Any:
    """Imported on use (boto3 costs ~0.3 s to import) and typed Any: it ships no types."""
    return importlib.import_module(module)


# ------------------------------------------------------------------ configuration
def _settings(auth: StorageAuth) -> _Settings:
    endpoint = auth.param("endpoint", "endpoint_url")
    style = auth.param("addressing_style")
    region = auth.param("region")
    if endpoint is not None:
        endpoint = check_endpoint(endpoint, "https://s3.example.com")
        oci = _OCI_COMPAT.match(urlsplit(endpoint).hostname or "")
        if oci:
            region = region or oci.group(1)
            style = style or "path"
    if style is not None and style not in _ADDRESSING:
        raise ParameterError(
            "addressing_style", "", f" is not one of {', '.join(_ADDRESSING)}", value=style
        )
    return _Settings(region, endpoint, style)


def _secret_credentials(auth: StorageAuth) -> dict[str, tuple[str, str]] | None:
    """(Secret key name, value) per credential; None when no Secret is named."""
    if auth.secret is None:
        return None
    found: dict[str, tuple[str, str]] = {}
    for field, names in SECRET_KEYS.items():
        if (hit := first_value(auth.secret, names)) is not None:
            found[field] = hit
    secret = auth.secret_name or "named by storage.key"
    for field in ("access_key_id", "secret_access_key"):
        if field not in found:
            names = SECRET_KEYS[field]
            raise BadInput(
                f"Secret {secret!r} has no key {names[0]} (nor {names[1]}): add the AWS "
                f"{field.replace('_', ' ')} under that key"
            )
    return found


def _client(session: Any, settings: _Settings) -> Any:
    config = _sdk("botocore.config").Config(
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": settings.addressing_style or "auto"},
        signature_version="s3v4",
        connect_timeout=10,
        read_timeout=60,
        max_pool_connections=HEAD_WORKERS,
        user_agent_extra=f"ome-agent/{__version__}",
    )
    return session.client(
        "s3", region_name=settings.region, endpoint_url=settings.endpoint, config=config
    )


# ------------------------------------------------------------------ listing
def _list(client: Any, ref: S3Ref, page_size: int) -> list[_Listed]:
    """The selected keys."""
    if ref.prefix and not ref.prefix.endswith("/"):
        # keys sort byte-wise, so an object named exactly by the prefix comes first
        first = client.list_objects_v2(Bucket=ref.bucket, Prefix=ref.prefix, MaxKeys=1)
        contents = first.get("Contents") or []
        if contents and contents[0]["Key"] == ref.prefix:
            return [_Listed(single_object_name(ref.prefix), ref.prefix)]
    folder = folder_of(ref.prefix)
    listed: list[_Listed] = []
    paginator = client.get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=ref.bucket, Prefix=folder, PaginationConfig={"PageSize": page_size}
    )
    for page in pages:
        for obj in page.get("Contents") or []:
            rel = relative_path(obj["Key"], folder)
            if rel is not None:
                listed.append(_Listed(rel, obj["Key"]))
    return listed


def _bucket_region(client: Any, bucket: str) -> str | None:
    """Where the bucket lives, as S3 tells (HeadBucket always carries it)."""
    response = client.head_bucket(Bucket=bucket)
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = response.get("BucketRegion") or headers.get("x-amz-bucket-region")
    return str(region) if region else None


@dataclass(frozen=True)
class _Head:
    size: int
    etag: str  # without quotes
    encryption: str | None  # "aws:kms", "AES256", "SSE-C", ...
    crc32c: str | None  # hex of the whole object's CRC32C (never a composite one)
    crc64nvme: str | None  # hex of the whole object's CRC-64/NVME
    part_size: int | None = None  # multipart only: size of part 1
    parts_count: int | None = None
    # the next-to-last part has part 1's size too (always true below 3 parts)
    uniform: bool = True


def _head_all(client: Any, bucket: str, listed: list[_Listed]) -> list[_Head]:
    """One HEAD per object (two for multipart ones), concurrently."""
    if len(listed) == 1:
        return [_head(client, bucket, listed[0].key)]
    with ThreadPoolExecutor(max_workers=min(HEAD_WORKERS, len(listed))) as pool:
        return list(pool.map(lambda item: _head(client, bucket, item.key), listed))


def _head(client: Any, bucket: str, key: str) -> _Head:
    h = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    etag = str(h.get("ETag") or "").strip('"').lower()
    encryption = h.get("ServerSideEncryption") or (
        "SSE-C" if h.get("SSECustomerAlgorithm") else None
    )
    checksum_type = h.get("ChecksumType")
    head = _Head(
        size=int(h["ContentLength"]),
        etag=etag,
        encryption=encryption,
        crc32c=_full_object(h.get("ChecksumCRC32C"), checksum_type, 4),
        crc64nvme=_full_object(h.get("ChecksumCRC64NVME"), checksum_type, 8),
    )
    many = _MULTIPART.match(etag)
    if not many or encryption in _KMS or head.crc64nvme is not None:
        # nothing to learn from the parts: no multipart ETag, one that is no MD5, or a
        # CRC64NVME that proves the bytes without it
        return head
    # an object replaced between these HEADs gives a wrong part size: the engine's
    # md5-multipart or ETag check then fails the file, never passes wrong bytes
    part = client.head_object(Bucket=bucket, Key=key, PartNumber=1)
    part_size = int(part["ContentLength"])
    count = part.get("PartsCount")
    parts = int(many.group(1))
    uniform = True
    if parts >= 3:
        # uploaders cut equal parts (aws CLI, boto3, SDK transfer managers); one that
        # did not would fail every download on a wrong md5-multipart: look at one more
        last_full = client.head_object(Bucket=bucket, Key=key, PartNumber=parts - 1)
        uniform = int(last_full["ContentLength"]) == part_size
    return replace(
        head,
        part_size=part_size,
        parts_count=int(count) if count is not None else None,
        uniform=uniform,
    )


# ------------------------------------------------------------------ files
def _remote_file(item: _Listed, head: _Head, url: str, signer: _Signer) -> RemoteFile:
    if head.crc64nvme is not None:
        # the one digest checked: an md5 on top would cost ~1.6 CPU-s per GB
        return _file(item, head, url, signer, crc64nvme=head.crc64nvme)
    crc32c = head.crc32c
    md5: str | None = None
    multipart: MultipartMd5 | None = None
    reason: str | None = None
    many = _MULTIPART.match(head.etag)
    if head.encryption in _KMS or head.encryption == "SSE-C":
        reason = f"encrypted with {head.encryption}: its ETag is not an MD5"
    elif _MD5.match(head.etag):
        md5 = head.etag
    elif many:
        parts = int(many.group(1))
        if head.uniform and _parts_fit(head.size, head.part_size, parts, head.parts_count):
            assert head.part_size is not None
            multipart = MultipartMd5(head.part_size, head.etag)
        else:
            reason = "multipart upload whose parts are not all of one size: no part MD5s"
    else:
        reason = "its ETag is neither an MD5 nor a multipart MD5"
    unverified = None
    if reason and crc32c is None:
        unverified = size_only(f"{reason} and no CRC32C or CRC64NVME checksum is stored")
    return _file(
        item, head, url, signer,
        md5=md5, crc32c=crc32c, md5_multipart=multipart, unverified=unverified,
    )  # fmt: skip


def _file(
    item: _Listed,
    head: _Head,
    url: str,
    signer: _Signer,
    *,
    md5: str | None = None,
    crc32c: str | None = None,
    crc64nvme: str | None = None,
    md5_multipart: MultipartMd5 | None = None,
    unverified: str | None = None,
) -> RemoteFile:
    return RemoteFile(
        path=item.path,
        url=url,
        size=head.size,
        md5=md5,
        crc32c=crc32c,
        crc64nvme=crc64nvme,
        md5_multipart=md5_multipart,
        etag=f'"{head.etag}"',  # S3's own spelling: the engine sends it back in If-Match
        sign=signer.for_url(url),
        unverified=unverified,
    )


def _parts_fit(size: int, part_size: int | None, parts: int, parts_count: int | None) -> bool:
    if not part_size or (parts_count is not None and parts_count != parts):
        return False
    return (parts - 1) * part_size < size <= parts * part_size


def _full_object(value: str | None, checksum_type: str | None, length: int) -> str | None:
    """Hex of a whole-object checksum of ``length`` bytes from its base64; composite
    ones ("…-N", ``ChecksumType: COMPOSITE``) cover parts, not the file."""
    if not value or "-" in value or checksum_type not in (None, "FULL_OBJECT"):
        return None
    return b64_hex(value, length)


def _object_url(client: Any, bucket: str, key: str) -> str:
    """The object's URL as botocore addresses it (style, endpoint, key quoting);
    the presigned query is dropped: every request is signed by headers instead."""
    signed = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=60
    )
    parts = urlsplit(str(signed))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class _Signer:
    """SigV4 headers for a GET, computed fresh per request from (refreshable) credentials."""

    def __init__(self, credentials: Any, region: str) -> None:
        self._credentials = credentials
        self._region = region
        self._request = _sdk("botocore.awsrequest").AWSRequest
        self._auth = _sdk("botocore.auth").S3SigV4Auth

    def for_url(self, url: str) -> SignFn:
        def sign() -> Mapping[str, str]:
            request = self._request(method="GET", url=url)
            # refreshes expiring credentials (IRSA, instance profile) when due
            frozen = self._credentials.get_frozen_credentials()
            self._auth(frozen, "s3", self._region).add_auth(request)
            return {k: str(v) for k, v in request.headers.items()}

        return sign


# ------------------------------------------------------------------ errors
class _Where:
    """What an error message may name: the URI, the endpoint, where credentials came from."""

    def __init__(
        self, ref: S3Ref, auth: StorageAuth, keys: dict[str, tuple[str, str]] | None
    ) -> None:
        self.ref = ref
        self.auth = auth
        self.keys = keys
        self.endpoint: str | None = None

    @property
    def endpoint_text(self) -> str:
        return redact_url(self.endpoint) if self.endpoint else "the S3 endpoint"

    def _credential(self, field: str) -> str:
        if self.keys is None or field not in self.keys:
            return f"the {field.replace('_', ' ')} from the default credential chain"
        secret = self.auth.secret_name or "named by storage.key"
        return f"the {field.replace('_', ' ')} in Secret {secret!r} (key {self.keys[field][0]})"

    def client_error(self, e: Any) -> Exception:
        error = e.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        ref, at = self.ref, self.endpoint_text
        if code == "NoSuchBucket":
            return SourceNotFound(
                f"bucket {ref.bucket!r} does not exist at {at}: check the bucket name in "
                f"{ref.display} (and parameters.region / endpoint)"
            )
        if code == "InvalidAccessKeyId":
            return AccessDenied(
                f"{self._credential('access_key_id')} is not known to {at}: check it"
            )
        if code == "SignatureDoesNotMatch":
            return AccessDenied(
                f"{self._credential('secret_access_key')} does not match the access key id "
                f"(signature refused by {at}): check it"
            )
        if code in ("ExpiredToken", "InvalidToken", "TokenRefreshRequired"):
            return AccessDenied(
                f"{self._credential('session_token')} is expired or invalid: renew it"
            )
        if code in ("AccessDenied", "AllAccessDisabled", "AccountProblem") or status == 403:
            return AccessDenied(
                f"access denied to {ref.display} at {at}: the credentials ("
                f"{'Secret ' + repr(self.auth.secret_name) if self.keys else 'default chain'}) "
                "need s3:ListBucket on the bucket and s3:GetObject on its objects"
            )
        if code in ("404", "NoSuchKey", "412", "PreconditionFailed"):
            return TransferFailed(
                f"an object under {ref.display} changed while it was being listed: rerun"
            )
        if code in ("SlowDown", "503", "429", "TooManyRequests", "ServiceUnavailable"):
            return TransferFailed(
                f"{at} kept throttling the listing of {ref.display} (HTTP {status}) after "
                "retries: try again later",
                reason=FailureReason.THROTTLED,
            )
        return TransferFailed(
            f"{at} answered HTTP {status} ({code or 'no error code'}) for {ref.display}",
            reason=FailureReason.of_status(status),
        )
