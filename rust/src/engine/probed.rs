//! The first step of an attempt: the probe. One ranged GET (retried) gives
//! the object's size and validators, the headers and preconditions of every
//! later request, and an open response the next step reads its first bytes
//! from (`ranged`) or streams whole (`stream`).

use std::sync::Arc;

use reqwest::Url;
use tokio::sync::OwnedSemaphorePermit;

use super::attempt::{AttemptError, Stats};
use super::checks::size_mismatch;
use super::fetch::{self, Conditions, Probe};
use super::sign::{same_origin, RequestHeaders};
use super::simple::{failure_to_error, with_retries};
use super::spec::{TransferSpec, TransferState};
use super::Engine;
use crate::error::Error;

/// What the probe gives the rest of the attempt.
pub(super) struct Probed {
    pub(super) probe: Probe,
    /// for the final URL: without credentials once a redirect left the origin
    pub(super) headers: RequestHeaders,
    pub(super) cond: Conditions,
    /// The probe's connection permit stays with its open response: it goes
    /// to the first piece (or the one stream) that reads the body.
    pub(super) conn: Option<OwnedSemaphorePermit>,
}

/// Probe `url` for `first_len` bytes (the first piece, or 1 byte when a
/// journal suggests the first piece is done already).
pub(super) async fn probe(
    engine: &Arc<Engine>,
    spec: &TransferSpec,
    state: &TransferState,
    url: &Url,
    stats: &Stats,
    first_len: u64,
) -> Result<Probed, AttemptError> {
    let cfg = &engine.cfg;
    let conn = engine
        .conns
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| Error::Cancelled)?;
    let request_headers = spec.request_headers();
    // a probe answered with another ETag than the listed one (or 412) has
    // already failed in `fetch::get`
    let probe_cond = Conditions::for_probe(spec.expected_etag.as_deref());
    let lim = engine.limits();
    let probe = with_retries(
        cfg.max_retries,
        Some(&state.cancel),
        &stats.retries,
        Some(&state.retries),
        url,
        || fetch::probe(engine, url, &request_headers, &probe_cond, lim, first_len),
    )
    .await
    .map_err(|f| failure_to_error(f, url))?;
    state.progress.set_total(probe.size);
    if let (Some(exp), Some(size)) = (spec.expected_size, probe.size) {
        if exp != size {
            return Err(size_mismatch(exp, size).into());
        }
    }
    let headers = if same_origin(url, &probe.final_url) {
        request_headers
    } else {
        request_headers.for_other_origin()
    };
    let cond = probe_cond.after_probe(probe.etag.as_deref(), probe.last_modified.as_deref());
    Ok(Probed {
        probe,
        headers,
        cond,
        conn: Some(conn),
    })
}
