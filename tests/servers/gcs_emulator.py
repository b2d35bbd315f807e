"""gcp-storage-emulator (from PyPI) and an OAuth token endpoint on 127.0.0.1, for tests.

Where it sits: test infrastructure under the ``gcs`` source (docs/architecture.md, layer 2).
The emulator runs as its own process (``gcp-storage-emulator start --in-memory``);
it speaks the JSON API (listing, media downloads with Range, md5Hash/crc32c) but
checks no credentials and serves every listing in one page.

The token endpoint stands in for ``oauth2.googleapis.com/token``: a service
account key made here names it as ``token_uri``, google-auth posts its signed JWT
assertion there, and the endpoint checks the signature against the key's public
half (400 ``invalid_grant`` otherwise, like Google) before issuing a short token.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.cluster.controlplane import free_port
from tests.servers.background import BackgroundServer, loopback
from tests.servers.managed import stop_after
from tests.servers.process import spawn, stop_group, wait_answering

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL


@dataclass
class GcsEmulator:
    endpoint: str
    log: Path
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def client(self) -> Any:
        """An anonymous client for setting up buckets and objects."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(
            project="test",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.endpoint},
        )

    def new_bucket(self) -> Any:
        return self.client().create_bucket(f"models-{uuid.uuid4().hex[:12]}")

    def stop(self) -> None:
        stop_group(self._proc)


def start_emulator(workdir: Path) -> GcsEmulator:
    log = workdir / "gcs-emulator.log"
    port = free_port()
    cli = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent))
    if cli is None:
        raise RuntimeError("gcp-storage-emulator is not installed in this venv: pip install it")
    proc = spawn([cli, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory"], log)
    emulator = GcsEmulator(f"http://127.0.0.1:{port}", log, proc)
    try:
        wait_answering(proc, emulator.endpoint + "/", "gcp-storage-emulator", log)
    except BaseException:
        emulator.stop()
        raise
    return emulator


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GcsEmulator]:
    yield from stop_after(start_emulator(tmp_path_factory.mktemp("gcs")))


# ------------------------------------------------------------------ OAuth token endpoint
class TokenServer(BackgroundServer):
    """``POST /token`` (JWT bearer grant) checked against registered public keys."""

    def __init__(self, lifetime: int = 3600) -> None:
        self.lifetime = lifetime
        self.public_keys: dict[str, bytes] = {}  # client_email -> PEM
        self.issued: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()
        super().__init__(loopback(_token_handler(self)))
        self.url = f"http://127.0.0.1:{self.port}/token"

    def service_account(self, email: str = "reader@proj.iam.gserviceaccount.com") -> str:
        """A new service-account key JSON whose public half this server trusts."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.public_keys[email] = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return json.dumps(
            {
                "type": "service_account",
                "project_id": "proj",
                "private_key_id": uuid.uuid4().hex,
                "private_key": pem,
                "client_email": email,
                "client_id": "1234567890",
                "token_uri": self.url,
            }
        )

    def _grant(self, assertion: str) -> str | None:
        from google.auth import jwt

        try:
            unverified = jwt.decode(assertion, verify=False)
            public = self.public_keys[unverified["iss"]]
            # google-auth always names Google's endpoint as the audience, whatever token_uri is
            jwt.decode(assertion, certs=public.decode(), audience=GOOGLE_TOKEN_AUDIENCE)
        except (KeyError, ValueError):
            with self._lock:
                self.refused += 1
            return None
        with self._lock:
            token = f"ya29.test-{len(self.issued) + 1}"
            self.issued.append(token)
        return token


def _token_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            token = None
            if form.get("grant_type") == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]:
                token = server._grant(form.get("assertion", [""])[0])
            if token is None:
                status = 400
                body = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
            else:
                status = 200
                body = {
                    "access_token": token,
                    "expires_in": server.lifetime,
                    "token_type": "Bearer",
                }
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
