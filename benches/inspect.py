"""Benchmark of model discovery: ``inspect`` of a 160-shard model, local and remote.

Run: ``.venv/bin/python -m benches.inspect [--runs 7] [--shards 160]``; a separate
entry from ``benches.run`` (which measures pulls). Writes
``benches/results/inspect-<UTC>.json`` and prints a Markdown section for
benches/README.md.

- local: a Llama-3.1-405B-shaped model (126 layers of real sizes over 160 sparse
  shards, plus its index and config): ``discover(dir)`` against the ``safetensors``
  package opening each shard with ``safe_open`` and reading every tensor's shape
  (what counting parameters with it takes). Both run in this process, warm page
  cache, interleaved, median of ``--runs``. The CLI (``ome-agent inspect DIR --json``,
  a fresh process with its imports) is measured too.
- remote: the same names and shapes served by the local Hub server in its own
  process (``tests/servers/hf_hub_server.py``; shards are small files whose headers
  are those of the real layout): ``inspect_remote("hf://...")`` against
  huggingface_hub's ``HfApi.get_safetensors_metadata``, which also reads headers by
  range requests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.data.safetensors_fixtures import shard_bytes, write_index, write_shard

from benches.hub import hub_server

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benches" / "results"
PY = sys.executable

# Llama 3.1 405B
HIDDEN, FF, KV, VOCAB, LAYERS = 16384, 53248, 1024, 128256, 126
LOCAL_TARGET_S = 0.2
REMOTE_TARGET_S = 1.0

Layout = dict[str, dict[str, tuple[str, list[int]]]]


def layout(shards: int, *, small: bool = False) -> Layout:
    """Shard name -> tensors: 126 layers spread over ``shards`` files. ``small`` keeps
    names and ranks but shrinks every dimension to 1 (for the Hub, which hashes files)."""

    def shape(*dims: int) -> list[int]:
        return [1] * len(dims) if small else list(dims)

    tensors: list[tuple[str, tuple[str, list[int]]]] = [
        ("model.embed_tokens.weight", ("BF16", shape(VOCAB, HIDDEN)))
    ]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        tensors += [
            (p + "self_attn.q_proj.weight", ("BF16", shape(HIDDEN, HIDDEN))),
            (p + "self_attn.k_proj.weight", ("BF16", shape(KV, HIDDEN))),
            (p + "self_attn.v_proj.weight", ("BF16", shape(KV, HIDDEN))),
            (p + "self_attn.o_proj.weight", ("BF16", shape(HIDDEN, HIDDEN))),
            (p + "mlp.gate_proj.weight", ("BF16", shape(FF, HIDDEN))),
            (p + "mlp.up_proj.weight", ("BF16", shape(FF, HIDDEN))),
            (p + "mlp.down_proj.weight", ("BF16", shape(HIDDEN, FF))),
            (p + "input_layernorm.weight", ("BF16", shape(HIDDEN))),
            (p + "post_attention_layernorm.weight", ("BF16", shape(HIDDEN))),
        ]
    tensors += [
        ("model.norm.weight", ("BF16", shape(HIDDEN))),
        ("lm_head.weight", ("BF16", shape(VOCAB, HIDDEN))),
    ]
    n = len(tensors)
    out: Layout = {}
    for s in range(shards):  # every shard gets tensors, as evenly as they split
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        out[name] = dict(tensors[s * n // shards : (s + 1) * n // shards])
    return out


def config() -> dict[str, Any]:
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": FF,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 128,
        "num_key_value_heads": 8,
        "vocab_size": VOCAB,
        "max_position_embeddings": 131072,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.43.0",
    }


def write_model(directory: Path, shards: Layout, *, sparse: bool) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    total = 0
    for name, tensors in shards.items():
        if sparse:
            total += write_shard(directory / name, tensors)
        else:
            data = shard_bytes(tensors)
            (directory / name).write_bytes(data)
            total += len(data)
    write_index(directory, shards, total_size=total)
    (directory / "config.json").write_text(json.dumps(config()))
    return total


# ---------------------------------------------------------------- measured calls
def ours_local(directory: Path) -> int:
    from ome_agent.discovery import discover

    found = discover(directory)
    if found.parameter_count is None or found.errors:
        raise RuntimeError(f"discover failed: {found.errors}")
    return found.parameter_count


def peer_local(directory: Path) -> int:
    from safetensors import safe_open

    index = json.loads((directory / "model.safetensors.index.json").read_text())
    total = 0
    for shard in sorted(set(index["weight_map"].values())):
        with safe_open(str(directory / shard), framework="np") as f:
            f.metadata()
            for key in f.keys():  # noqa: SIM118 - safe_open has no __iter__
                total += math.prod(f.get_slice(key).get_shape())
    return total


def ours_remote(repo: str) -> int:
    from ome_agent.discovery import inspect_remote

    found = inspect_remote(f"hf://{repo}")
    if found.parameter_count is None or found.errors:
        raise RuntimeError(f"inspect_remote failed: {found.errors}")
    return found.parameter_count


def peer_remote(repo: str) -> int:
    from huggingface_hub import HfApi

    meta = HfApi(endpoint=os.environ["HF_ENDPOINT"]).get_safetensors_metadata(repo)
    return sum(meta.parameter_count.values())


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def interleaved(tools: dict[str, Callable[[], int]], runs: int) -> dict[str, dict[str, Any]]:
    """Round r runs every tool once, starting at tool r (rotating start)."""
    names = list(tools)
    for name in names:  # warm-up: imports, page cache, connection pools
        tools[name]()
    seconds: dict[str, list[float]] = {n: [] for n in names}
    values: dict[str, int] = {}
    for r in range(runs):
        for k in range(len(names)):
            name = names[(r + k) % len(names)]
            s, v = timed(tools[name])
            seconds[name].append(s)
            values[name] = v
    return {
        n: {
            "median_s": statistics.median(seconds[n]),
            "runs_s": seconds[n],
            "parameters": values[n],
        }
        for n in names
    }


def cli_runs(argv: list[str], runs: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
        seconds.append(time.perf_counter() - start)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return {"median_s": statistics.median(seconds), "runs_s": seconds}


# ---------------------------------------------------------------- report
def markdown(result: dict[str, Any]) -> str:
    local, remote = result["local"], result["remote"]
    lo, lp = local["tools"]["ours"]["median_s"], local["tools"]["safetensors"]["median_s"]
    ro, rp = remote["tools"]["ours"]["median_s"], remote["tools"]["huggingface_hub"]["median_s"]
    env = result["environment"]
    lines = [
        "",
        "## Discovery: `inspect` of a 160-shard model (`benches/inspect.py`)",
        "",
        f"{result['timestamp']} · {result['shards']} shards, {local['tensors']} tensors "
        f"(Llama-3.1-405B layout, {local['parameters']:,} parameters, "
        f"{local['apparent_bytes'] / 1e12:.2f} TB sparse) · median of {result['runs']} runs, "
        f"interleaved · {env['cpus']} cores · load average {env['load_start']} at start, "
        f"{env['load_end']} at end · `{result['file']}`",
        "",
        "Run: `.venv/bin/python -m benches.inspect`. Both sides count the same parameters"
        " (checked each run).",
        "",
        "| what | tool | median s | ours ÷ tool |",
        "|---|---|---:|---:|",
        f"| local, in process | `discover(dir)` (headers only) | {lo:.4f} | - |",
        f"| local, in process | `safetensors.safe_open` per shard, every shape | {lp:.4f} "
        f"| {lp / lo:.2f}x faster |",
        f"| local, CLI | `ome-agent inspect DIR --json` (fresh process) "
        f"| {local['cli']['median_s']:.3f} | - |",
        f"| remote hf://, in process | `inspect_remote` (1 range request per shard) | {ro:.4f} "
        "| - |",
        f"| remote hf://, in process | `HfApi.get_safetensors_metadata` | {rp:.4f} "
        f"| {rp / ro:.2f}x faster |",
        f"| remote hf://, CLI | `ome-agent inspect hf://... --json` (fresh process) "
        f"| {remote['cli']['median_s']:.3f} | - |",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        f"| local 160-shard inspect | < {LOCAL_TARGET_S} s | {lo:.4f} s | "
        f"{'met' if lo < LOCAL_TARGET_S else '**missed**'} |",
        f"| remote 160-shard inspect on loopback | < {REMOTE_TARGET_S} s | {ro:.3f} s | "
        f"{'met' if ro < REMOTE_TARGET_S else '**missed**'} |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--shards", type=int, default=160)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args(argv)
    if args.runs < 5:
        parser.error("--runs: at least 5 (the README reports medians of >= 5)")

    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    script = str(Path(PY).with_name("ome-agent"))
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="inspect-bench-") as tmp:
        work = Path(tmp)
        local_dir = work / "local"
        big = layout(args.shards)
        apparent = write_model(local_dir, big, sparse=True)
        local = interleaved(
            {"ours": lambda: ours_local(local_dir), "safetensors": lambda: peer_local(local_dir)},
            args.runs,
        )
        if local["ours"]["parameters"] != local["safetensors"]["parameters"]:
            raise RuntimeError(f"local counts differ: {local}")
        local_cli = cli_runs([script, "inspect", str(local_dir), "--json"], args.runs)

        hub_root = work / "hub"
        write_model(
            hub_root / "bench" / "llama-405b-layout", layout(args.shards, small=True), sparse=False
        )
        with hub_server(hub_root, work) as endpoint:
            os.environ["HF_ENDPOINT"] = endpoint
            os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
            repo = "bench/llama-405b-layout"
            remote = interleaved(
                {"ours": lambda: ours_remote(repo), "huggingface_hub": lambda: peer_remote(repo)},
                args.runs,
            )
            if remote["ours"]["parameters"] != remote["huggingface_hub"]["parameters"]:
                raise RuntimeError(f"remote counts differ: {remote}")
            env = dict(os.environ)
            remote_cli = cli_runs([script, "inspect", f"hf://{repo}", "--json"], args.runs, env)

    result = {
        "timestamp": stamp,
        "file": f"inspect-{stamp}.json",
        "runs": args.runs,
        "shards": args.shards,
        "local": {
            "tensors": sum(len(t) for t in big.values()),
            "parameters": local["ours"]["parameters"],
            "apparent_bytes": apparent,
            "tools": local,
            "cli": local_cli,
        },
        "remote": {"tools": remote, "cli": remote_cli},
        "environment": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_start": load_start,
            "load_end": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / result["file"]).write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
