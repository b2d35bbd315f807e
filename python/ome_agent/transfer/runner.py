"""Runs many file transfers at once through one shared engine (transfer layer core).

Files go to a thread pool, largest first (the long pole starts early); each
``Transfer.run`` releases the GIL, and the one ``Engine`` caps connections over all
of them. The calling thread only polls counters for progress and waits, which is
also where Ctrl-C lands: every transfer is then cancelled (partial files and their
journals stay for a resume) and :class:`~ome_agent.errors.Interrupted` is raised.
The first failing file cancels the others and its error is raised.

Each retry the engine makes is taken from its ``Transfer`` at the same polls, logged
(``retry`` at INFO, with ``file``, ``reason`` = the failure kind, ``attempt`` and
``wait_s``) and handed to ``on_retry`` (the CLI prints it above its bar, the agent
counts it in its metrics).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from ome_agent import _core
from ome_agent.errors import Interrupted, OmeAgentError
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer.failures import describe
from ome_agent.transfer.progress import (
    ProgressCallback,
    RateMeter,
    RetryCallback,
    RetryNotice,
    Snapshot,
)
from ome_agent.transfer.settings import TransferSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    file: RemoteFile
    dest: Path  # absolute, already confined to DEST


@dataclass(frozen=True)
class Outcome:
    job: Job
    result: _core.TransferResult


# Range size for files whose every request is signed (OCI: an RSA signature, ~1 ms):
# the adaptive size goes down to 1 MiB, where signing would cost about a CPU-second
# per GB; at 16 MiB it is noise. Memory stays bounded by the engine's window.
SIGNED_CHUNK = 16 * 1024 * 1024


def _make_transfer(
    engine: _core.Engine, job: Job, settings: TransferSettings, *, xxh3: bool
) -> _core.Transfer:
    f = job.file
    check = settings.verify  # --no-verify: no expected digests, no hashing at all
    multipart = f.md5_multipart
    kwargs = settings.transfer_kwargs()
    if f.sign is not None and kwargs["chunk_size"] is None:
        kwargs["chunk_size"] = SIGNED_CHUNK
    return _core.Transfer(
        engine,
        f.url,
        str(job.dest),
        headers=dict(f.headers) or None,
        expected_size=f.size,
        sha256=f.sha256 if check else None,
        md5=f.md5 if check else None,
        git_sha1=f.git_sha1 if check else None,
        crc32c=f.crc32c if check else None,
        crc64nvme=f.crc64nvme if check else None,
        md5_multipart=(multipart.part_size, multipart.digest) if check and multipart else None,
        # not a digest: a changed object is refused even with --no-verify
        expected_etag=f.etag,
        sign=f.sign,
        xxh3=xxh3,
        **kwargs,
    )


class Runner:
    def __init__(
        self,
        engine: _core.Engine,
        jobs: list[Job],
        settings: TransferSettings,
        on_progress: ProgressCallback | None = None,
        interval: float = 0.2,
        on_retry: RetryCallback | None = None,
        *,
        xxh3: bool = True,
    ) -> None:
        """``xxh3``: also compute each file's xxh3-128, which the agent records in its
        manifests; ``pull`` reports no such digest and saves the CPU."""
        # largest first; unknown sizes (plain URLs) count as large
        self.jobs = sorted(
            jobs, key=lambda j: -(j.file.size if j.file.size is not None else 1 << 62)
        )
        for parent in {j.dest.parent for j in self.jobs}:  # the engine wants them to exist
            parent.mkdir(parents=True, exist_ok=True)
        self.transfers = [_make_transfer(engine, j, settings, xxh3=xxh3) for j in self.jobs]
        self.settings = settings
        self.on_progress = on_progress
        self.on_retry = on_retry
        self.interval = interval
        self._stop = threading.Event()
        self._finished: dict[int, int] = {}  # job index -> size, once done
        self._meter = RateMeter()
        self._started = time.monotonic()

    def _run_one(self, index: int) -> _core.TransferResult:
        if self._stop.is_set():
            raise _core.Cancelled("not started: the pull was stopped")
        return self.transfers[index].run()

    def cancel(self) -> None:
        self._stop.set()
        for t in self.transfers:
            t.cancel()

    def _report_retries(self) -> None:
        """Log each retry made since the last poll and hand it to ``on_retry``."""
        for job, t in zip(self.jobs, self.transfers, strict=True):
            for number, of, kind, message, pause in t.take_retries():
                notice = RetryNotice(job.file.path, number, of, kind, message, pause)
                log.info(
                    "retry",
                    extra={
                        "file": notice.path,
                        "reason": kind,
                        "attempt": f"{number}/{of}",
                        "wait_s": f"{pause:.1f}",
                        "detail": message,
                    },
                )
                if self.on_retry is not None:
                    self.on_retry(notice)

    def snapshot(self) -> Snapshot:
        done = 0
        total: int | None = 0
        active = []
        for i, (job, t) in enumerate(zip(self.jobs, self.transfers, strict=True)):
            if i in self._finished:
                done += self._finished[i]
                size: int | None = self._finished[i]
            else:
                done += t.done_bytes
                size = job.file.size if job.file.size is not None else t.total_bytes
                if t.done_bytes:
                    active.append(job.file.path)
            total = None if total is None or size is None else total + size
        return Snapshot(
            done_bytes=done,
            total_bytes=total,
            files_done=len(self._finished),
            files_total=len(self.jobs),
            rate=self._meter.update(done),
            seconds=time.monotonic() - self._started,
            active=active,
        )

    def run(self) -> list[Outcome]:
        workers = max(1, min(self.settings.parallel_files, len(self.jobs)))
        outcomes: dict[int, Outcome] = {}
        first_error: OmeAgentError | None = None
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ome-pull")
        futures: dict[Future[_core.TransferResult], int] = {
            pool.submit(self._run_one, i): i for i in range(len(self.jobs))
        }
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=self.interval, return_when=FIRST_EXCEPTION)
                for fut in done:
                    i = futures[fut]
                    exc = fut.exception()
                    if exc is None:
                        result = fut.result()
                        self._finished[i] = result.size
                        outcomes[i] = Outcome(self.jobs[i], result)
                    elif first_error is None and not self._stop.is_set():
                        first_error = describe(self.jobs[i].file.path, exc)
                        self.cancel()
                self._report_retries()
                if self.on_progress is not None:
                    self.on_progress(self.snapshot())
        except KeyboardInterrupt:
            self.cancel()
            wait(pending)
            raise Interrupted("interrupted: transfers cancelled; rerun to resume") from None
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if first_error is not None:
            raise first_error
        if len(outcomes) < len(self.jobs):  # cancel() from another thread
            raise Interrupted("cancelled: partial files kept for a resume")
        return [outcomes[i] for i in range(len(self.jobs))]
