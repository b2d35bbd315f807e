"""The state file of standalone mode: the node's reports on disk (adapter, layer 5).

One JSON document, replaced atomically on every change, which ``ome-agent status``
reads::

    {"node": ..., "updated": RFC 3339, "models": {"<kind>/<ns>/<name>": {
        "kind", "namespace", "name", "uid", "state", "path", "sizeBytes",
        "parameterCount", "unverified", "message", "progress", "storageUri",
        "revision", "manifestDigest", "entry"}}}

``unverified`` is the entry's ``config.unverified`` ("size only, unverified: ..."
when files were checked by their size only). ``entry`` is the model's ConfigMap entry
exactly as the Kubernetes adapter would write it
(:func:`ome_agent.wire.entry.encode_entry`). ``rejected`` lists the manifest errors of
the latest load, so a run whose every manifest was refused still leaves a state file
that says why. A publish that changes nothing writes nothing.

Writes are coalesced: the first change after a quiet spell is written at once, the
changes that follow together, once :data:`WRITE_INTERVAL` seconds have passed, or
longer for a large file: writing may take at most :data:`WRITE_SHARE` of the time.
Rewriting the whole file on each of N reports made a start-up of N models write N²
bytes, and so did a fixed interval over a start-up as long as N; the file is a report
(the manifests are the truth), so a change may reach it a moment late.
:meth:`StateFileReporter.flush` writes what is pending now.

Each model's record is encoded once, when it changes, on one line of the file
(``"<key>": {...}``): a write joins the lines it has, so a file of 10,000 models is not
encoded anew, key by key, twice a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ome_agent.api import ModelKey
from ome_agent.durable import write_text
from ome_agent.errors import BadInput
from ome_agent.reconcile.ports import NodeReport, NodeState
from ome_agent.wire.entry import encode_entry

WRITE_INTERVAL = 0.5  # seconds between two writes of the state file, at least
WRITE_SHARE = 0.05  # and at least 20 times as long as the last write took


def read_state(path: Path) -> dict[str, Any]:
    """The state file's content; BadInput naming the file when it cannot be read."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BadInput(
            f"--state-file {path}: no such file: run `ome-agent run --standalone` first"
        ) from None
    except (OSError, ValueError) as e:
        raise BadInput(f"--state-file {path}: cannot read it ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise BadInput(
            f"--state-file {path}: not a state file of ome-agent (a JSON object with "
            '"node" and "models"): give the file `ome-agent run --standalone` writes'
        )
    for name, record in data["models"].items():
        if not isinstance(record, dict) or not isinstance(record.get("state"), str):
            raise BadInput(
                f"--state-file {path}: models.{name} is not a model record (an object "
                'with "state"): give the file `ome-agent run --standalone` writes'
            )
    return data


def _name(key: ModelKey) -> str:
    return str(key)


