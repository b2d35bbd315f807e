"""``pull``: the Python API behind ``ome-agent pull`` (sources → confine → runner).

Order matters: everything the user typed is checked before the network is touched,
the listing is filtered and every name confined before a byte is written. With
``--require-digest`` a file with no digest to check fails before any download
(:func:`require_digests`, also the agent's check).

Where an http(s) file lands: if DEST ends with "/" or is an existing directory, the
file goes into it under the URL's last path segment; otherwise DEST is the file's
own path (its parent directory is created). An hf:// repo and the objects under an
object-store prefix always go into DEST as a directory, keeping their relative paths.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ome_agent import _core
from ome_agent.errors import BadInput, NoDigest, UnsafePath
from ome_agent.sources import (
    HfRef,
    HttpRef,
    ObjectSource,
    RemoteFile,
    ResolvedSource,
    StorageAuth,
    check_globs,
    check_hex,
    parse_source,
    resolve_hf,
    resolve_http,
    resolve_object,
    select,
)
from ome_agent.transfer.confine import check_name, confine
from ome_agent.transfer.engine import build_engine
from ome_agent.transfer.hub_cache import HubCache
from ome_agent.transfer.progress import ProgressCallback, RetryCallback
from ome_agent.transfer.runner import Job, Outcome, Runner
from ome_agent.transfer.settings import TransferSettings
from ome_agent.transfer.summary import NO_SIZE, FileSummary, PullSummary


def pull(
    source: str,
    dest: str | os.PathLike[str] | None,
    settings: TransferSettings | None = None,
    *,
    revision: str | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    sha256: str | None = None,
    md5: str | None = None,
    params: Mapping[str, str] | None = None,
    on_progress: ProgressCallback | None = None,
    engine: _core.Engine | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    on_retry: RetryCallback | None = None,
) -> PullSummary:
    """Fetch SOURCE into DEST, verified; raise an :class:`~ome_agent.errors.OmeAgentError`.

    ``params`` are an object store's ``spec.storage.parameters`` (region, auth,
    endpoint, ...); credentials come from each vendor SDK's own chain. ``cache_dir``
    (hf:// only, instead of DEST): the Hugging Face cache layout (``hub_cache``).
    ``on_retry``: called with each retry of the engine, as it happens."""
    settings = settings or TransferSettings()
    started = time.monotonic()
    ref = parse_source(source, revision)
    if params and not isinstance(ref, ObjectSource):
        raise BadInput("--param applies to object stores (oci://, s3://, gs://, az://): drop it")
    if cache_dir is not None:
        if not isinstance(ref, HfRef):
            raise BadInput("--cache-dir applies to hf:// repos (the Hugging Face cache layout)")
        return _pull_cached(
            ref, Path(cache_dir), settings, include, exclude, engine, started, on_retry
        )
    if dest is None:
        raise BadInput("DEST is missing: give the folder (or file) to write into")
    dest_path = Path(dest)
    if isinstance(ref, HttpRef):
        if include or exclude:
            raise BadInput("--include/--exclude apply to hf:// repos: drop them for a single URL")
        root, name = _http_target(ref, str(dest))
        resolved = resolve_http(
            ref,
            file_name=name,
            sha256=check_hex(sha256, "sha256", "--sha256"),
            md5=check_hex(md5, "md5", "--md5"),
        )
    else:
        if sha256 is not None or md5 is not None:
            raise BadInput(
                "--sha256/--md5 apply to a single http(s) file: repo and bucket files are "
                "verified against the digests in their listing"
            )
        check_globs(include, "--include")
        check_globs(exclude, "--exclude")
        if dest_path.exists() and not dest_path.is_dir():
            raise BadInput(f"DEST {dest} is a file: {ref.display} needs a directory")
        root = dest_path
        if isinstance(ref, ObjectSource):
            listed = resolve_object(ref.ref, StorageAuth(parameters=dict(params or {})))
        else:
            listed = resolve_hf(ref)
        resolved = _selected(ref, listed, include, exclude)
    require_digests(resolved, settings, _PULL_FIX if isinstance(ref, HttpRef) else _LISTED_FIX)

    jobs = confined_jobs(root, resolved)
    try:
        root.mkdir(parents=True, exist_ok=True)
        runner = Runner(
            engine or build_engine(settings),
            jobs,
            settings,
            on_progress,
            on_retry=on_retry,
            xxh3=False,
        )
    except OSError as e:
        raise BadInput(f"DEST {dest}: cannot create {e.filename or root}: {e.strerror}") from None
    outcomes = runner.run()
    return _summarize(resolved, root, outcomes, settings, time.monotonic() - started)


def _pull_cached(
    ref: HfRef,
    cache_dir: Path,
    settings: TransferSettings,
    include: Sequence[str],
    exclude: Sequence[str],
    engine: _core.Engine | None,
    started: float,
    on_retry: RetryCallback | None,
) -> PullSummary:
    check_globs(include, "--include")
    check_globs(exclude, "--exclude")
    resolved = _selected(ref, resolve_hf(ref), include, exclude)
    require_digests(resolved, settings, _LISTED_FIX)
    assert resolved.commit is not None  # resolve_hf always pins one
    cache = HubCache(cache_dir, ref.repo_id)
    todo = cache.prepare(resolved.files, resolved.commit)
    root = cache.snapshot(resolved.commit)
    fetch = ResolvedSource(
        resolved.source, resolved.scheme, todo, resolved.revision, resolved.commit
    )
    jobs = confined_jobs(root, fetch)
    outcomes = (
        Runner(
            engine or build_engine(settings), jobs, settings, on_retry=on_retry, xxh3=False
        ).run()
        if jobs
        else []
    )
    cache.publish(resolved.files, resolved.commit, ref.revision)
    fetched = {f.path for f in todo}
    reused = [f for f in resolved.files if f.path not in fetched]
    return _summarize(resolved, root, outcomes, settings, time.monotonic() - started, reused)


def _reused(f: RemoteFile) -> FileSummary:
    # its blob is named by its digest and was verified when it was written
    return FileSummary(
        path=f.path,
        size=f.size or 0,
        verified=[],
        sha256=f.sha256,
        md5=None,
        git_sha1=f.git_sha1,
        xxh3_128=None,
        resumed_bytes=0,
        fetched_bytes=0,
        seconds=0.0,
        retries=0,
        connections=0,
        direct_io=False,
        reused=True,
    )


def _http_target(ref: HttpRef, dest: str) -> tuple[Path, str]:
    if dest.endswith(("/", os.sep)) or Path(dest).is_dir():
        name = ref.file_name
        if name is None:
            raise BadInput(
                f"SOURCE {ref.display} names no file (its path ends with '/'): give DEST as a "
                "file path, e.g. ./model.bin"
            )
        check_name(name)
        if "/" in name:  # a %2F in the last URL segment
            raise UnsafePath(name, "contains '/' after decoding")
        return Path(dest), name
    path = Path(dest)
    return path.parent, path.name


def _selected(
    ref: HfRef | ObjectSource,
    resolved: ResolvedSource,
    include: Sequence[str],
    exclude: Sequence[str],
) -> ResolvedSource:
    if not resolved.files:
        at = f" at commit {resolved.commit}" if resolved.commit else ""
        raise BadInput(f"{ref.display} has no files{at}")
    chosen = select(resolved.files, include, exclude)
    if not chosen:
        raise BadInput(
            f"no file of {ref.display} ({len(resolved.files)} files) matches "
            "--include/--exclude: loosen the patterns"
        )
    return ResolvedSource(
        resolved.source,
        resolved.scheme,
        chosen,
        resolved.revision,
        resolved.commit,
        resolved.warnings,
    )


_PULL_FIX = "give --sha256 or --md5, or drop --require-digest"
_LISTED_FIX = "drop --require-digest to accept it by its size"


def require_digests(resolved: ResolvedSource, settings: TransferSettings, fix: str) -> None:
    """``--require-digest``: :class:`NoDigest` naming the first file with no digest to
    check, the count of the others, and ``fix`` (the caller's: flags differ)."""
    if not settings.require_digest:
        return
    weak = [f for f in resolved.files if not f.has_digest]
    if weak:
        more = f" (and {len(weak) - 1} more files)" if len(weak) > 1 else ""
        why = weak[0].unverified or "no digest is known"
        raise NoDigest(f"{weak[0].path}{more}: {why}; --require-digest refuses it: {fix}")


def confined_jobs(root: Path, resolved: ResolvedSource) -> list[Job]:
    """One job per listed file, every name confined to ``root`` (also used by the agent)."""
    jobs: list[Job] = []
    seen: dict[Path, str] = {}
    for f in resolved.files:
        target = confine(root, f.path)
        if target in seen:
            raise UnsafePath(f.path, f"lands on the same file as {seen[target]!r}")
        seen[target] = f.path
        jobs.append(Job(f, target))
    # a file and a folder of the same name cannot both exist
    for target, name in seen.items():
        if any(parent in seen for parent in target.parents):
            raise UnsafePath(name, "lies under another listed file's path")
    return jobs


def _unverified(file: RemoteFile, result: _core.TransferResult) -> str | None:
    """Why ``file`` is not verified by a digest: the source's reason, or NO_SIZE."""
    if file.unverified is not None and not result.sized and file.size is None:
        return NO_SIZE
    return file.unverified


def _summarize(
    resolved: ResolvedSource,
    root: Path,
    outcomes: list[Outcome],
    settings: TransferSettings,
    seconds: float,
    reused: Sequence[RemoteFile] = (),
) -> PullSummary:
    """``reused``: files a cache already held (``--cache-dir``), nothing fetched."""
    files = [_reused(f) for f in reused]
    for o in outcomes:
        r = o.result
        verified = list(r.verified)
        if o.job.file.size is not None and r.size == o.job.file.size and "size" not in verified:
            verified.append("size")
        files.append(
            FileSummary(
                path=o.job.file.path,
                size=r.size,
                verified=verified,
                sha256=r.sha256,
                md5=r.md5,
                git_sha1=r.git_sha1,
                xxh3_128=r.xxh3_128,
                crc32c=r.crc32c,
                crc64nvme=r.crc64nvme,
                unverified=_unverified(o.job.file, r),
                resumed_bytes=r.resumed_bytes,
                fetched_bytes=r.fetched_bytes,
                seconds=r.seconds,
                retries=r.retries,
                connections=r.connections,
                direct_io=r.direct_io,
            )
        )
    files.sort(key=lambda f: f.path)
    total = sum(f.size for f in files)
    return PullSummary(
        source=resolved.source,
        scheme=resolved.scheme,
        revision=resolved.revision,
        commit=resolved.commit,
        dest=str(outcomes[0].job.dest if resolved.scheme == "http" else root),
        files=files,
        total_bytes=total,
        fetched_bytes=sum(f.fetched_bytes for f in files),
        seconds=seconds,
        throughput_bytes_per_sec=total / seconds if seconds > 0 else 0.0,
        verify=settings.verify,
        warnings=list(resolved.warnings),
    )
