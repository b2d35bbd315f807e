"""``inspect_remote`` against the local Hub (tests/servers/hf_hub_server.py).

Only small files and one ranged request per shard header cross the wire; the token
reaches the Hub, never its CDN.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ome_agent.discovery.remote import PROBE_BYTES, inspect_remote
from ome_agent.errors import BadInput, SourceNotFound
from tests.data.safetensors_fixtures import count_of, llama_like_shards, shard_bytes
from tests.servers.hf_fixtures import HF_TEST_TOKEN
from tests.servers.hf_hub_server import HubServer

CONFIGS = Path(__file__).parent / "data" / "hf-configs"


def _repo(shards: dict[str, dict[str, tuple[str, list[int]]]], *, index: bool) -> dict[str, bytes]:
    files = {name: shard_bytes(tensors) for name, tensors in shards.items()}
    files["config.json"] = (CONFIGS / "llama3_2_1b.json").read_bytes()
    files["tokenizer_config.json"] = json.dumps({"chat_template": "{{ messages }}"}).encode()
    files["README.md"] = b"# a model\n"
    if index:
        weight_map = {t: s for s, tensors in shards.items() for t in tensors}
        files["model.safetensors.index.json"] = json.dumps({"weight_map": weight_map}).encode()
    return files


def _cdn_gets(hub: HubServer) -> Counter[str]:
    return Counter(r["path"].split("?")[0] for r in hub.requests("cdn") if r["method"] == "GET")


def test_one_small_range_request_per_shard(hf_env: HubServer) -> None:
    shards = llama_like_shards(8)
    files = _repo(shards, index=True)
    hf_env.add_repo("org/model", files)
    got = inspect_remote("hf://org/model")
    assert got.errors == ()
    assert got.parameter_count == count_of(shards)
    assert got.parameter_count_source == "safetensors"
    assert got.size_on_disk_bytes == sum(len(files[s]) for s in shards)
    assert list(got.api_capabilities) == ["OPENAI_V1_CHAT_COMPLETIONS", "OPENAI_V1_COMPLETIONS"]
    assert got.max_tokens == 131072
    gets = _cdn_gets(hf_env)
    assert len(gets) == 8
    assert set(gets.values()) == {1}
    ranges = {r["headers"].get("Range") for r in hf_env.requests("cdn")}
    assert ranges == {f"bytes=0-{PROBE_BYTES - 1}"}
    # nothing but listing, small files and the shard redirects reached the Hub
    hub_paths = [r["path"] for r in hf_env.requests("hub")]
    assert not any("README.md" in p for p in hub_paths)
    assert sum("/resolve/" in p and p.endswith(".safetensors") for p in hub_paths) == 8


def test_private_repo_token_goes_to_the_hub_not_the_cdn(hf_env: HubServer) -> None:
    shards = llama_like_shards(3)
    hf_env.add_repo("org/private", _repo(shards, index=False), private=True)
    with pytest.raises(SourceNotFound, match="HF_TOKEN"):
        inspect_remote("hf://org/private")
    got = inspect_remote("hf://org/private", token=HF_TEST_TOKEN)
    assert got.parameter_count == count_of(shards)
    assert all("Authorization" not in r["headers"] for r in hf_env.requests("cdn"))
    resolves = [r for r in hf_env.requests("hub") if "/resolve/" in r["path"]]
    assert resolves
    assert all(r["headers"].get("Authorization") == f"Bearer {HF_TEST_TOKEN}" for r in resolves)


def test_header_over_the_probe_size_takes_a_second_request(hf_env: HubServer) -> None:
    small = llama_like_shards(1)
    big_tensors = {f"model.extra.{i:05d}.weight": ("BF16", [2, 2]) for i in range(3000)}
    files = {name: shard_bytes(t) for name, t in small.items()}
    files["big.safetensors"] = shard_bytes(big_tensors)
    assert len(files["big.safetensors"]) > PROBE_BYTES
    files["config.json"] = (CONFIGS / "llama3_2_1b.json").read_bytes()
    hf_env.add_repo("org/big", files)
    got = inspect_remote("hf://org/big")
    assert got.errors == ()
    assert got.parameter_count == count_of(small) + 3000 * 4
    gets = _cdn_gets(hf_env)
    assert sorted(gets.values()) == [1, 2]


def test_revision_pins_the_commit(hf_env: HubServer) -> None:
    hf_env.add_repo("org/rev", _repo(llama_like_shards(1), index=False))
    hf_env.add_repo("org/rev", _repo(llama_like_shards(2), index=False), revision="v2")
    one = inspect_remote("hf://org/rev")
    two = inspect_remote("hf://org/rev", revision="v2")
    assert two.parameter_count == count_of(llama_like_shards(2))
    assert one.parameter_count == count_of(llama_like_shards(1))


def test_hostile_remote_header_is_an_error_in_the_result(hf_env: HubServer) -> None:
    files = _repo(llama_like_shards(2), index=False)
    files["zz.safetensors"] = b"\xff" * 8 + b"{}"
    hf_env.add_repo("org/bad", files)
    got = inspect_remote("hf://org/bad")
    assert len(got.errors) == 1
    assert got.errors[0].startswith("zz.safetensors: ")
    assert got.parameter_count_source == "estimate"


def test_repo_without_config_still_counts(hf_env: HubServer) -> None:
    shards = llama_like_shards(2)
    hf_env.add_repo("org/noconf", {n: shard_bytes(t) for n, t in shards.items()})
    got = inspect_remote("hf://org/noconf")
    assert got.parameter_count == count_of(shards)
    assert got.errors == ("config.json: not found in the repo (nor a subfolder)",)


def test_bad_remote_config_is_an_error_in_the_result(hf_env: HubServer) -> None:
    files = _repo(llama_like_shards(1), index=False)
    files["config.json"] = b'{"hidden_size": NaN}'
    hf_env.add_repo("org/nan", files)
    got = inspect_remote("hf://org/nan")
    assert got.errors == ("config.json: NaN is not valid JSON (write a number or null)",)
    assert got.parameter_count_source == "safetensors"


def test_plain_url_of_a_safetensors_file(hf_env: HubServer) -> None:
    shards = llama_like_shards(1)
    ((name, tensors),) = shards.items()
    hf_env.add_repo("org/url", {name: shard_bytes(tensors)})
    got = inspect_remote(f"{hf_env.endpoint}/org/url/resolve/main/{name}")
    assert got.parameter_count == count_of(shards)
    assert got.size_on_disk_bytes == len(shard_bytes(tensors))


def test_plain_url_must_name_a_safetensors_file() -> None:
    with pytest.raises(BadInput, match=r"\.safetensors files only"):
        inspect_remote("http://127.0.0.1:9/model.bin")


def test_schema_path_and_subfolder_configs_remotely(hf_env: HubServer) -> None:
    shards = llama_like_shards(2)
    files = {f"llm/{n}": shard_bytes(t) for n, t in shards.items()}
    files["llm/config.json"] = (CONFIGS / "qwen3_4b.json").read_bytes()
    files["model_card.json"] = b"{}"
    hf_env.add_repo("org/nested", files)
    found = inspect_remote("hf://org/nested")  # config.json one level down is found
    assert (found.config_path, found.model_type) == ("llm/config.json", "qwen3")
    assert found.parameter_count == count_of(shards)
    pinned = inspect_remote("hf://org/nested", schema_path="llm")
    assert pinned.config_path == "llm/config.json"
    outside = inspect_remote("hf://org/nested", schema_path="../x")
    assert "must be a relative path inside the model" in outside.errors[0]


def test_plain_url_that_is_not_there(hf_env: HubServer) -> None:
    hf_env.add_repo("org/empty", {"README.md": b"x"})
    with pytest.raises(SourceNotFound, match=r"HTTP 404: check the URL"):
        inspect_remote(f"{hf_env.endpoint}/org/empty/resolve/main/model.safetensors")
