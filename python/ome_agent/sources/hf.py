"""Source ``hf://org/name[@revision]``: a whole model repo from the Hugging Face Hub.

huggingface_hub does the talking to the Hub API (auth, errors, pagination): the
revision is pinned to a commit sha first, then the tree of *that commit* is listed,
so every file comes from one consistent snapshot even if the branch moves meanwhile.
The engine then fetches ``{endpoint}/{repo}/resolve/{commit}/{path}``: LFS files are
checked against their sha256, plain git files against their git blob sha1 (both
come from the listing, so nothing is trusted by size alone).

Credentials: ``HF_TOKEN`` from the environment only, sent as a Bearer header that
the engine never forwards to the CDN host the Hub redirects to.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ome_agent import __version__
from ome_agent.errors import BadInput, SourceNotFound, TransferFailed
from ome_agent.sources.model import RemoteFile, ResolvedSource
from ome_agent.sources.uri import HfRef

if TYPE_CHECKING:
    from huggingface_hub.hf_api import RepoFile

DEFAULT_ENDPOINT = "https://huggingface.co"


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
    # imported here: huggingface_hub (and requests) cost ~0.3 s of start-up that
    # http(s) pulls and every other subcommand should not pay
    import requests
    from huggingface_hub import HfApi
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )
    from huggingface_hub.hf_api import RepoFile

    endpoint = hf_endpoint()
    token = token or hf_token()
    # token=False: never fall back to a token cached on disk by `hf auth login`
    api = HfApi(
        endpoint=endpoint,
        token=token or False,
        library_name="ome-agent",
        library_version=__version__,
    )
    try:
        info = api.model_info(ref.repo_id, revision=ref.revision, timeout=30)
        commit = info.sha
        if not commit:
            raise TransferFailed(f"the Hub at {endpoint} gave no commit for {ref.display}")
        entries = list(api.list_repo_tree(ref.repo_id, revision=commit, recursive=True))
    except GatedRepoError:
        raise SourceNotFound(
            f"{ref.repo_id} is gated: accept its terms on the Hub with your account, "
            "then set HF_TOKEN to a token of that account"
        ) from None
    except RepositoryNotFoundError:
        hint = (
            "check the name, or that HF_TOKEN's account can read it"
            if token
            else "check the name; if it is private, set HF_TOKEN"
        )
        raise SourceNotFound(f"repository {ref.repo_id} not found at {endpoint}: {hint}") from None
    except RevisionNotFoundError:
        raise SourceNotFound(
            f"revision {ref.revision!r} not found in {ref.repo_id}: give an existing branch, "
            "tag or commit sha"
        ) from None
    except HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else "?"
        raise TransferFailed(
            f"the Hub at {endpoint} answered HTTP {status} for {ref.display}"
        ) from None
    except requests.RequestException as e:
        raise TransferFailed(
            f"cannot reach the Hub at {endpoint} ({type(e).__name__}): check the network "
            "or HF_ENDPOINT"
        ) from None

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    files = [
        _remote_file(entry, endpoint, ref.repo_id, commit, headers)
        for entry in entries
        if isinstance(entry, RepoFile)
    ]
    return ResolvedSource(
        source=ref.display, scheme="hf", files=files, revision=ref.revision, commit=commit
    )


def _remote_file(
    entry: RepoFile, endpoint: str, repo_id: str, commit: str, headers: dict[str, str]
) -> RemoteFile:
    url = f"{endpoint}/{repo_id}/resolve/{commit}/{quote(entry.path)}"
    if entry.lfs is not None:
        # the blob id of an LFS file hashes the pointer, not the content: use the LFS sha256
        return RemoteFile(
            entry.path, url, size=entry.lfs.size, sha256=entry.lfs.sha256.lower(), headers=headers
        )
    return RemoteFile(entry.path, url, size=entry.size, git_sha1=entry.blob_id, headers=headers)
