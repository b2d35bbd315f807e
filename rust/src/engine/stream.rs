//! One-stream transfers: the server ignored Range or did not say how big
//! the object is. Same buffers, writes and hashing as the ranged path, read
//! in order from a single response; no resume (a retry starts over).

use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use reqwest::StatusCode;
use tokio::sync::OwnedSemaphorePermit;

use super::buffers::{Buffer, SLAB};
use super::fetch::{self, Conditions, Failure};
use super::file::{partial_paths, PartialFile};
use super::hasher::{self, DigestHex, Item, Msg, Outcome};
use super::sign::RequestHeaders;
use super::transfer::{
    io_err, join_thread, size_mismatch, verify, wanted, AttemptError, Stats, TransferOutcome,
    TransferSpec, TransferState,
};
use super::Engine;
use crate::error::Error;

/// One stream, no Range: the server ignored it or the size is unknown.
#[allow(clippy::too_many_arguments)]
pub(super) async fn stream(
    engine: &Arc<Engine>,
    spec: &Arc<TransferSpec>,
    state: &Arc<TransferState>,
    stats: &Arc<Stats>,
    probe: fetch::Probe,
    headers: &RequestHeaders,
    cond: &Conditions,
    probe_conn: Option<OwnedSemaphorePermit>,
) -> std::result::Result<TransferOutcome, AttemptError> {
    let cfg = &engine.cfg;
    let url = probe.final_url.clone();
    let stall = cfg.stall_timeout;
    // keep the probe's permit: its response may be the body we stream
    let _conn = match probe_conn {
        Some(c) => c,
        None => engine
            .conns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?,
    };
    let as_retry = |f: Failure| match f {
        Failure::Retry { msg, retry_after } => AttemptError::StreamRetry(msg, retry_after),
        Failure::Changed => AttemptError::Restart("the object changed on the server"),
        Failure::Fatal(e) => AttemptError::Fatal(e),
    };
    let mut resp = match probe.whole {
        Some(r) => r,
        None => {
            let r = fetch::get(engine, &url, headers, None, cond, stall)
                .await
                .map_err(as_retry)?;
            if r.status() != StatusCode::OK {
                return Err(as_retry(fetch::status_failure(&r)));
            }
            r
        }
    };
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
    let (htx, hrx) = mpsc::channel::<Msg>();
    let hasher_thread = if spec.hash {
        Some(
            hasher::spawn(wanted(spec, size_hint)?, partial.file.clone(), hrx, None)
                .map_err(|e| Error::io("start the hasher thread", e))?,
        )
    } else {
        None
    };
    stats.peak.fetch_max(1, Ordering::Relaxed);
    let piece = 8 * SLAB;
    let mut off = 0u64;
    let mut carry: Option<bytes::Bytes> = None;
    let mut eof = false;
    while !eof {
        let n = (piece / SLAB) as u32;
        let w = engine.budget.clone().acquire_many_owned(n).await;
        let Ok(w) = w else {
            return Err(Error::Cancelled.into());
        };
        let mut buf = Buffer::new(engine.pool.clone(), piece, vec![w]);
        let mut pos = 0usize;
        while pos < piece {
            let chunk = match carry.take() {
                Some(c) => c,
                None => {
                    let next = tokio::select! {
                        c = fetch::next_chunk(&mut resp, stall) => c.map_err(as_retry)?,
                        _ = state.cancel.cancelled() => return Err(Error::Cancelled.into()),
                    };
                    match next {
                        Some(c) => c,
                        None => {
                            eof = true;
                            break;
                        }
                    }
                }
            };
            let take = chunk.len().min(piece - pos);
            state.progress.add(take as u64);
            buf.write_at(pos, &chunk[..take]);
            pos += take;
            if take < chunk.len() {
                carry = Some(chunk.slice(take..));
            }
        }
        if pos == 0 {
            break;
        }
        let parts = buf.parts(pos);
        partial
            .write_parts(off, &parts)
            .map_err(|e| io_err("write", &partial.path, e))?;
        drop(parts);
        stats.fetched.fetch_add(pos as u64, Ordering::Relaxed);
        state.progress.sample(Instant::now());
        if hasher_thread.is_some() {
            let _ = htx.send(Msg {
                offset: off,
                len: pos as u64,
                item: Item::Mem(buf),
            });
        }
        off += pos as u64;
    }
    drop(htx);
    if let Some(n) = size_hint {
        if off < n {
            return Err(AttemptError::StreamRetry(
                format!("truncated body: {off} of {n} bytes"),
                None,
            ));
        }
    }
    let digests = match hasher_thread {
        None => DigestHex::default(),
        Some(h) => match join_thread(h).await {
            Some(Outcome::Done { digests, .. }) => digests,
            Some(Outcome::Io(e)) => return Err(io_err("read", &ppath, e)),
            _ => return Err(Error::io("hasher thread", std::io::Error::other("failed")).into()),
        },
    };
    if size_hint.is_none() {
        // preallocation was impossible; make the length exact
        partial
            .file
            .set_len(off)
            .map_err(|e| io_err("truncate", &partial.path, e))?;
    }
    let verified = verify(spec, &digests, off)?;
    partial.publish(&spec.dest)?;
    Ok(TransferOutcome {
        size: off,
        etag: probe.etag,
        last_modified: probe.last_modified,
        digests,
        verified,
        ranged: false,
        direct_io: partial.is_direct(),
        ..Default::default()
    })
}
