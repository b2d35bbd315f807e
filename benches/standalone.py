"""Benchmark of standalone mode under load and hostile input: ``run --standalone --once``.

Run: ``.venv/bin/python -m benches.standalone [--models 10000] [--python PATH]
[--source-tree DIR]``; a separate entry from ``benches.run`` (which measures pulls).
Each case is a fresh ``ome-agent`` process measured by ``benches.measure`` (wall time,
CPU, peak RSS of the process tree, exit code) and prints one row; ``--source-tree``
runs another checkout's ``python/`` (e.g. an older commit, for a before/after table).

- ``many``: ``--models`` ClusterBaseModels in one manifest file, half ``vendor://``
  (Ready with no download) and half a local folder hard-linked into the model
  directory, with a FineTunedWeight on every tenth base model;
- ``deep``: a YAML and a JSON manifest nested 100,000 levels, beside one good model;
- ``bomb``: YAML anchors expanding to 9^9 strings under an unknown spec field;
- ``blob``: a 1 GiB (sparse) binary file named ``.yaml``;
- ``secret``: a Secret manifest with a 50 MB value;
- ``gt``: ``Gt`` bounds ``abc``, ``1e400``, 100,000 digits, and two values.

Writes ``benches/results/standalone-<UTC>.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.data import alias_bomb

from benches.measure import run_measured

RESULTS = Path(__file__).parent / "results"


def _good(manifests: Path, sources: Path) -> None:
    doc = {"kind": "ClusterBaseModel", "metadata": {"name": "good"},
           "spec": {"storage": {"storageUri": str(sources / "weights")}}}  # fmt: skip
    (manifests / "good.json").write_text(json.dumps(doc))


def many(manifests: Path, sources: Path, count: int) -> None:
    docs = []
    for i in range(count):
        uri = f"vendor://v/type/r{i}" if i % 2 else str(sources / "weights")
        docs.append(
            f"---\napiVersion: ome.io/v1beta1\nkind: ClusterBaseModel\nmetadata: {{name: m{i}}}\n"
            f"spec:\n  storage: {{storageUri: '{uri}'}}\n"
        )
        if i % 20 == 1:  # a vendor model: its FineTunedWeight is Ready without a download
            docs.append(
                f"---\nkind: FineTunedWeight\nmetadata: {{name: t{i}}}\nspec:\n"
                f"  baseModelRef: {{name: m{i}}}\n  storage: {{storageUri: 'vendor://v/t/t{i}'}}\n"
            )
    (manifests / "many.yaml").write_text("".join(docs))


def deep(manifests: Path, sources: Path, count: int) -> None:
    _good(manifests, sources)
    n = 100_000
    (manifests / "deep.yaml").write_text("spec: " + "[" * n + "]" * n + "\n")
    (manifests / "deep.json").write_text("[" * n + "]" * n)


def bomb(manifests: Path, sources: Path, count: int) -> None:
    _good(manifests, sources)
    (manifests / "bomb.yaml").write_text(alias_bomb("'vendor://v/t/bomb'"))


def blob(manifests: Path, sources: Path, count: int) -> None:
    _good(manifests, sources)
    with (manifests / "blob.yaml").open("wb") as f:
        f.truncate(1024**3)


def secret(manifests: Path, sources: Path, count: int) -> None:
    _good(manifests, sources)
    value = "x" * (50 * 10**6)
    (manifests / "secret.yaml").write_text(
        f"kind: Secret\nmetadata: {{name: s}}\nstringData:\n  token: {value}\n"
    )


def gt(manifests: Path, sources: Path, count: int) -> None:
    _good(manifests, sources)
    for name, values in {"abc": ["abc"], "huge": ["1e400"], "digits": ["9" * 100_000],
                         "two": ["1", "2"]}.items():  # fmt: skip
        expression = {"key": "gpu-count", "operator": "Gt", "values": values}
        affinity = {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchExpressions": [expression]}]}}  # fmt: skip
        storage = {"storageUri": "vendor://v/t/x", "nodeAffinity": affinity}
        doc = {"kind": "ClusterBaseModel", "metadata": {"name": name}, "spec": {"storage": storage}}
        (manifests / f"gt-{name}.json").write_text(json.dumps(doc))


CASES: dict[str, Callable[[Path, Path, int], None]] = {
    "many": many, "deep": deep, "bomb": bomb, "blob": blob, "secret": secret, "gt": gt,
}  # fmt: skip


def measure(
    case: str, count: int, python: str, tree: Path | None, timeout: float
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="ome-bench-standalone-") as tmp:
        work = Path(tmp)
        manifests, sources = work / "manifests", work / "sources"
        manifests.mkdir()
        (sources / "weights").mkdir(parents=True)
        (sources / "weights" / "w.bin").write_bytes(b"w" * 4096)
        CASES[case](manifests, sources, count)
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = str(tree / "python")
        argv = [
            python, "-c", "from ome_agent.cli import main; main()", "run", "--standalone",
            "--once", "--manifests", str(manifests), "--models-root-dir", str(work / "models"),
            "--local-source-dir", str(sources), "--state-file", str(work / "state.json"),
            "--node-name", "bench", "--node-labels", "gpu-count=8", "--log-level", "error",
        ]  # fmt: skip
        run = run_measured(argv, env=env, timeout=timeout, logdir=work / "log")
        state = work / "state.json"
        ready = None
        if state.exists():
            models = json.loads(state.read_text()).get("models", {})
            ready = sum(1 for m in models.values() if m.get("state") == "Ready")
        errors = [line for line in run.stderr.splitlines() if "ERROR" in line or "error:" in line]
        return {
            "case": case,
            "models": count if case == "many" else None,
            "seconds": round(run.seconds, 2),
            "cpu_seconds": round(run.cpu_seconds, 2),
            "max_rss_mb": round(run.max_rss_bytes / 1e6, 1),
            "exit_code": run.exit_code,
            "timed_out": run.timed_out,
            "ready": ready,
            "state_file": state.exists(),
            "first_error": errors[0][:300] if errors else None,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--source-tree", type=Path, help="run this checkout's python/")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    rows = []
    for case in args.cases.split(","):
        row = measure(case, args.models, args.python, args.source_tree, args.timeout)
        print(json.dumps(row), flush=True)
        rows.append(row)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = RESULTS / f"standalone-{stamp}.json"
    tree = args.source_tree.name if args.source_tree is not None else "this checkout"
    out.write_text(json.dumps({"tree": tree, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
