"""Stand-ins for the OCI identity endpoints the principals talk to, on loopback.

Where it sits: beside :mod:`tests.servers.oci_server`; the oci SDK's own signers run
unchanged against these, and the tokens they obtain are registered with the
Object Storage stand-in, which then verifies every request signed with them.

- :class:`IdentityServer` (plain HTTP) serves, as the real services do:
  - the instance metadata service v2 (``/opc/v2/instance/region``,
    ``/opc/v2/identity/cert.pem|key.pem|intermediate.pem``, header
    ``Authorization: Bearer Oracle`` required) — the SDK reads its address from
    ``OCI_METADATA_BASE_URL``;
  - the auth service's X.509 federation (``POST /v1/x509``): the request must be
    signed (keyId ``{tenancy}/fed-x509/{SHA1 of the leaf certificate}``) with the
    leaf certificate's key and carry that certificate; the answer is
    ``{"token": <JWT>}`` for the session public key sent along — the SDK takes the
    endpoint from the signer's ``federation_endpoint`` argument.
- :class:`ProxymuxServer` (HTTPS on port 12250, as OKE's proxymux): ``POST
  /resourcePrincipalSessionTokens`` with the pod's service-account token as Bearer
  and ``{"podKey": ...}``; answers base64 of ``{"token": "ST$<JWT>"}``. The SDK
  finds it at ``KUBERNETES_SERVICE_HOST`` and trusts the CA file named by
  ``OCI_KUBERNETES_SERVICE_ACCOUNT_CERT_PATH``; the port is fixed, so each server
  takes its own random 127.x.y.z address.
- :func:`resource_principal_env`: the environment a resource principal v2.2 gets
  (``OCI_RESOURCE_PRINCIPAL_RPST`` token and session key, no endpoint involved).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import ssl
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.cluster.controlplane import _cert, _pem
from tests.servers.background import BackgroundServer, loopback
from tests.servers.oci_server import OciServer, verify_signature

PROXYMUX_PORT = 12250
_JWT_SECRET = "stand-in-hmac-key-for-unverified-tokens"  # noqa: S105 - the SDK decodes tokens without verifying them


def issue_token(tenancy: str, subject: str, lifetime: float = 3600.0) -> str:
    """A JWT shaped like the auth service's security tokens (claims the SDK reads)."""
    now = int(time.time())
    claims = {
        "sub": subject,
        "iat": now,
        "exp": now + int(lifetime),
        "tenant": tenancy,
        "res_tenant": tenancy,
        "res_compartment": "ocid1.compartment.oc1..standin",
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, _JWT_SECRET, algorithm="HS256")


def _pem_public(body: str) -> str:
    """The SDK sends PEM keys without their armour lines: put them back."""
    text = "".join(body.split())
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"


def _new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("opc-request-id", uuid.uuid4().hex.upper())
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, code: str, message: str) -> None:
        self._send(status, json.dumps({"code": code, "message": message}).encode())

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""


class IdentityServer(BackgroundServer):
    """Instance metadata service + auth service federation for one instance."""

    def __init__(
        self,
        oci: OciServer,
        tenancy: str = "ocid1.tenancy.oc1..aaaaaaaastandin",
        region: str = "us-phoenix-1",
        host: str = "127.0.0.1",
    ) -> None:
        self.oci = oci
        self.tenancy = tenancy
        self.region = region
        self.instance = "ocid1.instance.oc1.phx.standin"
        root_key = _new_key()
        root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in root")])
        self.intermediate_key = root_key
        self.intermediate = _cert(root_name, root_key, root_name, root_key, ca=True)
        self.leaf_key = _new_key()
        leaf_name = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, self.instance),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"opc-tenant:{tenancy}"),
            ]
        )
        self.leaf = _cert(leaf_name, self.leaf_key, root_name, root_key, ca=False)
        fingerprint = self.leaf.fingerprint(hashes.SHA1())  # noqa: S303 - OCI's keyId format
        self.fed_key_id = f"{tenancy}/fed-x509/" + ":".join(f"{b:02X}" for b in fingerprint)
        self.tokens: list[str] = []
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self.fail_federation: int | None = None  # answer this status to federation calls
        # seconds each token lives; the SDK renews a token with less than 60 s left
        # before signing, so under 60 means a new token for every request
        self.token_lifetime = 3600.0
        owner = self

        class Handler(_Quiet):
            def do_GET(self) -> None:
                owner.requests.append(("GET", self.path))
                if self.headers.get("Authorization") != "Bearer Oracle":
                    return self._error(401, "NotAuthenticated", "metadata v2 needs the header")
                answers = {
                    "/opc/v2/instance/region": (owner.region.encode(), "text/plain"),
                    "/opc/v2/identity/cert.pem": (_pem(owner.leaf), "text/plain"),
                    "/opc/v2/identity/key.pem": (_key_pem(owner.leaf_key), "text/plain"),
                    "/opc/v2/identity/intermediate.pem": (_pem(owner.intermediate), "text/plain"),
                }
                if self.path not in answers:
                    return self._error(404, "NotFound", "no such metadata path")
                body, ctype = answers[self.path]
                self._send(200, body, ctype)

            def do_POST(self) -> None:
                owner.requests.append(("POST", self.path))
                body = self._body()
                if self.path != "/v1/x509":
                    return self._error(404, "NotFound", "no such path")
                if owner.fail_federation is not None:
                    return self._error(owner.fail_federation, "NotAuthorized", "refused")
                headers = {k.lower(): v for k, v in self.headers.items()}
                _, reason = verify_signature(
                    "POST",
                    self.path,
                    headers,
                    body,
                    owner._fed_key,
                    must_sign=("(request-target)",),
                )
                if reason is not None:
                    return self._error(401, "NotAuthenticated", reason)
                request = json.loads(body)
                leaf_der = owner.leaf.public_bytes(serialization.Encoding.DER)
                if base64.b64decode(request.get("certificate", "")) != leaf_der:
                    return self._error(401, "NotAuthenticated", "unknown certificate")
                token = issue_token(owner.tenancy, owner.instance, owner.token_lifetime)
                owner.oci.add_session_token(token, _pem_public(request["publicKey"]))
                owner.tokens.append(token)
                self._send(200, json.dumps({"token": token}).encode())

        super().__init__(loopback(Handler, host))
        self.base = f"http://{host}:{self.port}"

    def _fed_key(self, key_id: str) -> Any:
        return self.leaf_key.public_key() if key_id == self.fed_key_id else None

    @property
    def metadata_base_url(self) -> str:
        return f"{self.base}/opc/v2"

    @property
    def federation_endpoint(self) -> str:
        return f"{self.base}/v1/x509"


