"""Synthetic source data for the benchmarks, generated fresh once per harness run.

Where it sits: ``benches.run`` calls it before starting the servers. Bytes come
from the kernel's CSPRNG, never zeros or a repeated pattern: compression or
sparse-file tricks of any tool or server would flatter it on such data.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

_BLOCK = 16 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    path: Path
    size: int
    sha256: str


def random_file(path: Path, size: int, *, prefix: bytes = b"") -> SourceFile:
    """Write ``prefix`` then random bytes up to ``size``; return its sha256."""
    h = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        f.write(prefix)
        h.update(prefix)
        left = size - len(prefix)
        while left > 0:
            block = os.urandom(min(_BLOCK, left))
            f.write(block)
            h.update(block)
            left -= len(block)
    return SourceFile(path, size, h.hexdigest())


def safetensors_shard(path: Path, size: int, index: int) -> SourceFile:
    """A valid safetensors file of exactly ``size`` bytes: one U8 tensor of random data.

    Valid so that a tool which reads headers (ours does, for discovery) sees a
    real file; the header is padded with spaces to 8-byte alignment like the
    reference writer does.
    """
    name = f"model.layers.{index}.weight"

    def header(data_len: int) -> bytes:
        meta = {
            "__metadata__": {"format": "pt"},
            name: {"dtype": "U8", "shape": [data_len], "data_offsets": [0, data_len]},
        }
        raw = json.dumps(meta, separators=(",", ":")).encode()
        return raw + b" " * (-len(raw) % 8)

    # The header length depends on the digits of the data length: iterate to a fixed point.
    data_len = size - 8 - len(header(size))
    while 8 + len(header(data_len)) + data_len != size:
        data_len = size - 8 - len(header(data_len))
    hdr = header(data_len)
    return random_file(path, size, prefix=struct.pack("<Q", len(hdr)) + hdr)


def hf_repo(root: Path, repo_id: str, *, shards: int, shard_size: int) -> list[SourceFile]:
    """``root/org/name``: ``shards`` safetensors shards plus the small files of a real repo."""
    repo = root / repo_id
    repo.mkdir(parents=True, exist_ok=True)
    files: list[SourceFile] = []
    weight_map: dict[str, str] = {}
    for i in range(1, shards + 1):
        name = f"model-{i:05d}-of-{shards:05d}.safetensors"
        files.append(safetensors_shard(repo / name, shard_size, i))
        weight_map[f"model.layers.{i}.weight"] = name
    small = {
        "config.json": json.dumps(
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "uint8"},
            indent=2,
        ).encode(),
        "generation_config.json": b'{"do_sample": true}\n',
        "tokenizer_config.json": b'{"model_max_length": 8192}\n',
        # Tokenizers are the one multi-MB non-LFS file of a typical repo (git blob sha1 checked).
        "tokenizer.json": os.urandom(1024 * 1024).hex().encode(),
        "model.safetensors.index.json": json.dumps(
            {"metadata": {"total_size": shards * shard_size}, "weight_map": weight_map}
        ).encode(),
        "README.md": b"# synthetic benchmark model\n",
    }
    for name, content in small.items():
        (repo / name).write_bytes(content)
        files.append(SourceFile(repo / name, len(content), hashlib.sha256(content).hexdigest()))
    return files


def warm(paths: list[Path]) -> None:
    """Read files once so every tool starts from the same warm page cache."""
    for p in paths:
        with p.open("rb") as f:
            while f.read(_BLOCK):
                pass
