"""Source ``gs://bucket/prefix``: objects in Google Cloud Storage.

Where it sits: sources layer (docs/architecture.md, layer 2). google-cloud-storage lists
(pagination, retries of 429/5xx with exponential backoff) and google-auth makes and
refreshes the access tokens; this module turns the listing into
:class:`RemoteFile`\\ s for the engine.

Credentials, in order:
1. ``STORAGE_EMULATOR_HOST`` set: the SDK talks to that emulator, anonymously;
2. the Secret named by ``storage.key``, key ``service-account.json``: a service
   account's JSON key as ``gcloud iam service-accounts keys create`` writes it. Only
   that type: other credential configs (external accounts) can name files and
   commands on the node, and a Secret is written by whoever owns the namespace;
3. otherwise Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
   gcloud's login, GKE Workload Identity / the metadata server).

``spec.storage.parameters``: ``project`` (billing/quota project, else the
credentials'), ``endpoint`` (another JSON API endpoint, e.g. a private one).

Each file is fetched from the JSON API media URL pinned to the listed generation
(``/storage/v1/b/{bucket}/o/{name}?alt=media&generation=N``): an object replaced
upstream meanwhile answers 404 instead of other bytes. Its ``sign`` callable gives
``Authorization: Bearer <token>``, refreshed by google-auth when it expires (no
header at all with anonymous credentials). Verified against the listing's
``md5Hash`` (absent for composite objects) and ``crc32c`` (always present).
"""

from __future__ import annotations

import importlib
import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ome_agent import __version__
from ome_agent.errors import AccessDenied, BadInput, FailureReason, SourceNotFound, TransferFailed
from ome_agent.sources.auth import StorageAuth
from ome_agent.sources.digests import b64_hex
from ome_agent.sources.model import RemoteFile, ResolvedSource, SignFn, size_only
from ome_agent.sources.prefixes import (
    BucketRef,
    check_endpoint,
    folder_of,
    relative_path,
    single_object_name,
)
from ome_agent.sources.redact import redact_url

SECRET_KEY = "service-account.json"  # noqa: S105 - the name of a key in the Secret
SCOPES = ("https://www.googleapis.com/auth/devstorage.read_only",)
DEFAULT_ENDPOINT = "https://storage.googleapis.com"
PAGE_SIZE = 1000  # the JSON API's maximum per page


@dataclass(frozen=True)
class GcsRef(BucketRef):
    scheme = "gs"


def _sdk(module: str) -> Any:
    """Imported on use (the Google SDKs cost ~0.5 s to import) and typed Any: the
    storage client ships no types."""
    return importlib.import_module(module)


def resolve_gcs(ref: GcsRef, auth: StorageAuth, *, page_size: int = PAGE_SIZE) -> ResolvedSource:
    """List the objects ``ref`` selects, each with its digests and a token signer."""
    api = _sdk("google.api_core.exceptions")
    auth_errors = _sdk("google.auth.exceptions")
    network_errors = (OSError, _sdk("requests").RequestException)
    endpoint = _endpoint(auth)
    credentials = _credentials(auth, ref)
    where = _Where(ref, auth, endpoint or _emulator() or DEFAULT_ENDPOINT)
    try:
        client = _client(auth, endpoint, credentials)
        where.endpoint = str(client.api_endpoint)
        blobs = _list(client, ref, page_size)
        if not blobs:
            raise SourceNotFound(
                f"no object at {ref.display} or under it (bucket {ref.bucket!r} at "
                f"{where.endpoint_text}): check the prefix"
            )
    except api.GoogleAPICallError as e:
        raise where.api_error(e) from None
    except auth_errors.RefreshError:
        raise where.refused() from None
    except auth_errors.GoogleAuthError as e:
        raise TransferFailed(
            f"cannot get a Google access token for {ref.display} ({type(e).__name__}): "
            f"check {where.credentials_origin}",
            reason=FailureReason.CREDENTIALS,
        ) from None
    except network_errors as e:
        raise TransferFailed(
            f"cannot reach {where.endpoint_text} to list {ref.display} ({type(e).__name__}): "
            "check the network and parameters.endpoint",
            reason=FailureReason.NETWORK,
        ) from None
    sign = _token_signer(credentials) if credentials is not None else None
    base = where.endpoint.rstrip("/")
    files = [_remote_file(path, blob, base, ref.bucket, sign) for path, blob in blobs]
    return ResolvedSource(source=ref.display, scheme="gs", files=files)


# ------------------------------------------------------------------ configuration
def _emulator() -> str | None:
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if not host:
        return None
    return host if "://" in host else f"http://{host}"


def _endpoint(auth: StorageAuth) -> str | None:
    endpoint = auth.param("endpoint", "endpoint_url")
    return None if endpoint is None else check_endpoint(endpoint, DEFAULT_ENDPOINT)


