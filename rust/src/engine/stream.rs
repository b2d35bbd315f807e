//! One-stream transfers: the server ignored Range or did not say how big
//! the object is. Same buffers, writes and hashing as the ranged path, read
//! in order from a single response; no resume (a retry starts over).
//!
//! A body of unknown size is bounded twice: by `max_unknown_size` (a server
//! that never stops sending fails as `TooLarge`), and by the free space of
//! the destination's file system, checked after every piece (the transfer
//! stops with ENOSPC while `KEEP_FREE` bytes are still free, so the node's
//! disk never fills up). Either way the partial file is removed: without
//! ranges there is nothing to resume from.

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use bytes::Bytes;
use reqwest::{Response, StatusCode, Url};

use super::attempt::{io_err, join_thread, AttemptError, Stats, CHANGED};
use super::buffers::{Buffer, SLAB};
use super::checks::{size_mismatch, verify, wanted};
use super::fetch::{self, Conditions, Failure};
use super::file::{free_bytes, partial_paths, PartialFile};
use super::hasher::{self, DigestHex, Item, Msg, Outcome};
use super::pace::Pace;
use super::probed::Probed;
use super::sign::RequestHeaders;
use super::spec::{TransferOutcome, TransferSpec, TransferState};
use super::Engine;
use crate::error::{redact_url, Error, TransferKind};

/// Free bytes a body of unknown size leaves on the destination's file system.
pub(super) const KEEP_FREE: u64 = 64 << 20;

/// One stream, no Range: the server ignored it or the size is unknown.
pub(super) async fn stream(
    engine: &Arc<Engine>,
    spec: &Arc<TransferSpec>,
    state: &Arc<TransferState>,
    stats: &Arc<Stats>,
    probed: Probed,
) -> std::result::Result<TransferOutcome, AttemptError> {
    let Probed {
        probe,
        headers,
        cond,
        conn,
    } = probed;
    // keep the probe's permit: its response may be the body we stream
    let _conn = match conn {
        Some(c) => c,
        None => engine
            .conns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?,
    };
    let url = probe.final_url.clone();
    let mut resp = open_body(engine, probe.whole, &url, &headers, &cond).await?;
    let size_hint = resp.content_length();
    state.progress.set_total(size_hint);
    if let (Some(exp), Some(size)) = (spec.expected_size, size_hint) {
        if exp != size {
            return Err(size_mismatch(exp, size).into());
        }
    }
    let (ppath, jpath) = partial_paths(&spec.dest);
    // no resume without ranges: a stale journal would only mislead
    let _ = std::fs::remove_file(&jpath);
    let partial = PartialFile::create(&ppath, size_hint, spec.direct_io)?;
    let (htx, hasher_thread) = start_hasher(spec, &partial, size_hint)?;
    stats.peak.fetch_max(1, Ordering::Relaxed);
    let sink = Sink {
        engine,
        state,
        stats,
        partial: &partial,
        htx: hasher_thread.is_some().then_some(&htx),
        // only a body whose size was not given is capped here
        unknown_cap: size_hint
            .is_none()
            .then(|| spec.max_unknown_size.unwrap_or(u64::MAX)),
    };
    let size = match sink.pump(&mut resp).await {
        Err(AttemptError::Fatal(e)) if size_hint.is_none() => {
            // without a size there is no resume: the bytes of a body that failed
            // for good (too large, the disk nearly full, cancelled) are of no use
            drop(htx);
            let _ = std::fs::remove_file(&partial.path);
            return Err(AttemptError::Fatal(e));
        }
        other => other?,
    };
    drop(htx);
    let digests = finish(hasher_thread, &partial, size_hint, size).await?;
    let verified = verify(spec, &digests, size)?;
    partial.publish(&spec.dest)?;
    Ok(TransferOutcome {
        size,
        etag: probe.etag,
        last_modified: probe.last_modified,
        digests,
        verified,
        ranged: false,
        sized: size_hint.is_some(),
        direct_io: partial.is_direct(),
        ..Default::default()
    })
}

/// The hasher thread when hashing, and the end its input goes into.
fn start_hasher(
    spec: &TransferSpec,
    partial: &PartialFile,
    size_hint: Option<u64>,
) -> Result<(mpsc::Sender<Msg>, Option<JoinHandle<Outcome>>), AttemptError> {
    let (htx, hrx) = mpsc::channel::<Msg>();
    if !spec.hash {
        return Ok((htx, None));
    }
    let h = hasher::spawn(wanted(spec, size_hint)?, partial.file.clone(), hrx, None)
        .map_err(|e| Error::io("start the hasher thread", e))?;
    Ok((htx, Some(h)))
}

/// A failure of the one stream: retried whole by `transfer::run`.
fn as_retry(f: Failure) -> AttemptError {
    match f {
        Failure::Retry {
            kind,
            msg,
            retry_after,
        } => AttemptError::StreamRetry {
            kind,
            msg,
            retry_after,
        },
        Failure::Changed => CHANGED,
        Failure::Fatal(e) => AttemptError::Fatal(e),
    }
}

/// The probe's whole-body response, or a new plain GET.
async fn open_body(
    engine: &Engine,
    whole: Option<Response>,
    url: &Url,
    headers: &RequestHeaders,
    cond: &Conditions,
) -> Result<Response, AttemptError> {
    if let Some(r) = whole {
        return Ok(r);
    }
    let r = fetch::get(engine, url, headers, None, cond, engine.limits())
        .await
        .map_err(as_retry)?;
    if r.status() != StatusCode::OK {
        return Err(as_retry(fetch::status_failure(&r)));
    }
    Ok(r)
}

