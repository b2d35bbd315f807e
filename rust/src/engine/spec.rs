//! The data of one transfer: what to fetch (`TransferSpec`), the counters the
//! caller reads while it runs (`TransferState`) and what it returns
//! (`TransferOutcome`). Plain data; the steps live in `transfer`, `ranged`
//! and `stream`.

use std::path::PathBuf;

use reqwest::header::HeaderMap;

use super::hasher::DigestHex;
use super::progress::{Cancel, Progress, RetryLog};
use super::sign::{RequestHeaders, Signer};

/// What to transfer and how (see `Transfer` in `_core.pyi`).
#[derive(Debug, Clone, Default)]
pub struct TransferSpec {
    pub url: String,
    pub dest: PathBuf,
    pub headers: HeaderMap,
    pub expected_size: Option<u64>,
    /// lowercase hex
    pub sha256: Option<String>,
    pub md5: Option<String>,
    pub git_sha1: Option<String>,
    /// lowercase hex, 8 digits (big-endian)
    pub crc32c: Option<String>,
    /// lowercase hex, 16 digits (big-endian): CRC-64/NVME, S3's full-object checksum
    pub crc64nvme: Option<String>,
    /// (part size, lowercase "hex-N"): S3/OCI multipart upload digest
    pub md5_multipart: Option<(u64, String)>,
    /// the ETag the listing gave; another one at fetch time = changed upstream
    pub expected_etag: Option<String>,
    /// fresh headers before every request (merged over `headers`)
    pub sign: Option<Signer>,
    pub hash: bool,
    /// also compute xxh3-128 of the whole file (recorded by local manifests,
    /// never checked against a source): off unless asked for, it is CPU
    /// nobody else pays for
    pub xxh3: bool,
    pub connections: Option<usize>,
    pub chunk_size: Option<u64>,
    /// `None`: automatic (see `file::wants_direct`)
    pub direct_io: Option<bool>,
    pub resume: bool,
    /// the most bytes taken from a body whose size the server does not give
    /// (no Content-Length, no Content-Range total); more fails as `TooLarge`.
    /// `None`: no cap (the Python API always sets one, see `MAX_UNKNOWN_SIZE`)
    pub max_unknown_size: Option<u64>,
}

/// Default of `TransferSpec::max_unknown_size`: 16 GiB, above a model shard
/// (5-10 GB), far below a disk. A bigger file without a size needs it raised.
pub const MAX_UNKNOWN_SIZE: u64 = 16 << 30;

impl TransferSpec {
    pub fn request_headers(&self) -> RequestHeaders {
        RequestHeaders::new(self.headers.clone(), self.sign.clone())
    }
}

/// Counters shared with the caller while the transfer runs.
#[derive(Debug, Default)]
pub struct TransferState {
    pub progress: Progress,
    pub cancel: Cancel,
    pub retries: RetryLog,
}

/// Result of a finished transfer (see `TransferResult` in `_core.pyi`).
#[derive(Debug, Clone, Default)]
pub struct TransferOutcome {
    pub size: u64,
    pub seconds: f64,
    pub fetched_bytes: u64,
    pub resumed_bytes: u64,
    pub retries: u64,
    pub connections: usize,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub digests: DigestHex,
    pub verified: Vec<String>,
    pub ranged: bool,
    /// whether the server gave the size before the body (Content-Length or a
    /// Content-Range total); false: nothing but the end of the body said it
    pub sized: bool,
    /// whether the bulk of the file was written with O_DIRECT
    pub direct_io: bool,
}
