"""Run inside the agent image (``python3 -c "$(cat this file)"``): imports every
module of the installed ``ome_agent`` package and every module its code imports, at
the top or inside a function (the SDKs are imported lazily, per scheme), and resolves
every ``oci.X.Y`` attribute chain it names where it imports the SDK. Prints one line
per failure and a summary; exits 1 on any failure. ``if TYPE_CHECKING:`` blocks are
skipped (never run in a pod).

Where it sits: tests/node/test_image.py feeds it to the agent pod, proving that the
image's slimming (scripts/slim-site-packages.py) removed nothing the agent uses.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import sys
from pathlib import Path
from typing import Any

import ome_agent

# imported only on request, from packages the image does not install (not runtime
# dependencies of the wheel): why each is absent by design
OPTIONAL = {
    "jsonschema": "wire/conformance.py, only with OME_AGENT_WIRE_SCHEMA set (the dev extra)",
}


def type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under an ``if TYPE_CHECKING:``."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skipped


def attribute_chain(node: ast.Attribute) -> list[str] | None:
    parts: list[str] = []
    cur: ast.expr = node
    while isinstance(cur, ast.Attribute):
        parts.append(cur.attr)
        cur = cur.value
    if isinstance(cur, ast.Name) and cur.id == "oci":
        return ["oci", *reversed(parts)]
    return None


def resolve(chain: list[str]) -> None:
    obj: Any = importlib.import_module(chain[0])
    for i, part in enumerate(chain[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            obj = importlib.import_module(".".join(chain[: i + 1]))


def main() -> int:
    root = Path(ome_agent.__file__).parent
    wanted: set[tuple[str, ...]] = set()
    for info in pkgutil.walk_packages([str(root)], "ome_agent."):
        wanted.add((info.name,))
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        skipped = type_checking_nodes(tree)
        # `oci.X` names the SDK only where the SDK is imported (elsewhere `oci` is the
        # agent's own sources.oci module or a local)
        sdk = any(
            isinstance(n, ast.Import) and any(a.name == "oci" and not a.asname for a in n.names)
            for n in ast.walk(tree)
        )
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                wanted |= {(alias.name,) for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                wanted |= {(node.module, alias.name) for alias in node.names}
            elif sdk and isinstance(node, ast.Attribute) and (chain := attribute_chain(node)):
                wanted.add(tuple(chain))
    failures = 0
    wanted = {item for item in wanted if item[0].split(".")[0] not in OPTIONAL}
    for item in sorted(wanted):
        try:
            if len(item) == 1:
                importlib.import_module(item[0])
            elif item[0] == "oci":
                resolve(list(item))
            else:
                resolve([item[0], item[1]])
        except Exception as e:  # every failure is reported, then exit 1
            failures += 1
            print(f"FAIL {'.'.join(item)}: {type(e).__name__}: {e}")
    print(f"{len(wanted)} imports checked, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
