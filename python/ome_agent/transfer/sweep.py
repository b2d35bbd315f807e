"""Throughput tuning: sweep connection counts and chunk sizes against one source.

Where it sits: behind ``ome-agent bench`` (cli/bench.py), beside the transfer
path. It drives the Rust engine (``ome_agent._core``) in-process exactly the way
``pull`` does, one setting at a time, and measures what an operator pays for
each setting: throughput, CPU seconds of this process (the engine's threads
included) and peak resident memory. The recommended setting maps 1:1 onto
``pull``'s ``--connections`` / ``--chunk-size`` flags.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ome_agent import _core
from ome_agent.errors import BadInput

DEFAULT_CONNECTIONS: tuple[int, ...] = (1, 4, 8, 16, 32, 64)
DEFAULT_CHUNK_SIZES: tuple[int, ...] = tuple(n * 1024 * 1024 for n in (4, 8, 16, 64))
# Settings within this fraction of the fastest count as tied; the cheaper in CPU wins.
TIE_TOLERANCE = 0.05
# Bytes of the unmeasured warm-up download that precedes a sweep.
WARMUP_BYTES = 64 * 1024 * 1024
# How often peak RSS and the --max-bytes budget are checked while a transfer runs.
SAMPLE_INTERVAL = 0.01


# Bad input to a sweep is the project's BadInput (exit 2, the message names the
# value and the fix); the name is kept for callers that read better with it.
TuningInputError = BadInput


# ---------------------------------------------------------------- parsing
def parse_size(text: str, *, what: str = "size") -> int:
    """A size as ``pull`` reads it (``8M`` = ``8MiB`` = 8·2²⁰, ``8MB`` = 8·10⁶, bare = bytes).

    Delegates to pull's parser so that a value means the same in both commands."""
    from ome_agent.transfer.settings import parse_size as pull_parse_size

    value = pull_parse_size(text.strip(), what)
    if value <= 0:
        raise TuningInputError(f"{what}: {text!r} must be greater than zero")
    return value


def format_size(n: int) -> str:
    """Bytes as the shortest exact binary-unit string (``16MiB``), for flags and tables."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n % factor == 0:
            return f"{n // factor}{unit}"
    return str(n)


def parse_int_list(text: str, *, what: str) -> list[int]:
    """``"1,4,8"`` -> ``[1, 4, 8]`` (deduplicated, order kept, each >= 1)."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or int(part) < 1:
            raise TuningInputError(
                f"{what}: {part!r} is not a positive whole number; write e.g. 1,4,8,16"
            )
        if int(part) not in out:
            out.append(int(part))
    if not out:
        raise TuningInputError(f"{what}: the list is empty; write e.g. 1,4,8,16")
    return out


def parse_size_list(text: str, *, what: str) -> list[int]:
    """``"4MiB,16MiB"`` -> bytes, deduplicated, order kept."""
    out: list[int] = []
    for part in text.split(","):
        if part.strip():
            size = parse_size(part, what=what)
            if size not in out:
                out.append(size)
    if not out:
        raise TuningInputError(f"{what}: the list is empty; write e.g. 4MiB,16MiB")
    return out


# ---------------------------------------------------------------- sources
@dataclass(frozen=True)
class ResolvedSource:
    """What the engine fetches. ``headers`` may hold a token: never print it."""

    url: str
    headers: dict[str, str]
    display: str  # safe to print: no token, no query string


