"""Start-up of the CLI: ``ome-agent --help``, and ``pull`` until its first request.

Run: ``.venv/bin/python -m benches.startup [--runs 9] [--exe PATH]``; a separate entry
from ``benches.run`` (which measures whole pulls). Targets (benches/README.md):
``--help`` under 0.15 s, ``pull`` at its first request under 0.25 s.

Each round runs, interleaved so that load hits every row alike:
- ``python -c pass`` with the same interpreter: the floor no command goes under;
- ``ome-agent --help``, wall time of the whole process;
- ``ome-agent pull URL DEST``, from the moment the process is started to the moment
  a local HTTP server (in this process, so both instants come from one clock) sees
  the pull's first request: interpreter start, imports, argument parsing, engine
  start and connect, nothing of the transfer.

Then ``python -X importtime`` of the pull path, once, lists the slowest imports by
their cumulative time. Writes ``benches/results/startup-<UTC>.json`` and prints a
markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
BODY = b"x" * 4096
TARGETS = {"help": 0.15, "first_request": 0.25}


class _FirstSeen(ThreadingHTTPServer):
    """Serves BODY at every path and notes when each path was first asked for."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: dict[str, float] = {}
        self.lock = threading.Lock()

    def note(self, path: str) -> None:
        with self.lock:
            self.seen.setdefault(path, time.perf_counter())


class _Handler(BaseHTTPRequestHandler):
    server: _FirstSeen

    def _answer(self, body: bool) -> None:
        self.server.note(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if body:
            self.wfile.write(BODY)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_GET(self) -> None:
        self._answer(body=True)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _first_request(exe: str, server: _FirstSeen, dest: Path, n: int, env: dict[str, str]) -> float:
    path = f"/round-{n}/model.bin"
    url = f"http://127.0.0.1:{server.server_address[1]}{path}"
    t0 = time.perf_counter()
    subprocess.run(
        [exe, "pull", url, str(dest / str(n))],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return server.seen[path] - t0


def _slowest_imports(python: str, env: dict[str, str], top: int = 10) -> list[dict[str, Any]]:
    """The ``top`` imports of the pull path by cumulative microseconds."""
    out = subprocess.run(
        [python, "-X", "importtime", "-c", "import ome_agent.cli, ome_agent.cli.pull"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        # "import time:   self [us] | cumulative | imported package"
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append(
            {"module": name.strip(), "self_us": int(self_us), "cumulative_us": int(cumulative_us)}
        )
    rows.sort(key=lambda r: -r["cumulative_us"])
    return rows[:top]


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benches.startup", description=__doc__)
    p.add_argument("--runs", type=int, default=9, help="rounds (default 9)")
    p.add_argument(
        "--exe",
        default=str(Path(sys.executable).with_name("ome-agent")),
        help="the ome-agent to measure (default: the one beside this interpreter)",
    )
    args = p.parse_args(argv)
    python = str(Path(args.exe).with_name("python"))
    # the measured process sees no PYTHONPATH of the harness: it runs as installed
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    rows: dict[str, list[float]] = {"python": [], "help": [], "first_request": []}
    server = _FirstSeen()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="ome-startup-") as tmp:
            _timed([args.exe, "--help"], env)  # warm the page cache once
            for n in range(args.runs):
                rows["python"].append(_timed([python, "-c", "pass"], env))
                rows["help"].append(_timed([args.exe, "--help"], env))
                rows["first_request"].append(_first_request(args.exe, server, Path(tmp), n, env))
    finally:
        server.shutdown()
    doc = {
        "scenario": "startup",
        "started": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ"),
        "runs": args.runs,
        "load_average": os.getloadavg(),
        "seconds": {k: _stats(v) for k, v in rows.items()},
        "samples": rows,
        "targets": TARGETS,
        "slowest_imports": _slowest_imports(python, env),
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"startup-{doc['started']}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(markdown(doc, out.name))
    return 0


def markdown(doc: dict[str, Any], file_name: str) -> str:
    s = doc["seconds"]
    lines = [
        f"{doc['started']} · median of {doc['runs']} interleaved rounds · load average "
        f"{' '.join(f'{x:.2f}' for x in doc['load_average'])} at the end · `{file_name}`",
        "",
        "| | median s | min s | max s | target |",
        "|---|---:|---:|---:|---|",
    ]
    names = {
        "python": "`python -c pass` (the interpreter's floor)",
        "help": "`ome-agent --help`",
        "first_request": "`ome-agent pull URL DEST` to its first request",
    }
    for key, label in names.items():
        target = TARGETS.get(key)
        verdict = (
            "-"
            if target is None
            else (f"< {target} s: {'met' if s[key]['median'] < target else '**missed**'}")
        )
        times = " | ".join(f"{s[key][stat]:.3f}" for stat in ("median", "min", "max"))
        lines.append(f"| {label} | {times} | {verdict} |")
    lines += ["", "Slowest imports of the pull path (`python -X importtime`, cumulative):", ""]
    lines += ["| module | cumulative ms | self ms |", "|---|---:|---:|"]
    for r in doc["slowest_imports"]:
        lines.append(
            f"| `{r['module']}` | {r['cumulative_us'] / 1000:.1f} | {r['self_us'] / 1000:.1f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
