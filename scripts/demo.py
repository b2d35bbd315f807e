"""The README's main job, on a fresh machine with no cluster and no internet.

It makes a small synthetic model (a Llama-style config.json, tokenizer files and two
safetensors shards with real headers), serves it on loopback through the project's
local Hugging Face Hub server, then shows what a node does with it:
``ome-agent pull hf://...`` (every file verified against the digest the Hub lists),
an interrupted pull resumed, the node agent in standalone mode (manifests and node
labels in; the eligible model downloaded, verified and described; ``ome-agent
status`` out; a second run confirms it from disk with no request), and the
safetensors headers read back to count parameters exactly. Everything happens in a
fresh ``ome-agent-demo-*`` folder of the temporary directory, removed when the demo
succeeds (``--keep`` keeps it) and kept, with its path printed, when it fails.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers.hf_hub_server import HubServer

from ome_agent import _core

HIDDEN, LAYERS, VOCAB = 1024, 4, 32000


def shard(path: Path, tensors: dict[str, list[int]]) -> int:
    """Write a BF16 shard: real header, random data. Returns its parameter count."""
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    count = 0
    for name, shape in tensors.items():
        numel = 1
        for d in shape:
            numel *= d
        header[name] = {
            "dtype": "BF16",
            "shape": shape,
            "data_offsets": [offset, offset + 2 * numel],
        }
        offset += 2 * numel
        count += numel
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        left = offset
        while left:
            n = min(left, 1 << 22)
            f.write(os.urandom(n))
            left -= n
    return count


def make_model(repo: Path) -> int:
    repo.mkdir(parents=True)
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": HIDDEN,
        "intermediate_size": 4 * HIDDEN,
        "num_hidden_layers": LAYERS,
        "num_attention_heads": 16,
        "num_key_value_heads": 4,
        "vocab_size": VOCAB,
        "max_position_embeddings": 8192,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.44.0",
    }
    (repo / "config.json").write_text(json.dumps(config, indent=2))
    (repo / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 8192}))
    layers: dict[str, list[int]] = {}
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        layers |= {
            p + "self_attn.q_proj.weight": [HIDDEN, HIDDEN],
            p + "self_attn.k_proj.weight": [HIDDEN // 4, HIDDEN],
            p + "self_attn.v_proj.weight": [HIDDEN // 4, HIDDEN],
            p + "self_attn.o_proj.weight": [HIDDEN, HIDDEN],
            p + "mlp.gate_proj.weight": [4 * HIDDEN, HIDDEN],
            p + "mlp.up_proj.weight": [4 * HIDDEN, HIDDEN],
            p + "mlp.down_proj.weight": [HIDDEN, 4 * HIDDEN],
        }
    total = shard(
        repo / "model-00001-of-00002.safetensors",
        {"model.embed_tokens.weight": [VOCAB, HIDDEN]} | layers,
    )
    total += shard(repo / "model-00002-of-00002.safetensors", {"lm_head.weight": [VOCAB, HIDDEN]})
    return total


def ome_agent(*args: str, **kw: object) -> subprocess.Popen[str]:
    exe = Path(sys.executable).with_name("ome-agent")
    return subprocess.Popen([str(exe), *args], text=True, **kw)  # type: ignore[call-overload]


def wait_for_journal(dest: Path, proc: subprocess.Popen[str], timeout: float = 30.0) -> None:
    """Until a resume journal records at least one finished range (header + record)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for journal in dest.glob("*.partial.journal") if dest.is_dir() else []:
            try:
                if journal.stat().st_size > 256:
                    return
            except FileNotFoundError:  # that file just finished
                continue
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    """Run the demo in a fresh folder: removed when it succeeds (unless ``--keep``),
    kept for a look when it fails."""
    work = Path(tempfile.mkdtemp(prefix="ome-agent-demo-"))
    ok = False
    try:
        ok = demo(work) == 0
    finally:
        if ok and "--keep" not in argv:
            shutil.rmtree(work, ignore_errors=True)
            print(f"demo: removed {work} (run with --keep to keep it)")
        else:
            print(f"demo: files kept in {work}: remove it when done")
    return 0 if ok else 1


