//! One URL into one destination file: the orchestration of a transfer.
//!
//! probe → (journal says what is done) → workers take pieces in file order,
//! each under a budget permit, fetch them with retries, `pwritev` them at
//! their offset and hand the buffer to the in-order hasher; a journal thread
//! records finished pieces after an fdatasync; a controller task grows the
//! number of workers while throughput grows. At the end: digests compared,
//! fsync, rename to `dest`, directory fsync, journal removed.
//!
//! A server that ignores Range (or whose size is unknown) is read as one
//! stream with the same write and hash path, without resume.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION};
use reqwest::{StatusCode, Url};
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;

use super::adaptive::{self, Controller};
use super::buffers::{slabs_for, Buffer, SLAB};
use super::fetch::{self, Failure};
use super::file::{partial_paths, sync_dir, PartialFile};
use super::hasher::{self, DigestHex, Item, Msg, Outcome, Wanted};
use super::journal::{self, JournalWriter, Record, Validator};
use super::plan::{Planner, RangeSet};
use super::progress::{Cancel, Progress};
use super::simple::{failure_to_error, with_retries};
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
    pub hash: bool,
    pub connections: Option<usize>,
    pub chunk_size: Option<u64>,
    pub direct_io: bool,
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
}

#[derive(Default)]
struct Stats {
    retries: AtomicU64,
    fetched: AtomicU64,
    active: AtomicUsize,
    peak: AtomicUsize,
}

