"""Debian nginx on loopback, started per test or per benchmark run.

Where it sits: the reference HTTP server of the test suite and of ``benches/``.
It serves a directory twice: ``/`` unlimited (throughput, Range, keep-alive) and
``/slow/`` with ``limit_rate`` per connection, the way object stores cap each
connection (that is where parallel ranges pay). Faults come from
``tests.servers.fault_server`` instead: nginx cannot inject them.

The access log records ``$request $status $body_bytes_sent $http_range`` per
request so tests can count what the server really sent (resume tests compare
bytes sent against the file size).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.servers.managed import Managed
from tests.servers.process import connects, stop_group, wait_until

NGINX_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")

# Tab-separated so a request line with spaces still splits into fixed fields.
_LOG_FORMAT = "\\t".join(
    (
        "$msec",
        "$request",
        "$status",
        "$body_bytes_sent",
        "$http_range",
        "$connection",
        "$connection_requests",
    )
)


class NginxNotFoundError(RuntimeError):
    """nginx is not installed where the tests look for it."""


@dataclass(frozen=True)
class AccessRecord:
    """One line of the access log."""

    time: float
    method: str
    path: str
    status: int
    body_bytes_sent: int
    range: str | None  # the request's Range header, None when absent
    connection: int  # nginx connection serial number: distinct values = distinct TCP connections
    connection_requests: int


def find_nginx() -> str:
    """Path of the nginx binary, or a clear error saying how to install it."""
    for cand in NGINX_CANDIDATES:
        if os.access(cand, os.X_OK):
            return cand
    found = shutil.which("nginx")
    if found:
        return found
    raise NginxNotFoundError(
        "nginx binary not found (looked in "
        + ", ".join(NGINX_CANDIDATES)
        + " and PATH); install it with: scripts/bootstrap.sh test"
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class NginxServer(Managed):
    """nginx serving ``root`` on 127.0.0.1 at a free port.

    Use as a context manager (or call ``start``/``stop``). ``base_url`` serves
    ``root`` unlimited, ``slow_url`` the same files at ``limit_rate`` per connection.
    """

    def __init__(
        self,
        root: Path,
        *,
        limit_rate: str = "40m",
        workdir: Path | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise NotADirectoryError(f"NginxServer root {self.root} is not a directory")
        self.limit_rate = limit_rate
        self.host = host
        self._own_workdir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix="nginx-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.access_log = self.workdir / "access.log"
        self.error_log = self.workdir / "error.log"
        self.conf_path = self.workdir / "nginx.conf"
        self.pid_path = self.workdir / "nginx.pid"
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------ urls
    @property
    def base_url(self) -> str:
        """URL of ``root`` without rate limit, ending with ``/``."""
        return f"http://{self.host}:{self.port}/"

    @property
    def slow_url(self) -> str:
        """URL of ``root`` with ``limit_rate`` per connection, ending with ``/``."""
        return f"http://{self.host}:{self.port}/slow/"

    # ------------------------------------------------------------ config
    def _frame(self, http: str, *, workers: int, connections: int) -> str:
        """The config around ``http`` (the inside of its block) that every nginx of the
        tests shares: in the foreground, logs and temporary files in ``workdir``."""
        w = self.workdir
        # Workers run as root when we are root: pytest tmp dirs are mode 0700 and
        # the default "nobody" worker could not read the files it should serve.
        user = "user root root;" if os.geteuid() == 0 else ""
        return f"""
{user}
daemon off;
master_process on;
worker_processes {workers};
pid {w}/nginx.pid;
error_log {self.error_log} warn;
events {{ worker_connections {connections}; }}
http {{
    log_format ome '{_LOG_FORMAT}';
    access_log {self.access_log} ome;
    client_body_temp_path {w}/client_body;
    proxy_temp_path {w}/proxy;
    fastcgi_temp_path {w}/fastcgi;
    uwsgi_temp_path {w}/uwsgi;
    scgi_temp_path {w}/scgi;
{http}}}
"""

    def _config(self) -> str:
        http = f"""\
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    keepalive_timeout 60;
    server {{
        listen {self.host}:{self.port};
        server_name localhost;
        location / {{
            root {self.root};
        }}
        location /slow/ {{
            alias {self.root}/;
            limit_rate {self.limit_rate};
        }}
    }}
"""
        return self._frame(http, workers=2, connections=4096)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> NginxServer:
        binary = find_nginx()
        last_err = ""
        # The free port is probed then released, so another process may take it
        # before nginx binds: retry with a new port in that case.
        for _attempt in range(5):
            self.port = _free_port(self.host)
            self.conf_path.write_text(self._config())
            self.access_log.write_text("")
            self._proc = subprocess.Popen(
                [
                    binary,
                    "-p",
                    str(self.workdir),
                    "-c",
                    str(self.conf_path),
                    "-e",
                    str(self.error_log),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
            if wait_until(self._proc, lambda: connects(self.host, self.port), 10.0):
                return self
            last_err = self._collect_failure()
            if "Address already in use" not in last_err:
                break
        raise RuntimeError(f"nginx did not start: {last_err.strip()}")

    def _collect_failure(self) -> str:
        proc = self._proc
        self._proc = None
        if proc is None:
            return ""
        if proc.poll() is None:
            stop_group(proc)  # nginx runs in its own session: its workers go too
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.stderr:
            proc.stderr.close()
        with contextlib.suppress(OSError):
            err += self.error_log.read_text(errors="replace")
        return err

    def stop(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None:
            stop_group(proc)
            if proc.stderr:
                proc.stderr.close()
        if self._own_workdir:
            # Keep the logs readable until here; the temp dir is ours to remove.
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------ access log
    def records(self) -> list[AccessRecord]:
        """Parsed access log so far (nginx writes a line when a request ends,
        also when the client aborts it)."""
        out: list[AccessRecord] = []
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            parts = line.split("\t")
            if len(parts) < 7:
                continue
            req = parts[1].split(" ")
            method = req[0] if req else ""
            path = req[1] if len(req) > 1 else ""
            rng = parts[4] if parts[4] not in ("", "-") else None
            out.append(
                AccessRecord(
                    time=float(parts[0]),
                    method=method,
                    path=path,
                    status=int(parts[2]) if parts[2].isdigit() else 0,
                    body_bytes_sent=int(parts[3]) if parts[3].isdigit() else 0,
                    range=rng,
                    connection=int(parts[5]) if parts[5].isdigit() else 0,
                    connection_requests=int(parts[6]) if parts[6].isdigit() else 0,
                )
            )
        return out

    def bytes_sent(self) -> int:
        """Sum of ``$body_bytes_sent`` over every logged request so far."""
        return sum(r.body_bytes_sent for r in self.records())

    def clear_log(self) -> None:
        """Truncate the access log (nginx keeps appending to the same inode)."""
        with self.access_log.open("r+b") as f:
            f.truncate(0)
