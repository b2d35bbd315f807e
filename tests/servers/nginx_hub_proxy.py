"""Debian's nginx as a company's caching reverse proxy in front of the local Hub.

Where it sits: one of the Hub look-alikes ``tests/test_hf_mirrors.py`` runs every
``hf://`` path against. It is configured the way such proxies are deployed:
``proxy_cache`` on (HEAD turned into a cached GET upstream, responses buffered,
Range served from the cache), and optionally ``proxy_hide_header`` for the
headers a proxy drops (``X-Linked-Etag``, ``X-Linked-Size``, ``Accept-Ranges``).
The Hub's LFS redirects still point at its CDN host, as they do at huggingface.co.
"""

from __future__ import annotations

from pathlib import Path

from tests.servers.nginx import NginxServer


class NginxHubProxy(NginxServer):
    """nginx with ``proxy_cache`` forwarding every request to ``upstream``."""

    def __init__(self, upstream: str, root: Path, *, hide_headers: tuple[str, ...] = ()) -> None:
        self.upstream = upstream.rstrip("/")
        self.hide_headers = hide_headers
        super().__init__(root)  # an empty folder: every location proxies

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _config(self) -> str:
        hide = "".join(f"        proxy_hide_header {h};\n" for h in self.hide_headers)
        http = f"""\
    proxy_cache_path {self.workdir}/cache levels=1:2 keys_zone=hub:10m max_size=1g inactive=10m;
    server {{
        listen {self.host}:{self.port};
        location / {{
            proxy_pass {self.upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering on;
            proxy_cache hub;
            # one cache entry per caller: private repos answer per token
            proxy_cache_key $scheme$proxy_host$request_uri$http_authorization;
            proxy_cache_valid 200 302 10m;
{hide}        }}
    }}
"""
        return self._frame(http, workers=1, connections=1024)
