"""The references of the web schemes: ``http(s)://host/path`` (one file) and
``hf://org/name[@revision]`` (a whole Hugging Face model repo), and their parsers
(sources layer; called through the scheme table, ``sources.schemes``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from ome_agent.errors import BadInput, UriError
from ome_agent.sources.objects import ObjectSource
from ome_agent.sources.redact import redact_url

# the Hub's own rule for repo ids (huggingface_hub validate_repo_id)
_REPO_ID = re.compile(r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$")
ACCEPTED = "use http(s)://host/path/file"


@dataclass(frozen=True)
class HttpRef:
    url: str

    @property
    def display(self) -> str:
        return redact_url(self.url)

    @property
    def file_name(self) -> str | None:
        """Last path segment, percent-decoded; None when the URL names no file."""
        name = unquote(urlsplit(self.url).path.rsplit("/", 1)[-1])
        return name or None


@dataclass(frozen=True)
class HfRef:
    repo_id: str
    revision: str | None  # None: the repo's default branch

    @property
    def display(self) -> str:
        return f"hf://{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


SourceRef = HttpRef | HfRef | ObjectSource


def parse_http(text: str) -> HttpRef:
    """``http(s)://host/path``; UriError for no host, user:password@ or a bad port."""
    source = text
    parts = urlsplit(text)
    if not parts.hostname:
        raise UriError(f"{redact_url(source)!r} has no host: {ACCEPTED}")
    if parts.username or parts.password:
        raise UriError(
            "carries user:password@ in the URL: remove it (credentials in URLs end "
            "up in logs); use a pre-signed URL or a header-based source"
        )
    try:
        _ = parts.port
    except ValueError:
        raise UriError(f"{redact_url(source)!r} has an invalid port") from None
    return HttpRef(text)


def parse_hf(rest: str, source: str, flag_revision: str | None, revision_field: str) -> HfRef:
    """What follows ``hf://``: ``org/name[@revision]``, the revision perhaps given apart
    in ``revision_field``; UriError naming the form otherwise."""
    repo_id, at, uri_revision = rest.partition("@")
    repo_id = repo_id.strip("/")
    if at and not uri_revision:
        raise UriError(f"{source!r} ends with '@': give a revision after it or drop the '@'")
    if repo_id.split("/", 1)[0] in ("datasets", "spaces"):
        raise UriError(f"{source!r}: only model repos are supported (hf://org/name)")
    if not repo_id or repo_id.count("/") > 1:
        raise UriError(f"{source!r} is not a Hugging Face repo id: use hf://org/name")
    if not _REPO_ID.match(repo_id) or "--" in repo_id or ".." in repo_id:
        raise UriError(
            f"{source!r}: {repo_id!r} is not a valid repo id (letters, digits, '-', '_', "
            "'.'; no '--' or '..'; at most 96 characters): use hf://org/name"
        )
    revision = uri_revision or None
    if flag_revision is not None:
        if revision is not None and revision != flag_revision:
            raise UriError(
                f"names revision {revision!r} but {revision_field} is {flag_revision!r}: "
                "give only one"
            )
        revision = flag_revision
    if revision is not None:
        _check_revision(revision)
    return HfRef(repo_id, revision)


def _check_revision(revision: str) -> None:
    if (
        not revision.strip()
        or any(c.isspace() or ord(c) < 32 for c in revision)
        or ".." in revision
        or revision.startswith("/")
    ):
        raise BadInput(
            f"revision {revision!r} is not a branch, tag or commit name: e.g. main, v1.0, "
            "or a 40-character commit sha"
        )
