"""Python surface of the safetensors header parser (``ome_agent._core``).

Files are written by hand (8-byte little-endian length + JSON, then a sparse
data section) so parameter counts are computed independently of the parser,
and multi-GB shards cost nothing on disk. Hostile headers must raise
``HeaderError`` (a ``ValueError``) with a message naming what is wrong.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest

from ome_agent import _core

BITS = {
    "BOOL": 8,
    "F4": 4,
    "F6_E2M3": 6,
    "F6_E3M2": 6,
    "U8": 8,
    "I8": 8,
    "F8_E5M2": 8,
    "F8_E4M3": 8,
    "F8_E8M0": 8,
    "I16": 16,
    "U16": 16,
    "F16": 16,
    "BF16": 16,
    "I32": 32,
    "U32": 32,
    "F32": 32,
    "C64": 64,
    "F64": 64,
    "I64": 64,
    "U64": 64,
}


def layout(tensors: dict[str, tuple[str, list[int]]]) -> tuple[dict[str, Any], int]:
    """Header entries with contiguous offsets, in the given order; and the data size."""
    entries: dict[str, Any] = {}
    at = 0
    for name, (dtype, shape) in tensors.items():
        size = math.prod(shape) * BITS[dtype] // 8
        entries[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + size]}
        at += size
    return entries, at


def frame(header: Any) -> bytes:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw


def write(path: Path, header: Any, data_size: int) -> Path:
    """A safetensors file whose data section is a hole of ``data_size`` bytes."""
    head = frame(header)
    with path.open("wb") as f:
        f.write(head)
        f.truncate(len(head) + data_size)
    return path


def llama_like_shard() -> dict[str, tuple[str, list[int]]]:
    """Shapes of a Llama-3-8B shard: enough tensors and sizes to be realistic."""
    t: dict[str, tuple[str, list[int]]] = {"model.embed_tokens.weight": ("BF16", [128256, 4096])}
    for i in range(8):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = ("BF16", [4096, 4096])
        t[p + "self_attn.k_proj.weight"] = ("BF16", [1024, 4096])
        t[p + "self_attn.v_proj.weight"] = ("BF16", [1024, 4096])
        t[p + "self_attn.o_proj.weight"] = ("BF16", [4096, 4096])
        t[p + "mlp.gate_proj.weight"] = ("BF16", [14336, 4096])
        t[p + "mlp.up_proj.weight"] = ("BF16", [14336, 4096])
        t[p + "mlp.down_proj.weight"] = ("BF16", [4096, 14336])
        t[p + "input_layernorm.weight"] = ("F32", [4096])
        t[p + "post_attention_layernorm.weight"] = ("F32", [4096])
    return t


def test_real_sized_shard_counts_exactly(tmp_path: Path) -> None:
    tensors = llama_like_shard()
    entries, data_size = layout(tensors)
    header = {"__metadata__": {"format": "pt"}, **dict(reversed(list(entries.items())))}
    path = write(tmp_path / "model-00001-of-00004.safetensors", header, data_size)

    h = _core.read_safetensors_header(str(path))

    expected = sum(math.prod(shape) for _, shape in tensors.values())
    assert h.parameter_count == expected
    assert h.parameters_by_dtype == {"BF16": expected - 16 * 4096, "F32": 16 * 4096}
    assert h.data_size == data_size > 3_000_000_000
    assert h.header_size == len(json.dumps(header).encode())
    assert h.metadata == {"format": "pt"}
    # Tensors come back in file order whatever the JSON order.
    assert [t.name for t in h.tensors] == list(tensors)
    emb = h.tensors[0]
    assert (emb.dtype, emb.shape, emb.data_offsets) == (
        "BF16",
        [128256, 4096],
        (0, 2 * 128256 * 4096),
    )
    assert emb.numel == 128256 * 4096
    # Path objects work too, and give the same answer.
    assert _core.read_safetensors_header(path).parameter_count == expected


def test_parse_from_a_range_response(tmp_path: Path) -> None:
    entries, data_size = layout({"a": ("F16", [3, 5]), "b": ("I64", [])})
    head = frame(entries)
    need = _core.safetensors_header_length(head[:8])
    assert need == len(head)
    # A range response may carry more than the header; only `need` bytes are used.
    chunk = head + b"\0" * 7
    h = _core.parse_safetensors_header(chunk, file_size=len(head) + data_size)
    assert (h.parameter_count, h.data_size) == (16, data_size)
    assert _core.parse_safetensors_header(head).parameter_count == 16


def test_counts_beyond_64_bits_stay_exact() -> None:
    # Two F4 tensors of 2**63 elements: 2**64 parameters, more than a u64 holds.
    half = 2**63
    header = {
        "a": {"dtype": "F4", "shape": [half], "data_offsets": [0, half // 2]},
        "b": {"dtype": "F4", "shape": [half], "data_offsets": [half // 2, half]},
    }
    h = _core.parse_safetensors_header(frame(header))
    assert h.parameter_count == 2**64
    assert h.parameters_by_dtype == {"F4": 2**64}


def test_every_dtype_of_the_format_is_accepted() -> None:
    entries, size = layout({f"t.{d}": (d, [4, 2]) for d in BITS})
    h = _core.parse_safetensors_header(frame(entries), file_size=len(frame(entries)) + size)
    assert {t.dtype for t in h.tensors} == set(BITS)
    assert h.parameter_count == 8 * len(BITS)


def test_empty_file_without_tensors(tmp_path: Path) -> None:
    h = _core.read_safetensors_header(str(write(tmp_path / "e.safetensors", b"{}      ", 0)))
    assert (h.parameter_count, h.tensors, h.metadata, h.data_size) == (0, [], None, 0)


def test_max_header_bytes_constant() -> None:
    assert _core.MAX_HEADER_BYTES == 100_000_000


ONE = {"t": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}}


def tensor(**fields: Any) -> dict[str, Any]:
    return {"t": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4], **fields}}


HOSTILE: list[tuple[str, bytes, int, str]] = [
    # (id, file bytes before the hole, hole size, expected message fragment)
    ("length-beyond-file", struct.pack("<Q", 1000) + b"{}", 0, "beyond the end of the"),
    ("shorter-than-length", b"\x01\x02\x03", 0, "only 3 bytes"),
    ("bad-utf8", frame(b'{"\xff": 1}'), 0, "not valid UTF-8"),
    ("bad-json", frame(b'{"t": {"dtype": "U8",'), 4, "not valid JSON"),
    ("trailing-json", frame(b"{} {}"), 0, "not valid JSON"),
    ("not-an-object", frame(b"[1, 2]"), 0, "got an array"),
    ("empty-json", frame(b""), 0, "empty"),
    ("overlap", frame({**ONE, "u": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}}), 6,
     'tensor "u" (bytes 2..6) overlaps tensor "t" (bytes 0..4)'),
    ("gap", frame({**ONE, "u": {"dtype": "U8", "shape": [2], "data_offsets": [6, 8]}}), 8,
     "bytes 4..6 of the data section belong to no tensor"),
    ("beyond-data", frame(ONE), 3, 'tensor "t": data_offsets end 4 is beyond the 3-byte'),
    ("trailing-data", frame(ONE), 9, "trailing bytes"),
    ("reversed", frame(tensor(data_offsets=[4, 0])), 4, "end before they begin"),
    ("size-mismatch", frame(tensor(dtype="F32")), 4,
     "needs 16 bytes but data_offsets [0, 4] span 4"),
    ("shape-overflow", frame(tensor(shape=[2**32, 2**32])), 4, "overflows 64 bits"),
    ("negative-shape", frame(tensor(shape=[-4])), 4, '"shape" must hold non-negative integers'),
    ("float-shape", frame(tensor(shape=[4.0])), 4, "element 0 is 4.0"),
    ("negative-offset", frame(tensor(data_offsets=[-1, 4])), 4, '"data_offsets" must hold'),
    ("three-offsets", frame(tensor(data_offsets=[0, 2, 4])), 4, "[begin, end]"),
    ("unknown-dtype", frame(tensor(dtype="INT4")), 4, 'unknown dtype "INT4"'),
    ("missing-dtype", frame({"t": {"shape": [4], "data_offsets": [0, 4]}}), 4,
     'missing field "dtype"'),
    ("dtype-not-string", frame(tensor(dtype=8)), 4, '"dtype" must be a string'),
    ("duplicate-tensor",
     frame(b'{"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},'
           b'"t":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}'), 4,
     'duplicate key "t"'),
    ("metadata-not-strings", frame({"__metadata__": {"n": 1}, **ONE}), 4,
     'value of "n" must be a string'),
    ("misaligned-f4", frame(tensor(dtype="F4", shape=[3], data_offsets=[0, 2])), 2,
     "do not fill whole bytes"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("head", "hole", "message"),
    [pytest.param(h, n, m, id=i) for i, h, n, m in HOSTILE],
)
def test_hostile_headers_raise_header_error(
    tmp_path: Path, head: bytes, hole: int, message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(head)
    with path.open("r+b") as f:
        f.truncate(len(head) + hole)
    with pytest.raises(_core.HeaderError) as info:
        _core.read_safetensors_header(str(path))
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, _core.EngineError)
    # The same bytes through the range-request path fail the same way.
    with pytest.raises(_core.HeaderError, match="invalid safetensors header"):
        _core.parse_safetensors_header(head, file_size=len(head) + hole)


def test_header_over_100_mb_is_refused_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.safetensors"
    with path.open("wb") as f:
        f.write(struct.pack("<Q", 100_000_001))
        f.truncate(300_000_000)
    with pytest.raises(_core.HeaderError, match="over the 100000000-byte limit"):
        _core.read_safetensors_header(str(path))
    with pytest.raises(_core.HeaderError, match="limit"):
        _core.safetensors_header_length(struct.pack("<Q", 2**64 - 1))


def test_prefix_too_short_for_length() -> None:
    with pytest.raises(_core.HeaderError, match="got only 5 bytes"):
        _core.safetensors_header_length(b"12345")


def test_truncated_range_response_says_how_much_to_fetch() -> None:
    head = frame(ONE)
    with pytest.raises(_core.HeaderError, match=f"pass the first {len(head)} bytes"):
        _core.parse_safetensors_header(head[:20])


def test_unreadable_paths_are_os_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
        _core.read_safetensors_header(str(missing))
    with pytest.raises(OSError, match="read safetensors header"):
        _core.read_safetensors_header(str(tmp_path))


def read_bytes_of_this_process() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_many_shards_read_only_their_headers(tmp_path: Path) -> None:
    tensors = llama_like_shard()
    entries, data_size = layout(tensors)
    paths = [write(tmp_path / f"s{i:03}.safetensors", entries, data_size) for i in range(160)]
    header_bytes = len(frame(entries)) * len(paths)

    before = read_bytes_of_this_process()
    total = sum(_core.read_safetensors_header(str(p)).parameter_count for p in paths)
    read = read_bytes_of_this_process() - before

    assert total == 160 * sum(math.prod(s) for _, s in tensors.values())
    # Only the headers are read (the data sections are 3 GB holes each).
    # Speed is a benchmark's business (benches/), not a test's.
    assert read < header_bytes + 1_000_000, read
