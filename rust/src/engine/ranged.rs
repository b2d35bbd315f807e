//! The ranged path of an attempt, after the probe: the partial file (resumed
//! when its journal describes this very object), the journal and hasher
//! threads, workers taking pieces in file order while a controller grows
//! their number, then digests compared and the file published.
//!
//! Each step is one function below, called in this order by `ranged`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use reqwest::{Response, Url};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use super::adaptive::{self, Controller};
use super::attempt::{io_err, join_thread, AttemptError, Stats, CORRUPT};
use super::buffers::{slabs_for, Buffer, SLAB};
use super::checks::{verify, wanted};
use super::fetch;
use super::file::{partial_paths, sync_dir, PartialFile};
use super::hasher::{self, DigestHex, Item, Msg, Outcome};
use super::journal::{self, JournalWriter, Record, Validator};
use super::plan::{Planner, RangeSet};
use super::probed::Probed;
use super::spec::{TransferOutcome, TransferSpec, TransferState};
use super::worker::{FirstPiece, Shared, Worker};
use super::Engine;
use crate::error::{redact_url, Error, TransferKind};

/// The attempt's context, as `transfer::attempt` hands it over.
pub(super) struct Ranged<'a> {
    pub(super) engine: &'a Arc<Engine>,
    pub(super) spec: &'a Arc<TransferSpec>,
    pub(super) state: &'a Arc<TransferState>,
    pub(super) stats: &'a Arc<Stats>,
    pub(super) url: &'a Url,
    /// the journal found before the probe (`None` when not resuming)
    pub(super) journal: Option<(Validator, Vec<Record>)>,
    pub(super) window_slabs: usize,
}

/// The partial file and what is already in it.
struct Opened {
    partial: Arc<PartialFile>,
    writer: JournalWriter,
    records: Vec<Record>,
    done: RangeSet,
}

/// The journal and hasher threads and the ends their inputs go into.
struct Pipes {
    jtx: Sender<Record>,
    /// `None` when not hashing
    htx: Option<Sender<Msg>>,
    hasher: Option<JoinHandle<Outcome>>,
    journal: JoinHandle<std::io::Result<()>>,
}

/// The running workers and what a new one is given.
struct Crew {
    set: JoinSet<Result<(), AttemptError>>,
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    state: Arc<TransferState>,
    partial: Arc<PartialFile>,
    htx: Option<Sender<Msg>>,
    jtx: Sender<Record>,
    stats: Arc<Stats>,
    /// the probe's open response, for the first worker
    first: Option<FirstPiece>,
}

/// Fetch the object into its partial file with many workers and publish it.
pub(super) async fn ranged(
    t: Ranged<'_>,
    mut probed: Probed,
) -> Result<TransferOutcome, AttemptError> {
    let probe = &mut probed.probe;
    let first = probe.first.take();
    let size = probe.size.unwrap_or(0);
    let validator = Validator {
        size,
        etag: probe.etag.clone(),
        last_modified: probe.last_modified.clone(),
    };
    let opened = open_partial(t.spec, t.journal, &validator, size)?;
    let resumed_bytes = opened.done.total();
    t.state.progress.set_done(resumed_bytes);
    let Opened {
        partial,
        writer,
        records,
        done,
    } = opened;
    let pipes = start_threads(t.spec, &partial, &records, writer, size)?;
    let planner = Planner::new(done.missing(size), SLAB as u64);
    let first = keep_first(first, &done, &planner, size, t.engine).await;
    let shared = Arc::new(Shared {
        planner: Mutex::new(planner),
        window: Arc::new(Semaphore::new(t.window_slabs)),
        window_slabs: t.window_slabs,
        target: AtomicUsize::new(1),
        running: AtomicUsize::new(0),
        cond: probed.cond,
        url: probe.final_url.clone(),
        headers: probed.headers,
        fixed_chunk: t.spec.chunk_size,
    });
    let ctrl = controller(t.engine, t.spec, t.window_slabs);
    shared.target.store(ctrl.target(), Ordering::Relaxed);
    let first = reserve_first(t.engine, &shared, first, probed.conn.take()).await?;
    let crew = Crew {
        set: JoinSet::new(),
        engine: t.engine.clone(),
        shared,
        state: t.state.clone(),
        partial: partial.clone(),
        htx: pipes.htx.clone(),
        jtx: pipes.jtx.clone(),
        stats: t.stats.clone(),
        first,
    };
    let result = drive(crew, ctrl, !done.missing(size).is_empty(), t.url).await;
    let digests = settle(pipes, result, t.spec).await?;
    let mut out = publish(t.spec, &partial, &digests, size)?;
    out.resumed_bytes = resumed_bytes;
    out.etag = probed.probe.etag;
    out.last_modified = probed.probe.last_modified;
    out.digests = digests;
    Ok(out)
}

