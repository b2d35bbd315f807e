"""SOURCE parsing, digest and glob checks, size flags: bad input is caught before
any network use, with a message naming the field and the fix."""

from __future__ import annotations

import pytest

from ome_agent.errors import BadInput
from ome_agent.sources import HfRef, HttpRef, check_hex, parse_source, redact_url, select
from ome_agent.sources.model import RemoteFile
from ome_agent.transfer import TransferSettings, parse_size


def test_http_source_keeps_url_and_names_file() -> None:
    ref = parse_source("https://example.com/a/model%20v1.bin?X-Sig=secret")
    assert isinstance(ref, HttpRef)
    assert ref.file_name == "model v1.bin"
    assert "secret" not in ref.display
    assert ref.display == "https://example.com/a/model%20v1.bin?…"


def test_hf_source_with_revision_forms() -> None:
    assert parse_source("hf://org/name") == HfRef("org/name", None)
    assert parse_source("hf://org/name@v1.0") == HfRef("org/name", "v1.0")
    assert parse_source("hf://org/name@refs/pr/1") == HfRef("org/name", "refs/pr/1")
    assert parse_source("hf://org/name", revision="dev") == HfRef("org/name", "dev")
    assert parse_source("hf://gpt2") == HfRef("gpt2", None)
    assert parse_source("hf://org/name@dev", revision="dev") == HfRef("org/name", "dev")


@pytest.mark.parametrize(
    ("source", "revision", "expect"),
    [
        ("org/name", None, "no scheme"),
        ("s3://b", None, "is not a bucket name"),
        ("pvc://claim/dir", None, "already lives on its claim"),
        ("vendor://nvidia/models/x", None, "provided by the vendor's own system"),
        ("ftp://host/file", None, "is not supported"),
        ("hf://", None, "hf://org/name"),
        ("hf://org/name@", None, "give a revision"),
        ("hf://a/b/c", None, "hf://org/name"),
        ("hf://org/na--me", None, "not a valid repo id"),
        ("hf://org/bad name", None, "not a valid repo id"),
        ("hf://datasets/org/x", None, "only model repos"),
        ("hf://org/name@v1", "v2", "give only one"),
        ("hf://org/name@a b", None, "not a branch, tag or commit"),
        ("hf://org/name@../x", None, "not a branch, tag or commit"),
        ("https://", None, "has no host"),
        ("https://user:pw@host/file", None, "user:password@"),
        ("https://host:99999/file", None, "invalid port"),
        ("https://host/file", "main", "--revision applies to hf://"),
    ],
)
def test_malformed_sources_name_the_fix(source: str, revision: str | None, expect: str) -> None:
    with pytest.raises(BadInput, match=expect.replace("?", r"\?")) as info:
        parse_source(source, revision)
    assert "pw" not in str(info.value)
    assert info.value.exit_code == 2


def test_redact_url_drops_credentials() -> None:
    assert redact_url("https://u:p@h:8443/x?sig=1") == "https://h:8443/x?…"


def test_hex_digests() -> None:
    assert check_hex("AB" * 32, "sha256", "--sha256") == "ab" * 32
    assert check_hex(None, "md5", "--md5") is None
    with pytest.raises(BadInput, match="--sha256 'xyz' is not a sha256 digest: give 64"):
        check_hex("xyz", "sha256", "--sha256")
    with pytest.raises(BadInput, match=r"--md5 .* give 32 hexadecimal"):
        check_hex("g" * 32, "md5", "--md5")


def _files(*names: str) -> list[RemoteFile]:
    return [RemoteFile(n, f"http://x/{n}") for n in names]


def test_include_exclude_globs() -> None:
    files = _files("config.json", "model-1.safetensors", "onnx/model.onnx", "sub/a.json")
    pick = lambda inc, exc: [f.path for f in select(files, inc, exc)]  # noqa: E731
    assert pick([], []) == [f.path for f in files]
    assert pick(["*.json"], []) == ["config.json", "sub/a.json"]
    assert pick([], ["onnx/"]) == ["config.json", "model-1.safetensors", "sub/a.json"]
    assert pick(["*.safetensors", "config.json"], []) == ["config.json", "model-1.safetensors"]
    assert pick(["*.json"], ["sub/*"]) == ["config.json"]


@pytest.mark.parametrize("pattern", ["", "/abs/*", "a\\b", "[abc"])
def test_bad_globs_rejected(pattern: str) -> None:
    with pytest.raises(BadInput, match="--include"):
        select(_files("a"), [pattern], [])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8M", 8 << 20),
        ("16MiB", 16 << 20),
        ("8m", 8 << 20),
        ("1048576", 1 << 20),
        ("2MB", 2 * 10**6),
    ],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "M", "8X", "-1M", "0.3"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(BadInput, match="--chunk-size"):
        parse_size(text, "--chunk-size")


def test_settings_validate_ranges() -> None:
    with pytest.raises(BadInput, match="--connections 0"):
        TransferSettings(connections=0)
    with pytest.raises(BadInput, match="--chunk-size 10"):
        TransferSettings(chunk_size=10)
    assert TransferSettings(chunk_size=8 << 20).transfer_kwargs()["chunk_size"] == 8 << 20
