"""Engine: CRC32C and multipart-MD5 verification (object-store digests), and the
listed ETag (an object changed upstream since the listing is refused).

Proves on the fault-injection server: the right CRC32C / S3-style multipart MD5
pass and land in ``verified``; a wrong value or one flipped byte fails with the
algorithm named and leaves no file under the final name (nor a partial to
resume from); a resumed transfer still verifies both over the whole file; the
one-stream path verifies too; a different ETag at the probe fails fast with
nothing written; an object replaced mid-transfer fails with algorithm "etag"
instead of restarting on the new object, also behind a server that ignores
If-Range (OCI, Azure: 206 bytes of the new object) and one that answers If-Match
with 412; every request of a transfer with a listed ETag carries If-Match
(retries, the one-stream path and redirects to another host included). The
transfer layer's messages for these failures are checked at the end.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from ome_agent.transfer.failures import describe
from tests.pull_helpers import cancel_halfway, multipart_md5
from tests.servers.fault_server import (
    ChangeObject,
    Fault,
    FaultServer,
    HonorIfMatch,
    IgnoreIfRange,
    IgnoreRange,
    Redirect,
    Reset,
    Status,
    Throttle,
    Truncate,
    WrongBytes,
)
from tests.servers.http_fixtures import MiB, core

PART = 5 * MiB // 2 + 17  # not aligned with the engine's pieces on purpose
BODY = os.urandom(6 * MiB + 4321)
PATH = "/bucket/model.bin"


def crc32c_hex(data: bytes) -> str:
    return f"{google_crc32c.value(data):08x}"


CRC = crc32c_hex(BODY)
MULTI = multipart_md5(BODY, PART)


def _transfer(engine: Any, server: FaultServer, dest: Path, **kw: Any) -> Any:
    kw.setdefault("chunk_size", MiB)
    kw.setdefault("connections", 3)
    return core().Transfer(engine, server.url(PATH), str(dest), **kw)


def _listed_etag_mismatch(
    engine: Any, server: FaultServer, tmp_path: Path, listed: str, *faults: Fault
) -> Any:
    """The ``ChecksumMismatch`` a transfer of ``BODY`` (behind ``faults``) listed with
    the ETag ``listed`` fails with."""
    server.add(PATH, BODY, faults=faults)
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(engine, server, tmp_path / "m.bin", expected_etag=listed).run()
    return info.value


def _assert_nothing_kept(tmp_path: Path) -> None:
    assert list(tmp_path.iterdir()) == [], "wrong bytes must leave no file, partial or journal"


def _replaced_after_the_first_request(server: FaultServer, *faults: Any) -> tuple[str, bytes]:
    """Serve BODY at PATH, then (after ``faults``) a new object of the same size from
    the second request on; the ETag a listing gave and the new body."""
    server.add(PATH, BODY)
    listed = server.etag(PATH)
    new = os.urandom(len(BODY))
    server.set_faults(PATH, *faults, ChangeObject(after_requests=1, body=new))
    return listed, new


# ---------------------------------------------------------------- right values
def test_right_crc32c_and_multipart_md5_are_verified(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    dest = tmp_path / "m.bin"
    res = _transfer(
        engine, fault_server, dest, crc32c=CRC.upper(), md5_multipart=(PART, MULTI)
    ).run()
    assert dest.read_bytes() == BODY
    assert "crc32c" in res.verified
    assert "md5-multipart" in res.verified
    assert res.crc32c == CRC


def test_crc32c_is_computed_whenever_hashing_is_on(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    res = _transfer(engine, fault_server, tmp_path / "m.bin").run()
    assert res.crc32c == CRC
    assert "crc32c" not in res.verified  # nothing to compare against
    res = _transfer(engine, fault_server, tmp_path / "n.bin", hash=False).run()
    assert res.crc32c is None


def test_one_stream_path_verifies_too(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY, faults=[IgnoreRange()])
    dest = tmp_path / "m.bin"
    res = _transfer(engine, fault_server, dest, crc32c=CRC, md5_multipart=(PART, MULTI)).run()
    assert not res.ranged
    assert {"crc32c", "md5-multipart"} <= set(res.verified)


def test_single_part_and_empty_objects(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    small = b"hello multipart"
    fault_server.add("/s", small)
    url = fault_server.url("/s")
    res = (
        core()
        .Transfer(engine, url, str(tmp_path / "s"), md5_multipart=(MiB, multipart_md5(small, MiB)))
        .run()
    )
    assert "md5-multipart" in res.verified
    fault_server.add("/e", b"")
    res = (
        core()
        .Transfer(engine, fault_server.url("/e"), str(tmp_path / "e"), crc32c="00000000")
        .run()
    )
    assert res.size == 0
    assert "crc32c" in res.verified


# ---------------------------------------------------------------- wrong values
@pytest.mark.parametrize(
    ("kw", "algorithm"),
    [
        ({"crc32c": "deadbeef"}, "crc32c"),
        ({"md5_multipart": (PART, "0" * 32 + MULTI[32:])}, "md5-multipart"),
        # right parts, wrong count: the part size the service gave does not fit
        ({"md5_multipart": (PART, MULTI.split("-")[0] + "-9")}, "md5-multipart"),
        ({"md5_multipart": (PART + 1, MULTI)}, "md5-multipart"),
    ],
)
def test_wrong_value_fails_and_keeps_nothing(
    engine: Any, fault_server: FaultServer, tmp_path: Path, kw: dict[str, Any], algorithm: str
) -> None:
    fault_server.add(PATH, BODY)
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(engine, fault_server, tmp_path / "m.bin", **kw).run()
    assert info.value.algorithm == algorithm
    _assert_nothing_kept(tmp_path)


@pytest.mark.parametrize("which", ["crc32c", "md5_multipart"])
def test_one_flipped_byte_fails(
    engine: Any, fault_server: FaultServer, tmp_path: Path, which: str
) -> None:
    fault_server.add(PATH, BODY, faults=[WrongBytes(offset=PART + 5, count=1)])
    kw: dict[str, Any] = {"crc32c": CRC} if which == "crc32c" else {"md5_multipart": (PART, MULTI)}
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(engine, fault_server, tmp_path / "m.bin", **kw).run()
    assert info.value.algorithm == which.replace("_", "-")
    assert info.value.expected == (CRC if which == "crc32c" else MULTI)
    _assert_nothing_kept(tmp_path)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"crc32c": "12345"}, "crc32c"),
        ({"crc32c": "zzzzzzzz"}, "crc32c"),
        ({"md5_multipart": (0, MULTI)}, "md5_multipart"),
        ({"md5_multipart": (PART, "abc-2")}, "md5_multipart"),
        ({"md5_multipart": (PART, MULTI.split("-")[0])}, "md5_multipart"),
    ],
)
def test_malformed_expected_values_name_the_field(
    engine: Any, tmp_path: Path, kw: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        core().Transfer(engine, "http://127.0.0.1:9/x", str(tmp_path / "x"), **kw)


# ---------------------------------------------------------------- resume
def test_resumed_transfer_still_verifies(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY, faults=[Throttle(bytes_per_sec=6 * MiB)])
    dest = tmp_path / "m.bin"
    cancel_halfway(_transfer(engine, fault_server, dest, connections=2), len(BODY))
    assert dest.with_name(dest.name + ".partial.journal").exists()
    fault_server.clear_faults(PATH)

    res = _transfer(engine, fault_server, dest, crc32c=CRC, md5_multipart=(PART, MULTI)).run()
    assert res.resumed_bytes > 0, "the rerun must resume, not start over"
    assert {"crc32c", "md5-multipart"} <= set(res.verified)
    assert res.crc32c == CRC
    assert dest.read_bytes() == BODY


def test_resumed_transfer_with_damaged_bytes_fails(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """Bytes flipped on the wire in the first run are caught by the rerun's CRC32C."""
    fault_server.add(PATH, BODY, faults=[WrongBytes(offset=10), Throttle(bytes_per_sec=6 * MiB)])
    dest = tmp_path / "m.bin"
    cancel_halfway(_transfer(engine, fault_server, dest, connections=2), len(BODY))
    fault_server.clear_faults(PATH)
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(engine, fault_server, dest, crc32c=CRC).run()
    assert info.value.algorithm == "crc32c"
    _assert_nothing_kept(tmp_path)