/// Where the body goes: budgeted buffers, the partial file, the hasher.
struct Sink<'a> {
    engine: &'a Engine,
    state: &'a TransferState,
    stats: &'a Stats,
    partial: &'a PartialFile,
    /// `None` when not hashing
    htx: Option<&'a mpsc::Sender<Msg>>,
    /// the most bytes taken when the size is unknown; `None` when it is known
    unknown_cap: Option<u64>,
}

const PIECE: usize = 8 * SLAB;

impl Sink<'_> {
    /// Read the body to its end in pieces of `PIECE` bytes, each written at
    /// its offset and handed to the hasher; returns the bytes read.
    async fn pump(&self, resp: &mut Response) -> Result<u64, AttemptError> {
        let mut off = 0u64;
        let mut carry: Option<Bytes> = None;
        let mut eof = false;
        let mut pace = Pace::new(self.engine.limits());
        while !eof {
            let n = (PIECE / SLAB) as u32;
            let Ok(w) = self.engine.budget.clone().acquire_many_owned(n).await else {
                return Err(Error::Cancelled.into());
            };
            let mut buf = Buffer::new(self.engine.pool.clone(), PIECE, vec![w]);
            let pos;
            (pos, eof) = self.fill(resp, &mut buf, &mut carry, &mut pace).await?;
            if pos == 0 {
                break;
            }
            self.check_unknown(resp, off + pos as u64)?;
            let parts = buf.parts(pos);
            self.partial
                .write_parts(off, &parts)
                .map_err(|e| io_err("write", &self.partial.path, e))?;
            drop(parts);
            self.stats.fetched.fetch_add(pos as u64, Ordering::Relaxed);
            self.state.progress.sample(Instant::now());
            if let Some(htx) = self.htx {
                let _ = htx.send(Msg {
                    offset: off,
                    len: pos as u64,
                    item: Item::Mem(buf),
                });
            }
            off += pos as u64;
        }
        Ok(off)
    }

    /// A body of unknown size that would pass its cap, or bring the disk
    /// under `KEEP_FREE`, stops before it is written.
    fn check_unknown(&self, resp: &Response, total: u64) -> Result<(), AttemptError> {
        let Some(cap) = self.unknown_cap else {
            return Ok(());
        };
        if total > cap {
            return Err(Error::Transfer {
                url: redact_url(resp.url().as_str()),
                kind: TransferKind::TooLarge,
                message: format!(
                    "the server gave no size and the body passed {cap} bytes \
                     (max_unknown_size); the file was not kept"
                ),
            }
            .into());
        }
        let free =
            free_bytes(&self.partial.file).map_err(|e| io_err("statvfs", &self.partial.path, e))?;
        if free < KEEP_FREE + PIECE as u64 {
            return Err(AttemptError::Fatal(Error::io(
                format!(
                    "{}: stopped before the disk is full: {free} bytes free (a body of \
                     unknown size leaves at least {KEEP_FREE})",
                    self.partial.path.display()
                ),
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            )));
        }
        Ok(())
    }

    /// Fill `buf` from `carry` (the rest of the last chunk) and the body;
    /// returns the bytes filled and whether the body ended.
    async fn fill(
        &self,
        resp: &mut Response,
        buf: &mut Buffer,
        carry: &mut Option<Bytes>,
        pace: &mut Pace,
    ) -> Result<(usize, bool), AttemptError> {
        let mut pos = 0usize;
        while pos < PIECE {
            let chunk = match carry.take() {
                Some(c) => c,
                None => {
                    let next = tokio::select! {
                        c = fetch::next_chunk(resp, pace) => c.map_err(as_retry)?,
                        _ = self.state.cancel.cancelled() => return Err(Error::Cancelled.into()),
                    };
                    match next {
                        Some(c) => c,
                        None => return Ok((pos, true)),
                    }
                }
            };
            let take = chunk.len().min(PIECE - pos);
            self.state.progress.add(take as u64);
            buf.write_at(pos, &chunk[..take]);
            pos += take;
            if take < chunk.len() {
                *carry = Some(chunk.slice(take..));
            }
        }
        Ok((pos, false))
    }
}

/// A short body is retried; else the digests, and the exact length when it
/// was not known up front (preallocation was impossible).
async fn finish(
    hasher_thread: Option<JoinHandle<Outcome>>,
    partial: &PartialFile,
    size_hint: Option<u64>,
    size: u64,
) -> Result<DigestHex, AttemptError> {
    if let Some(n) = size_hint {
        if size < n {
            return Err(AttemptError::StreamRetry {
                kind: TransferKind::Broken,
                msg: format!("truncated body: {size} of {n} bytes"),
                retry_after: None,
            });
        }
    }
    let digests = match hasher_thread {
        None => DigestHex::default(),
        Some(h) => match join_thread(h).await {
            Some(Outcome::Done { digests, .. }) => digests,
            Some(Outcome::Io(e)) => return Err(io_err("read", &partial.path, e)),
            _ => return Err(Error::io("hasher thread", std::io::Error::other("failed")).into()),
        },
    };
    if size_hint.is_none() {
        partial
            .file
            .set_len(size)
            .map_err(|e| io_err("truncate", &partial.path, e))?;
    }
    Ok(digests)
}