def redact_url(url: str) -> str:
    """The URL without query string and user info (signed URLs carry credentials there)."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def resolve_source(source: str) -> ResolvedSource:
    """A URL, or ``hf://org/name/path/to/file[@rev]`` (also ``hf://org/name@rev/path``).

    An hf:// file becomes ``{HF_ENDPOINT}/{org}/{name}/resolve/{rev}/{path}``
    with ``HF_TOKEN`` as bearer token, the URL huggingface_hub itself fetches.
    """
    if source.startswith(("http://", "https://")):
        if not urlsplit(source).netloc:
            raise TuningInputError(f"SOURCE: {source!r} has no host; write http(s)://host/path")
        return ResolvedSource(url=source, headers={}, display=redact_url(source))
    if source.startswith("hf://"):
        return _resolve_hf_file(source)
    raise TuningInputError(
        f"SOURCE: {source!r} is neither an http(s):// URL nor an hf://org/name/path/to/file "
        "path; bench measures one file over HTTP (for an object store, bench a presigned "
        "http(s) URL of one object)"
    )


def _resolve_hf_file(source: str) -> ResolvedSource:
    rest = source[len("hf://") :]
    parts = [p for p in rest.split("/") if p]
    revision = "main"
    # The revision may follow the repo name (huggingface_hub's own form) or the file path.
    if len(parts) >= 2 and "@" in parts[1]:
        parts[1], revision = parts[1].split("@", 1)
    elif parts and "@" in parts[-1]:
        parts[-1], revision = parts[-1].rsplit("@", 1)
    if len(parts) < 3 or not all(parts) or not revision:
        raise TuningInputError(
            f"SOURCE: {source!r} does not name a file; write hf://org/name/path/to/file[@revision]"
        )
    if any(p in (".", "..") for p in parts):
        raise TuningInputError(f"SOURCE: {source!r} contains '.' or '..' path segments")
    from huggingface_hub import constants, get_token

    from ome_agent.sources.schemes import parse_source

    repo = "/".join(parts[:2])
    # pull's own parser checks the repo id and revision with the Hub's rules.
    parse_source(f"hf://{repo}", revision)
    endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    path = "/".join(parts[2:])
    url = f"{endpoint.rstrip('/')}/{repo}/resolve/{quote(revision, safe='')}/{quote(path)}"
    token = get_token()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return ResolvedSource(url=url, headers=headers, display=source)


# ---------------------------------------------------------------- settings
@dataclass(frozen=True)
class Setting:
    """One point of the sweep; ``None`` means the engine's adaptive default."""

    connections: int | None
    chunk_size: int | None

    @property
    def label(self) -> str:
        if self.connections is None and self.chunk_size is None:
            return "auto"
        conns = "auto" if self.connections is None else str(self.connections)
        chunk = "auto" if self.chunk_size is None else format_size(self.chunk_size)
        return f"{conns} x {chunk}"

    def pull_flags(self) -> list[str]:
        """The ``pull`` flags that reproduce this setting (empty for the defaults)."""
        flags: list[str] = []
        if self.connections is not None:
            flags += ["--connections", str(self.connections)]
        if self.chunk_size is not None:
            flags += ["--chunk-size", format_size(self.chunk_size)]
        return flags


def grid(
    connections: Iterable[int], chunk_sizes: Iterable[int], *, include_auto: bool = True
) -> list[Setting]:
    """Every (connections, chunk size) pair, plus the adaptive default first."""
    chunks = list(chunk_sizes)
    settings = [Setting(None, None)] if include_auto else []
    settings += [Setting(c, s) for c in connections for s in chunks]
    return settings


@dataclass
class Sample:
    """One transfer of one setting."""

    bytes: int
    seconds: float
    cpu_seconds: float
    peak_rss: int
    complete: bool  # False when stopped at --max-bytes


@dataclass
class Measurement:
    """All samples of one setting; medians are what the table shows."""

    setting: Setting
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.samples)

    @property
    def seconds(self) -> float:
        return statistics.median(s.seconds for s in self.samples)

    @property
    def bytes(self) -> int:
        return int(statistics.median(s.bytes for s in self.samples))

    @property
    def gbps(self) -> float:
        # Median of per-run rates: with --max-bytes each run may stop at a different byte.
        return statistics.median(
            s.bytes / 1e9 / s.seconds if s.seconds > 0 else 0.0 for s in self.samples
        )

    @property
    def cpu_seconds_per_gb(self) -> float:
        return statistics.median(
            s.cpu_seconds / (s.bytes / 1e9) if s.bytes else 0.0 for s in self.samples
        )

    @property
    def peak_rss(self) -> int:
        return max(s.peak_rss for s in self.samples)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "setting": self.setting.label,
            "connections": self.setting.connections,
            "chunk_size": self.setting.chunk_size,
            "pull_flags": self.setting.pull_flags(),
            "runs": len(self.samples),
            "error": self.error,
        }
        if self.ok:
            out.update(
                bytes=self.bytes,
                seconds=round(self.seconds, 4),
                gb_per_s=round(self.gbps, 4),
                cpu_seconds_per_gb=round(self.cpu_seconds_per_gb, 4),
                peak_rss_bytes=self.peak_rss,
                complete=all(s.complete for s in self.samples),
            )
        return out


def recommend(
    measurements: Sequence[Measurement], *, tolerance: float = TIE_TOLERANCE
) -> Measurement | None:
    """The fastest setting; among those within ``tolerance`` of it, the lowest CPU per GB."""
    ok = [m for m in measurements if m.ok]
    if not ok:
        return None
    best = max(m.gbps for m in ok)
    tied = [m for m in ok if m.gbps >= best * (1.0 - tolerance)]
    return min(tied, key=lambda m: (m.cpu_seconds_per_gb, -m.gbps))


