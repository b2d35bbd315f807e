"""Type stubs of the compiled ``ome_agent._core`` module (rust/src/py/).

This file is the contract between the Rust engine and the Python layers.
Every long call releases the GIL and checks for signals (Ctrl-C raises
KeyboardInterrupt in the calling thread and cancels the transfer).
"""

from collections.abc import Callable, Mapping
from typing import Literal, Self, final

__all__ = [
    "MAX_HEADER_BYTES",
    "Cancelled",
    "ChecksumMismatch",
    "Crc64Nvme",
    "Engine",
    "EngineError",
    "HeaderError",
    "HttpStatusError",
    "SafetensorsHeader",
    "TensorInfo",
    "Transfer",
    "TransferError",
    "TransferResult",
    "__version__",
    "parse_safetensors_header",
    "read_safetensors_header",
    "safetensors_header_length",
]

__version__: str

# ---------------------------------------------------------------- errors
class EngineError(Exception):
    """Base of every error raised by the engine."""

class TransferError(EngineError, ConnectionError):
    """Network failure that outlived the retries (resets, stalls, 5xx, ...).

    The fields say what failed; callers decide on them, never on the message."""

    # "status": every try got a retried status (5xx, 408, 429), the last in ``status``;
    # "connect": no connection (refused, unreachable, resolver down, TLS); "dns": the
    # host name does not exist (NXDOMAIN; never retried); "timeout": no body bytes for
    # ``stall_timeout``; "slow": below ``speed_limit`` bytes/s over ``speed_time``, or
    # no response head within ``speed_time`` (retried at most twice); "broken": reset
    # or cut short; "protocol": an answer that breaks HTTP (Content-Range); "malformed":
    # a response head that is not HTTP/1.1 (status line, negative or conflicting
    # Content-Length, a head too large; never retried); "too-large": a body of unknown
    # size passed ``max_unknown_size`` (never retried); "redirect": a redirect not
    # followed (to a URL that is not http(s), or too many; never retried); "changed":
    # the object kept changing; "corrupt": resumed data kept failing its check; "sign":
    # the signer failed; "internal": the engine itself failed
    kind: Literal[
        "status", "connect", "dns", "timeout", "slow", "broken", "protocol", "malformed",
        "too-large", "redirect", "changed", "corrupt", "sign", "internal",
    ]  # fmt: skip
    status: int | None
    # False for HttpStatusError (the status is not worth a retry) and for the kinds
    # the engine never retries: "dns", "malformed", "too-large"
    retryable: bool
    url: str  # without query string: signed URLs carry credentials there

class HttpStatusError(TransferError):
    """The server answered with a status that is not retried (e.g. 401/403/404).

    ``kind`` is "status" and ``retryable`` False."""

    status: int

class ChecksumMismatch(EngineError, ValueError):
    """A digest of the received bytes differs from the expected one.

    The file never appears under its final name."""

    # "sha256" | "md5" | "git-sha1" | "crc32c" | "crc64nvme" | "md5-multipart" | "size" | "etag"
    algorithm: str
    expected: str
    actual: str  # for "etag": the ETag the server answers with now, or "changed (HTTP 412)"

class Cancelled(EngineError):
    """The transfer was cancelled (``Transfer.cancel`` or a signal)."""

class HeaderError(EngineError, ValueError):
    """A safetensors header is malformed or hostile."""

