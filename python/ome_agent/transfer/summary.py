"""The result of a pull: per-file facts and totals, as printed by ``--json``.

Built from the engine's ``TransferResult`` objects; this is also what the agent
will record in its local manifest (sizes, digests, what was verified).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ome_agent.sources.model import SIZE_ONLY

# ``FileSummary.unverified`` of a file whose server gave neither a size nor a digest:
# not even its length was checked (the body ended where the connection did)
NO_SIZE = "the server gave no size and no digest: nothing checked, unverified"


@dataclass(frozen=True)
class FileSummary:
    path: str  # relative to DEST
    size: int
    # "sha256" | "git-sha1" | "md5" | "crc32c" | "crc64nvme" | "md5-multipart" | "size"
    verified: list[str]
    sha256: str | None
    md5: str | None
    git_sha1: str | None
    xxh3_128: str | None
    resumed_bytes: int
    fetched_bytes: int
    seconds: float
    retries: int
    connections: int
    direct_io: bool  # written with O_DIRECT
    crc32c: str | None = None  # 8 hex digits; computed whenever hashing is on
    crc64nvme: str | None = None  # 16 hex digits; computed when the source gives one
    # why the file was checked by its size only (RemoteFile.unverified: "...: size
    # only, unverified"); None when a digest was checked
    unverified: str | None = None
    # already in the --cache-dir (its blob is named by its digest): nothing fetched
    reused: bool = False


@dataclass(frozen=True)
class PullSummary:
    source: str
    scheme: str
    revision: str | None
    commit: str | None
    dest: str
    files: list[FileSummary]
    total_bytes: int
    fetched_bytes: int
    seconds: float
    throughput_bytes_per_sec: float
    verify: bool
    # what the source fell back from (ResolvedSource.warnings)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        """One human line: what landed where, how fast, how it was checked."""
        mb = self.total_bytes / 1e6
        rate = self.throughput_bytes_per_sec / 1e6
        checked = sum(1 for f in self.files if set(f.verified) - {"size"})
        how = f"{checked}/{len(self.files)} verified by digest" if self.verify else "NOT verified"
        unsized = sum(1 for f in self.files if f.unverified == NO_SIZE)
        weak = sum(1 for f in self.files if f.unverified) - unsized
        if self.verify and weak:
            # the source gave no digest for these: said here, the reason is in --json
            how += f", {weak} {SIZE_ONLY}"
        if self.verify and unsized:
            how += f", {unsized} unverified (no size, no digest)"
        reused = sum(1 for f in self.files if f.reused)
        if reused:
            how += f", {reused} already in the cache"
        at = f" @ {self.commit[:12]}" if self.commit else ""
        return (
            f"{self.source}{at} -> {self.dest}: {len(self.files)} file(s), {mb:.1f} MB in "
            f"{self.seconds:.2f} s ({rate:.1f} MB/s), {how}"
        )