# ---------------------------------------------------------------- measuring
def _rss_bytes() -> int:
    # VmRSS of this process now; ru_maxrss would be the lifetime peak, not this run's.
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu_seconds() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _remove_outputs(dest: Path) -> None:
    for p in (dest, Path(f"{dest}.partial"), Path(f"{dest}.partial.journal")):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def measure_once(
    engine: _core.Engine,
    source: ResolvedSource,
    dest: Path,
    setting: Setting,
    *,
    max_bytes: int | None = None,
    verify: bool = True,
) -> Sample:
    """Download ``source`` once into a fresh ``dest`` with ``setting``; always cleans up."""
    _remove_outputs(dest)
    transfer = _core.Transfer(
        engine,
        source.url,
        str(dest),
        headers=source.headers or None,
        hash=verify,
        connections=setting.connections,
        chunk_size=setting.chunk_size,
        resume=False,
    )
    stop = threading.Event()
    stopped_early = threading.Event()
    peak = [_rss_bytes()]

    def watch() -> None:
        while not stop.wait(SAMPLE_INTERVAL):
            peak[0] = max(peak[0], _rss_bytes())
            if max_bytes is not None and transfer.done_bytes >= max_bytes:
                stopped_early.set()
                transfer.cancel()
                return

    watcher = threading.Thread(target=watch, name="bench-sampler", daemon=True)
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    watcher.start()
    try:
        try:
            result = transfer.run()
            done, complete = result.size, True
        except _core.Cancelled:
            if not stopped_early.is_set():
                raise
            done, complete = transfer.done_bytes, False
        seconds = time.perf_counter() - t0
        cpu = _cpu_seconds() - cpu0
    finally:
        stop.set()
        watcher.join()
        _remove_outputs(dest)
    peak[0] = max(peak[0], _rss_bytes())
    return Sample(
        bytes=done,
        seconds=seconds,
        cpu_seconds=cpu,
        peak_rss=peak[0],
        complete=complete,
    )


def sweep(
    source: ResolvedSource,
    settings: Sequence[Setting],
    *,
    dest_dir: Path | None = None,
    runs: int = 1,
    max_bytes: int | None = None,
    verify: bool = True,
    warmup: bool = True,
    on_sample: Callable[[Measurement, int], None] | None = None,
) -> list[Measurement]:
    """Measure every setting ``runs`` times.

    Runs are interleaved (round r starts at setting r) so slow drifts of a noisy
    machine spread over all settings instead of penalising whichever ran last.
    A setting that fails keeps its error and is left out of later rounds.
    """
    if runs < 1:
        raise TuningInputError("--runs: must be at least 1")
    if dest_dir is not None and not dest_dir.is_dir():
        raise TuningInputError(
            f"--dest-dir: {dest_dir} is not a directory; create it or pick another"
        )
    max_conns = max([s.connections or 0 for s in settings] + [64])
    engine = _core.Engine(max_connections=max_conns)
    workdir = Path(tempfile.mkdtemp(prefix="ome-bench-", dir=dest_dir))
    dest = workdir / "bench.bin"
    results = [Measurement(s) for s in settings]
    try:
        if warmup and settings:
            # Unmeasured: the engine's runtime, the connection pool and the server's
            # cache would otherwise all be charged to whichever setting runs first.
            with contextlib.suppress(_core.EngineError):
                budget = min(WARMUP_BYTES, max_bytes or WARMUP_BYTES)
                measure_once(engine, source, dest, settings[0], max_bytes=budget, verify=verify)
        for r in range(runs):
            order = results[r % len(results) :] + results[: r % len(results)]
            for m in order:
                if m.error is not None:
                    continue
                try:
                    m.samples.append(
                        measure_once(
                            engine, source, dest, m.setting, max_bytes=max_bytes, verify=verify
                        )
                    )
                except _core.EngineError as e:
                    m.error = f"{type(e).__name__}: {e}"
                if on_sample is not None:
                    on_sample(m, r)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def probe(source: ResolvedSource) -> int | None:
    """Size of the source (``None`` when the server sends none); raises the engine's errors."""
    # Few retries: an unreachable source should fail in seconds, not after minutes of backoff.
    info = _core.Engine(max_retries=2).head(source.url, headers=source.headers or None)
    size = info.get("size")
    return size if isinstance(size, int) else None
