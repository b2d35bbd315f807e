"""``ome-agent status``: what the node agents report, for people (docs/architecture.md, layer 6).

Standalone mode (``--state-file``): reads the state file written by ``ome-agent run
--standalone`` and prints one row per model (state, path, size, parameter count,
message, or which files were checked by their size only) and a line per manifest the
last run rejected, or the whole document with ``--json``.

Cluster mode (otherwise): reads the model resources, the agents' per-node ConfigMaps
in ``--namespace`` and the Nodes, and prints models by nodes — each model's state
computed as the controller computes it, then each node's state, progress and error,
or its files checked by their size only (``ome_agent.fleet.view``); ``--json`` prints
the same rows as JSON. Read-only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ome_agent.errors import BadInput, OmeAgentError

if TYPE_CHECKING:
    from ome_agent.adapters.kube.client import Kube, KubeError


def _size(n: Any) -> str:
    from ome_agent.fleet.status import human_bytes

    return human_bytes(n) if isinstance(n, int) else "-"


def _params(n: Any) -> str:
    if not isinstance(n, int):
        return "-"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _detail(model: dict[str, Any]) -> str:
    if model.get("message"):
        return str(model["message"])
    progress = model.get("progress")
    if isinstance(progress, dict):
        total = progress.get("total_bytes") or 0
        done = progress.get("completed_bytes") or 0
        pct = f" {100 * done / total:.0f}%" if total else ""
        return f"{progress.get('phase', '')}{pct}"
    return str(model.get("unverified") or "")


@click.command(name="status")
@click.option("--state-file", type=click.Path(dir_okay=False), help="Standalone state file.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), help="Cluster mode: kubeconfig.")
@click.option(
    "--namespace",
    default="ome",
    show_default=True,
    help="Cluster mode: the agents' namespace (their ConfigMaps).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def status(state_file: str | None, kubeconfig: str | None, namespace: str, as_json: bool) -> None:
    """Show each model's state: on every node of the cluster, or (with --state-file)
    on this standalone node."""
    if state_file is None:
        _cluster(kubeconfig, namespace, as_json)
        return
    try:
        if kubeconfig is not None:
            raise BadInput("--kubeconfig is for cluster mode: drop it or drop --state-file")
        from ome_agent.adapters.standalone.state import read_state

        data = read_state(Path(state_file))
    except OmeAgentError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(e.exit_code)
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"node {data.get('node', '?')}", title_justify="left")
    for column in ("MODEL", "STATE", "PATH", "SIZE", "PARAMS"):
        table.add_column(column, no_wrap=True)
    table.add_column("DETAIL", max_width=72, overflow="fold")
    for name, model in sorted(data["models"].items()):
        cells = (
            name,
            str(model.get("state", "?")),
            str(model.get("path") or "-"),
            _size(model.get("sizeBytes")),
            _params(model.get("parameterCount")),
            _detail(model),
        )
        table.add_row(*(Text(c) for c in cells))  # Text: brackets in messages are not markup
    # as wide as the table needs, even into a pipe: paths are long and worth one line
    natural = Console(width=1000).measure(table).maximum
    Console(width=max(Console().width, natural)).print(table)
    rejected = data.get("rejected")
    for line in rejected if isinstance(rejected, list) else []:
        click.echo(f"manifest rejected: {line}")


def _cluster(kubeconfig: str | None, namespace: str, as_json: bool) -> None:
    import asyncio

    from ome_agent.adapters.kube.clusterconfig import check_cluster_config

    try:
        check_cluster_config(kubeconfig)  # before the client's slow import
    except OmeAgentError as e:
        hint = "; for a standalone node pass --state-file FILE" if kubeconfig is None else ""
        click.echo(f"error: {e}{hint}", err=True)
        sys.exit(e.exit_code)
    from ome_agent.adapters.kube.client import KubeError

    try:
        model_rows = asyncio.run(_read_cluster(kubeconfig, namespace))
    except OmeAgentError as e:
        # no cluster found: the user may have meant a standalone node
        hint = "; for a standalone node pass --state-file FILE" if kubeconfig is None else ""
        click.echo(f"error: {e}{hint}", err=True)
        sys.exit(e.exit_code)
    except KubeError as e:
        hint = _kube_hint(e, namespace)
        click.echo(f"error: {e}{hint}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(model_rows, indent=2))
        return
    from rich.console import Console

    from ome_agent.fleet.view import table

    grid = table(model_rows)
    natural = Console(width=1000).measure(grid).maximum
    Console(width=max(Console().width, natural)).print(grid)


def _kube_hint(error: KubeError, namespace: str) -> str:
    if error.status == 403:
        return (
            "; the account needs list on basemodels, clusterbasemodels, finetunedweights "
            f"(ome.io), nodes, and configmaps in namespace {namespace}"
        )
    if error.status == 0:
        return "; is the API server in the kubeconfig reachable from here?"
    return ""


# a one-shot command: a busy or starting API server (429, 5xx) gets a few quick retries,
# as kubectl would, before the error is shown
LIST_ATTEMPTS = 5
LIST_RETRY_SECONDS = 0.5


async def _list(kube: Kube, path: str, query: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    import asyncio

    from ome_agent.adapters.kube.client import KubeError

    for attempt in range(1, LIST_ATTEMPTS + 1):
        try:
            return await kube.request("GET", path, verb="list", query=query)
        except KubeError as e:
            if attempt == LIST_ATTEMPTS or not (e.status == 429 or e.status >= 500):
                raise
            await asyncio.sleep(LIST_RETRY_SECONDS * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises


async def _read_cluster(kubeconfig: str | None, namespace: str) -> list[dict[str, Any]]:
    """Everything the view needs, in one list call per kind (read-only)."""
    from ome_agent.adapters.kube.client import KubeError, connect
    from ome_agent.api import ModelKey, ModelResource, parse_resource
    from ome_agent.api.resources import GROUP, PLURALS, VERSION
    from ome_agent.fleet.status import entries_of_configmap, node_view
    from ome_agent.fleet.view import rows
    from ome_agent.wire.naming import NODE_NAME_ANNOTATION, STATUS_LABEL

    kube = await connect(kubeconfig)
    try:
        models: list[ModelResource] = []
        stored: dict[ModelKey, Mapping[str, Any]] = {}
        for kind, plural in PLURALS.items():
            try:
                found = await _list(kube, f"/apis/{GROUP}/{VERSION}/{plural}")
            except KubeError as e:
                if e.status == 404:  # that CRD is not installed: no models of the kind
                    continue
                raise
            for item in found.get("items") or []:
                try:
                    model = parse_resource({"kind": kind, **item})
                except BadInput as e:
                    click.echo(f"warning: skipped: {e}", err=True)
                    continue
                models.append(model)
                stored[model.key] = item.get("status") or {}
        maps = await _list(
            kube,
            f"/api/v1/namespaces/{namespace}/configmaps",
            [("labelSelector", f"{STATUS_LABEL}=true")],
        )
        listed = await _list(kube, "/api/v1/nodes")
    finally:
        await kube.close()
    nodes = {view.name: view for view in map(node_view, listed.get("items") or [])}
    entries = {}
    for cm in maps.get("items") or []:
        meta = cm.get("metadata") or {}
        node = (meta.get("annotations") or {}).get(NODE_NAME_ANNOTATION) or meta.get("name", "")
        where = f"{meta.get('namespace', namespace)}/{meta.get('name', '')}"
        entries[node] = entries_of_configmap(node, cm.get("data") or {}, where)
    return rows(models, entries, nodes, stored=stored)


__all__ = ["status"]
