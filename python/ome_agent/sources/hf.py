"""Source ``hf://org/name[@revision]``: a whole model repo from a Hugging Face Hub.

It asks what huggingface_hub's own download path asks (``hub_client``), so the Hub,
company proxies and open-source mirrors all serve it:

1. ``/api/models/{repo}/revision/{rev}`` (``main`` when none is given) pins the
   revision to one commit sha; every file then comes from that one snapshot even
   if the branch moves meanwhile.
2. The tree API lists that commit with sizes and digests. Mirrors may not serve
   it (404, 401, an HTML page, fewer files than the revision names): then the
   revision's ``siblings`` give the names, and a HEAD on ``resolve`` per file gives
   size and ETag, exactly as ``hf_hub_download`` learns them.
3. The engine fetches ``{endpoint}/{repo}/resolve/{commit}/{path}`` and checks the
   strongest digest known: LFS sha256; else the git blob sha1; else the size only,
   and then ``RemoteFile.unverified`` says why, for the manifest and the summary.

Credentials: ``HF_TOKEN`` (or the model's Secret), sent as a Bearer header to the
endpoint only; the engine never forwards it to another origin (a CDN).
"""

from __future__ import annotations

import os
import string
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

from ome_agent.errors import BadInput, SourceNotFound, TransferFailed
from ome_agent.sources.hub_client import (
    Failure,
    FileHead,
    HubCallFailed,
    HubClient,
    TreeFile,
)
from ome_agent.sources.model import RemoteFile, ResolvedSource, size_only
from ome_agent.sources.uri import HfRef

DEFAULT_ENDPOINT = "https://huggingface.co"
# huggingface_hub's DEFAULT_REVISION: what snapshot_download pins when given none
DEFAULT_REVISION = "main"
# HEADs run in parallel when the tree API is missing: a repo has tens to thousands of files
HEAD_WORKERS = 16