enum AttemptError {
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

/// Same origin (scheme, host, port)? Credentials never cross origins.
fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn strip_credentials(h: &mut HeaderMap) {
    h.remove(AUTHORIZATION);
    h.remove(COOKIE);
    h.remove(PROXY_AUTHORIZATION);
}

fn size_mismatch(expected: u64, actual: u64) -> Error {
    Error::ChecksumMismatch {
        algorithm: "size".into(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    }
}

fn wanted(spec: &TransferSpec, size: Option<u64>) -> std::result::Result<Wanted, Error> {
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
    Ok(Wanted {
        sha256: true,
        md5: spec.md5.is_some(),
        git_sha1_size,
        xxh3: true,
    })
}

/// Compare digests with the expected values; returns what was verified.
fn verify(spec: &TransferSpec, d: &DigestHex, size: u64) -> Result<Vec<String>> {
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
    let checks = [
        ("sha256", &spec.sha256, &d.sha256),
        ("md5", &spec.md5, &d.md5),
        ("git-sha1", &spec.git_sha1, &d.git_sha1),
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

fn io_err(what: &str, p: &std::path::Path, e: std::io::Error) -> AttemptError {
    AttemptError::Fatal(Error::io(format!("{what} {}", p.display()), e))
}

async fn join_thread<T: Send + 'static>(h: JoinHandle<T>) -> Option<T> {
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
    let mut probe = {
        let _conn = engine.conns.acquire().await.map_err(|_| Error::Cancelled)?;
        with_retries(
            cfg.max_retries,
            Some(&state.cancel),
            &stats.retries,
            url,
            || {
                fetch::probe(
                    &engine.client,
                    url,
                    &spec.headers,
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
    let mut headers = spec.headers.clone();
    if !same_origin(url, &probe.final_url) {
        strip_credentials(&mut headers);
    }
    let first = probe.first.take();
    if !probe.ranged {
        return stream(engine, spec, state, stats, probe, &headers).await;
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

    let (htx, hrx) = mpsc::channel::<Msg>();
    let hasher_thread = if spec.hash {
        let h = hasher::spawn(wanted(spec, Some(size))?, partial.file.clone(), hrx)
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
    let (jtx, jrx) = mpsc::channel::<Record>();
    let journal_thread = spawn_journal(writer, partial.file.clone(), jrx)
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
        if_range: fetch::if_range_value(probe.etag.as_deref(), probe.last_modified.as_deref()),
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
                buf: Buffer::new(engine.pool.clone(), end as usize, vec![w, b]),
            })
        }
    };

    let mut set: JoinSet<std::result::Result<(), AttemptError>> = JoinSet::new();
    let mut spawned = 0usize;
    let mut spawn_upto = |set: &mut JoinSet<_>, spawned: &mut usize, n: usize| {
        while *spawned < n {
            let w = Worker {
                engine: engine.clone(),
                shared: shared.clone(),
                spec: spec.clone(),
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
        ..Default::default()
    })
}

struct Shared {
    planner: Mutex<Planner>,
    /// per-transfer share of the engine budget (see `transfer_window`)
    window: Arc<Semaphore>,
    window_slabs: usize,
    target: AtomicUsize,
    if_range: Option<HeaderValue>,
    url: Url,
    headers: HeaderMap,
    fixed_chunk: Option<u64>,
}

/// Slabs one transfer may hold: 3/4 of the engine budget (so one transfer
/// never starves the next one of memory), at most 64 MiB (enough to keep a
/// 2-core machine busy; more only raises the peak RSS).
fn transfer_window(budget_slabs: usize) -> usize {
    (budget_slabs * 3 / 4).clamp(1, (64 << 20) / SLAB)
}

/// Piece size: what the user chose, else sized so that all connections
/// fit twice in the window (buffers waiting for the hasher included).
fn piece_len(window_slabs: usize, fixed: Option<u64>, target: usize) -> u64 {
    let window = (window_slabs * SLAB) as u64;
    match fixed {
        Some(c) => c.clamp(1, window),
        None => {
            let t = target.max(1) as u64;
            let c = (window / (2 * t)).clamp(SLAB as u64, 8 * SLAB as u64);
            c / SLAB as u64 * SLAB as u64
        }
    }
}

impl Shared {
    fn chunk_len(&self) -> u64 {
        piece_len(
            self.window_slabs,
            self.fixed_chunk,
            self.target.load(Ordering::Relaxed),
        )
    }
}

struct Worker {
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    spec: Arc<TransferSpec>,
    state: Arc<TransferState>,
    partial: Arc<PartialFile>,
    htx: Option<Sender<Msg>>,
    jtx: Sender<Record>,
    stats: Arc<Stats>,
}

/// The first piece, whose response is already open (the probe's).
struct FirstPiece {
    end: u64,
    resp: reqwest::Response,
    buf: Buffer,
}

impl Worker {
    /// Take pieces in file order until none is left.
    async fn run(self, first: Option<FirstPiece>) -> std::result::Result<(), AttemptError> {
        if let Some(f) = first {
            let _conn = self
                .engine
                .conns
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Cancelled)?;
            self.process(0, f.end, f.buf, Some(f.resp)).await?;
        }
        loop {
            let _conn = self
                .engine
                .conns
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Cancelled)?;
            // Pieces are cut and their memory reserved under one lock, so
            // reservations follow file order: the piece the hasher waits
            // for always holds its memory and the budget cannot deadlock.
            let (start, end, buf) = {
                let mut p = self.shared.planner.lock().await;
                let max = self.shared.chunk_len();
                let Some(len) = p.peek_len(max) else {
                    return Ok(());
                };
                let n = slabs_for(len) as u32;
                let w = self.shared.window.clone().acquire_many_owned(n).await;
                let b = self.engine.budget.clone().acquire_many_owned(n).await;
                let (Ok(w), Ok(b)) = (w, b) else {
                    return Err(Error::Cancelled.into());
                };
                let Some((s, e)) = p.next_piece(max) else {
                    return Ok(());
                };
                (
                    s,
                    e,
                    Buffer::new(self.engine.pool.clone(), len as usize, vec![w, b]),
                )
            };
            self.process(start, end, buf, None).await?;
        }
    }

    /// Fetch a piece, write it at its offset, pass it to journal and hasher.
    async fn process(
        &self,
        start: u64,
        end: u64,
        mut buf: Buffer,
        open: Option<reqwest::Response>,
    ) -> std::result::Result<(), AttemptError> {
        {
            let active = self.stats.active.fetch_add(1, Ordering::Relaxed) + 1;
            self.stats.peak.fetch_max(active, Ordering::Relaxed);
            let r = self.fetch(start, end, &mut buf, open).await;
            self.stats.active.fetch_sub(1, Ordering::Relaxed);
            r?;
            let len = end - start;
            let parts = buf.parts(len as usize);
            let crc = self
                .spec
                .hash
                .then(|| parts.iter().fold(0u32, |c, p| crc32c::crc32c_append(c, p)));
            self.partial
                .write_parts(start, &parts)
                .map_err(|e| io_err("write", &self.partial.path, e))?;
            drop(parts);
            self.stats.fetched.fetch_add(len, Ordering::Relaxed);
            let _ = self.jtx.send(Record {
                offset: start,
                len,
                crc,
            });
            if let Some(h) = &self.htx {
                if h.send(Msg {
                    offset: start,
                    len,
                    item: Item::Mem(buf),
                })
                .is_err()
                {
                    // the hasher stopped early: it found damaged resume data
                    return Err(AttemptError::Restart(
                        "resumed data failed its crc32c check",
                    ));
                }
            }
        }
        Ok(())
    }

    /// Fetch one piece with retries, continuing after the bytes already received.
    async fn fetch(
        &self,
        start: u64,
        end: u64,
        buf: &mut Buffer,
        mut open: Option<reqwest::Response>,
    ) -> std::result::Result<(), AttemptError> {
        let cfg = &self.engine.cfg;
        let mut got = 0usize;
        let mut attempt = 0u32;
        loop {
            let r = if let Some(resp) = open.take() {
                fetch::read_piece(
                    resp,
                    start,
                    end,
                    buf,
                    &mut got,
                    cfg.stall_timeout,
                    &self.state.progress,
                )
                .await
            } else {
                fetch::fetch_piece(
                    &self.engine.client,
                    &self.shared.url,
                    &self.shared.headers,
                    self.shared.if_range.as_ref(),
                    start,
                    end,
                    buf,
                    &mut got,
                    cfg.stall_timeout,
                    &self.state.progress,
                )
                .await
            };
            match r {
                Ok(()) => return Ok(()),
                Err(Failure::Changed) => {
                    return Err(AttemptError::Restart("the object changed on the server"))
                }
                Err(Failure::Fatal(e)) => return Err(e.into()),
                Err(Failure::Retry { msg, retry_after }) => {
                    if attempt >= cfg.max_retries {
                        return Err(Error::Transfer {
                            url: redact_url(self.shared.url.as_str()),
                            message: format!(
                                "bytes {start}-{}: {msg} (gave up after {attempt} retries)",
                                end - 1
                            ),
                        }
                        .into());
                    }
                    let wait = retry::delay(attempt, retry_after);
                    attempt += 1;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// Journal thread: every second, make the data written so far durable
/// (fdatasync), then append the records of the pieces it covers.
fn spawn_journal(
    mut w: JournalWriter,
    file: Arc<File>,
    rx: Receiver<Record>,
) -> std::io::Result<JoinHandle<std::io::Result<()>>> {
    std::thread::Builder::new()
        .name("ome-journal".into())
        .spawn(move || {
            let mut pending = Vec::new();
            let mut last = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_millis(250)) {
                    Ok(r) => pending.push(r),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if !pending.is_empty() && last.elapsed() >= Duration::from_secs(1) {
                    file.sync_data()?;
                    w.append(&pending)?;
                    pending.clear();
                    last = Instant::now();
                }
            }
            if !pending.is_empty() {
                file.sync_data()?;
                w.append(&pending)?;
            }
            Ok(())
        })
}

/// One stream, no Range: the server ignored it or the size is unknown.
async fn stream(
    engine: &Arc<Engine>,
    spec: &Arc<TransferSpec>,
    state: &Arc<TransferState>,
    stats: &Arc<Stats>,
    probe: fetch::Probe,
    headers: &HeaderMap,
) -> std::result::Result<TransferOutcome, AttemptError> {
    let cfg = &engine.cfg;
    let url = probe.final_url.clone();
    let stall = cfg.stall_timeout;
    let _conn = engine.conns.acquire().await.map_err(|_| Error::Cancelled)?;
    let as_retry = |f: Failure| match f {
        Failure::Retry { msg, retry_after } => AttemptError::StreamRetry(msg, retry_after),
        Failure::Changed => AttemptError::Restart("the object changed on the server"),
        Failure::Fatal(e) => AttemptError::Fatal(e),
    };
    let mut resp = match probe.whole {
        Some(r) => r,
        None => {
            let r = fetch::get(&engine.client, &url, headers, None, None, stall)
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
            hasher::spawn(wanted(spec, size_hint)?, partial.file.clone(), hrx)
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
        ..Default::default()
    })
}