# ---------------------------------------------------------------- engine
@final
class Engine:
    """One process-wide HTTP client: keep-alive pool, TLS roots, proxies.

    ``max_connections`` caps connections over *all* transfers of this engine;
    ``max_in_flight_bytes`` caps buffered, not-yet-written-and-hashed bytes
    over all transfers (memory stays bounded whatever the file sizes).
    ``speed_limit``/``speed_time``: curl's low-speed limit, for every request: a body
    averaging fewer than ``speed_limit`` bytes/s over a period of ``speed_time`` s, or a
    response head not complete within ``speed_time``, fails that try as "slow" (retried
    at most twice); ``speed_limit=0`` turns it off (the head then gets
    ``stall_timeout``).
    """

    def __new__(
        cls,
        *,
        ca_bundle: str | None = None,
        max_connections: int = 64,
        max_in_flight_bytes: int = 128 * 1024 * 1024,
        connect_timeout: float = 10.0,
        stall_timeout: float = 30.0,
        speed_limit: int = 1024,
        speed_time: float = 30.0,
        max_retries: int = 8,
        user_agent: str | None = None,
    ) -> Self: ...
    def fetch_range(
        self,
        url: str,
        start: int,
        length: int,
        *,
        headers: Mapping[str, str] | None = None,
        sign: Callable[[], Mapping[str, str]] | None = None,
    ) -> bytes:
        """GET bytes [start, start+length) (fewer at end of file); retried like a range.

        ``sign``: as for ``Transfer``, called before each request (retries included)."""
    def head(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        sign: Callable[[], Mapping[str, str]] | None = None,
    ) -> dict[str, str | int | None]:
        """Probe a URL: {"size", "etag", "last_modified", "accept_ranges", "final_url"}.

        ``sign``: as for ``Transfer``, called before each request (retries included)."""

@final
class Transfer:
    """One URL into one destination file.

    Ranges are written at their offsets into ``<dest>.partial``; a journal
    ``<dest>.partial.journal`` records finished ranges so a rerun fetches only
    what is missing. On success: fsync, atomic rename to ``dest``.
    ``connections=None`` / ``chunk_size=None`` mean adaptive; ``direct_io=None``
    means O_DIRECT for files of 64 MiB or more outside tmpfs, buffered otherwise.

    Expected digests are verified while the bytes stream (hash=True); each one
    checked lands in ``TransferResult.verified`` and a difference raises
    ``ChecksumMismatch`` with the file never published:

    - ``sha256`` / ``md5`` / ``git_sha1``: hex digests of the whole file.
    - ``crc32c``: CRC32C (Castagnoli) of the whole file, 8 hex digits big-endian
      (the base64 value of GCS/OCI/S3, decoded, in hex); algorithm "crc32c".
    - ``crc64nvme``: CRC-64/NVME of the whole file, 16 hex digits big-endian (S3's
      full-object ``ChecksumCRC64NVME``, decoded, in hex); computed only when given;
      algorithm "crc64nvme".
    - ``md5_multipart``: ``(part_size, "hex-N")``, the digest S3/OCI give for
      multipart uploads: md5 over the concatenated binary md5 of each part
      (``part_size`` bytes, the last shorter), then "-N" with N parts; a part
      count that does not fit the size is a mismatch too; "md5-multipart".

    ``xxh3=True`` also computes ``TransferResult.xxh3_128`` (with hash=True), a
    whole-file digest for local records that no source gives; it is ``None`` otherwise.

    ``expected_etag``: the ETag the listing gave, spelt as that server spells it
    (quoted or not). Every request of the transfer (probe, each range, retries,
    the one-stream path, redirect hops to other hosts too: it names the object,
    not the caller) carries ``If-Match``: on the probe this value as given, after
    it the probe's ETag exactly as the server sent it; none for a weak ETag
    (If-Match compares strongly, a weak one never matches). An ``If-Match`` in
    ``headers`` or from ``sign`` is left as given. Every 200/206/416 answer is
    compared with it (without quotes and a W/ prefix): another ETag, or a 412,
    raises ``ChecksumMismatch(algorithm="etag")`` with ``actual`` the new ETag
    or "changed (HTTP 412)", never a restart onto the new object, so servers
    that ignore If-Range (OCI, Azure) cannot mix two versions into one file.
    Without it, If-Range alone guards resumed and parallel ranges.

    ``max_unknown_size``: the most bytes taken from a body whose size the server
    does not give (no Content-Length, no Content-Range total); more raises
    ``TransferError(kind="too-large")``. Such a body also stops (``OSError`` ENOSPC,
    the message naming the path and the free bytes) while 64 MiB are still free on
    the destination's file system. In both cases the partial file is removed.

    ``sign``: called before every request of the transfer (probe, each range,
    retries included), from an engine thread with the GIL taken for the call;
    the headers it returns are merged over ``headers`` for that request. It is
    not sent on past a redirect to another origin (nor are Authorization and
    Cookie). An exception from it fails the transfer with ``TransferError``
    ("signing the request failed: <exception type>"), header values never shown.
    """

    def __new__(
        cls,
        engine: Engine,
        url: str,
        dest: str,
        *,
        headers: Mapping[str, str] | None = None,
        expected_size: int | None = None,
        sha256: str | None = None,
        md5: str | None = None,
        git_sha1: str | None = None,
        crc32c: str | None = None,
        crc64nvme: str | None = None,
        md5_multipart: tuple[int, str] | None = None,
        expected_etag: str | None = None,
        sign: Callable[[], Mapping[str, str]] | None = None,
        hash: bool = True,
        xxh3: bool = False,
        connections: int | None = None,
        chunk_size: int | None = None,
        direct_io: bool | None = None,
        resume: bool = True,
        max_unknown_size: int = 16 * 1024**3,
    ) -> Self: ...
    def run(self) -> TransferResult:
        """Blocking; releases the GIL. Raises the errors above."""
    def cancel(self) -> None:
        """Thread-safe; ``run`` raises ``Cancelled`` soon after."""
    @property
    def done_bytes(self) -> int: ...
    @property
    def total_bytes(self) -> int | None: ...
    @property
    def rate(self) -> float:
        """Bytes per second over the last few seconds."""
    def take_retries(self) -> list[tuple[int, int, str, str, float]]:
        """The retries made since the last call, oldest first, each
        ``(number, of, kind, message, wait_seconds)``; thread-safe."""

