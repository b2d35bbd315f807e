//! Small one-shot requests of an engine: `fetch_range` (e.g. a remote
//! safetensors header) and `head` (probe), plus the retry loop every
//! request of the engine goes through.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::{StatusCode, Url};

use super::fetch::{self, Conditions, Failure};
use super::pace::Pace;
use super::progress::{Cancel, RetryLog};
use super::retry::Budget;
use super::sign::RequestHeaders;
use super::Engine;
use crate::error::{redact_url, Error, Result, TransferKind};

/// Run `f` until it succeeds, fails fatally, or its retries are spent
/// (`retry::Budget`); each retry is counted in `retries` and, when given,
/// recorded in `log` for the caller to show.
pub async fn with_retries<T, F, Fut>(
    max_retries: u32,
    cancel: Option<&Cancel>,
    retries: &AtomicU64,
    log: Option<&RetryLog>,
    url: &Url,
    mut f: F,
) -> std::result::Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let mut budget = Budget::new(max_retries);
    loop {
        if cancel.is_some_and(Cancel::is_cancelled) {
            return Err(Failure::Fatal(Error::Cancelled));
        }
        match f().await {
            Err(Failure::Retry {
                kind,
                msg,
                retry_after,
            }) => {
                let granted = budget
                    .next(kind, retry_after, url, &msg)
                    .map_err(Failure::Fatal)?;
                let wait = granted.wait;
                retries.fetch_add(1, Ordering::Relaxed);
                if let Some(log) = log {
                    log.push(granted, kind, &msg);
                }
                match cancel {
                    Some(c) => {
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = c.cancelled() => return Err(Failure::Fatal(Error::Cancelled)),
                        }
                    }
                    None => tokio::time::sleep(wait).await,
                }
            }
            other => return other,
        }
    }
}

/// The error to report for a failure that is not retried any more.
pub(crate) fn failure_to_error(f: Failure, url: &Url) -> Error {
    match f {
        Failure::Fatal(e) => e,
        Failure::Changed => Error::Transfer {
            url: redact_url(url.as_str()),
            kind: TransferKind::Changed,
            message: "the object changed during the request".into(),
        },
        Failure::Retry { kind, msg, .. } => Error::Transfer {
            url: redact_url(url.as_str()),
            kind,
            message: msg,
        },
    }
}

/// GET bytes `[start, start+length)` (fewer at the end of the object).
pub async fn fetch_range(
    engine: &Engine,
    url: &Url,
    headers: &RequestHeaders,
    start: u64,
    length: u64,
) -> Result<Vec<u8>> {
    if length == 0 {
        return Ok(Vec::new());
    }
    let _conn = engine.conns.acquire().await.map_err(|_| Error::Cancelled)?;
    let lim = engine.limits();
    let retries = AtomicU64::new(0);
    let end = start.saturating_add(length);
    with_retries(
        engine.cfg.max_retries,
        None,
        &retries,
        None,
        url,
        || async {
            let mut resp = fetch::get(
                engine,
                url,
                headers,
                Some((start, end)),
                &Conditions::default(),
                lim,
            )
            .await?;
            // a server ignoring Range sends the whole body: skip to `start`
            let mut skip = match resp.status() {
                StatusCode::PARTIAL_CONTENT => 0,
                StatusCode::OK => start,
                StatusCode::RANGE_NOT_SATISFIABLE => return Ok(Vec::new()),
                _ => return Err(fetch::status_failure(&resp)),
            };
            let mut out = Vec::with_capacity(length.min(64 << 20) as usize);
            let mut pace = Pace::new(lim);
            while let Some(chunk) = fetch::next_chunk(&mut resp, &mut pace).await? {
                let mut c = &chunk[..];
                let s = (skip as usize).min(c.len());
                c = &c[s..];
                skip -= s as u64;
                let room = (length as usize).saturating_sub(out.len());
                out.extend_from_slice(&c[..c.len().min(room)]);
                if out.len() as u64 >= length {
                    break;
                }
            }
            Ok(out)
        },
    )
    .await
    .map_err(|f| failure_to_error(f, url))
}

/// What `head` reports.
#[derive(Debug, Clone)]
pub struct HeadInfo {
    pub size: Option<u64>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub accept_ranges: bool,
    pub final_url: String,
}

/// Probe a URL (ranged GET of the first byte, see `fetch::probe`).
pub async fn head(engine: &Engine, url: &Url, headers: &RequestHeaders) -> Result<HeadInfo> {
    let _conn = engine.conns.acquire().await.map_err(|_| Error::Cancelled)?;
    let retries = AtomicU64::new(0);
    let cond = Conditions::default();
    let lim = engine.limits();
    let mut p = with_retries(engine.cfg.max_retries, None, &retries, None, url, || {
        fetch::probe(engine, url, headers, &cond, lim, 1)
    })
    .await
    .map_err(|f| failure_to_error(f, url))?;
    if let Some((_, resp)) = p.first.take() {
        fetch::drain(resp, lim).await;
    }
    // the whole body of a range-less server is not wanted here: dropping the
    // response closes that connection
    Ok(HeadInfo {
        size: p.size,
        etag: p.etag,
        last_modified: p.last_modified,
        accept_ranges: p.ranged,
        final_url: p.final_url.to_string(),
    })
}
