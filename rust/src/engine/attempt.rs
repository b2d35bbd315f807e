//! What one attempt of a transfer shares with its parts (`ranged`, `worker`,
//! `stream`): how it fails (`AttemptError`, read by `transfer::run`) and the
//! counters its workers add to.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, TransferKind};

#[derive(Default)]
pub(super) struct Stats {
    pub(super) retries: AtomicU64,
    pub(super) fetched: AtomicU64,
    pub(super) active: AtomicUsize,
    pub(super) peak: AtomicUsize,
    /// connections the adaptive controller settled on (0: not ranged)
    pub(super) chosen: AtomicUsize,
}

pub(super) enum AttemptError {
    /// Start over from byte 0 (object changed, damaged resume data).
    Restart(TransferKind, &'static str),
    /// One-stream download failed in a retryable way: try it again whole.
    StreamRetry {
        kind: TransferKind,
        msg: String,
        retry_after: Option<Duration>,
    },
    Fatal(Error),
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> Self {
        AttemptError::Fatal(e)
    }
}

/// The object changed under a running attempt: start over.
pub(super) const CHANGED: AttemptError =
    AttemptError::Restart(TransferKind::Changed, "the object changed on the server");

/// The hasher found resumed data damaged: start over.
pub(super) const CORRUPT: AttemptError = AttemptError::Restart(
    TransferKind::Corrupt,
    "resumed data failed its crc32c check",
);

pub(super) fn io_err(what: &str, p: &std::path::Path, e: std::io::Error) -> AttemptError {
    AttemptError::Fatal(Error::io(format!("{what} {}", p.display()), e))
}

pub(super) async fn join_thread<T: Send + 'static>(h: JoinHandle<T>) -> Option<T> {
    tokio::task::spawn_blocking(move || h.join().ok())
        .await
        .ok()
        .flatten()
}
