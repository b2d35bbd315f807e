"""Resume through the journal beside ``<dest>.partial``, in process.

Proves: an interrupted transfer leaves a partial file and journal; a rerun
fetches only the missing ranges (counted by the server); a changed object
(new ETag) makes the rerun start over and end with the new content; and
``resume=False`` ignores what is on disk. The kill -9 case is in
tests/test_resume_kill.py.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from tests.pull_helpers import cancel_halfway
from tests.servers.fault_server import FaultServer, Throttle
from tests.servers.http_fixtures import core

MiB = 1024 * 1024
BODY = os.urandom(16 * MiB)
SHA = hashlib.sha256(BODY).hexdigest()
NEW_BODY = os.urandom(16 * MiB - 999)
NEW_SHA = hashlib.sha256(NEW_BODY).hexdigest()
PATH = "/repo/shard-00001.bin"


def _transfer(engine: Any, server: FaultServer, dest: Path, **kw: Any) -> Any:
    """A transfer of ``PATH`` from ``server`` to ``dest``, not started yet."""
    return core().Transfer(engine, server.url(PATH), str(dest), **kw)


def _interrupted(engine: Any, server: FaultServer, tmp_path: Path) -> Path:
    """``BODY`` on the server, a throttled transfer of it cancelled once about half is
    done: the destination, with its partial file and journal beside it."""
    server.add(PATH, BODY)
    dest = tmp_path / "shard.bin"
    server.set_faults(PATH, Throttle(bytes_per_sec=8 * MiB))
    t = _transfer(engine, server, dest, chunk_size=MiB, connections=2)
    cancel_halfway(t, len(BODY))
    server.clear_faults(PATH)
    assert not dest.exists()
    partial = dest.with_name(dest.name + ".partial")
    journal = dest.with_name(dest.name + ".partial.journal")
    assert partial.exists(), "an interrupted transfer keeps its partial file for resume"
    assert journal.exists(), "an interrupted transfer keeps its journal for resume"
    return dest


def _range_len(value: str | None) -> int:
    """Length asked by ``bytes=a-b``; 0 for no/other Range headers."""
    if not value or not value.startswith("bytes="):
        return 0
    first, _, last = value[len("bytes=") :].partition("-")
    if not first.isdigit() or not last.isdigit():
        return 0
    return int(last) - int(first) + 1


def test_rerun_fetches_only_what_is_missing(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _interrupted(engine, fault_server, tmp_path)
    # Count the rerun by its own requests: threads of the cancelled run may
    # still push a few bytes into dead sockets after the cancel.
    n_before = len(fault_server.requests_for(PATH))

    res = _transfer(engine, fault_server, dest, sha256=SHA, chunk_size=MiB, connections=2).run()
    assert res.sha256 == SHA
    assert dest.read_bytes() == BODY
    assert res.resumed_bytes >= len(BODY) // 4
    assert res.resumed_bytes + res.fetched_bytes >= len(BODY)
    sent_after = sum(r.bytes_sent for r in fault_server.requests_for(PATH)[n_before:])
    assert sent_after <= len(BODY) - res.resumed_bytes + 2 * MiB
    # Whole run pair: re-fetched bytes stay small.
    total = fault_server.total_bytes_sent(PATH)
    assert total - len(BODY) < len(BODY) // 4, f"re-fetched {total - len(BODY)} bytes"
    # Resumed requests carry a validator so a changed object cannot be mixed in.
    # Data requests of the rerun (not a tiny probe) carry a validator of the
    # first run, so a changed object cannot be mixed into the partial file.
    rerun = fault_server.requests_for(PATH)[n_before:]
    data_gets = [r for r in rerun if r.method == "GET" and _range_len(r.header("range")) >= 65536]
    assert data_gets
    validators = {fault_server.etag(PATH), fault_server.last_modified(PATH)}
    assert all(r.header("if-range") in validators for r in data_gets), (
        "resumed range requests must send If-Range with the ETag (or Last-Modified)"
    )
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_pieces_cut_short_by_a_cancel_are_kept(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """A stop (an agent's SIGTERM, a pod replaced) in the middle of large pieces: what
    each piece received is written and journaled, so the rerun asks only for the rest,
    though no piece was complete when the transfer was cancelled."""
    fault_server.add(PATH, BODY)
    dest = tmp_path / "shard.bin"
    fault_server.set_faults(PATH, Throttle(bytes_per_sec=2 * MiB))
    t = _transfer(engine, fault_server, dest, sha256=SHA, chunk_size=8 * MiB, connections=2)
    cancel_halfway(t, len(BODY), fraction=0.25)  # 4 MiB in, both 8 MiB pieces unfinished
    fault_server.clear_faults(PATH)
    n_before = len(fault_server.requests_for(PATH))

    res = _transfer(engine, fault_server, dest, sha256=SHA).run()
    assert res.sha256 == SHA
    assert dest.read_bytes() == BODY
    assert res.resumed_bytes >= 3 * MiB, res.resumed_bytes
    asked = sum(
        _range_len(r.header("range"))
        for r in fault_server.requests_for(PATH)[n_before:]
        if r.method == "GET"
    )
    assert asked <= len(BODY) - res.resumed_bytes + 1, (asked, res.resumed_bytes)


def test_changed_object_starts_over(engine: Any, fault_server: FaultServer, tmp_path: Path) -> None:
    dest = _interrupted(engine, fault_server, tmp_path)
    old_etag = fault_server.etag(PATH)
    fault_server.add(PATH, NEW_BODY)  # re-upload: new content, new ETag
    assert fault_server.etag(PATH) != old_etag

    res = _transfer(engine, fault_server, dest, chunk_size=MiB, connections=2).run()
    assert res.sha256 == NEW_SHA
    assert res.size == len(NEW_BODY)
    assert res.etag == fault_server.etag(PATH)
    assert dest.read_bytes() == NEW_BODY
    assert res.resumed_bytes == 0
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_resume_disabled_refetches_everything(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    dest = _interrupted(engine, fault_server, tmp_path)
    n_before = len(fault_server.requests_for(PATH))
    res = _transfer(engine, fault_server, dest, sha256=SHA, resume=False, chunk_size=MiB).run()
    assert res.sha256 == SHA
    assert res.resumed_bytes == 0
    # Everything again (a probe may add a few bytes).
    refetched = sum(r.bytes_sent for r in fault_server.requests_for(PATH)[n_before:])
    assert len(BODY) <= refetched <= len(BODY) + 65536


def test_existing_final_file_is_replaced_atomically(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """A stale file under the final name is only replaced by a verified one."""
    fault_server.add(PATH, BODY)
    dest = tmp_path / "shard.bin"
    dest.write_bytes(b"stale")
    res = _transfer(engine, fault_server, dest, sha256=SHA).run()
    assert res.sha256 == SHA
    assert dest.read_bytes() == BODY
