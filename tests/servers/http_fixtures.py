"""pytest fixtures for the engine's integration tests: servers and test files.

Where it sits: glue between the test modules (tests/test_engine_*.py,
tests/test_resume*.py) and the servers in this package (nginx, fault server).
Servers are started per test so each test reads only its own request log; the
large synthetic files are made once per session.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import xxhash

from tests.servers.fault_server import FaultServer
from tests.servers.nginx import NginxServer

MiB = 1024 * 1024


@dataclass(frozen=True)
class DataFile:
    """A synthetic file with digests computed here, independently of the engine."""

    path: Path
    size: int
    sha256: str
    md5: str
    xxh3_128: str


def _xxh3_128(path: Path) -> str:
    h = xxhash.xxh3_128()
    with path.open("rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return str(h.hexdigest())


def make_random_file(path: Path, size: int, *, seed: int = 0) -> DataFile:
    """Write ``size`` bytes: a random 1 MiB block repeated, each copy stamped with
    its index and the seed, so no two blocks are equal (a misplaced range would
    change the digest) while generation stays fast."""
    rnd = bytearray(os.urandom(MiB))
    sha = hashlib.sha256()
    md5 = hashlib.md5()  # noqa: S324 - a digest the engine verifies, not security
    with path.open("wb") as f:
        written = 0
        i = 0
        while written < size:
            rnd[0:16] = i.to_bytes(8, "little") + seed.to_bytes(8, "little")
            block = bytes(rnd[: min(MiB, size - written)])
            f.write(block)
            sha.update(block)
            md5.update(block)
            written += len(block)
            i += 1
    return DataFile(path, size, sha.hexdigest(), md5.hexdigest(), _xxh3_128(path))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(8 * MiB):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------- engine
def core() -> Any:
    """The compiled module; a clear failure (not a skip) when it is not built."""
    try:
        from ome_agent import _core
    except ImportError as e:  # pragma: no cover - environment problem
        pytest.fail(f"ome_agent._core is not importable ({e}); run: make build")
    if not hasattr(_core, "Transfer"):
        pytest.fail("ome_agent._core has no Transfer: the engine is not built; run: make build")
    return _core


@pytest.fixture
def engine() -> Any:
    """An Engine with short timeouts so fault tests take seconds."""
    return core().Engine(connect_timeout=2.0, stall_timeout=1.0, max_retries=4)


# ---------------------------------------------------------------- servers
@pytest.fixture
def fault_server() -> Iterator[FaultServer]:
    with FaultServer("127.0.0.1") as s:
        yield s


@pytest.fixture
def fault_server_b() -> Iterator[FaultServer]:
    """A second origin on another loopback address (a different host for the
    client: credentials must not follow redirects to it)."""
    with FaultServer("127.0.0.2") as s:
        yield s


@pytest.fixture(scope="session")
def nginx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("nginx-root")


@pytest.fixture(scope="session")
def big_file(nginx_root: Path) -> DataFile:
    """256 MiB of random content served by nginx."""
    return make_random_file(nginx_root / "big.bin", 256 * MiB, seed=1)


@pytest.fixture
def nginx(nginx_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[NginxServer]:
    """nginx over the session's data directory, fresh access log per test;
    ``/slow/`` at 40 MB/s per connection."""
    with NginxServer(nginx_root, limit_rate="40m", workdir=tmp_path_factory.mktemp("nginx")) as n:
        yield n