@final
class TransferResult:
    size: int
    seconds: float
    fetched_bytes: int  # bytes received over the network in this run
    resumed_bytes: int  # bytes found done in the journal at start
    retries: int
    connections: int  # the count chosen (adaptive: where growth stopped), at most the peak used
    etag: str | None
    last_modified: str | None
    # hex; computed when expected, or when no other digest is expected (then it is
    # the file's digest of record); None when hash=False
    sha256: str | None
    md5: str | None
    git_sha1: str | None
    xxh3_128: str | None
    crc32c: str | None  # 8 hex digits, big-endian; computed whenever hash=True
    crc64nvme: str | None  # 16 hex digits, big-endian; computed only when expected
    verified: list[str]  # algorithms compared against an expected value
    ranged: bool  # False when the server ignored Range (one stream)
    sized: bool  # False when the server gave no size (no Content-Length, no total)
    direct_io: bool  # the bulk of the file was written with O_DIRECT

# ---------------------------------------------------------------- digests
@final
class Crc64Nvme:
    """A running CRC-64/NVME, the engine's own (SIMD) code, for files hashed from
    Python; ``update`` releases the GIL."""

    def __new__(cls) -> Self: ...
    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Advance over a contiguous bytes-like object."""
    def hexdigest(self) -> str:
        """16 hex digits, big-endian (S3's base64 ``ChecksumCRC64NVME``, decoded)."""

# ---------------------------------------------------------------- safetensors
@final
class TensorInfo:
    name: str
    dtype: str  # as written in the header: "F16", "BF16", "U8", "I32", ...
    shape: list[int]
    data_offsets: tuple[int, int]
    @property
    def numel(self) -> int: ...

@final
class SafetensorsHeader:
    header_size: int  # length of the JSON part
    data_size: int  # bytes of tensor data the header describes
    tensors: list[TensorInfo]
    metadata: dict[str, str] | None
    parameter_count: int  # sum of numel over tensors
    parameters_by_dtype: dict[str, int]

MAX_HEADER_BYTES: int  # 100 MB

def read_safetensors_header(path: str) -> SafetensorsHeader:
    """Parse the header of a local file (reads only the header bytes).

    Raises ``HeaderError`` for a malformed or hostile header, ``OSError``
    (e.g. ``FileNotFoundError``) when the file cannot be read."""

def parse_safetensors_header(data: bytes, file_size: int | None = None) -> SafetensorsHeader:
    """Parse from the file's first bytes (8-byte length + JSON), e.g. from a range
    request. ``file_size`` enables the out-of-range offset checks."""

def safetensors_header_length(prefix: bytes) -> int:
    """Total bytes (8 + JSON length) needed to parse; validates the length."""
