"""``ome-agent bench``: the sweep against a real nginx on loopback, and its input checks.

The sweep runs the real engine against tests/servers/nginx.py with a small
random file so the whole module takes seconds; the pure parts (size parsing,
the recommendation rule, hf:// file paths) are checked without a server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ome_agent.cli import main
from ome_agent.transfer.sweep import (
    Measurement,
    Sample,
    Setting,
    TuningInputError,
    format_size,
    parse_int_list,
    parse_size,
    recommend,
    resolve_source,
)
from tests.servers.fault_server import FaultServer, Throttle
from tests.servers.hf_hub_server import HubServer
from tests.servers.nginx import NginxServer

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NginxServer, int]]:
    root = tmp_path_factory.mktemp("www")
    size = 6 * MiB + 12345  # not a multiple of any chunk size: the last range is short
    (root / "model.bin").write_bytes(os.urandom(size))
    with NginxServer(root, limit_rate="8m") as nginx:
        yield nginx, size


def _invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["bench", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_json_has_every_setting_and_a_recommendation(
    served: tuple[NginxServer, int], tmp_path: Path
) -> None:
    nginx, size = served
    code, out, _ = _invoke(
        nginx.base_url + "model.bin",
        "--connections",
        "1,4",
        "--chunk-sizes",
        "1MiB,4MiB",
        "--dest-dir",
        str(tmp_path),
        "--json",
    )
    assert code == 0, out
    doc = json.loads(out)
    labels = [r["setting"] for r in doc["results"]]
    assert labels == ["auto", "1 x 1MiB", "1 x 4MiB", "4 x 1MiB", "4 x 4MiB"]
    for r in doc["results"]:
        assert r["error"] is None, r
        assert r["bytes"] == size
        assert r["complete"] is True
        assert r["gb_per_s"] > 0
        assert r["peak_rss_bytes"] > 0
        assert r["cpu_seconds_per_gb"] >= 0
    best = doc["recommended"]
    assert best is not None
    assert best["setting"] in labels
    fastest = max(r["gb_per_s"] for r in doc["results"])
    assert best["gb_per_s"] >= fastest * (1 - doc["tie_tolerance"])
    # The recommended setting is printed as the pull flags that reproduce it.
    if best["connections"] is not None:
        assert best["pull_flags"][:2] == ["--connections", str(best["connections"])]
    # Every temporary download was removed again.
    assert list(tmp_path.iterdir()) == []


def test_table_lists_settings_and_prints_pull_flags(served: tuple[NginxServer, int]) -> None:
    nginx, _ = served
    code, out, err = _invoke(
        nginx.base_url + "model.bin", "--connections", "2", "--chunk-sizes", "2MiB", "--no-auto"
    )
    assert code == 0, out + err
    assert "2 x 2MiB" in out
    assert "recommended: 2 x 2MiB" in out
    assert "pull flags: --connections 2 --chunk-size 2MiB" in out
    assert "[1/1] 2 x 2MiB" in err  # progress goes to stderr, not into the table


def test_max_bytes_stops_each_download_early() -> None:
    size = 6 * MiB
    with FaultServer() as server:
        url = server.add("/model.bin", os.urandom(size))
        # A throttled body takes ~1.5 s, so the 1 MiB budget is reached long before the end
        # (nginx's limit_rate lets a socket buffer's worth through at once on loopback).
        server.set_faults("/model.bin", Throttle(bytes_per_sec=4e6))
        code, out, _ = _invoke(
            url,
            "--connections",
            "1",
            "--chunk-sizes",
            "1MiB",
            "--no-auto",
            "--max-bytes",
            "1MiB",
            "--json",
        )
    assert code == 0, out
    (r,) = json.loads(out)["results"]
    assert r["complete"] is False
    assert MiB <= r["bytes"] < size
    assert r["seconds"] < 1.2


def test_unreachable_source_is_a_transfer_failure(served: tuple[NginxServer, int]) -> None:
    nginx, _ = served
    code, out, err = _invoke(nginx.base_url + "missing.bin", "--connections", "1")
    assert code == 1
    assert "missing.bin" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["http://127.0.0.1:9/x", "--connections", "0,4"], "--connections"),
        (["http://127.0.0.1:9/x", "--connections", "four"], "--connections"),
        (["http://127.0.0.1:9/x", "--chunk-sizes", "16XB"], "--chunk-sizes"),
        (["http://127.0.0.1:9/x", "--max-bytes", "-1"], "--max-bytes"),
        (["ftp://example.org/x"], "SOURCE"),
        (["hf://org/name"], "SOURCE"),
        (["hf://org/na--me/file.bin"], "repo id"),
    ],
)
def test_bad_input_names_the_field(args: list[str], field: str) -> None:
    code, out, err = _invoke(*args)
    assert code == 2
    assert field in err
    assert "Traceback" not in out + err


def test_token_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "hf_bench_secret_0123456789"  # noqa: S105 - fake token
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    src = resolve_source("hf://org/name@v1/sub/dir/model.safetensors")
    assert src.url == "http://127.0.0.1:9/org/name/resolve/v1/sub/dir/model.safetensors"
    assert src.headers == {"Authorization": f"Bearer {secret}"}
    assert secret not in src.display
    code, out, err = _invoke("hf://org/name/model.safetensors", "--connections", "1")
    assert code == 1  # nothing listens on port 9
    assert secret not in out + err


def test_revision_may_follow_the_file_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://hub.local")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    src = resolve_source("hf://org/name/model.bin@abc123")
    assert src.url == "http://hub.local/org/name/resolve/abc123/model.bin"
    assert src.headers == {}


def test_sizes_and_lists() -> None:
    assert parse_size("16MiB") == 16 * MiB
    assert parse_size("16M") == 16 * MiB  # as pull reads it
    assert parse_size("16MB") == 16_000_000
    assert parse_size("1048576") == MiB
    assert format_size(64 * MiB) == "64MiB"
    assert format_size(12345) == "12345"
    assert parse_int_list("1, 4,4,16", what="--connections") == [1, 4, 16]
    with pytest.raises(TuningInputError, match="--chunk-sizes"):
        parse_size("0MiB", what="--chunk-sizes")


def _m(conns: int, gbps: float, cpu_per_gb: float) -> Measurement:
    # 1 GB in 1/gbps seconds with cpu_per_gb CPU seconds
    sample = Sample(
        bytes=10**9, seconds=1 / gbps, cpu_seconds=cpu_per_gb, peak_rss=1, complete=True
    )
    return Measurement(Setting(conns, MiB), [sample])


def test_recommend_prefers_cheaper_cpu_among_ties() -> None:
    fast_costly = _m(64, 1.00, 2.0)
    nearly_as_fast_cheap = _m(8, 0.97, 0.8)
    slow_cheapest = _m(1, 0.50, 0.5)
    best = recommend([fast_costly, nearly_as_fast_cheap, slow_cheapest])
    assert best is nearly_as_fast_cheap
    failed = Measurement(Setting(4, MiB), error="TransferError: boom")
    assert recommend([failed]) is None
    assert recommend([failed, slow_cheapest]) is slow_cheapest


def test_hf_file_through_the_local_hub(hf_env: HubServer) -> None:
    size = 3 * MiB + 7
    hf_env.add_repo("bench-org/tiny", {"model.safetensors": os.urandom(size), "config.json": b"{}"})
    code, out, err = _invoke(
        "hf://bench-org/tiny/model.safetensors",
        "--connections",
        "2",
        "--chunk-sizes",
        "1MiB",
        "--no-auto",
        "--json",
    )
    assert code == 0, out + err
    doc = json.loads(out)
    assert doc["source"] == "hf://bench-org/tiny/model.safetensors"
    assert doc["size"] == size
    (r,) = doc["results"]
    assert r["bytes"] == size
    # The LFS file was served by the second ("CDN") host after the Hub's redirect.
    assert any("/repos/" in req["path"] for req in hf_env.requests("cdn"))
