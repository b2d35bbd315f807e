//! One URL into one destination file: the orchestration of a transfer.
//!
//! probe → (journal says what is done) → workers take pieces in file order,
//! each under a budget permit, fetch them with retries, `pwritev` them at
//! their offset and hand the buffer to the in-order hasher; a journal thread
//! records finished pieces after an fdatasync; a controller task grows the
//! number of workers while throughput grows. At the end: digests compared,
//! fsync, rename to `dest`, directory fsync, journal removed.
//!
//! The workers live in `worker`; a server that ignores Range (or whose size
//! is unknown) is read as one stream by `stream`, without resume.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::Url;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use super::adaptive::{self, Controller};
use super::buffers::{slabs_for, Buffer, SLAB};
use super::fetch::{self, Conditions};
use super::file::{partial_paths, sync_dir, PartialFile};
use super::hasher::{self, DigestHex, Item, Msg, Outcome, Wanted};
use super::journal::{self, JournalWriter, Record, Validator};
use super::plan::{Planner, RangeSet};
use super::progress::{Cancel, Progress};
use super::sign::{same_origin, RequestHeaders, Signer};
use super::simple::{failure_to_error, with_retries};
use super::worker::{piece_len, transfer_window, FirstPiece, Shared, Worker};
use super::{retry, Engine};
use crate::error::{redact_url, Error, Result};

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
    /// (part size, lowercase "hex-N"): S3/OCI multipart upload digest
    pub md5_multipart: Option<(u64, String)>,
    /// the ETag the listing gave; another one at fetch time = changed upstream
    pub expected_etag: Option<String>,
    /// fresh headers before every request (merged over `headers`)
    pub sign: Option<Signer>,
    pub hash: bool,
    pub connections: Option<usize>,
    pub chunk_size: Option<u64>,
    /// `None`: automatic (see `file::wants_direct`)
    pub direct_io: Option<bool>,
    pub resume: bool,
}

/// Counters shared with the caller while the transfer runs.
#[derive(Debug, Default)]
pub struct TransferState {
    pub progress: Progress,
    pub cancel: Cancel,
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
    /// whether the bulk of the file was written with O_DIRECT
    pub direct_io: bool,
}

#[derive(Default)]
pub(super) struct Stats {
    pub(super) retries: AtomicU64,
    pub(super) fetched: AtomicU64,
    pub(super) active: AtomicUsize,
    pub(super) peak: AtomicUsize,
}

