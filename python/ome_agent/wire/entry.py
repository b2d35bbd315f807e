"""One model's entry in the node's ConfigMap, written and read (wire format, docs/wire.md).

The adapters (layer 5) store :func:`encode_entry`'s string under
:func:`~ome_agent.wire.naming.config_map_key`; the controller and a restarting agent
read entries back with :func:`decode_entry`.

Written as OME's model agent writes it — ``{"name", "status", "config", "progress"}``
with ``name`` the resource's ``metadata.name`` and ``progress`` in camelCase with an
RFC 3339 UTC ``lastUpdated`` — plus fields OME's readers ignore: ``kind``,
``namespace`` and ``uid`` (so an entry names its resource even when its key was
shortened), ``message`` (why it failed), ``storageUri``, ``path``, ``revision`` and
``manifestDigest``. Absent values are omitted. The string is compact and
deterministic (fixed field order, nested keys sorted, speed in whole bytes per second,
time to the second), so equal reports give equal strings and the reporter can skip
writes that change nothing.

Reading is tolerant: OME's entries, ours, and garbage all decode; what cannot be read
is reported in :attr:`DecodedEntry.error`, never raised.
Pure: no I/O.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, get_args

from ome_agent.api import ModelKey
from ome_agent.api.resources import Kind
from ome_agent.reconcile.ports import NodeReport, NodeState, Progress
from ome_agent.wire import conformance
from ome_agent.wire.naming import config_map_key, parse_config_map_key

# A failure message is for people; a runaway one (a whole HTTP body) must not fill the
# ConfigMap, which holds every model of the node within Kubernetes' 1 MiB object limit.
MAX_MESSAGE = 2048
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STATES = {s.value: s for s in NodeState}
_KIND: dict[str, Kind] = {k: k for k in get_args(Kind)}


def encode_entry(report: NodeReport) -> str:
    """The ConfigMap data value for ``report``. Raises :class:`ValueError` if its config
    holds a value JSON cannot carry (NaN, infinity, a non-JSON type), or one OME's
    schema refuses when the conformance check is on (:mod:`ome_agent.wire.conformance`)."""
    config = dict(report.config) if report.config is not None else None
    if config is not None and report.parent is not None:  # OME's {parent's data key: path}
        parent, path = report.parent
        artifact = config.get("artifact")
        config["artifact"] = {
            **(artifact if isinstance(artifact, dict) else {}),
            "parentPath": {config_map_key(parent): path},
        }
    fields: list[tuple[str, Any]] = [
        ("name", report.key.name),
        ("status", report.state.value),
        ("config", config),
        ("progress", _progress(report.progress) if report.progress is not None else None),
        ("kind", report.key.kind),
        ("namespace", report.key.namespace),
        ("uid", report.uid or None),
        ("message", _clip(report.error) if report.error is not None else None),
        ("storageUri", report.storage_uri),
        ("path", report.path),
        ("revision", report.revision),
        ("manifestDigest", report.manifest_digest),
    ]
    try:
        parts = [f"{json.dumps(k)}:{_dumps(v)}" for k, v in fields if v is not None]
    except (TypeError, ValueError) as e:
        raise ValueError(f"{report.key}: the report's config is not plain JSON: {e}") from None
    text = "{" + ",".join(parts) + "}"
    conformance.check(text)
    return text


@dataclass(frozen=True)
class DecodedEntry:
    """What an entry says. ``state`` is None when the entry cannot be read or names a
    status other than Ready/Updating/Failed; ``error`` then says why."""

    state: NodeState | None
    status: str | None = None  # the raw status text
    name: str | None = None
    kind: str | None = None  # ours only
    namespace: str | None = None  # ours only
    uid: str | None = None  # ours only
    config: dict[str, Any] | None = None
    progress: Progress | None = None
    message: str | None = None
    storage_uri: str | None = None
    path: str | None = None
    revision: str | None = None
    manifest_digest: str | None = None
    error: str | None = None

    def model_key(self, data_key: str) -> ModelKey | None:
        """The resource this entry belongs to, stored under ``data_key``. Exact for our
        entries; for OME's, from the key (a shortened namespace stays shortened) and the
        entry's full ``name``. None when neither tells."""
        kind = _KIND.get(self.kind or "")
        if kind is not None and self.name:
            if kind == "ClusterBaseModel":
                return ModelKey(kind, None, self.name)
            if self.namespace:
                return ModelKey(kind, self.namespace, self.name)
        parsed = parse_config_map_key(data_key)
        if parsed is None:
            return None
        return parsed._replace(name=self.name) if self.name else parsed


def decode_entry(text: str) -> DecodedEntry:
    """Read one ConfigMap data value, OME's or ours; never raises."""
    try:
        raw = json.loads(text)
    except (TypeError, ValueError) as e:
        return DecodedEntry(state=None, error=f"not JSON: {e}")
    except RecursionError:
        return DecodedEntry(state=None, error="not JSON: nested too deeply")
    if not isinstance(raw, dict):
        return DecodedEntry(state=None, error=f"not a JSON object but {type(raw).__name__}")
    status = _str(raw.get("status"))
    state = _STATES.get(status or "")
    config = raw.get("config")
    return DecodedEntry(
        state=state,
        status=status,
        name=_str(raw.get("name")),
        kind=_str(raw.get("kind")),
        namespace=_str(raw.get("namespace")),
        uid=_str(raw.get("uid")),
        config=config if isinstance(config, dict) else None,
        progress=_read_progress(raw.get("progress")),
        message=_str(raw.get("message")),
        storage_uri=_str(raw.get("storageUri")),
        path=_str(raw.get("path")),
        revision=_str(raw.get("revision")),
        manifest_digest=_str(raw.get("manifestDigest")),
        error=None if state is not None else _bad_status(status),
    )


def _bad_status(status: str | None) -> str:
    if status is None:
        return "no status"
    return f"status {status!r} is not one of Ready, Updating, Failed"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _progress(p: Progress) -> dict[str, Any]:
    speed = p.speed_bytes_per_sec
    return {
        "phase": p.phase,
        "totalBytes": int(p.total_bytes),
        "completedBytes": int(p.completed_bytes),
        "totalFiles": int(p.total_files),
        "completedFiles": int(p.completed_files),
        "speedBytesPerSec": round(speed) if math.isfinite(speed) and speed > 0 else 0,
        "lastUpdated": rfc3339(p.last_updated),
    }


def rfc3339(when: datetime) -> str:
    """Kubernetes' time format (UTC, whole seconds), as OME writes ``lastUpdated``."""
    # naive times are taken as UTC (Progress documents aware UTC; be forgiving)
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return aware.strftime("%Y-%m-%dT%H:%M:%SZ")


def _clip(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _read_progress(raw: Any) -> Progress | None:
    if not isinstance(raw, dict):
        return None
    return Progress(
        phase=_str(raw.get("phase")) or "",
        total_bytes=_int(raw.get("totalBytes")),
        completed_bytes=_int(raw.get("completedBytes")),
        total_files=_int(raw.get("totalFiles")),
        completed_files=_int(raw.get("completedFiles")),
        speed_bytes_per_sec=_float(raw.get("speedBytesPerSec")),
        last_updated=_time(raw.get("lastUpdated")),
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0
    return int(value) if math.isfinite(value) else 0


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value) if math.isfinite(value) else 0.0


def _time(value: Any) -> datetime:
    """RFC 3339 → aware UTC; the epoch when missing or unreadable (progress is advisory)."""
    if not isinstance(value, str):
        return _EPOCH
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return _EPOCH
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