def hf_endpoint() -> str:
    """``HF_ENDPOINT`` (read at call time, unlike huggingface_hub's import-time constant)."""
    endpoint = (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadInput(
            f"HF_ENDPOINT {endpoint!r} is not an http(s) URL: set it like https://huggingface.co"
        )
    return endpoint


def hf_token() -> str | None:
    return os.environ.get("HF_TOKEN") or None


def resolve_hf(ref: HfRef, token: str | None = None) -> ResolvedSource:
    """``token`` overrides ``HF_TOKEN`` (the node agent reads it from a Secret)."""
    endpoint = hf_endpoint()
    token = token or hf_token()
    client = HubClient(endpoint, token)
    revision = ref.revision or DEFAULT_REVISION
    try:
        info = client.revision(ref.repo_id, revision)
        if not info.commit:
            raise TransferFailed(
                f"{endpoint}: GET /api/models/{ref.repo_id}/revision/{revision} gave no "
                "commit sha ('sha'): the server is not a Hub API; check HF_ENDPOINT"
            )
        files, warnings = _list(client, ref.repo_id, info.commit, info.siblings)
    except HubCallFailed as e:
        raise _explain(e, ref.repo_id, revision, endpoint, token) from None
    return ResolvedSource(
        source=ref.display,
        scheme="hf",
        files=files,
        revision=ref.revision,
        commit=info.commit,
        warnings=warnings,
    )


def _list(
    client: HubClient, repo_id: str, commit: str, siblings: list[str] | None
) -> tuple[list[RemoteFile], tuple[str, ...]]:
    """The files, and a warning when the tree API could not be used."""
    headers = {"Authorization": f"Bearer {client.token}"} if client.token else {}
    try:
        tree = client.tree(repo_id, commit)
    except HubCallFailed as e:
        if e.failure is Failure.UNREACHABLE:
            raise
        why = f"{e.call} failed ({_what(e)})"
    else:
        missing = sorted(set(siblings or ()) - {f.path for f in tree})
        if not missing:
            return [_from_tree(client, repo_id, commit, f, headers) for f in tree], ()
        why = (
            f"GET /api/models/{repo_id}/tree/{commit} lists {len(tree)} files, "
            f"{len(missing)} fewer than the revision names (first missing: {missing[0]!r})"
        )
    if siblings is None:
        raise TransferFailed(
            f"{client.endpoint}: {why}, and GET /api/models/{repo_id}/revision/... "
            "gave no 'siblings' list: the server cannot list this repo"
        )
    warning = f"{client.endpoint}: {why}; listing from the revision's siblings and a HEAD per file"
    with ThreadPoolExecutor(max_workers=max(1, min(HEAD_WORKERS, len(siblings)))) as pool:
        heads = list(pool.map(lambda p: client.file_head(repo_id, commit, p), siblings))
    files = [
        _from_head(client, repo_id, commit, path, head, headers)
        for path, head in zip(siblings, heads, strict=True)
    ]
    return files, (warning,)


def _from_tree(
    client: HubClient, repo_id: str, commit: str, f: TreeFile, headers: dict[str, str]
) -> RemoteFile:
    url = client.file_url(repo_id, commit, f.path)
    if f.lfs_sha256 is not None:
        # the blob id of an LFS file hashes the pointer, not the content: use the LFS sha256
        return RemoteFile(f.path, url, size=f.size, sha256=f.lfs_sha256, headers=headers)
    return RemoteFile(f.path, url, size=f.size, git_sha1=f.blob_id, headers=headers)


def _from_head(
    client: HubClient,
    repo_id: str,
    commit: str,
    path: str,
    head: FileHead,
    headers: dict[str, str],
) -> RemoteFile:
    call = f"HEAD /{repo_id}/resolve/{commit}/{path}"
    if head.commit is not None and head.commit != commit:
        raise TransferFailed(
            f"{client.endpoint}: {call} answered X-Repo-Commit {head.commit}, not the pinned "
            f"{commit}: the server mixes revisions; retry, or check the mirror"
        )
    url = client.file_url(repo_id, commit, path)
    etag = (head.etag or "").lower()
    sha256 = git_sha1 = unverified = None
    if _is_hex(etag, 64):
        sha256 = etag  # X-Linked-Etag of an LFS file (or a mirror's ETag): the content sha256
    elif _is_hex(etag, 40) and not head.redirected:
        git_sha1 = etag  # a git file served directly: its ETag is the git blob sha1
    elif head.redirected:
        # the ETag of a redirect names the LFS pointer, not the bytes behind it
        unverified = f"{call} sent no X-Linked-Etag (the LFS sha256)"
    else:
        unverified = f"{call} sent no content digest as ETag"
    if unverified is not None:
        # no size either: the server's Content-Length is all the engine checks
        unverified = size_only(unverified if head.size is not None else f"{unverified}, nor a size")
    return RemoteFile(
        path,
        url,
        size=head.size,
        sha256=sha256,
        git_sha1=git_sha1,
        headers=headers,
        unverified=unverified,
    )


def _is_hex(value: str, length: int) -> bool:
    return len(value) == length and all(c in string.hexdigits for c in value)


def _what(e: HubCallFailed) -> str:
    return f"HTTP {e.status}" if e.status else e.failure.value


def _explain(
    e: HubCallFailed, repo_id: str, revision: str, endpoint: str, token: str | None
) -> SourceNotFound | TransferFailed:
    if e.failure is Failure.GATED:
        return SourceNotFound(
            f"{repo_id} is gated: accept its terms on the Hub with your account, "
            "then set HF_TOKEN to a token of that account"
        )
    if e.failure is Failure.REPO_NOT_FOUND:
        hint = (
            "check the name, or that HF_TOKEN's account can read it"
            if token
            else "check the name; if it is private, set HF_TOKEN"
        )
        return SourceNotFound(
            f"repository {repo_id} not found at {endpoint} ({e.call}: {_what(e)}): {hint}"
        )
    if e.failure is Failure.REVISION_NOT_FOUND:
        return SourceNotFound(
            f"revision {revision!r} not found in {repo_id}: give an existing branch, "
            "tag or commit sha"
        )
    if e.failure is Failure.NOT_JSON:
        return TransferFailed(
            f"{endpoint}: {e.call} did not answer the Hub's JSON (an HTML page from a proxy "
            "or login portal?): check HF_ENDPOINT"
        )
    if e.failure is Failure.UNREACHABLE:
        return TransferFailed(
            f"cannot reach the Hub at {endpoint} ({e.call}): check the network or HF_ENDPOINT"
        )
    return TransferFailed(f"the Hub at {endpoint} answered {_what(e)} to {e.call}")