pub(super) enum AttemptError {
    /// Start over from byte 0 (object changed, damaged resume data).
    Restart(&'static str),
    /// One-stream download failed in a retryable way: try it again whole.
    StreamRetry(String, Option<Duration>),
    Fatal(Error),
}

impl From<Error> for AttemptError {
    fn from(e: Error) -> Self {
        AttemptError::Fatal(e)
    }
}

const MAX_RESTARTS: u32 = 3;

/// Run a transfer to completion (or error). Cancel through `state.cancel`.
pub async fn run(
    engine: Arc<Engine>,
    spec: Arc<TransferSpec>,
    state: Arc<TransferState>,
) -> Result<TransferOutcome> {
    let started = Instant::now();
    let url = Url::parse(&spec.url).map_err(|e| {
        Error::InvalidInput(format!(
            "url: {e} ({}); pass an absolute http:// or https:// URL",
            redact_url(&spec.url)
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::InvalidInput(format!(
            "url: scheme {:?} is not supported; pass an http:// or https:// URL",
            url.scheme()
        )));
    }
    let (ppath, jpath) = partial_paths(&spec.dest);
    let stats = Arc::new(Stats::default());
    let (mut restarts, mut stream_failures) = (0u32, 0u32);
    let mut allow_resume = spec.resume;
    loop {
        let r = attempt(&engine, &spec, &state, &url, &stats, allow_resume).await;
        match r {
            Ok(mut out) => {
                out.seconds = started.elapsed().as_secs_f64();
                out.retries = stats.retries.load(Ordering::Relaxed);
                out.fetched_bytes = stats.fetched.load(Ordering::Relaxed);
                out.connections = stats.peak.load(Ordering::Relaxed).max(1);
                return Ok(out);
            }
            Err(AttemptError::Restart(why)) => {
                let _ = std::fs::remove_file(&jpath);
                let _ = std::fs::remove_file(&ppath);
                if restarts >= MAX_RESTARTS {
                    return Err(Error::Transfer {
                        url: redact_url(url.as_str()),
                        message: format!("{why}; gave up after {restarts} restarts"),
                    });
                }
                restarts += 1;
                allow_resume = false;
                state.progress.set_done(0);
            }
            Err(AttemptError::StreamRetry(msg, retry_after)) => {
                if stream_failures >= engine.cfg.max_retries {
                    return Err(Error::Transfer {
                        url: redact_url(url.as_str()),
                        message: format!("{msg} (gave up after {stream_failures} retries)"),
                    });
                }
                let wait = retry::delay(stream_failures, retry_after);
                stream_failures += 1;
                stats.retries.fetch_add(1, Ordering::Relaxed);
                state.progress.set_done(0);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
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

impl TransferSpec {
    pub fn request_headers(&self) -> RequestHeaders {
        RequestHeaders::new(self.headers.clone(), self.sign.clone())
    }
}

pub(super) fn size_mismatch(expected: u64, actual: u64) -> Error {
    Error::ChecksumMismatch {
        algorithm: "size".into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

pub(super) fn wanted(spec: &TransferSpec, size: Option<u64>) -> std::result::Result<Wanted, Error> {
    if !spec.hash {
        return Ok(Wanted::default());
    }
    let git_sha1_size = match &spec.git_sha1 {
        None => None,
        Some(_) => Some(size.or(spec.expected_size).ok_or_else(|| {
            Error::InvalidInput(
                "git_sha1: the server sends no size and the git blob digest needs it; \
                 pass expected_size as well"
                    .into(),
            )
        })?),
    };
    // sha256 is the digest of record only when nothing else proves the bytes: a file
    // the source gives another digest for (md5, multipart md5, crc32c, git blob sha1)
    // is verified by that, and a sha256 on top would cost ~0.7 CPU-s per GB
    let proven_otherwise = spec.md5.is_some()
        || spec.md5_multipart.is_some()
        || spec.crc32c.is_some()
        || spec.git_sha1.is_some();
    Ok(Wanted {
        sha256: spec.sha256.is_some() || !proven_otherwise,
        md5: spec.md5.is_some(),
        git_sha1_size,
        xxh3: true,
        md5_part_size: spec.md5_multipart.as_ref().map(|(p, _)| *p),
    })
}

/// Compare digests with the expected values; returns what was verified.
pub(super) fn verify(spec: &TransferSpec, d: &DigestHex, size: u64) -> Result<Vec<String>> {
    let mut verified = Vec::new();
    if let Some(exp) = spec.expected_size {
        if exp != size {
            return Err(size_mismatch(exp, size));
        }
        verified.push("size".to_string());
    }
    if !spec.hash {
        return Ok(verified);
    }
    let multipart = spec.md5_multipart.as_ref().map(|(_, d)| d.clone());
    let checks = [
        ("sha256", &spec.sha256, &d.sha256),
        ("md5", &spec.md5, &d.md5),
        ("git-sha1", &spec.git_sha1, &d.git_sha1),
        ("crc32c", &spec.crc32c, &d.crc32c),
        ("md5-multipart", &multipart, &d.md5_multipart),
    ];
    for (alg, expected, actual) in checks {
        if let Some(exp) = expected {
            let act = actual.clone().unwrap_or_default();
            if &act != exp {
                return Err(Error::ChecksumMismatch {
                    algorithm: alg.into(),
                    expected: exp.clone(),
                    actual: act,
                });
            }
            verified.push(alg.to_string());
        }
    }
    Ok(verified)
}

pub(super) fn io_err(what: &str, p: &std::path::Path, e: std::io::Error) -> AttemptError {
    AttemptError::Fatal(Error::io(format!("{what} {}", p.display()), e))
}

pub(super) async fn join_thread<T: Send + 'static>(h: JoinHandle<T>) -> Option<T> {
    tokio::task::spawn_blocking(move || h.join().ok())
        .await
        .ok()
        .flatten()
}

async fn attempt(
    engine: &Arc<Engine>,
    spec: &Arc<TransferSpec>,
    state: &Arc<TransferState>,
    url: &Url,
    stats: &Arc<Stats>,
    allow_resume: bool,
) -> std::result::Result<TransferOutcome, AttemptError> {
    let cfg = &engine.cfg;
    let (ppath, jpath) = partial_paths(&spec.dest);
    let window_slabs = transfer_window(engine.budget_slabs);
    let start_conns = spec
        .connections
        .unwrap_or(adaptive::START)
        .min(cfg.max_connections);
    // The probe asks for the first piece and keeps its body: no byte is
    // fetched twice. When resuming, the first piece is likely done already,
    // so only one byte is asked for.
    let journal_found = if allow_resume {
        journal::load(&jpath)
    } else {
        None
    };
    let first_len = if journal_found.is_some() {
        1
    } else {
        piece_len(window_slabs, spec.chunk_size, start_conns)
    };
    // The probe's connection permit stays with its open response: it goes
    // to the first piece (or the one stream) that reads the body.
    let mut probe_conn = Some(
        engine
            .conns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?,
    );
    let request_headers = spec.request_headers();
    // a probe answered with another ETag than the listed one (or 412) has
    // already failed in `fetch::get`
    let probe_cond = Conditions::for_probe(spec.expected_etag.as_deref());
    let mut probe = {
        with_retries(
            cfg.max_retries,
            Some(&state.cancel),
            &stats.retries,
            url,
            || {
                fetch::probe(
                    engine,
                    url,
                    &request_headers,
                    &probe_cond,
                    cfg.stall_timeout,
                    first_len,
                )
            },
        )
        .await
        .map_err(|f| failure_to_error(f, url))?
    };
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
    let first = probe.first.take();
    if !probe.ranged {
        return super::stream::stream(
            engine, spec, state, stats, probe, &headers, &cond, probe_conn,
        )
        .await;
    }
    let size = probe.size.unwrap_or(0);
    let validator = Validator {
        size,
        etag: probe.etag.clone(),
        last_modified: probe.last_modified.clone(),
    };

    // Resume when the journal describes this very object and the partial
    // file is still there with the right length.
    let mut records: Vec<Record> = Vec::new();
    let mut resumed = None;
    if allow_resume {
        if let Some((jv, recs)) = journal_found {
            if jv.matches(&validator) {
                if let Some(pf) = PartialFile::reopen(&ppath, size, spec.direct_io) {
                    records = recs;
                    resumed = Some(pf);
                }
            }
        }
    }
    let (partial, writer) = match resumed {
        Some(pf) => {
            let w = JournalWriter::append_to(&jpath).map_err(|e| io_err("open", &jpath, e))?;
            (pf, w)
        }
        None => {
            records.clear();
            let pf = PartialFile::create(&ppath, Some(size), spec.direct_io)?;
            let w = JournalWriter::create(&jpath, &validator)
                .map_err(|e| io_err("create", &jpath, e))?;
            (pf, w)
        }
    };
    let partial = Arc::new(partial);
    let mut done = RangeSet::new();
    for r in &records {
        done.insert(r.offset, r.offset + r.len);
    }
    let resumed_bytes = done.total();
    state.progress.set_done(resumed_bytes);

    let (jtx, jrx) = mpsc::channel::<Record>();
    let (htx, hrx) = mpsc::channel::<Msg>();
    let hasher_thread = if spec.hash {
        let h = hasher::spawn(
            wanted(spec, Some(size))?,
            partial.file.clone(),
            hrx,
            Some(jtx.clone()),
        )
        .map_err(|e| Error::io("start the hasher thread", e))?;
        for r in &records {
            let _ = htx.send(Msg {
                offset: r.offset,
                len: r.len,
                item: Item::File { crc: r.crc },
            });
        }
        Some(h)
    } else {
        drop(hrx);
        None
    };
    let journal_thread = journal::spawn_writer(writer, partial.file.clone(), jrx)
        .map_err(|e| Error::io("start the journal thread", e))?;

    let planner = Planner::new(done.missing(size), SLAB as u64);
    // The probe's open response becomes the first piece when that piece is
    // still missing; its memory is reserved before any worker starts, so it
    // is first in line as file order requires.
    let mut first_piece = None;
    if let Some((end, resp)) = first {
        if done.total() == 0 && end <= size && planner.peek_len(end) == Some(end) {
            first_piece = Some((end, resp));
        } else {
            fetch::drain(resp, cfg.stall_timeout).await;
        }
    }
    let shared = Arc::new(Shared {
        planner: Mutex::new(planner),
        window: Arc::new(Semaphore::new(window_slabs)),
        window_slabs,
        target: AtomicUsize::new(1),
        cond,
        url: probe.final_url.clone(),
        headers,
        fixed_chunk: spec.chunk_size,
    });
    // Adaptive growth stops where each connection would still get two
    // slabs of the window: more connections would only wait for memory
    // (and cost a socket and a read buffer each).
    let adaptive_cap = cfg.max_connections.min((window_slabs / 2).max(1));
    let mut ctrl = match spec.connections {
        Some(c) => Controller::new(c, cfg.max_connections, true),
        None => Controller::new(adaptive::START, adaptive_cap, false),
    };
    shared.target.store(ctrl.target(), Ordering::Relaxed);

    let mut first_job = match first_piece {
        None => None,
        Some((end, resp)) => {
            let mut p = shared.planner.lock().await;
            let n = slabs_for(end) as u32;
            let w = shared.window.clone().acquire_many_owned(n).await;
            let b = engine.budget.clone().acquire_many_owned(n).await;
            let (Ok(w), Ok(b)) = (w, b) else {
                return Err(Error::Cancelled.into());
            };
            p.next_piece(end);
            Some(FirstPiece {
                end,
                resp,
                conn: probe_conn.take(),
                buf: Buffer::new(engine.pool.clone(), end as usize, vec![w, b]),
            })
        }
    };

    drop(probe_conn);

    let mut set: JoinSet<std::result::Result<(), AttemptError>> = JoinSet::new();
    let mut spawned = 0usize;
    let mut spawn_upto = |set: &mut JoinSet<_>, spawned: &mut usize, n: usize| {
        while *spawned < n {
            let w = Worker {
                engine: engine.clone(),
                shared: shared.clone(),
                state: state.clone(),
                partial: partial.clone(),
                htx: hasher_thread.is_some().then(|| htx.clone()),
                jtx: jtx.clone(),
                stats: stats.clone(),
            };
            set.spawn(w.run(first_job.take()));
            *spawned += 1;
        }
    };
    let has_work = !done.missing(size).is_empty();
    if has_work {
        spawn_upto(&mut set, &mut spawned, ctrl.target());
    }
    let mut tick = tokio::time::interval(adaptive::TICK);
    tick.tick().await;
    let mut last = (Instant::now(), state.progress.done());
    let result: std::result::Result<(), AttemptError> = loop {
        if set.is_empty() {
            break Ok(());
        }
        tokio::select! {
            j = set.join_next() => match j {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => break Err(e),
                Some(Err(_)) => break Err(Error::Transfer {
                    url: redact_url(url.as_str()),
                    message: "a download worker stopped unexpectedly".into(),
                }.into()),
            },
            _ = tick.tick() => {
                let now = Instant::now();
                state.progress.sample(now);
                let d = state.progress.done();
                let dt = now.duration_since(last.0).as_secs_f64();
                let rate = if dt > 0.0 { d.saturating_sub(last.1) as f64 / dt } else { 0.0 };
                last = (now, d);
                let t = ctrl.on_tick(rate);
                shared.target.store(t, Ordering::Relaxed);
                let more = shared.planner.try_lock().map(|p| !p.is_empty()).unwrap_or(true);
                if more {
                    spawn_upto(&mut set, &mut spawned, t);
                }
            }
            _ = state.cancel.cancelled() => break Err(Error::Cancelled.into()),
        }
    };
    // stop every worker (on error) and wait until they are gone, so their
    // channel ends are dropped and the journal thread can finish
    set.shutdown().await;
    drop(jtx);
    drop(htx);
    let journal_res = join_thread(journal_thread).await;
    result?;
    match journal_res {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(io_err("write", &jpath, e)),
        None => return Err(Error::io("journal thread", std::io::Error::other("panicked")).into()),
    }
    let digests = match hasher_thread {
        None => DigestHex::default(),
        Some(h) => match join_thread(h).await {
            Some(Outcome::Done { digests, .. }) => digests,
            Some(Outcome::Corrupt { .. }) => {
                return Err(AttemptError::Restart(
                    "resumed data failed its crc32c check",
                ))
            }
            Some(Outcome::Io(e)) => return Err(io_err("read", &ppath, e)),
            None => {
                return Err(Error::io("hasher thread", std::io::Error::other("panicked")).into())
            }
        },
    };
    let verified = verify(spec, &digests, size)?;
    partial.publish(&spec.dest)?;
    let _ = std::fs::remove_file(&jpath);
    sync_dir(&spec.dest);
    Ok(TransferOutcome {
        size,
        resumed_bytes,
        etag: probe.etag,
        last_modified: probe.last_modified,
        digests,
        verified,
        ranged: true,
        direct_io: partial.is_direct(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_names_the_new_algorithms() {
        let d = DigestHex {
            crc32c: Some("0000abcd".into()),
            md5_multipart: Some("00112233445566778899aabbccddeeff-3".into()),
            ..Default::default()
        };
        let mut spec = TransferSpec {
            hash: true,
            crc32c: Some("0000abcd".into()),
            md5_multipart: Some((8, "00112233445566778899aabbccddeeff-3".into())),
            ..Default::default()
        };
        assert_eq!(verify(&spec, &d, 20).unwrap(), ["crc32c", "md5-multipart"]);
        spec.md5_multipart = Some((8, "00112233445566778899aabbccddeeff-4".into()));
        match verify(&spec, &d, 20) {
            Err(Error::ChecksumMismatch { algorithm, .. }) => {
                assert_eq!(algorithm, "md5-multipart")
            }
            r => panic!("{r:?}"),
        }
        spec.crc32c = Some("ffffffff".into());
        match verify(&spec, &d, 20) {
            Err(Error::ChecksumMismatch {
                algorithm, actual, ..
            }) => {
                assert_eq!(
                    (algorithm.as_str(), actual.as_str()),
                    ("crc32c", "0000abcd")
                )
            }
            r => panic!("{r:?}"),
        }
        // hash=False: nothing is compared
        spec.hash = false;
        assert!(verify(&spec, &d, 20).unwrap().is_empty());
    }
}
