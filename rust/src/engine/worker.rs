//! The workers of a ranged transfer: each takes the next piece in file
//! order under a memory reservation, fetches it (retrying and continuing
//! after the bytes already received), writes it at its offset and hands it
//! to the journal and the in-order hasher.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use reqwest::Url;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};

use super::attempt::{io_err, AttemptError, Stats, CHANGED, CORRUPT};
use super::buffers::{slabs_for, Buffer, SLAB};
use super::fetch::{self, Conditions, Failure};
use super::file::PartialFile;
use super::hasher::{Item, Msg};
use super::journal::Record;
use super::plan::Planner;
use super::retry::Budget;
use super::sign::RequestHeaders;
use super::spec::TransferState;
use super::Engine;
use crate::error::Error;

pub(super) struct Shared {
    pub(super) planner: Mutex<Planner>,
    /// per-transfer share of the engine budget (see `transfer_window`)
    pub(super) window: Arc<Semaphore>,
    pub(super) window_slabs: usize,
    pub(super) target: AtomicUsize,
    /// workers started and not yet gone (see `Worker::retire`)
    pub(super) running: AtomicUsize,
    pub(super) cond: Conditions,
    pub(super) url: Url,
    pub(super) headers: RequestHeaders,
    pub(super) fixed_chunk: Option<u64>,
}

/// Slabs one transfer may hold: 3/4 of the engine budget (so one transfer
/// never starves the next one of memory), at most 64 MiB (enough to keep a
/// 2-core machine busy; more only raises the peak RSS).
pub(super) fn transfer_window(budget_slabs: usize) -> usize {
    (budget_slabs * 3 / 4).clamp(1, (64 << 20) / SLAB)
}

/// Piece size: what the user chose, else sized so that all connections
/// fit twice in the window (buffers waiting for the hasher included).
pub(super) fn piece_len(window_slabs: usize, fixed: Option<u64>, target: usize) -> u64 {
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
    pub(super) fn chunk_len(&self) -> u64 {
        piece_len(
            self.window_slabs,
            self.fixed_chunk,
            self.target.load(Ordering::Relaxed),
        )
    }
}

/// Why a worker ended without error.
enum Left {
    /// no piece left
    Done,
    /// the controller lowered the target (its seat is already given up)
    Retired,
}

/// Where a received piece goes: its place in the file, then the journal and
/// the in-order hasher.
struct Output {
    partial: Arc<PartialFile>,
    htx: Option<Sender<Msg>>,
    jtx: Sender<Record>,
    stats: Arc<Stats>,
}

impl Output {
    fn hand_off(self, start: u64, len: u64, buf: Buffer) -> std::result::Result<(), AttemptError> {
        let parts = buf.parts(len as usize);
        self.partial
            .write_parts(start, &parts)
            .map_err(|e| io_err("write", &self.partial.path, e))?;
        drop(parts);
        self.stats.fetched.fetch_add(len, Ordering::Relaxed);
        // With hashing on, the hasher computes the crc32c and sends the
        // journal record; without, the record carries no crc.
        let Some(h) = &self.htx else {
            let _ = self.jtx.send(Record {
                offset: start,
                len,
                crc: None,
            });
            return Ok(());
        };
        let msg = Msg {
            offset: start,
            len,
            item: Item::Mem(buf),
        };
        // a closed channel: the hasher stopped early on damaged resume data
        h.send(msg).map_err(|_| CORRUPT)
    }
}

pub(super) struct Worker {
    pub(super) engine: Arc<Engine>,
    pub(super) shared: Arc<Shared>,
    pub(super) state: Arc<TransferState>,
    pub(super) partial: Arc<PartialFile>,
    pub(super) htx: Option<Sender<Msg>>,
    pub(super) jtx: Sender<Record>,
    pub(super) stats: Arc<Stats>,
    /// the last piece's write, running on a blocking thread
    pub(super) pending: Option<tokio::task::JoinHandle<std::result::Result<(), AttemptError>>>,
}

/// The first piece, whose response is already open (the probe's).
pub(super) struct FirstPiece {
    pub(super) end: u64,
    pub(super) resp: reqwest::Response,
    pub(super) buf: Buffer,
    /// the probe's connection permit, held while its response is open
    pub(super) conn: Option<OwnedSemaphorePermit>,
}

impl Worker {
    /// Take pieces in file order until none is left, or until the
    /// controller wants fewer workers than are running.
    pub(super) async fn run(
        mut self,
        first: Option<FirstPiece>,
    ) -> std::result::Result<(), AttemptError> {
        let r = match self.work(first).await {
            // a worker leaves only once its last write is done
            Ok(left) => self.flush().await.map(|()| left),
            Err(e) => Err(e),
        };
        if !matches!(r, Ok(Left::Retired)) {
            self.shared.running.fetch_sub(1, Ordering::Relaxed);
        }
        r.map(|_| ())
    }

    /// Leave between pieces when more workers run than the target: one at a
    /// time (compare-and-swap), so at least the target keeps running.
    fn retire(&self) -> bool {
        let target = self.shared.target.load(Ordering::Relaxed).max(1);
        let running = &self.shared.running;
        let mut n = running.load(Ordering::Relaxed);
        while n > target {
            match running.compare_exchange(n, n - 1, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(now) => n = now,
            }
        }
        false
    }

