"""Start-up of the command line: ``ome-agent --help`` lists the subcommands
without importing them, so it costs the interpreter, click and the version.

Checked by what is imported, not by a timing (timings vary with load)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import click
import pytest

from ome_agent.cli import SUBCOMMANDS, main

# the storage and cluster SDKs, and the libraries only subcommands need
HEAVY = (
    "kubernetes_asyncio",
    "boto3",
    "botocore",
    "oci",
    "huggingface_hub",
    "google",
    "azure",
    "pydantic",
    "rich",
    "asyncio",
)

_SHOW_IMPORTS = textwrap.dedent(
    """
    import json, sys
    from ome_agent.cli import main
    try:
        main([{args}])
    except SystemExit:
        pass
    print(json.dumps(sorted(sys.modules)))
    """
)


def _imported_by(*args: str) -> set[str]:
    script = _SHOW_IMPORTS.format(args=", ".join(repr(a) for a in args))
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    modules: list[str] = json.loads(out.stdout.splitlines()[-1])
    return set(modules)


@pytest.mark.parametrize("args", [("--help",), ("--version",)])
def test_help_imports_no_subcommand_and_no_heavy_module(args: tuple[str, ...]) -> None:
    modules = _imported_by(*args)
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert heavy == []
    ours = sorted(m for m in modules if m.startswith("ome_agent."))
    assert ours == ["ome_agent._core", "ome_agent.cli"]


def test_help_lists_every_subcommand_with_its_own_first_line() -> None:
    ctx = click.Context(main)
    for name, (_, _, line) in SUBCOMMANDS.items():
        command = main.get_command(ctx, name)
        assert command is not None
        assert command.get_short_help_str(limit=1000) == line, name
    text = main.get_help(ctx)
    for name in SUBCOMMANDS:
        assert f"\n  {name} " in text
