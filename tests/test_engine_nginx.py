"""Engine against Debian nginx on loopback: the happy path at full size.

Proves: parallel ranged GETs into one preallocated file, verified end to end
(digests computed here independently), no leftovers, and that the default
adaptive settings open more than one connection where each connection is
rate-limited (nginx ``limit_rate``, like an object store).
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers.http_fixtures import DataFile, core, make_random_file
from tests.servers.nginx import NginxServer

MiB = 1024 * 1024


def _leftovers(dest: Path) -> list[Path]:
    return sorted(p for p in dest.parent.iterdir() if p.name.startswith(dest.name + "."))


def _fetch(engine: Any, nginx: NginxServer, name: str, dest: Path, **kw: Any) -> Any:
    """One transfer of ``name`` from nginx to ``dest``, run to the end."""
    return core().Transfer(engine, nginx.base_url + name, str(dest), **kw).run()


def _fetch_checked(engine: Any, nginx: NginxServer, file: DataFile, dest: Path, **kw: Any) -> Any:
    """``_fetch`` of a file of the nginx root, checked against its sha256."""
    return _fetch(engine, nginx, file.path.name, dest, sha256=file.sha256, **kw)


@pytest.fixture(scope="session")
def medium_file(nginx_root: Path) -> DataFile:
    return make_random_file(nginx_root / "medium.bin", 16 * MiB + 12345, seed=2)


def test_multi_range_download_is_verified_and_clean(
    engine: Any, nginx: NginxServer, big_file: DataFile, tmp_path: Path
) -> None:
    dest = tmp_path / "big.bin"
    t = core().Transfer(
        engine,
        nginx.base_url + "big.bin",
        str(dest),
        sha256=big_file.sha256,
        expected_size=big_file.size,
        connections=4,
        chunk_size=8 * MiB,
        xxh3=True,
    )
    res = t.run()

    assert dest.stat().st_size == big_file.size
    assert res.size == big_file.size
    assert res.sha256 == big_file.sha256
    assert "sha256" in res.verified
    assert res.xxh3_128 == big_file.xxh3_128
    assert res.ranged is True
    assert res.connections >= 2
    assert res.resumed_bytes == 0
    assert res.fetched_bytes == big_file.size
    assert _leftovers(dest) == [], "the .partial file and its journal must be gone"
    # The local digest is recomputed from disk: what landed is what was verified.
    h = hashlib.sha256(dest.read_bytes()).hexdigest()
    assert h == big_file.sha256

    gets = [r for r in nginx.records() if r.method == "GET" and r.path == "/big.bin"]
    ranged = [r for r in gets if r.range is not None]
    assert len(ranged) >= 4, f"expected several range requests, saw {gets}"
    assert all(r.status == 206 for r in ranged)
    assert len({r.connection for r in ranged}) >= 2, "several TCP connections expected"
    # Keep-alive: connections carry more than one request each.
    assert max(r.connection_requests for r in ranged) >= 2
    # Nothing fetched twice.
    assert sum(r.body_bytes_sent for r in gets) == big_file.size


def test_rate_limited_location_grows_connections_by_default(
    engine: Any, nginx: NginxServer, big_file: DataFile, tmp_path: Path
) -> None:
    dest = tmp_path / "slow.bin"
    res = core().Transfer(engine, nginx.slow_url + "big.bin", str(dest)).run()

    assert res.sha256 == big_file.sha256
    assert res.connections > 1, "adaptive default should add connections when each is capped"
    gets = [r for r in nginx.records() if r.method == "GET" and r.path == "/slow/big.bin"]
    assert len({r.connection for r in gets if r.range is not None}) > 1
    assert _leftovers(dest) == []


def test_all_digests_and_hash_off(
    engine: Any, nginx: NginxServer, medium_file: DataFile, tmp_path: Path
) -> None:
    data = medium_file.path.read_bytes()
    git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324
    dest = tmp_path / "m.bin"
    res = _fetch_checked(
        engine,
        nginx,
        medium_file,
        dest,
        md5=medium_file.md5,
        git_sha1=git_sha1,
        expected_size=medium_file.size,
        chunk_size=MiB,
        connections=3,
    )
    assert {"sha256", "md5", "git-sha1"} <= set(res.verified)
    assert (res.sha256, res.md5, res.git_sha1) == (medium_file.sha256, medium_file.md5, git_sha1)
    assert res.xxh3_128 is None, "xxh3 is computed only when asked for (xxh3=True)"

    dest2 = tmp_path / "m2.bin"
    res2 = _fetch(engine, nginx, "medium.bin", dest2, hash=False)
    assert res2.sha256 is None
    assert res2.verified == []
    assert dest2.read_bytes() == data


def test_direct_io_write_path(
    engine: Any, nginx: NginxServer, medium_file: DataFile, tmp_path: Path
) -> None:
    """O_DIRECT writes (unaligned tail included: the size is not a block multiple)."""
    assert medium_file.size % 4096 != 0
    dest = tmp_path / "direct.bin"
    res = _fetch_checked(
        engine, nginx, medium_file, dest, direct_io=True, chunk_size=4 * MiB, connections=2
    )
    assert res.sha256 == medium_file.sha256
    assert hashlib.sha256(dest.read_bytes()).hexdigest() == medium_file.sha256
    assert _leftovers(dest) == []
    assert res.direct_io is (_filesystem_type(tmp_path) not in ("tmpfs", "ramfs"))


def _filesystem_type(path: Path) -> str:
    """The mount type of the longest mount point holding ``path``."""
    best, kind = "", ""
    for line in Path("/proc/self/mounts").read_text().splitlines():
        mount, fstype = line.split()[1:3]
        inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


def test_direct_io_is_chosen_automatically_by_size_and_filesystem(
    engine: Any, nginx: NginxServer, big_file: DataFile, medium_file: DataFile, tmp_path: Path
) -> None:
    """direct_io=None: O_DIRECT for large files on storage, buffered on tmpfs or when small."""
    if _filesystem_type(tmp_path) in ("tmpfs", "ramfs"):
        pytest.skip("the temporary directory is itself on tmpfs")

    on_disk = _fetch(engine, nginx, "big.bin", tmp_path / "big.bin", sha256=big_file.sha256)
    assert on_disk.direct_io is True
    small = _fetch_checked(engine, nginx, medium_file, tmp_path / "medium.bin")
    assert small.direct_io is False
    forced_off = _fetch(
        engine, nginx, "big.bin", tmp_path / "big2.bin", sha256=big_file.sha256, direct_io=False
    )
    assert forced_off.direct_io is False
    shm = Path("/dev/shm")
    if shm.is_dir() and _filesystem_type(shm) == "tmpfs":
        in_memory = shm / f"ome-agent-test-{tmp_path.name}.bin"
        try:
            assert (
                _fetch(engine, nginx, "big.bin", in_memory, sha256=big_file.sha256).direct_io
                is False
            )
        finally:
            in_memory.unlink(missing_ok=True)


def test_empty_file_from_nginx(
    engine: Any, nginx: NginxServer, nginx_root: Path, tmp_path: Path
) -> None:
    (nginx_root / "empty.bin").write_bytes(b"")
    dest = tmp_path / "empty.bin"
    res = _fetch(engine, nginx, "empty.bin", dest)
    assert res.size == 0
    assert res.sha256 == hashlib.sha256(b"").hexdigest()
    assert dest.read_bytes() == b""


def test_sha256_mismatch_fails_without_final_file(
    engine: Any, nginx: NginxServer, medium_file: DataFile, tmp_path: Path
) -> None:
    dest = tmp_path / "bad.bin"
    wrong = "0" * 64
    with pytest.raises(core().ChecksumMismatch) as ei:
        _fetch(engine, nginx, "medium.bin", dest, sha256=wrong, chunk_size=MiB)
    exc = ei.value
    assert exc.algorithm == "sha256"
    assert exc.expected == wrong
    assert exc.actual == medium_file.sha256
    assert wrong in str(exc)
    assert medium_file.sha256 in str(exc)
    assert isinstance(exc, ValueError)
    assert not dest.exists()


def test_size_mismatch_fails_without_final_file(
    engine: Any, nginx: NginxServer, medium_file: DataFile, tmp_path: Path
) -> None:
    dest = tmp_path / "bad.bin"
    with pytest.raises(core().ChecksumMismatch) as ei:
        _fetch(engine, nginx, "medium.bin", dest, expected_size=medium_file.size + 1)
    exc = ei.value
    assert exc.algorithm == "size"
    assert exc.expected == str(medium_file.size + 1)
    assert exc.actual == str(medium_file.size)
    assert not dest.exists()


MEMORY_CHILD = """
import resource, sys
from ome_agent._core import Engine, Transfer
url, dest, sha = sys.argv[1:4]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
engine = Engine(max_in_flight_bytes=32 * 1024 * 1024)
res = Transfer(engine, url, dest, sha256=sha).run()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before * 1024, after * 1024, res.connections)
"""


def test_memory_stays_bounded_by_in_flight_cap(
    nginx: NginxServer, big_file: DataFile, tmp_path: Path
) -> None:
    """256 MiB through a 32 MiB in-flight budget: peak RSS grows by far less
    than the file (ru_maxrss of a fresh child process, in bytes)."""
    core()
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            MEMORY_CHILD,
            nginx.base_url + "big.bin",
            str(tmp_path / "big.bin"),
            big_file.sha256,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    before, after, _conns = (int(x) for x in out.stdout.split())
    growth = after - before
    assert growth < 96 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB for a 32 MiB budget"
