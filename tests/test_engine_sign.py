"""Engine: per-request signing (``sign=``) for object stores that sign every request.

Proves on the fault-injection server, which records each request's headers:
the callable is called before every request the transfer sends (probe, every
range, retries), its fresh headers win over the fixed ones; ``Engine.head`` and
``fetch_range`` sign too; a raising or malformed callable fails the transfer
with one clean ``TransferError`` that names the exception type and never a
header value; the signature does not follow a redirect to another host, while a
same-host redirect is signed again; and the transfer layer hands a
``RemoteFile``'s signer, digests and ETag to the engine.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import google_crc32c
import pytest

from ome_agent.errors import TransferFailed
from ome_agent.sources.model import MultipartMd5, RemoteFile
from ome_agent.transfer.failures import describe
from ome_agent.transfer.runner import Job, Runner
from ome_agent.transfer.settings import TransferSettings
from tests.servers.fault_server import FaultServer, Redirect, Reset, Status
from tests.servers.http_fixtures import core

MiB = 1024 * 1024
BODY = os.urandom(5 * MiB + 99)
SHA = hashlib.sha256(BODY).hexdigest()
PATH = "/bucket/o/model.bin"
SIGNATURE = "Signature keyId=tenancy,signature=c2VjcmV0LXNpZ25hdHVyZQ"


class Counter:
    """A signer: a new value per call, like a signature over a new date."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Mapping[str, str]:
        with self._lock:
            self.calls += 1
            n = self.calls
        return {"authorization": f"{SIGNATURE}-{n}", "x-date": f"call-{n}"}


def _transfer(engine: Any, url: str, dest: Path, sign: Callable[[], Any], **kw: Any) -> Any:
    kw.setdefault("chunk_size", MiB)
    kw.setdefault("connections", 3)
    return core().Transfer(engine, url, str(dest), sha256=SHA, sign=sign, **kw)