def _size(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                # through links: a Hugging Face cache snapshot links its blobs
                total += os.stat(os.path.join(dirpath, f)).st_size
            except OSError:
                continue
    return total


def _parameters(config: Mapping[str, Any] | None) -> int | None:
    count = (config or {}).get("parameterCount")  # ours; OME's decoded one is "8.03B"
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def _unverified(config: Mapping[str, Any] | None) -> str | None:
    note = (config or {}).get("unverified")  # reconcile.unverified
    return note if isinstance(note, str) else None


class StateFileReporter:
    def __init__(self, path: Path, node_name: str) -> None:
        self.path = path
        self.node_name = node_name
        # each record as its line of the file, and what reported() needs of it
        self._lines: dict[str, str] = {}
        self._states: dict[str, tuple[Any, Any, Any, Any]] = {}  # kind, ns, name, state
        self._rejected: list[str] = []
        self._lock = asyncio.Lock()
        self._pending: asyncio.Task[None] | None = None  # a coalesced write, scheduled
        self._last_write = float("-inf")  # time.monotonic() of the last write
        self._interval = WRITE_INTERVAL  # until the next write (see the module doc)
        self._dirty = False  # changed since the last write
        if path.exists():
            for name, record in read_state(path)["models"].items():
                self._set(name, record)

    def set_rejected(self, errors: list[str]) -> None:
        """The manifest errors of the latest load (written with the next change)."""
        if errors != self._rejected:
            self._rejected = list(errors)
            self._changed()

    async def flush(self) -> None:
        """Write what is pending now (at exit: nothing may be left unwritten)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pending
        async with self._lock:
            if self._dirty or not self.path.exists():
                await self._write_now()

    async def publish(self, report: NodeReport) -> None:
        size = None
        if report.state is NodeState.READY and report.path and os.path.isdir(report.path):
            size = await asyncio.to_thread(_size, report.path)  # a vendor's path: no thread
        record = {
            "kind": report.key.kind,
            "namespace": report.key.namespace,
            "name": report.key.name,
            "uid": report.uid,
            "state": report.state.value,
            "path": report.path,
            "sizeBytes": size,
            "parameterCount": _parameters(report.config),
            "unverified": _unverified(report.config),
            "message": report.error,
            "progress": _progress(report),
            "storageUri": report.storage_uri,
            "revision": report.revision,
            "manifestDigest": report.manifest_digest,
            "entry": encode_entry(report),
        }
        if self._set(_name(report.key), record):
            self._changed()

    async def withdraw(self, key: ModelKey, uid: str | None) -> None:
        self._states.pop(_name(key), None)
        if self._lines.pop(_name(key), None) is not None:
            self._changed()

    def _set(self, name: str, record: dict[str, Any]) -> bool:
        """Keep ``record``; whether it changed."""
        line = f"    {json.dumps(name)}: {json.dumps(record)}"
        if self._lines.get(name) == line:
            return False
        self._lines[name] = line
        try:
            fields = (record["kind"], record.get("namespace"), record["name"], record["state"])
            self._states[name] = fields
        except KeyError:  # a hand-edited file's record: written back, never reported
            self._states.pop(name, None)
        return True

    async def reported(self) -> Mapping[ModelKey, NodeState]:
        out: dict[ModelKey, NodeState] = {}
        for kind, namespace, name, state in self._states.values():
            try:
                key = ModelKey(kind, namespace, name)
                out[key] = NodeState(state)
            except (ValueError, TypeError):
                continue
        return out

    def _changed(self) -> None:
        self._dirty = True
        if self._pending is None or self._pending.done():
            delay = self._last_write + self._interval - time.monotonic()
            self._pending = asyncio.get_running_loop().create_task(self._write_later(delay))

    async def _write_later(self, delay: float) -> None:
        # changes made while a write is under way are written by this same task, after
        # the interval: _changed() schedules no second one while this one runs
        while True:
            if delay > 0:
                await asyncio.sleep(delay)  # cancelled here by flush(), which writes instead
            # once begun, a write ends: a cancelled caller must not leave its thread
            # racing a newer write
            await asyncio.shield(self._locked_write())
            if not self._dirty:
                return
            delay = self._last_write + self._interval - time.monotonic()

    async def _locked_write(self) -> None:
        async with self._lock:
            if self._dirty:
                await self._write_now()

    async def _write_now(self) -> None:
        updated = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        lines = [self._lines[name] for name in sorted(self._lines)]
        models = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
        text = (
            f'{{\n  "node": {json.dumps(self.node_name)},\n  "updated": "{updated}",\n'
            f'  "models": {models},\n  "rejected": {json.dumps(self._rejected)}\n}}\n'
        )
        self._dirty = False
        self._last_write = started = time.monotonic()
        await asyncio.to_thread(write_text, self.path, text)
        self._interval = max(WRITE_INTERVAL, (time.monotonic() - started) / WRITE_SHARE)


def _progress(report: NodeReport) -> dict[str, Any] | None:
    if report.progress is None:
        return None
    p = asdict(report.progress)
    p["last_updated"] = report.progress.last_updated.isoformat(timespec="seconds")
    return p
