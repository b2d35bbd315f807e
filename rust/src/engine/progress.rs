//! Progress counters of a transfer, written by the workers and read (without
//! locks, without the GIL) by the Python side; and the retries it made, kept
//! until the caller takes them (to show and log each one).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::retry::Granted;
use crate::error::TransferKind;

const UNKNOWN: u64 = u64::MAX;
/// Window over which `rate` is averaged.
const RATE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug)]
pub struct Progress {
    done: AtomicU64,
    total: AtomicU64,
    rate_bits: AtomicU64,
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            done: AtomicU64::new(0),
            total: AtomicU64::new(UNKNOWN),
            rate_bits: AtomicU64::new(0f64.to_bits()),
            samples: Mutex::new(VecDeque::new()),
        }
    }
}

impl Progress {
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set_done(&self, n: u64) {
        self.done.store(n, Ordering::Relaxed);
    }
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
    pub fn set_total(&self, total: Option<u64>) {
        self.total
            .store(total.unwrap_or(UNKNOWN), Ordering::Relaxed);
    }
    pub fn total(&self) -> Option<u64> {
        let t = self.total.load(Ordering::Relaxed);
        (t != UNKNOWN).then_some(t)
    }
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Ordering::Relaxed))
    }

    /// Record a sample of the done counter; updates `rate`.
    pub fn sample(&self, now: Instant) {
        let done = self.done();
        let Ok(mut s) = self.samples.lock() else {
            return;
        };
        s.push_back((now, done));
        while s.len() > 2 && now.duration_since(s[0].0) > RATE_WINDOW {
            s.pop_front();
        }
        if let (Some(&(t0, d0)), Some(&(t1, d1))) = (s.front(), s.back()) {
            let dt = t1.duration_since(t0).as_secs_f64();
            if dt > 0.0 {
                let r = d1.saturating_sub(d0) as f64 / dt;
                self.rate_bits.store(r.to_bits(), Ordering::Relaxed);
            }
        }
    }
}

/// One retry as the caller sees it: which (n of max), why, and the wait.
#[derive(Debug, Clone)]
pub struct RetryEvent {
    pub number: u32,
    pub of: u32,
    pub kind: TransferKind,
    /// without the URL (the caller knows which file it is)
    pub message: String,
    pub wait: Duration,
}

/// The retries of a transfer not yet taken by the caller. Bounded: a caller
/// that never looks keeps at most `MAX_KEPT` (the newest).
#[derive(Debug, Default)]
pub struct RetryLog(Mutex<VecDeque<RetryEvent>>);

const MAX_KEPT: usize = 256;

impl RetryLog {
    pub fn push(&self, g: Granted, kind: TransferKind, message: &str) {
        if let Ok(mut q) = self.0.lock() {
            if q.len() >= MAX_KEPT {
                q.pop_front();
            }
            q.push_back(RetryEvent {
                number: g.number,
                of: g.of,
                kind,
                message: message.to_string(),
                wait: g.wait,
            });
        }
    }

    pub fn take(&self) -> Vec<RetryEvent> {
        self.0
            .lock()
            .map(|mut q| q.drain(..).collect())
            .unwrap_or_default()
    }
}

/// Cancellation flag that async code can also wait on.
#[derive(Debug, Default)]
pub struct Cancel {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    /// Resolves once cancelled.
    pub async fn cancelled(&self) {
        loop {
            let n = self.notify.notified();
            tokio::pin!(n);
            // register before checking the flag so a concurrent cancel() is not missed
            n.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            n.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_over_window() {
        let p = Progress::default();
        let t0 = Instant::now();
        p.sample(t0);
        p.add(1000);
        p.sample(t0 + Duration::from_millis(500));
        assert!((p.rate() - 2000.0).abs() < 1e-6);
        assert_eq!(p.total(), None);
        p.set_total(Some(5));
        assert_eq!(p.total(), Some(5));
    }
}
