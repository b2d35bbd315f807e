"""Azurite (Microsoft's Azure Storage emulator, from npm) on loopback for the az:// tests.

Where it sits: the Blob service the ``sources.azure`` tests list and download from.
``scripts/install-azurite.sh`` installs the pinned version into ``.cache/azurite/``
(fast when already there). Storage is in memory; the access log (one line per
request, with its query string) is kept in a file so tests can count requests.

``--skipApiVersionCheck`` is needed: the SDK sends an API version newer than the
emulator knows, which Azurite refuses otherwise. It serves HTTPS, like the real
service, with a test CA (clients trust ``ca_path``): that is also the only way it
accepts Bearer tokens (``--oauth basic``), whose issuer, audience and lifetime it
checks but not their signature.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.cluster.controlplane import _cert, _key, _key_pem, _pem, free_port
from tests.servers.managed import Managed
from tests.servers.process import connects, stop_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
INSTALL = ROOT / "scripts" / "install-azurite.sh"
# the emulator's well-known development account, published in its documentation
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azurite_binary() -> str:
    """Path of azurite-blob, installing it if needed; a clear failure if that fails."""
    proc = subprocess.run([str(INSTALL)], capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(
            f"{INSTALL} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}"
        )
    return proc.stdout.strip().splitlines()[-1]


class Azurite(Managed):
    """One azurite-blob process over HTTPS (like the real service), Bearer tokens on."""

    def __init__(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        self.log_path = self.workdir / "access.log"
        self.ca_path = self.workdir / "ca.pem"  # what clients must trust
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The account URL (``parameters.endpoint``): path-style, as Azurite wants it."""
        return f"https://127.0.0.1:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={self.endpoint};"
        )

    def requests(self) -> list[str]:
        """Request lines of the access log so far ("GET /devstoreaccount1/c?... HTTP/1.1")."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [ln.split('"')[1] for ln in lines if ln.count('"') >= 2]

    def start(self) -> Azurite:
        binary = azurite_binary()
        cert_path, key_path = self.workdir / "cert.pem", self.workdir / "key.pem"
        _certificates(self.ca_path, cert_path, key_path)
        tls = ["--cert", str(cert_path), "--key", str(key_path), "--oauth", "basic"]
        last = ""
        for _attempt in range(5):  # the port may be taken between probe and bind
            self.port = free_port()
            log = self.log_path.open("wb")
            self._proc = subprocess.Popen(
                [
                    binary,
                    "--blobHost",
                    "127.0.0.1",
                    "--blobPort",
                    str(self.port),
                    "--inMemoryPersistence",
                    "--extentMemoryLimit",
                    "1024",
                    "--disableTelemetry",
                    "--skipApiVersionCheck",
                    *tls,
                ],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            log.close()
            if wait_until(self._proc, self._listening, 20.0):
                return self
            last = self.log_path.read_text(errors="replace")
            self._terminate()
            if "EADDRINUSE" not in last:
                break
        raise RuntimeError(f"azurite-blob did not start: {last.strip()[-2000:]}")

    def _listening(self) -> bool:
        log = self.log_path.read_text(errors="replace")
        return "successfully listens" in log and connects("127.0.0.1", self.port)

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc)

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.workdir, ignore_errors=True)


def fake_entra_token(*, lifetime: float = 3600.0) -> tuple[str, int]:
    """An unsigned JWT shaped like an Entra ID token for Blob storage (Azurite checks
    issuer, audience and lifetime only), with its expiry as a Unix time."""
    now = int(time.time())
    exp = now + int(lifetime)
    claims = {
        "aud": "https://storage.azure.com",
        "iss": "https://sts.windows.net/ab1f708d-50f6-404c-a006-d71b2ac7a606/",
        "nbf": now - 60,
        "iat": now - 60,
        "exp": exp,
        "oid": "11059fcc-5514-4800-b5f8-49808b9cfab6",
        "tid": "ab1f708d-50f6-404c-a006-d71b2ac7a606",
    }

    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl", exp


def _certificates(ca_path: Path, cert_path: Path, key_path: Path) -> None:
    """A CA and a server certificate for 127.0.0.1 signed by it (rustls, in the
    engine, refuses a self-signed certificate as a server's own)."""
    ca_key, server_key = _key(), _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "azurite-test-ca")])
    ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
    server = _cert(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
        server_key,
        ca_name,
        ca_key,
        server_names=("localhost",),
        server_ips=("127.0.0.1",),
    )
    ca_path.write_bytes(_pem(ca))
    cert_path.write_bytes(_pem(server))
    key_path.write_bytes(_key_pem(server_key))