def test_every_request_gets_fresh_headers(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    # a 503 burst on the probe and a reset mid-range: retries must be re-signed
    fault_server.set_faults(PATH, Status(code=503, times=2), Reset(after_bytes=100_000, times=1))
    sign = Counter()
    dest = tmp_path / "m.bin"
    res = _transfer(
        engine,
        fault_server.url(PATH),
        dest,
        sign,
        headers={"x-date": "fixed", "x-keep": "kept"},
    ).run()
    assert dest.read_bytes() == BODY
    assert res.retries >= 3
    reqs = fault_server.requests_for(PATH)
    dates = [r.header("x-date") for r in reqs]
    assert len(reqs) >= 6  # 2 x 503, probe, 4 more ranges, 1 retried range
    assert sign.calls == len(reqs), "one call per request sent, no more, no less"
    assert len(set(dates)) == len(reqs), f"a header value was reused: {dates}"
    assert all(d is not None and d.startswith("call-") for d in dates), "signer must win"
    assert all(r.header("x-keep") == "kept" for r in reqs)
    assert reqs[0].status == 503
    assert reqs[0].header("authorization") == f"{SIGNATURE}-1"


def test_head_and_fetch_range_sign(engine: Any, fault_server: FaultServer) -> None:
    fault_server.add(PATH, BODY)
    sign = Counter()
    url = fault_server.url(PATH)
    info = engine.head(url, sign=sign)
    assert info["size"] == len(BODY)
    assert engine.fetch_range(url, 10, 20, sign=sign) == BODY[10:30]
    reqs = fault_server.requests_for(PATH)
    assert [r.header("x-date") for r in reqs] == ["call-1", "call-2"]


class Boom(RuntimeError):
    pass


def _raising() -> Mapping[str, str]:
    raise Boom(f"key file unreadable, token {SIGNATURE}")


@pytest.mark.parametrize(
    ("sign", "what"),
    [
        (_raising, "signing the request failed: Boom"),
        (lambda: {"authorization": 42}, "signing the request failed: the returned headers"),
        (lambda: {"authorization": SIGNATURE + "\n"}, "signing the request failed: the returned"),
        (lambda: None, "signing the request failed: the returned headers"),
    ],
)
def test_failing_signer_is_a_clean_transfer_error(
    engine: Any, fault_server: FaultServer, tmp_path: Path, sign: Any, what: str
) -> None:
    fault_server.add(PATH, BODY)
    with pytest.raises(core().TransferError) as info:
        _transfer(engine, fault_server.url(PATH), tmp_path / "m.bin", sign).run()
    msg = str(info.value)
    assert what in msg
    assert SIGNATURE not in msg
    assert "token" not in msg
    assert info.value.__cause__ is None
    assert fault_server.requests_for(PATH) == [], "nothing is sent unsigned"
    assert list(tmp_path.iterdir()) == []
    # and as the transfer layer prints it
    out = str(describe("model.bin", info.value))
    assert out.startswith("model.bin: ")
    assert SIGNATURE not in out


def test_signer_must_be_callable(engine: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^sign: pass a callable"):
        core().Transfer(engine, "http://127.0.0.1:9/x", str(tmp_path / "x"), sign={"a": "b"})


def test_signature_does_not_follow_a_redirect_to_another_host(
    engine: Any, fault_server: FaultServer, fault_server_b: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    fault_server_b.add(PATH, BODY)
    fault_server.set_faults(PATH, Redirect(target=fault_server_b.base_url, code=307))
    sign = Counter()
    dest = tmp_path / "m.bin"
    _transfer(
        engine, fault_server.url(PATH), dest, sign, headers={"authorization": "Bearer fixed"}
    ).run()
    assert dest.read_bytes() == BODY
    first = fault_server.requests_for(PATH)
    assert len(first) == 1
    assert first[0].header("x-date") == "call-1"
    other = fault_server_b.requests_for(PATH)
    assert other, "the redirect target served the file"
    for r in other:
        assert r.header("authorization") is None, "no credential crosses to another host"
        assert r.header("x-date") is None, "no signature header crosses to another host"
    assert sign.calls == 1


def test_same_host_redirect_is_signed_again(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add("/final" + PATH, BODY)
    fault_server.set_faults(PATH, Redirect(target=fault_server.base_url + "/final", code=302))
    sign = Counter()
    dest = tmp_path / "m.bin"
    _transfer(engine, fault_server.url(PATH), dest, sign).run()
    assert dest.read_bytes() == BODY
    hops = fault_server.requests_for(PATH) + fault_server.requests_for("/final" + PATH)
    dates = [r.header("x-date") for r in hops]
    assert None not in dates
    assert len(set(dates)) == len(hops) == sign.calls


# ---------------------------------------------------------------- transfer layer
def test_runner_passes_signer_digests_and_etag(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    fault_server.add(PATH, BODY)
    part = 2 * MiB
    parts = [BODY[i : i + part] for i in range(0, len(BODY), part)]
    joined = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    sign = Counter()
    f = RemoteFile(
        path="model.bin",
        url=fault_server.url(PATH),
        size=len(BODY),
        crc32c=f"{google_crc32c.value(BODY):08x}",
        md5_multipart=MultipartMd5(
            part, f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts)}"
        ),
        etag=fault_server.etag(PATH).strip('"'),
        sign=sign,
    )
    (out,) = Runner(engine, [Job(f, tmp_path / "model.bin")], TransferSettings()).run()
    assert {"crc32c", "md5-multipart", "size"} <= set(out.result.verified)
    assert sign.calls == len(fault_server.requests_for(PATH)) >= 1

    # --no-verify: no digests compared, the listed ETag still guards the object
    stale = RemoteFile(path="b.bin", url=f.url, crc32c="00000000", etag='"stale"', sign=sign)
    with pytest.raises(TransferFailed, match="changed upstream since it was listed"):
        Runner(engine, [Job(stale, tmp_path / "b.bin")], TransferSettings(verify=False)).run()
    plain = RemoteFile(path="c.bin", url=f.url, crc32c="00000000")
    (out,) = Runner(engine, [Job(plain, tmp_path / "c.bin")], TransferSettings(verify=False)).run()
    assert out.result.verified == []


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("https://huggingface.co/org/m/resolve/main/a.bin", "HF_TOKEN"),
        ("https://objectstorage.example.com/n/ns/b/bk/o/a.bin", "credentials of this storage"),
    ],
)
def test_refused_access_hint_fits_the_source(
    engine: Any, fault_server: FaultServer, url: str, hint: str
) -> None:
    fault_server.add(PATH, BODY)
    fault_server.set_faults(PATH, Status(code=403))
    with pytest.raises(core().HttpStatusError) as info:
        engine.head(fault_server.url(PATH))
    exc = info.value
    exc.url = url
    msg = str(describe("a.bin", exc))
    assert hint in msg
    assert ("HF_TOKEN" in msg) == (hint == "HF_TOKEN")


def test_throttling_after_retries_says_so(fault_server: FaultServer, tmp_path: Path) -> None:
    fault_server.add(PATH, BODY)
    fault_server.set_faults(PATH, Status(code=429))
    quick = core().Engine(connect_timeout=2.0, stall_timeout=1.0, max_retries=1)
    with pytest.raises(core().TransferError) as info:
        core().Transfer(quick, fault_server.url(PATH), str(tmp_path / "m")).run()
    msg = str(describe("m", info.value))
    assert "busy after retries" in msg
    assert "HTTP 429" in msg


def test_signer_called_from_many_transfers_at_once(
    engine: Any, fault_server: FaultServer, tmp_path: Path
) -> None:
    """The GIL is taken per call from engine threads: no deadlock, every call counted."""
    fault_server.add(PATH, BODY)
    sign = Counter()
    ids = itertools.count()
    jobs = [
        Job(
            RemoteFile(path=f"f{next(ids)}", url=fault_server.url(PATH), sha256=SHA, sign=sign),
            tmp_path / f"f{i}",
        )
        for i in range(4)
    ]
    outs = Runner(engine, jobs, TransferSettings(chunk_size=MiB, connections=4)).run()
    assert all("sha256" in o.result.verified for o in outs)
    assert sign.calls == len(fault_server.requests_for(PATH))
