"""``ome-agent pull http(s)://...``: one file, verified by a digest the user gives."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.pull_helpers import pull_cli, pull_process
from tests.servers.fault_server import FaultServer, Redirect

DATA = os.urandom(3 * 1024 * 1024 + 17)
SHA = hashlib.sha256(DATA).hexdigest()
MD5 = hashlib.md5(DATA, usedforsecurity=False).hexdigest()


def test_into_directory_with_sha256(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", DATA)
    run = pull_cli(url, f"{tmp_path}/out/", "--sha256", SHA.upper(), "--json")
    assert run.code == 0, run.stderr
    out = tmp_path / "out" / "model.bin"
    assert out.read_bytes() == DATA
    summary = run.json()
    assert summary["scheme"] == "http"
    assert summary["dest"] == str(out.resolve())
    assert summary["total_bytes"] == len(DATA)
    [f] = summary["files"]
    assert f["path"] == "model.bin"
    assert "sha256" in f["verified"]
    assert f["sha256"] == SHA
    assert f["xxh3_128"] is None, "pull asks for no xxh3: nobody checks it, it costs CPU"
    assert f["fetched_bytes"] + f["resumed_bytes"] == len(DATA)


def test_dest_as_file_path_with_md5(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/x/weights", DATA)
    target = tmp_path / "deep" / "renamed.bin"
    run = pull_cli(url, str(target), "--md5", MD5, "--json")
    assert run.code == 0, run.stderr
    assert target.read_bytes() == DATA
    assert "md5" in run.json()["files"][0]["verified"]


def test_existing_directory_keeps_url_name(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/a/b/tokenizer.json", b'{"v": 1}')
    run = pull_cli(url, str(tmp_path))
    assert run.code == 0, run.stderr
    assert (tmp_path / "tokenizer.json").read_bytes() == b'{"v": 1}'


def test_wrong_sha256_fails_and_leaves_no_file(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", DATA)
    wrong = "0" * 64
    run = pull_process(url, f"{tmp_path}/", "--sha256", wrong)
    assert run.code == 1
    assert f"expected {wrong}" in run.stderr
    assert SHA in run.stderr  # the actual digest is shown too
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "model.bin").exists()
    assert run.stdout == ""


def test_not_found_is_a_transfer_failure(fault_server: FaultServer, tmp_path: Path) -> None:
    run = pull_cli(fault_server.url("/missing.bin"), f"{tmp_path}/")
    assert run.code == 1
    assert "404" in run.stderr


@pytest.mark.parametrize("target", ["file://", "ftp://127.0.0.1:9"])
def test_redirect_to_another_scheme_is_one_line_and_not_retried(
    fault_server: FaultServer, tmp_path: Path, target: str
) -> None:
    """A Location outside http(s) (the node's own files, ftp) is not followed: one line
    naming the scheme, exit 1 at once, no retry."""
    url = fault_server.add("/files/model.bin", DATA)
    fault_server.set_faults("/files/model.bin", Redirect(target=target))
    run = pull_cli(url, f"{tmp_path}/")
    scheme = target.partition(":")[0]
    assert run.code == 1
    [line] = run.stderr.splitlines()
    assert line.startswith(f"error: model.bin: transfer of {url} failed: "), line
    assert line.endswith(
        f"the server redirected to a {scheme}:// URL; only http(s) redirects are followed"
    ), line
    assert len(fault_server.requests_for("/files/model.bin")) <= 2  # a probe and a GET
    assert not (tmp_path / "model.bin").exists()


@pytest.mark.parametrize(
    ("extra", "expect"),
    [
        (["--sha256", "abc"], "--sha256 'abc' is not a sha256 digest"),
        (["--md5", "z" * 32], "--md5"),
        (["--include", "*.json"], "--include/--exclude apply to hf://"),
        (["--chunk-size", "lots"], "--chunk-size 'lots' is not a size"),
        (["--connections", "0"], "--connections 0"),
    ],
)
def test_bad_flags_exit_2_before_any_request(
    fault_server: FaultServer, tmp_path: Path, extra: list[str], expect: str
) -> None:
    url = fault_server.add("/f.bin", DATA)
    run = pull_cli(url, f"{tmp_path}/", *extra)
    assert run.code == 2
    assert expect in run.stderr
    assert fault_server.requests_for("/f.bin") == []


def test_url_without_file_name_needs_a_file_dest(fault_server: FaultServer, tmp_path: Path) -> None:
    run = pull_cli(fault_server.url("/dir/"), f"{tmp_path}/")
    assert run.code == 2
    assert "give DEST as a file path" in run.stderr


def test_not_a_tty_prints_only_the_result(fault_server: FaultServer, tmp_path: Path) -> None:
    url = fault_server.add("/files/model.bin", DATA)
    run = pull_process(url, f"{tmp_path}/", "--sha256", SHA)
    assert run.code == 0, run.stderr
    assert run.stderr == ""
    lines = run.stdout.splitlines()
    assert len(lines) == 1
    assert "1/1 verified by digest" in lines[0]


def test_unusable_ca_bundle_is_bad_input(fault_server: FaultServer, tmp_path: Path) -> None:
    pem = tmp_path / "not-a.pem"
    pem.write_text("garbage\n")
    url = fault_server.add("/f.bin", DATA)
    run = pull_cli(url, f"{tmp_path}/", "--ca-bundle", str(pem))
    assert run.code == 2
    assert "--ca-bundle" in run.stderr
    assert fault_server.requests_for("/f.bin") == []
