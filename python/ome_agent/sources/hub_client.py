"""The three Hub calls ``hf://`` needs, through huggingface_hub (sources layer, under ``hf``).

They are the calls huggingface_hub's own download path makes, so every server that
``snapshot_download`` works with answers them: a Hub, a company proxy, a mirror.

- :meth:`HubClient.revision` — ``GET /api/models/{repo}/revision/{rev}``: the commit
  a revision points at and the names of its files (``siblings``). The revision is
  always in the path (``main`` by default): mirrors and proxies serve that route and
  may refuse the bare ``/api/models/{repo}``.
- :meth:`HubClient.tree` — ``GET /api/models/{repo}/tree/{commit}?recursive=1``:
  every file with its size, git blob sha1 and LFS sha256. Optional on mirrors.
- :meth:`HubClient.file_head` — ``HEAD /{repo}/resolve/{commit}/{path}``, what
  ``hf_hub_download`` asks per file (huggingface_hub's ``get_hf_file_metadata``).

huggingface_hub moved from requests (0.x) to httpx (1.x) and httpx2 (2.x): every
exception any of them raises is turned here into one :class:`HubCallFailed` that
names the call and what went wrong, so the layer above never sees a library type.
"""

from __future__ import annotations

import enum
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from ome_agent import __version__

T = TypeVar("T")


class Failure(enum.Enum):
    REPO_NOT_FOUND = "repository not found"
    GATED = "gated"
    REVISION_NOT_FOUND = "revision not found"
    STATUS = "HTTP error"
    NOT_JSON = "not the Hub's JSON"
    UNREACHABLE = "unreachable"


class HubCallFailed(Exception):
    """One Hub call failed. ``call`` is ``"GET /api/models/..."`` (never a token)."""

    def __init__(self, call: str, failure: Failure, status: int | None = None) -> None:
        super().__init__(f"{call}: {failure.value}" + (f" (HTTP {status})" if status else ""))
        self.call = call
        self.failure = failure
        self.status = status


@dataclass(frozen=True)
class TreeFile:
    path: str
    size: int
    blob_id: str | None
    lfs_sha256: str | None


@dataclass(frozen=True)
class RevisionInfo:
    commit: str | None
    siblings: list[str] | None  # None when the server sent no list


@dataclass(frozen=True)
class FileHead:
    """What the HEAD on ``resolve`` said, as huggingface_hub parsed it."""

    commit: str | None  # X-Repo-Commit
    etag: str | None  # X-Linked-Etag, else ETag, quotes and W/ removed
    size: int | None  # X-Linked-Size, else Content-Length of a non-redirect answer
    redirected: bool  # the answer sends the client to another origin (a CDN)


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The network error base of each HTTP library huggingface_hub has used; only
    the installed ones (a 2.x install has no requests, a 0.x one no httpx2)."""
    found: list[type[BaseException]] = []
    for module, name in (
        ("requests", "RequestException"),
        ("httpx", "HTTPError"),
        ("httpx2", "HTTPError"),
    ):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


class HubClient:
    """One endpoint, one token (never a token cached on disk by ``hf auth login``)."""

    def __init__(self, endpoint: str, token: str | None, timeout: float = 30.0) -> None:
        # imported here: huggingface_hub and its HTTP stack cost ~0.3 s of start-up
        # that http(s) pulls and every other subcommand should not pay
        from huggingface_hub import HfApi

        self.endpoint = endpoint
        self.token = token
        self.timeout = timeout
        self._api = HfApi(
            endpoint=endpoint,
            token=token or False,
            library_name="ome-agent",
            library_version=__version__,
        )
        self._transport = _transport_errors()

    # ------------------------------------------------------------ calls
    def revision(self, repo_id: str, revision: str) -> RevisionInfo:
        call = f"GET /api/models/{repo_id}/revision/{quote(revision, safe='')}"
        info = self._guard(
            call,
            lambda: self._api.model_info(repo_id, revision=revision, timeout=self.timeout),
        )
        siblings = getattr(info, "siblings", None)
        names = None if siblings is None else [str(s.rfilename) for s in siblings]
        return RevisionInfo(commit=getattr(info, "sha", None) or None, siblings=names)

    def tree(self, repo_id: str, commit: str) -> list[TreeFile]:
        from huggingface_hub.hf_api import RepoFile

        call = f"GET /api/models/{repo_id}/tree/{commit}?recursive=true"

        def listing() -> list[TreeFile]:
            out = []
            for entry in self._api.list_repo_tree(repo_id, revision=commit, recursive=True):
                if isinstance(entry, RepoFile):
                    lfs = entry.lfs
                    out.append(
                        TreeFile(
                            path=str(entry.path),
                            size=int(entry.size),
                            blob_id=entry.blob_id or None,
                            lfs_sha256=str(lfs.sha256).lower() if lfs is not None else None,
                        )
                    )
            return out

        return self._guard(call, listing)

    def file_url(self, repo_id: str, commit: str, path: str) -> str:
        return f"{self.endpoint}/{repo_id}/resolve/{commit}/{quote(path)}"

    def file_head(self, repo_id: str, commit: str, path: str) -> FileHead:
        from huggingface_hub import get_hf_file_metadata

        url = self.file_url(repo_id, commit, path)
        call = f"HEAD /{repo_id}/resolve/{commit}/{quote(path)}"
        meta = self._guard(
            call,
            lambda: get_hf_file_metadata(
                url,
                token=self.token or False,
                timeout=self.timeout,
                library_name="ome-agent",
                library_version=__version__,
            ),
        )
        redirected = _origin(str(meta.location)) != _origin(url)
        size = meta.size
        if redirected and size == 0:
            # huggingface_hub 0.x falls back to the Content-Length of the redirect
            # itself (0) when X-Linked-Size is missing; 1.x says None. Unknown it is.
            size = None
        return FileHead(
            commit=meta.commit_hash or None,
            etag=meta.etag or None,
            size=size,
            redirected=redirected,
        )

    # ------------------------------------------------------------ errors
    def _guard(self, call: str, fn: Callable[[], T]) -> T:
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )

        try:
            return fn()
        except GatedRepoError:
            raise HubCallFailed(call, Failure.GATED) from None
        except RepositoryNotFoundError as e:
            raise HubCallFailed(call, Failure.REPO_NOT_FOUND, _status(e)) from None
        except RevisionNotFoundError as e:
            raise HubCallFailed(call, Failure.REVISION_NOT_FOUND, _status(e)) from None
        except HfHubHTTPError as e:
            raise HubCallFailed(call, Failure.STATUS, _status(e)) from None
        except (ValueError, KeyError, TypeError, AttributeError):
            # an HTML login page, a truncated body, a list where an object belongs
            raise HubCallFailed(call, Failure.NOT_JSON) from None
        except self._transport:
            raise HubCallFailed(call, Failure.UNREACHABLE) from None


def _status(e: Any) -> int | None:
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port