class ProxymuxServer(BackgroundServer):
    """OKE's proxymux: service-account token → resource principal session token."""

    def __init__(self, oci: OciServer, workdir: Path, sa_token: str) -> None:
        self.oci = oci
        self.sa_token = sa_token
        self.tokens: list[str] = []
        ca_key = _new_key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in cluster CA")])
        ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
        self.ca_path = workdir / "ca.crt"
        self.ca_path.write_bytes(_pem(ca))
        owner = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                body = self._body()
                if self.path != "/resourcePrincipalSessionTokens":
                    return self._error(404, "NotFound", "no such path")
                if self.headers.get("Authorization") != f"Bearer {owner.sa_token}":
                    return self._error(401, "NotAuthenticated", "bad service account token")
                pod_key = json.loads(body)["podKey"]
                token = issue_token("ocid1.tenancy.oc1..aaaaaaaastandin", "workload")
                owner.oci.add_session_token(token, _pem_public(pod_key))
                owner.tokens.append(token)
                answer = base64.b64encode(json.dumps({"token": "ST$" + token}).encode())
                self._send(200, answer, "text/plain")

        httpd = self._bind(Handler)
        key = _new_key()
        server_cert = _cert(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.host)]),
            key,
            ca_name,
            ca_key,
            server_ips=(self.host,),
        )
        cert_file = workdir / "proxymux.pem"
        cert_file.write_bytes(_pem(server_cert) + _key_pem(key))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert_file)
        httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
        super().__init__(httpd)

    def _bind(self, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
        rng = random.Random()  # noqa: S311 - picks a loopback address, not a secret
        for _ in range(20):
            host = f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(1, 254)}"
            try:
                httpd = loopback(handler, host, PROXYMUX_PORT)
            except OSError:
                continue
            self.host = host
            return httpd
        raise OSError(f"no free loopback address for port {PROXYMUX_PORT}")


def resource_principal_env(
    oci: OciServer, workdir: Path, region: str = "us-phoenix-1"
) -> Mapping[str, str]:
    """Environment of a resource principal v2.2 whose token ``oci`` accepts."""
    key = _new_key()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = issue_token("ocid1.tenancy.oc1..aaaaaaaastandin", "ocid1.resource.oc1..standin")
    oci.add_session_token(token, public.decode())
    key_file = workdir / "rp_key.pem"
    key_file.write_bytes(_key_pem(key))
    token_file = workdir / "rpst"
    token_file.write_text(token)
    return {
        "OCI_RESOURCE_PRINCIPAL_VERSION": "2.2",
        "OCI_RESOURCE_PRINCIPAL_RPST": str(token_file),
        "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": str(key_file),
        "OCI_RESOURCE_PRINCIPAL_REGION": region,
    }


def service_account_token() -> str:
    """A Kubernetes service-account token shaped JWT (the SDK checks its expiry)."""
    now = int(time.time())
    claims = {"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:ome:agent"}
    claims |= {"iat": now, "exp": now + 3600}
    return jwt.encode(claims, hashlib.sha256(b"sa").hexdigest(), algorithm="HS256")