# ---------------------------------------------------------------- listed ETag
@pytest.mark.parametrize("form", ["same", "bare", "weak"])
def test_listed_etag_matches_in_any_spelling(
    engine: Any, fault_server: FaultServer, tmp_path: Path, form: str
) -> None:
    fault_server.add(PATH, BODY)
    etag = fault_server.etag(PATH)
    listed = {"same": etag, "bare": etag.strip('"'), "weak": "W/" + etag}[form]
    res = _transfer(engine, fault_server, tmp_path / "m.bin", expected_etag=listed).run()
    assert res.size == len(BODY)


def test_etag_changed_since_listing_fails_at_the_probe(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    mismatch = _listed_etag_mismatch(engine, fault_server, tmp_path, '"listed-1"')
    assert mismatch.algorithm == "etag"
    assert mismatch.expected == '"listed-1"'
    assert mismatch.actual == fault_server.etag(PATH)
    assert len(fault_server.requests_for(PATH)) == 1, "fail fast: the probe only"
    _assert_nothing_kept(tmp_path)


def test_object_replaced_mid_transfer_fails_with_etag(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    listed, _ = _replaced_after_the_first_request(fault_server)
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(
            engine, fault_server, tmp_path / "m.bin", connections=1, expected_etag=listed
        ).run()
    assert info.value.algorithm == "etag"
    assert info.value.actual == fault_server.etag(PATH) != listed
    _assert_nothing_kept(tmp_path)


def test_object_replaced_mid_transfer_without_listed_etag_restarts(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """Unchanged behaviour for plain URLs: start over and end with the new object."""
    _, new = _replaced_after_the_first_request(fault_server)
    dest = tmp_path / "m.bin"
    res = _transfer(engine, fault_server, dest, connections=1).run()
    assert dest.read_bytes() == new
    assert res.crc32c == crc32c_hex(new)


@pytest.mark.parametrize("hash_on", [True, False])
def test_object_replaced_behind_a_server_ignoring_if_range_fails_with_etag(
    engine: Any, fault_server: FaultServer, tmp_path: Path, hash_on: bool
) -> None:
    """The second range gets 206 bytes of the new object: its ETag gives it away."""
    listed, _ = _replaced_after_the_first_request(fault_server, IgnoreIfRange())
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(
            engine,
            fault_server,
            tmp_path / "m.bin",
            connections=1,
            expected_etag=listed,
            hash=hash_on,
        ).run()
    assert info.value.algorithm == "etag"
    assert info.value.expected == listed
    assert info.value.actual == fault_server.etag(PATH) != listed
    reqs = fault_server.requests_for(PATH)
    assert [r.status for r in reqs] == [206, 206], "no restart onto the new object"
    _assert_nothing_kept(tmp_path)


def test_server_answering_412_to_if_match_fails_with_etag(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    listed, _ = _replaced_after_the_first_request(fault_server, HonorIfMatch(), IgnoreIfRange())
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(
            engine, fault_server, tmp_path / "m.bin", connections=1, expected_etag=listed
        ).run()
    assert info.value.algorithm == "etag"
    assert info.value.expected == listed
    assert info.value.actual == "changed (HTTP 412)"
    assert [r.status for r in fault_server.requests_for(PATH)] == [206, 412]
    _assert_nothing_kept(tmp_path)


def test_412_at_the_probe_fails_fast(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    mismatch = _listed_etag_mismatch(engine, fault_server, tmp_path, '"listed-1"', HonorIfMatch())
    assert (mismatch.algorithm, mismatch.actual) == ("etag", "changed (HTTP 412)")
    reqs = fault_server.requests_for(PATH)
    assert [r.header("if-match") for r in reqs] == ['"listed-1"']
    _assert_nothing_kept(tmp_path)


def test_every_request_carries_if_match(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """Probe, ranges and retries of both, against a server evaluating If-Match."""
    fault_server.add(PATH, BODY)
    etag = fault_server.etag(PATH)
    fault_server.set_faults(
        PATH, HonorIfMatch(), Status(code=503, times=1), Reset(after_bytes=100_000, times=1)
    )
    dest = tmp_path / "m.bin"
    res = _transfer(engine, fault_server, dest, expected_etag=etag).run()
    assert dest.read_bytes() == BODY
    assert res.retries >= 2
    reqs = fault_server.requests_for(PATH)
    assert len(reqs) >= 2 + len(BODY) // MiB
    assert [r.header("if-match") for r in reqs] == [etag] * len(reqs)
    assert 503 in [r.status for r in reqs]
    assert 412 not in [r.status for r in reqs]


def test_if_match_takes_the_server_spelling_after_the_probe(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """The probe sends the listed ETag as given (the listing's spelling); the
    ranges after it the probe's ETag exactly as the server sent it."""
    fault_server.add(PATH, BODY)
    etag = fault_server.etag(PATH)
    _transfer(engine, fault_server, tmp_path / "m.bin", expected_etag=etag.strip('"')).run()
    sent = [r.header("if-match") for r in fault_server.requests_for(PATH)]
    assert len(sent) > 2
    assert sent == [etag.strip('"')] + [etag] * (len(sent) - 1)


def test_no_if_match_without_a_listed_etag(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    _transfer(engine, fault_server, tmp_path / "m.bin").run()
    reqs = fault_server.requests_for(PATH)
    assert all(r.header("if-match") is None for r in reqs)
    assert all(r.header("if-range") == fault_server.etag(PATH) for r in reqs[1:])


def test_one_stream_path_sends_if_match_on_its_retry(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    etag = fault_server.etag(PATH)
    fault_server.set_faults(PATH, HonorIfMatch(), IgnoreRange(), Truncate(after_bytes=MiB, times=1))
    dest = tmp_path / "m.bin"
    res = _transfer(engine, fault_server, dest, expected_etag=etag).run()
    assert not res.ranged
    assert dest.read_bytes() == BODY
    reqs = fault_server.requests_for(PATH)
    assert len(reqs) == 2
    assert [r.header("if-match") for r in reqs] == [etag, etag]


def test_object_replaced_before_a_one_stream_retry_fails_with_etag(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    listed, _ = _replaced_after_the_first_request(
        fault_server, IgnoreRange(), Truncate(after_bytes=MiB, times=1)
    )
    with pytest.raises(core().ChecksumMismatch) as info:
        _transfer(engine, fault_server, tmp_path / "m.bin", expected_etag=listed, hash=False).run()
    assert (info.value.algorithm, info.value.actual) == ("etag", fault_server.etag(PATH))
    _assert_nothing_kept(tmp_path)


def test_if_match_follows_a_redirect_to_another_host(
    engine: Any, fault_server: FaultServer, fault_server_b: FaultServer, tmp_path: Path
) -> None:
    """If-Match names the object, not the caller: kept where Authorization is not."""
    fault_server.add(PATH, BODY)
    fault_server_b.add(PATH, BODY)
    etag = fault_server_b.etag(PATH)
    fault_server.set_faults(PATH, Redirect(target=fault_server_b.base_url, code=307))
    fault_server_b.set_faults(PATH, HonorIfMatch())
    dest = tmp_path / "m.bin"
    _transfer(
        engine,
        fault_server,
        dest,
        expected_etag=etag,
        headers={"Authorization": "Bearer not-for-b"},
    ).run()
    assert dest.read_bytes() == BODY
    second = fault_server_b.requests_for(PATH)
    assert len(second) >= 2
    assert all(r.header("if-match") == etag for r in second)
    assert all(r.header("authorization") is None for r in second)


# ---------------------------------------------------------------- messages
def test_messages_of_the_transfer_layer(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    msg = str(describe("model.bin", _listed_etag_mismatch(engine, fault_server, tmp_path, '"old"')))
    assert msg.startswith("model.bin: changed upstream since it was listed")
    assert msg.endswith("rerun to fetch the new version")