def _credentials(auth: StorageAuth, ref: GcsRef) -> Any:
    """google-auth credentials, or None for the emulator's anonymous access."""
    errors = _sdk("google.auth.exceptions")
    if auth.secret is not None:
        secret = auth.secret_name or "named by storage.key"
        text = auth.secret.get(SECRET_KEY)
        if not text:
            raise BadInput(
                f"Secret {secret!r} has no key {SECRET_KEY}: put the service account's JSON "
                "key there (gcloud iam service-accounts keys create)"
            )
        try:
            info = json.loads(text)
            if not isinstance(info, dict) or info.get("type") != "service_account":
                raise ValueError("not a service account key")
            accounts = _sdk("google.oauth2.service_account")
            return accounts.Credentials.from_service_account_info(info, scopes=list(SCOPES))
        except (ValueError, KeyError, errors.GoogleAuthError):
            # the parser's message can quote the key material: name the key only
            raise BadInput(
                f"Secret {secret!r} key {SECRET_KEY} is not a service account JSON key "
                '("type": "service_account"): replace it'
            ) from None
    if _emulator() is not None:
        return None
    try:
        credentials, _ = _sdk("google.auth").default(scopes=list(SCOPES))
    except errors.DefaultCredentialsError:
        raise BadInput(
            f"no Google credentials for {ref.display}: name a Secret in storage.key with a "
            f"{SECRET_KEY} key, or give the node Application Default Credentials "
            "(GOOGLE_APPLICATION_CREDENTIALS, GKE Workload Identity)"
        ) from None
    return credentials


def _client(auth: StorageAuth, endpoint: str | None, credentials: Any) -> Any:
    storage = _sdk("google.cloud.storage")
    client_info = _sdk("google.api_core.client_info").ClientInfo(
        user_agent=f"ome-agent/{__version__}"
    )
    options = {"api_endpoint": endpoint} if endpoint else None
    project = auth.param("project")
    if credentials is None:
        # STORAGE_EMULATOR_HOST: the SDK picks anonymous credentials itself
        return storage.Client(project=project, client_info=client_info, client_options=options)
    return storage.Client(
        project=project or getattr(credentials, "project_id", None) or None,
        credentials=credentials,
        client_info=client_info,
        client_options=options,
    )


# ------------------------------------------------------------------ listing
def _list(client: Any, ref: GcsRef, page_size: int) -> list[tuple[str, Any]]:
    """(where it lands, blob) for every selected object."""
    if ref.prefix and not ref.prefix.endswith("/"):
        # names sort byte-wise, so an object named exactly by the prefix comes first
        first = list(client.list_blobs(ref.bucket, prefix=ref.prefix, max_results=1))
        if first and first[0].name == ref.prefix:
            return [(single_object_name(ref.prefix), first[0])]
    folder = folder_of(ref.prefix)
    out: list[tuple[str, Any]] = []
    for blob in client.list_blobs(ref.bucket, prefix=folder or None, page_size=page_size):
        rel = relative_path(blob.name, folder)
        if rel is not None:
            out.append((rel, blob))
    return out


def _remote_file(path: str, blob: Any, base: str, bucket: str, sign: SignFn | None) -> RemoteFile:
    md5 = b64_hex(blob.md5_hash, 16)
    crc32c = b64_hex(blob.crc32c, 4)
    unverified = None
    if md5 is None and crc32c is None:
        unverified = size_only("the listing gave neither an MD5 nor a CRC32C")
    name = quote(blob.name, safe="")
    url = f"{base}/storage/v1/b/{quote(bucket, safe='')}/o/{name}?alt=media"
    if blob.generation is not None:
        url += f"&generation={int(blob.generation)}"
    return RemoteFile(
        path=path,
        url=url,
        size=int(blob.size) if blob.size is not None else None,
        md5=md5,
        crc32c=crc32c,
        # no etag: the URL pins the generation, and the media download's ETag
        # header is not promised to equal the listing's metadata etag
        sign=sign,
        unverified=unverified,
    )


def _token_signer(credentials: Any) -> SignFn:
    """``Authorization: Bearer`` with a token refreshed by google-auth when it expires.

    The engine calls it from several threads: one lock, one refresh at a time."""
    request = _sdk("google.auth.transport.requests").Request()
    lock = threading.Lock()

    def sign() -> Mapping[str, str]:
        with lock:
            if not credentials.valid:
                credentials.refresh(request)
            return {"Authorization": f"Bearer {credentials.token}"}

    return sign


# ------------------------------------------------------------------ errors
class _Where:
    """What an error message may name: the URI, the endpoint, where credentials came from."""

    def __init__(self, ref: GcsRef, auth: StorageAuth, endpoint: str) -> None:
        self.ref = ref
        self.auth = auth
        self.endpoint = endpoint

    @property
    def endpoint_text(self) -> str:
        return redact_url(self.endpoint)

    @property
    def credentials_origin(self) -> str:
        if self.auth.secret is None:
            return "the Application Default Credentials"
        return f"Secret {self.auth.secret_name or 'named by storage.key'!r} key {SECRET_KEY}"

    def refused(self) -> AccessDenied:
        return AccessDenied(
            f"Google refused the credentials in {self.credentials_origin} (no access token "
            "issued): the key may be deleted or disabled; create a new one"
        )

    def api_error(self, e: Any) -> Exception:
        code = getattr(e, "code", None)
        ref, at = self.ref, self.endpoint_text
        if code == 404:
            return SourceNotFound(
                f"bucket {ref.bucket!r} does not exist at {at}: check the bucket name in "
                f"{ref.display}"
            )
        if code == 401:
            return AccessDenied(
                f"{at} did not accept the credentials in {self.credentials_origin}: check them"
            )
        if code == 403:
            return AccessDenied(
                f"access denied to {ref.display} at {at}: the credentials "
                f"({self.credentials_origin}) need storage.objects.list and "
                "storage.objects.get on the bucket (e.g. roles/storage.objectViewer)"
            )
        if code in (429, 503):
            return TransferFailed(
                f"{at} kept throttling the listing of {ref.display} (HTTP {code}) after "
                "retries: try again later",
                reason=FailureReason.THROTTLED,
            )
        return TransferFailed(
            f"{at} answered HTTP {code} for {ref.display}",
            reason=FailureReason.of_status(code if isinstance(code, int) else None),
        )