    async fn work(&mut self, first: Option<FirstPiece>) -> std::result::Result<Left, AttemptError> {
        if let Some(f) = first {
            let _conn = f.conn;
            self.process(0, f.end, f.buf, Some(f.resp)).await?;
        }
        loop {
            if self.retire() {
                return Ok(Left::Retired);
            }
            // a cancelled transfer starts no piece: waiting for a connection
            // or for memory ends at once
            let next = tokio::select! {
                biased;
                _ = self.state.cancel.cancelled() => return Err(Error::Cancelled.into()),
                next = self.next_piece() => next?,
            };
            let Some((_conn, start, end, buf)) = next else {
                return Ok(Left::Done);
            };
            self.process(start, end, buf, None).await?;
        }
    }

    /// A connection, then the next piece in file order with its memory.
    async fn next_piece(
        &self,
    ) -> std::result::Result<Option<(OwnedSemaphorePermit, u64, u64, Buffer)>, AttemptError> {
        let conn = self
            .engine
            .conns
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?;
        // Pieces are cut and their memory reserved under one lock, so
        // reservations follow file order: the piece the hasher waits
        // for always holds its memory and the budget cannot deadlock.
        let mut p = self.shared.planner.lock().await;
        let max = self.shared.chunk_len();
        let Some(len) = p.peek_len(max) else {
            return Ok(None);
        };
        let n = slabs_for(len) as u32;
        let w = self.shared.window.clone().acquire_many_owned(n).await;
        let b = self.engine.budget.clone().acquire_many_owned(n).await;
        let (Ok(w), Ok(b)) = (w, b) else {
            return Err(Error::Cancelled.into());
        };
        let Some((s, e)) = p.next_piece(max) else {
            return Ok(None);
        };
        let buf = Buffer::new(self.engine.pool.clone(), len as usize, vec![w, b]);
        Ok(Some((conn, s, e, buf)))
    }

    /// Fetch a piece, then write it at its offset and pass it to journal and
    /// hasher on a blocking thread while this worker asks for its next piece:
    /// the connection keeps receiving during the write (with one stream, an
    /// inline write of each piece left the socket unread a third of the time).
    async fn process(
        &mut self,
        start: u64,
        end: u64,
        mut buf: Buffer,
        open: Option<reqwest::Response>,
    ) -> std::result::Result<(), AttemptError> {
        let active = self.stats.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.stats.peak.fetch_max(active, Ordering::Relaxed);
        let r = self.fetch(start, end, &mut buf, open).await;
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        r?;
        // one write in flight per worker: its buffer still holds its memory
        self.flush().await?;
        let out = Output {
            partial: self.partial.clone(),
            htx: self.htx.clone(),
            jtx: self.jtx.clone(),
            stats: self.stats.clone(),
        };
        self.pending = Some(tokio::task::spawn_blocking(move || {
            out.hand_off(start, end - start, buf)
        }));
        Ok(())
    }

    /// Wait for this worker's write in flight, if any.
    async fn flush(&mut self) -> std::result::Result<(), AttemptError> {
        let Some(h) = self.pending.take() else {
            return Ok(());
        };
        match h.await {
            Ok(r) => r,
            Err(_) => Err(Error::io("write", std::io::Error::other("writer task failed")).into()),
        }
    }

    /// A cancelled piece keeps the bytes it received: written at their offset
    /// and journaled, so the next run (an agent stopped, a pod replaced)
    /// resumes after them instead of fetching the whole piece again.
    fn keep_received(&self, start: u64, buf: &Buffer, got: usize) -> AttemptError {
        if got > 0 {
            let parts = buf.parts(got);
            if self.partial.write_parts(start, &parts).is_ok() {
                // as for whole pieces: a crc when the transfer verifies
                let crc = self
                    .htx
                    .as_ref()
                    .map(|_| parts.iter().fold(0, |c, p| crc32c::crc32c_append(c, p)));
                let _ = self.jtx.send(Record {
                    offset: start,
                    len: got as u64,
                    crc,
                });
            }
        }
        Error::Cancelled.into()
    }

    /// Fetch one piece with retries, continuing after the bytes already received.
    async fn fetch(
        &self,
        start: u64,
        end: u64,
        buf: &mut Buffer,
        mut open: Option<reqwest::Response>,
    ) -> std::result::Result<(), AttemptError> {
        let lim = self.engine.limits();
        let mut got = 0usize;
        let mut budget = Budget::new(self.engine.cfg.max_retries);
        loop {
            let piece = async {
                if let Some(resp) = open.take() {
                    fetch::read_piece(resp, start, end, buf, &mut got, lim, &self.state.progress)
                        .await
                } else {
                    fetch::fetch_piece(
                        &self.engine,
                        &self.shared.url,
                        &self.shared.headers,
                        &self.shared.cond,
                        start,
                        end,
                        buf,
                        &mut got,
                        lim,
                        &self.state.progress,
                    )
                    .await
                }
            };
            let r = tokio::select! {
                biased;
                _ = self.state.cancel.cancelled() => None,
                r = piece => Some(r),
            };
            let Some(r) = r else {
                return Err(self.keep_received(start, buf, got));
            };
            match r {
                Ok(()) => return Ok(()),
                Err(Failure::Changed) => return Err(CHANGED),
                Err(Failure::Fatal(e)) => return Err(e.into()),
                Err(Failure::Retry {
                    kind,
                    msg,
                    retry_after,
                }) => {
                    let what = format!("bytes {start}-{}: {msg}", end - 1);
                    let granted = budget.next(kind, retry_after, &self.shared.url, &what)?;
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.state.retries.push(granted, kind, &what);
                    tokio::time::sleep(granted.wait).await;
                }
            }
        }
    }
}
