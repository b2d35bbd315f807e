"""TLS and proxies, through real servers on loopback.

TLS: the fault server speaks HTTPS with a certificate signed by a CA the test makes
with the openssl CLI; the engine must refuse it by default (not in the system
roots) and accept it with ``ca_bundle``. Proxies: the engine reads
``HTTP_PROXY`` / ``NO_PROXY`` from the environment, so each case runs in its own
process; a second fault server stands in as the proxy and records the
absolute-form request line a proxied client sends.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers.fault_server import FaultServer
from tests.servers.http_fixtures import core

DATA = os.urandom(5 * 1024 * 1024 + 3)
SHA = hashlib.sha256(DATA).hexdigest()
REPO_ROOT = Path(__file__).resolve().parents[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throwaway CA and a server certificate for 127.0.0.1, made by openssl."""
    d = tmp_path_factory.mktemp("pki")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=ome-agent test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        cwd=d,
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=d,
    )
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.pem",
        cwd=d,
    )
    return d


@pytest.fixture
def https_server(pki: Path) -> Iterator[FaultServer]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki / "server.pem", pki / "server.key")
    with FaultServer("127.0.0.1", tls=ctx) as s:
        yield s


def test_https_needs_the_ca_bundle_of_a_private_ca(
    https_server: FaultServer, pki: Path, tmp_path: Path
) -> None:
    url = https_server.add("/m.bin", DATA)
    assert url.startswith("https://")
    plain = core().Engine(connect_timeout=2.0, stall_timeout=2.0, max_retries=0)
    with pytest.raises(core().TransferError) as refused:
        core().Transfer(plain, url, str(tmp_path / "a.bin"), sha256=SHA).run()
    assert "certificate" in str(refused.value).lower() or "tls" in str(refused.value).lower()
    assert not (tmp_path / "a.bin").exists()

    trusted = core().Engine(ca_bundle=str(pki / "ca.pem"), connect_timeout=2.0)
    res = core().Transfer(trusted, url, str(tmp_path / "b.bin"), sha256=SHA).run()
    assert res.sha256 == SHA
    assert (tmp_path / "b.bin").read_bytes() == DATA


def _transfer_in_subprocess(url: str, dest: Path, env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, sys\n"
        "from ome_agent import _core\n"
        "e = _core.Engine(connect_timeout=2.0, max_retries=0)\n"
        "r = _core.Transfer(e, sys.argv[1], sys.argv[2], sha256=sys.argv[3]).run()\n"
        "print(json.dumps({'sha256': r.sha256}))\n"
    )
    clean = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    done = subprocess.run(
        [sys.executable, "-c", code, url, str(dest), SHA],
        env={**clean, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_http_proxy_and_no_proxy_from_the_environment(
    fault_server: FaultServer, fault_server_b: FaultServer, tmp_path: Path
) -> None:
    origin, proxy = fault_server, fault_server_b
    url = origin.add("/model.bin", DATA)
    proxy.add("/model.bin", DATA)

    via_proxy = _transfer_in_subprocess(url, tmp_path / "p.bin", {"HTTP_PROXY": proxy.base_url})
    assert via_proxy["sha256"] == SHA
    assert origin.requests == [], "with HTTP_PROXY the origin is not contacted"
    assert proxy.requests, "the proxy saw no request"
    assert all(r.proxied and r.proxied.startswith(url) for r in proxy.requests)

    seen = len(proxy.requests)
    bypass = {"HTTP_PROXY": proxy.base_url, "NO_PROXY": origin.host}
    direct = _transfer_in_subprocess(url, tmp_path / "d.bin", bypass)
    assert direct["sha256"] == SHA
    assert len(proxy.requests) == seen, "NO_PROXY must bypass the proxy"
    assert origin.requests