/// Resume when the journal describes this very object and the partial file
/// is still there with the right length; else start a new one.
fn open_partial(
    spec: &TransferSpec,
    journal: Option<(Validator, Vec<Record>)>,
    validator: &Validator,
    size: u64,
) -> Result<Opened, AttemptError> {
    let (ppath, jpath) = partial_paths(&spec.dest);
    let resumed = journal.and_then(|(jv, recs)| {
        if !jv.matches(validator) {
            return None;
        }
        PartialFile::reopen(&ppath, size, spec.direct_io).map(|pf| (pf, recs))
    });
    let (partial, writer, records) = match resumed {
        Some((pf, recs)) => {
            let w = JournalWriter::append_to(&jpath).map_err(|e| io_err("open", &jpath, e))?;
            (pf, w, recs)
        }
        None => {
            let pf = PartialFile::create(&ppath, Some(size), spec.direct_io)?;
            let w = JournalWriter::create(&jpath, validator)
                .map_err(|e| io_err("create", &jpath, e))?;
            (pf, w, Vec::new())
        }
    };
    let mut done = RangeSet::new();
    for r in &records {
        done.insert(r.offset, r.offset + r.len);
    }
    Ok(Opened {
        partial: Arc::new(partial),
        writer,
        records,
        done,
    })
}