def demo(work: Path) -> int:
    expected = make_model(work / "hub" / "demo" / "tiny-llama")
    dest = work / "models" / "tiny-llama"
    print(f"demo: synthetic model with {expected:,} parameters under {work}/hub")
    with HubServer(work / "hub", throttle=40e6) as hub:
        env = os.environ | {"HF_ENDPOINT": hub.endpoint}
        env.pop("HF_TOKEN", None)
        print("demo: pull, interrupted (Ctrl-C) once some ranges are journaled ...")
        # its "error: interrupted" line is the demo's doing: captured, not shown as a failure
        first = ome_agent(
            "pull", "hf://demo/tiny-llama", str(dest), env=env, stderr=subprocess.PIPE
        )
        wait_for_journal(dest, first)
        first.send_signal(signal.SIGINT)
        _, said = first.communicate()
        print(
            f"demo: first pull exited {first.returncode}: interrupted on purpose, as part "
            "of the demo (exit 130, partial files kept for the resume)"
        )
        if first.returncode != 130:
            print(f"demo: expected exit 130; the pull said: {said.strip()}")
            return 1
        print("demo: pull again; it resumes and verifies every file:")
        second = ome_agent(
            "pull", "hf://demo/tiny-llama", str(dest), "--json", env=env, stdout=subprocess.PIPE
        )
        out, _ = second.communicate()
        if second.returncode != 0:
            print(f"demo: pull failed with exit code {second.returncode}")
            return 1
        report_pull(json.loads(out), dest)
        if not standalone(work, hub, env):
            return 1
    counted = sum(
        _core.read_safetensors_header(str(p)).parameter_count for p in dest.glob("*.safetensors")
    )
    print(f"demo: parameters counted from the safetensors headers: {counted:,}")
    if counted != expected:
        print(f"demo: parameter count {counted} differs from the {expected} written")
        return 1
    print(f"demo: done; pulled files were in {dest}, the node's models in {work}/node-models")
    return 0


def report_pull(summary: dict[str, Any], dest: Path) -> None:
    for f in summary["files"]:
        how = ",".join(f["verified"])
        print(
            f"  {f['path']:<36} {f['size']:>12,} B  verified: {how:<16}"
            f" resumed {f['resumed_bytes']:,} B"
        )
    print(f"demo: {summary['total_bytes']:,} bytes into {dest} in {summary['seconds']:.2f} s")


MANIFESTS = """\
apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata:
  name: tiny-llama
spec:
  vendor: demo
  storage:
    storageUri: hf://demo/tiny-llama
    path: tiny-llama
    nodeSelector:
      accelerator: gpu
---
apiVersion: ome.io/v1beta1
kind: ClusterBaseModel
metadata:
  name: cpu-only-model
spec:
  storage:
    storageUri: hf://demo/tiny-llama
    nodeSelector:
      accelerator: cpu
"""


def standalone(work: Path, hub: HubServer, env: dict[str, str]) -> bool:
    """The node agent with no cluster: manifests in, verified files and a state file out."""
    manifests = work / "manifests"
    manifests.mkdir()
    (manifests / "models.yaml").write_text(MANIFESTS)
    state = work / "node-state.json"
    run = [
        "run", "--standalone", "--once", "--manifests", str(manifests),
        "--node-labels", "accelerator=gpu", "--models-root-dir", str(work / "node-models"),
        "--state-file", str(state), "--log-level", "warning",
    ]  # fmt: skip
    print("demo: ome-agent run --standalone --once (node labels accelerator=gpu):")
    if ome_agent(*run, env=env).wait() != 0:
        print("demo: the standalone run failed")
        return False
    if ome_agent("status", "--state-file", str(state)).wait() != 0:
        return False
    hub.clear_requests()
    print("demo: run again: every model is confirmed from its local manifest ...")
    if ome_agent(*run, env=env).wait() != 0:
        return False
    asked = len(hub.requests("hub")) + len(hub.requests("cdn"))
    print(f"demo: ... with {asked} requests to the Hub")
    return asked == 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
