//! One URL into one destination file: the orchestration of a transfer.
//!
//! probe → (journal says what is done) → workers take pieces in file order,
//! each under a budget permit, fetch them with retries, `pwritev` them at
//! their offset and hand the buffer to the in-order hasher; a journal thread
//! records finished pieces after an fdatasync; a controller task grows the
//! number of workers while throughput grows. At the end: digests compared,
//! fsync, rename to `dest`, directory fsync, journal removed.
//!
//! This module holds the loop over attempts (`run`) and the attempt itself:
//! the probe (`probed`), then the ranged path (`ranged`, its workers in
//! `worker`) or, for a server that ignores Range or whose size is unknown,
//! one stream without resume (`stream`). The data types are in `spec`, the
//! digest checks in `checks`, what the parts share in `attempt`; none of
//! them imports this module.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use reqwest::Url;

use super::adaptive;
use super::attempt::{AttemptError, Stats};
use super::file::partial_paths;
use super::journal;
use super::probed::probe;
use super::ranged::{ranged, Ranged};
use super::retry::Budget;
use super::worker::{piece_len, transfer_window};
use super::{stream, Engine};
use crate::error::{redact_url, Error, Result};

pub use super::spec::{TransferOutcome, TransferSpec, TransferState};

const MAX_RESTARTS: u32 = 3;

/// Run a transfer to completion (or error). Cancel through `state.cancel`.
pub async fn run(
    engine: Arc<Engine>,
    spec: Arc<TransferSpec>,
    state: Arc<TransferState>,
) -> Result<TransferOutcome> {
    let started = Instant::now();
    let url = parse_url(&spec.url)?;
    let (ppath, jpath) = partial_paths(&spec.dest);
    let stats = Arc::new(Stats::default());
    let mut restarts = 0u32;
    // the one-stream path retries whole attempts (it cannot resume)
    let mut stream_budget = Budget::new(engine.cfg.max_retries);
    let mut allow_resume = spec.resume;
    loop {
        let r = attempt(&engine, &spec, &state, &url, &stats, allow_resume).await;
        match r {
            Ok(mut out) => {
                out.seconds = started.elapsed().as_secs_f64();
                out.retries = stats.retries.load(Ordering::Relaxed);
                out.fetched_bytes = stats.fetched.load(Ordering::Relaxed);
                // what the controller chose, never more than were used at once
                // (a small file ends before its workers all start)
                let peak = stats.peak.load(Ordering::Relaxed).max(1);
                out.connections = match stats.chosen.load(Ordering::Relaxed) {
                    0 => peak,
                    c => c.min(peak),
                };
                return Ok(out);
            }
            Err(AttemptError::Restart(kind, why)) => {
                let _ = std::fs::remove_file(&jpath);
                let _ = std::fs::remove_file(&ppath);
                if restarts >= MAX_RESTARTS {
                    return Err(Error::Transfer {
                        url: redact_url(url.as_str()),
                        kind,
                        message: format!("{why}; gave up after {restarts} restarts"),
                    });
                }
                restarts += 1;
                allow_resume = false;
                state.progress.set_done(0);
            }
            Err(AttemptError::StreamRetry {
                kind,
                msg,
                retry_after,
            }) => {
                let granted = stream_budget.next(kind, retry_after, &url, &msg)?;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                state.retries.push(granted, kind, &msg);
                state.progress.set_done(0);
                tokio::select! {
                    _ = tokio::time::sleep(granted.wait) => {}
                    _ = state.cancel.cancelled() => return Err(Error::Cancelled),
                }
            }
            Err(AttemptError::Fatal(e)) => {
                if matches!(e, Error::ChecksumMismatch { .. }) {
                    // wrong bytes must never be resumed from nor published
                    let _ = std::fs::remove_file(&jpath);
                    let _ = std::fs::remove_file(&ppath);
                }
                return Err(e);
            }
        }
    }
}

/// An absolute http(s) URL, or which field is wrong and how to fix it.
fn parse_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| {
        Error::InvalidInput(format!(
            "url: {e} ({}); pass an absolute http:// or https:// URL",
            redact_url(raw)
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::InvalidInput(format!(
            "url: scheme {:?} is not supported; pass an http:// or https:// URL",
            url.scheme()
        )));
    }
    Ok(url)
}

/// One attempt: probe, then the ranged path or one stream.
async fn attempt(
    engine: &Arc<Engine>,
    spec: &Arc<TransferSpec>,
    state: &Arc<TransferState>,
    url: &Url,
    stats: &Arc<Stats>,
    allow_resume: bool,
) -> std::result::Result<TransferOutcome, AttemptError> {
    let (_, jpath) = partial_paths(&spec.dest);
    let window_slabs = transfer_window(engine.budget_slabs);
    let start_conns = spec
        .connections
        .unwrap_or(adaptive::START)
        .min(engine.cfg.max_connections);
    // The probe asks for the first piece and keeps its body: no byte is
    // fetched twice. When resuming, the first piece is likely done already,
    // so only one byte is asked for.
    let journal = if allow_resume {
        journal::load(&jpath)
    } else {
        None
    };
    let first_len = if journal.is_some() {
        1
    } else {
        piece_len(window_slabs, spec.chunk_size, start_conns)
    };
    let probed = probe(engine, spec, state, url, stats, first_len).await?;
    if !probed.probe.ranged {
        return stream::stream(engine, spec, state, stats, probed).await;
    }
    let t = Ranged {
        engine,
        spec,
        state,
        stats,
        url,
        journal,
        window_slabs,
    };
    ranged(t, probed).await
}