/// Start the hasher (fed the resumed ranges first, to be read back from
/// the file) and the journal thread.
fn start_threads(
    spec: &TransferSpec,
    partial: &PartialFile,
    records: &[Record],
    writer: JournalWriter,
    size: u64,
) -> Result<Pipes, AttemptError> {
    let file = &partial.file;
    let (jtx, jrx) = mpsc::channel::<Record>();
    let (htx, hrx) = mpsc::channel::<Msg>();
    let hasher = if spec.hash {
        let h = hasher::spawn(
            wanted(spec, Some(size))?,
            file.clone(),
            hrx,
            Some(jtx.clone()),
        )
        .map_err(|e| Error::io("start the hasher thread", e))?;
        for r in records {
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
    let journal = journal::spawn_writer(writer, file.clone(), jrx)
        .map_err(|e| Error::io("start the journal thread", e))?;
    Ok(Pipes {
        jtx,
        htx: hasher.is_some().then_some(htx),
        hasher,
        journal,
    })
}

/// The probe's open response becomes the first piece when that piece is
/// still missing; otherwise its body is drained for the keep-alive pool.
async fn keep_first(
    first: Option<(u64, Response)>,
    done: &RangeSet,
    planner: &Planner,
    size: u64,
    engine: &Engine,
) -> Option<(u64, Response)> {
    let (end, resp) = first?;
    if done.total() == 0 && end <= size && planner.peek_len(end) == Some(end) {
        return Some((end, resp));
    }
    fetch::drain(resp, engine.limits()).await;
    None
}

/// Adaptive growth stops where each connection would still get two slabs
/// of the window: more connections would only wait for memory (and cost a
/// socket and a read buffer each).
fn controller(engine: &Engine, spec: &TransferSpec, window_slabs: usize) -> Controller {
    let cfg = &engine.cfg;
    let adaptive_cap = cfg.max_connections.min((window_slabs / 2).max(1));
    match spec.connections {
        Some(c) => Controller::new(c, cfg.max_connections, true),
        None => Controller::new(adaptive::START, adaptive_cap, false),
    }
}

/// Reserve the first piece's memory before any worker starts, so it is
/// first in line as file order requires; it keeps the probe's permit.
async fn reserve_first(
    engine: &Engine,
    shared: &Shared,
    first: Option<(u64, Response)>,
    conn: Option<OwnedSemaphorePermit>,
) -> Result<Option<FirstPiece>, AttemptError> {
    let Some((end, resp)) = first else {
        return Ok(None);
    };
    let mut p = shared.planner.lock().await;
    let n = slabs_for(end) as u32;
    let w = shared.window.clone().acquire_many_owned(n).await;
    let b = engine.budget.clone().acquire_many_owned(n).await;
    let (Ok(w), Ok(b)) = (w, b) else {
        return Err(Error::Cancelled.into());
    };
    p.next_piece(end);
    Ok(Some(FirstPiece {
        end,
        resp,
        conn,
        buf: Buffer::new(engine.pool.clone(), end as usize, vec![w, b]),
    }))
}

impl Crew {
    /// Start workers until `n` are running (fewer leave by themselves, see
    /// `Worker::run`).
    fn spawn_upto(&mut self, n: usize) {
        while self.shared.running.load(Ordering::Relaxed) < n {
            self.shared.running.fetch_add(1, Ordering::Relaxed);
            let w = Worker {
                engine: self.engine.clone(),
                shared: self.shared.clone(),
                state: self.state.clone(),
                partial: self.partial.clone(),
                htx: self.htx.clone(),
                jtx: self.jtx.clone(),
                stats: self.stats.clone(),
                pending: None,
            };
            self.set.spawn(w.run(self.first.take()));
        }
    }

    /// Every tick: sample the rate, let the controller pick the number of
    /// workers, start more while pieces are left.
    fn on_tick(&mut self, ctrl: &mut Controller, last: &mut (Instant, u64)) {
        let now = Instant::now();
        let progress = &self.state.progress;
        progress.sample(now);
        let d = progress.done();
        let dt = now.duration_since(last.0).as_secs_f64();
        let rate = if dt > 0.0 {
            d.saturating_sub(last.1) as f64 / dt
        } else {
            0.0
        };
        *last = (now, d);
        let t = ctrl.on_tick(rate);
        self.shared.target.store(t, Ordering::Relaxed);
        let more = self
            .shared
            .planner
            .try_lock()
            .map(|p| !p.is_empty())
            .unwrap_or(true);
        if more {
            self.spawn_upto(t);
        }
    }
}

/// Run the workers until all are done, one fails, or the transfer is
/// cancelled; then stop every worker and wait until they are gone, so their
/// channel ends are dropped and the journal thread can finish.
async fn drive(
    mut crew: Crew,
    mut ctrl: Controller,
    has_work: bool,
    url: &Url,
) -> Result<(), AttemptError> {
    if has_work {
        crew.spawn_upto(ctrl.target());
    }
    let mut tick = tokio::time::interval(adaptive::TICK);
    tick.tick().await;
    let state = crew.state.clone();
    let mut last = (Instant::now(), state.progress.done());
    let result = loop {
        if crew.set.is_empty() {
            break Ok(());
        }
        tokio::select! {
            j = crew.set.join_next() => match j {
                Some(Ok(Ok(()))) | None => {}
                Some(Ok(Err(e))) => break Err(e),
                Some(Err(_)) => break Err(Error::Transfer {
                    url: redact_url(url.as_str()),
                    kind: TransferKind::Internal,
                    message: "a download worker stopped unexpectedly".into(),
                }.into()),
            },
            _ = tick.tick() => crew.on_tick(&mut ctrl, &mut last),
            _ = state.cancel.cancelled() => break Err(Error::Cancelled.into()),
        }
    };
    if state.cancel.is_cancelled() {
        // the workers see the cancel too and write what they received (see
        // `Worker::keep_received`); give them a moment before stopping them
        let _ = tokio::time::timeout(FLUSH_GRACE, async {
            while crew.set.join_next().await.is_some() {}
        })
        .await;
    }
    crew.set.shutdown().await;
    crew.stats.chosen.store(ctrl.target(), Ordering::Relaxed);
    result
}

/// How long a cancelled transfer waits for its workers to keep what they
/// received (one write of at most a piece each).
const FLUSH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Wait for the journal thread, then the hasher's digests. The workers'
/// result comes first among errors once the journal is flushed.
async fn settle(
    pipes: Pipes,
    result: Result<(), AttemptError>,
    spec: &TransferSpec,
) -> Result<DigestHex, AttemptError> {
    let (ppath, jpath) = partial_paths(&spec.dest);
    let Pipes {
        jtx,
        htx,
        hasher,
        journal,
    } = pipes;
    drop(jtx);
    drop(htx);
    let journal_res = join_thread(journal).await;
    result?;
    match journal_res {
        Some(Ok(())) => {}
        Some(Err(e)) => return Err(io_err("write", &jpath, e)),
        None => return Err(Error::io("journal thread", std::io::Error::other("panicked")).into()),
    }
    let Some(h) = hasher else {
        return Ok(DigestHex::default());
    };
    match join_thread(h).await {
        Some(Outcome::Done { digests, .. }) => Ok(digests),
        Some(Outcome::Corrupt { .. }) => Err(CORRUPT),
        Some(Outcome::Io(e)) => Err(io_err("read", &ppath, e)),
        None => Err(Error::io("hasher thread", std::io::Error::other("panicked")).into()),
    }
}

/// Compare the digests, rename the file to its final name, drop the journal.
fn publish(
    spec: &TransferSpec,
    partial: &PartialFile,
    digests: &DigestHex,
    size: u64,
) -> Result<TransferOutcome, AttemptError> {
    let verified = verify(spec, digests, size)?;
    partial.publish(&spec.dest)?;
    let _ = std::fs::remove_file(partial_paths(&spec.dest).1);
    sync_dir(&spec.dest);
    Ok(TransferOutcome {
        size,
        verified,
        ranged: true,
        sized: true,
        direct_io: partial.is_direct(),
        ..Default::default()
    })
}
