"""A real Kubernetes control plane (etcd + kube-apiserver) on loopback, for tests.

Where it sits: test infrastructure below the integration tests of the Kubernetes
adapter (docs/architecture.md, layer 5). The binaries come from
``scripts/build-control-plane.sh`` (built from the Go module proxy, cached under
``.cache/control-plane/<version>/``); this module only runs them. Everything the
API server needs is made here: a CA, a serving certificate for 127.0.0.1/localhost,
an admin client certificate in ``system:masters``, and the service-account signing
key pair, so TokenRequest works and RBAC is enforced exactly as in a cluster.
"""

from __future__ import annotations

import base64
import ctypes
import datetime as dt
import ipaddress
import os
import random
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = "scripts/build-control-plane.sh"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the message carries the tail of its logs."""


def binaries_dir() -> Path:
    """Folder holding ``etcd`` and ``kube-apiserver`` for the pinned Kubernetes version.

    ``OME_CONTROL_PLANE_DIR`` overrides it. The version is read from the same go.mod
    the build script reads, so the two never disagree.
    """
    override = os.environ.get("OME_CONTROL_PLANE_DIR")
    if override:
        folder = Path(override)
    else:
        gomod = REPO_ROOT / "tools" / "control-plane" / "go.mod"
        version = next(
            line.split()[1]
            for line in gomod.read_text().splitlines()
            if line.split()[:1] == ["k8s.io/kubernetes"]
        )
        folder = REPO_ROOT / ".cache" / "control-plane" / version
    missing = [b for b in ("etcd", "kube-apiserver") if not os.access(folder / b, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{', '.join(missing)} not found in {folder}: run {BUILD_SCRIPT} "
            "(builds them once from the Go module proxy and caches them there)"
        )
    return folder


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A loopback port that is free now, for a server started in a moment.

    Drawn at random below the kernel's ephemeral range: a port from bind(0) is in
    that range, where the next outgoing connection (tests here open dozens) or
    another test session's bind(0) may take it before our server binds it.
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low)  # noqa: S311 - not security
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------- certificates
def _key() -> ec.EllipticCurvePrivateKey:
    # P-256 keys are generated in microseconds (RSA takes tens of ms each); both
    # kube-apiserver and the Python clients accept them, for TLS and for
    # service-account signing (ES256).
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert(
    subject: x509.Name,
    key: CertificateIssuerPrivateKeyTypes,
    issuer: x509.Name,
    issuer_key: CertificateIssuerPrivateKeyTypes,
    *,
    ca: bool = False,
    server_names: tuple[str, ...] = (),
    server_ips: tuple[str, ...] = (),
    client: bool = False,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if server_names or server_ips:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            sans: list[x509.GeneralName] = [x509.DNSName(n) for n in server_names]
            sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in server_ips]
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class ControlPlane:
    """etcd + kube-apiserver in ``workdir`` (data, certificates, logs, kubeconfigs).

    ``start()`` blocks until /readyz answers ok; ``restart_apiserver()`` stops and
    starts the same API server on the same port over the same etcd data (the
    "API server restart mid-run" case); ``stop()`` ends both.
    """

    def __init__(self, workdir: Path, binaries: Path | None = None) -> None:
        self.workdir = workdir
        self.binaries = binaries if binaries is not None else binaries_dir()
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.etcd_port = free_port()
        self.etcd_peer_port = free_port()
        self.pki = workdir / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.admin_kubeconfig = workdir / "admin.kubeconfig"
        self.etcd_log = workdir / "etcd.log"
        self.apiserver_log = workdir / "kube-apiserver.log"
        self.startup_seconds = 0.0
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        t0 = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._start_etcd()
        self._make_pki()
        self._wait_etcd()
        self._start_apiserver()
        # our etcd, not another one that answered on its port
        self._check_alive(self._etcd, "etcd")
        self.startup_seconds = time.monotonic() - t0

    def stop(self) -> None:
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                _terminate(proc)
        self._apiserver = self._etcd = None
        for f in self._logs:
            f.close()
        self._logs.clear()

    def restart_apiserver(self) -> None:
        """Stop the API server and start it again: same port, same etcd, same keys."""
        if self._apiserver is not None:
            _terminate(self._apiserver)
            self._apiserver = None
        self._start_apiserver()

    def stop_apiserver(self) -> None:
        """Stop only the API server (clients see connection refused until
        ``start_apiserver()``), for tests that hold it down for a while."""
        if self._apiserver is not None:
            _terminate(self._apiserver)
            self._apiserver = None

    def start_apiserver(self) -> None:
        if self._apiserver is None:
            self._start_apiserver()

    def log_tail(self, lines: int = 60) -> str:
        """The last lines of both logs, for failure reports."""
        out = []
        for path in (self.etcd_log, self.apiserver_log):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path} (last {len(tail)} lines)\n" + "\n".join(tail))
        return "\n".join(out)

    # ------------------------------------------------------------ etcd
    def _start_etcd(self) -> None:
        client = f"http://127.0.0.1:{self.etcd_port}"
        peer = f"http://127.0.0.1:{self.etcd_peer_port}"
        args = [
            str(self.binaries / "etcd"),
            "--name=test",
            f"--data-dir={self.workdir / 'etcd-data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=test={peer}",
            "--log-level=warn",
            # test data: durability across a machine crash is worthless, fsync is slow
            "--unsafe-no-fsync",
        ]
        self._etcd = self._spawn(args, self.etcd_log)

    def _wait_etcd(self, timeout: float = 20.0) -> None:
        url = f"http://127.0.0.1:{self.etcd_port}/health"
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(self._etcd, "etcd")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:  # loopback
                    if b'"true"' in r.read():
                        return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"etcd not healthy after {timeout}s\n{self.log_tail()}")
            time.sleep(0.05)

    # ------------------------------------------------------------ apiserver
    def _start_apiserver(self, timeout: float = 60.0) -> None:
        p = self.pki
        args = [
            str(self.binaries / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={p / 'apiserver.crt'}",
            f"--tls-private-key-file={p / 'apiserver.key'}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={p / 'sa.pub'}",
            f"--service-account-signing-key-file={p / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No controller-manager runs: nothing would act on what these plugins
            # wait for (ServiceAccount admission would reject pods whose account
            # has no token controller behind it).
            "--disable-admission-plugins=ServiceAccount,DefaultStorageClass,"
            "DefaultTolerationSeconds,StorageObjectInUseProtection,PersistentVolumeClaimResize",
            "--allow-privileged=true",
            "--profiling=false",
            # the advertised endpoint must not wander between restarts
            "--endpoint-reconciler-type=none",
            f"--cert-dir={p}",
            "--v=1",
        ]
        self._apiserver = self._spawn(args, self.apiserver_log)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            self._check_alive(self._apiserver, "kube-apiserver")
            try:
                with urllib.request.urlopen(  # noqa: S310 - loopback https
                    f"{self.server}/readyz", context=ctx, timeout=2
                ) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as e:
                last = e.read().decode(errors="replace")[-2000:]
            except OSError as e:
                last = str(e)
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver not ready after {timeout}s: {last}\n{self.log_tail()}"
                )
            time.sleep(0.1)

    # ------------------------------------------------------------ helpers
    def _spawn(self, args: list[str], log: Path) -> subprocess.Popen[bytes]:
        f = log.open("ab")
        self._logs.append(f)
        return subprocess.Popen(  # one process group each: stop() never signals ours
            args,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )

    def _check_alive(self, proc: subprocess.Popen[bytes] | None, name: str) -> None:
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            raise ControlPlaneError(f"{name} exited (code {code})\n{self.log_tail()}")

    def _make_pki(self) -> None:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ome-test-ca")])
        ca = _cert(ca_name, ca_key, ca_name, ca_key, ca=True)
        srv_key = _key()
        srv = _cert(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]),
            srv_key,
            ca_name,
            ca_key,
            server_names=("localhost", "kubernetes", "kubernetes.default.svc"),
            server_ips=("127.0.0.1", "10.96.0.1"),
        )
        admin_key = _key()
        admin = _cert(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, "test-admin"),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "system:masters"),
                ]
            ),
            admin_key,
            ca_name,
            ca_key,
            client=True,
        )
        sa_key = _key()
        files = {
            "ca.crt": _pem(ca),
            "apiserver.crt": _pem(srv),
            "apiserver.key": _key_pem(srv_key),
            "admin.crt": _pem(admin),
            "admin.key": _key_pem(admin_key),
            "sa.key": _key_pem(sa_key),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            path = self.pki / name
            path.write_bytes(data)
            path.chmod(0o600)
        self.write_kubeconfig(
            self.admin_kubeconfig,
            "test-admin",
            {
                "client-certificate-data": _b64(files["admin.crt"]),
                "client-key-data": _b64(files["admin.key"]),
            },
        )

    def write_kubeconfig(self, path: Path, user: str, credentials: dict[str, str]) -> Path:
        """A kubeconfig for this API server (CA embedded) with the given user entry,
        e.g. ``{"token": ...}``; readable by the official client and kubernetes_asyncio."""
        doc: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": _b64(self.ca_file.read_bytes()),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": user, "context": {"cluster": "test", "user": user}}],
            "current-context": user,
        }
        path.write_text(yaml.safe_dump(doc))
        path.chmod(0o600)  # holds a credential
        return path


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # A test run killed hard (SIGKILL, a CI timeout) must not leave an API server
    # and etcd running on a machine shared with other jobs.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _terminate(proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
