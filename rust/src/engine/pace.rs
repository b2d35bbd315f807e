//! Time bounds of one HTTP exchange: how long the response head may take and
//! how slow its body may be (`fetch` applies them to every request).
//!
//! The low-speed limit follows curl's `--speed-limit`/`--speed-time`: a body
//! that brings fewer than `speed_limit` bytes/s on average over a whole period
//! of `speed_time` fails that attempt as `Slow`. Periods follow each other
//! from the first body byte's wait on; a body that ends within its first
//! period is never judged (a small file on a slow link still arrives). The
//! response head must be complete within `speed_time` as well (or within
//! `stall`, when that is shorter): a server dribbling its headers, or never
//! answering, is slow too. Independently, no byte at all for `stall` fails as
//! `Timeout`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Response;

use crate::error::TransferKind;

/// The bounds of every exchange of an engine (from `EngineConfig`).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// no body byte for this long: `Timeout`
    pub stall: Duration,
    /// bytes/s; 0 turns the low-speed limit off
    pub speed_limit: u64,
    pub speed_time: Duration,
}

impl Limits {
    /// Whether the low-speed limit, rather than the stall timeout, bounds
    /// the wait for a response head.
    fn head_by_speed(&self) -> bool {
        self.speed_limit > 0 && self.speed_time <= self.stall
    }

    /// Longest wait for a complete response head: the shorter of the stall
    /// timeout and, when the low-speed limit is on, its period.
    pub fn head_timeout(&self) -> Duration {
        if self.head_by_speed() {
            self.speed_time
        } else {
            self.stall
        }
    }

    /// The failure of a head not complete within `head_timeout`.
    pub fn head_late(&self) -> (TransferKind, String) {
        let secs = self.head_timeout().as_secs_f64();
        let kind = if self.head_by_speed() {
            TransferKind::Slow
        } else {
            TransferKind::Timeout
        };
        (kind, format!("no response head within {secs:.0} s"))
    }

    fn needed(&self) -> u64 {
        (self.speed_limit as f64 * self.speed_time.as_secs_f64()).ceil() as u64
    }
}

/// What reading one chunk ended with, before it becomes a `fetch::Failure`.
pub enum Late {
    /// nothing for `stall`
    Stalled(String),
    /// a whole period below the limit
    Slow(String),
}

/// The pace of one body: bytes in the current period of the low-speed limit.
pub struct Pace {
    lim: Limits,
    period_start: Instant,
    period_bytes: u64,
}

impl Pace {
    pub fn new(lim: Limits) -> Self {
        Self {
            lim,
            period_start: Instant::now(),
            period_bytes: 0,
        }
    }

    /// The next chunk of `resp`, or why the body is too slow. Errors of the
    /// body itself come back as they are.
    pub async fn next_chunk(
        &mut self,
        resp: &mut Response,
    ) -> Result<Result<Option<Bytes>, reqwest::Error>, Late> {
        let stall_at = Instant::now() + self.lim.stall;
        loop {
            let period_end = self.period_start + self.lim.speed_time;
            let until = if self.lim.speed_limit > 0 {
                stall_at.min(period_end)
            } else {
                stall_at
            };
            // `chunk` only polls the body: dropping it on a timeout loses nothing
            match tokio::time::timeout_at(until.into(), resp.chunk()).await {
                Ok(Ok(Some(c))) => {
                    self.period_bytes += c.len() as u64;
                    self.judge(Instant::now())?;
                    return Ok(Ok(Some(c)));
                }
                Ok(other) => return Ok(other),
                Err(_) if Instant::now() >= stall_at => {
                    return Err(Late::Stalled(format!(
                        "stalled: no bytes for {:.0} s",
                        self.lim.stall.as_secs_f64()
                    )))
                }
                Err(_) => self.judge(Instant::now())?,
            }
        }
    }

    /// At the end of a period: fail if it brought too few bytes, else start
    /// the next one.
    fn judge(&mut self, now: Instant) -> Result<(), Late> {
        if self.lim.speed_limit == 0 || now < self.period_start + self.lim.speed_time {
            return Ok(());
        }
        if self.period_bytes < self.lim.needed() {
            return Err(Late::Slow(format!(
                "below the speed limit of {} bytes/s: {} bytes in {:.0} s",
                self.lim.speed_limit,
                self.period_bytes,
                now.duration_since(self.period_start).as_secs_f64()
            )));
        }
        self.period_start = now;
        self.period_bytes = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lim(speed_limit: u64) -> Limits {
        Limits {
            stall: Duration::from_secs(30),
            speed_limit,
            speed_time: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_period_below_the_limit_is_slow() {
        let mut p = Pace::new(lim(100));
        let t0 = p.period_start;
        p.period_bytes = 999;
        assert!(
            p.judge(t0 + Duration::from_secs(9)).is_ok(),
            "not judged early"
        );
        assert!(matches!(
            p.judge(t0 + Duration::from_secs(10)),
            Err(Late::Slow(_))
        ));
    }

    #[test]
    fn a_fast_period_starts_the_next() {
        let mut p = Pace::new(lim(100));
        let t0 = p.period_start;
        p.period_bytes = 1000;
        assert!(p.judge(t0 + Duration::from_secs(10)).is_ok());
        assert_eq!(p.period_bytes, 0);
        assert_eq!(p.period_start, t0 + Duration::from_secs(10));
    }

    #[test]
    fn zero_turns_it_off() {
        let mut p = Pace::new(lim(0));
        let t0 = p.period_start;
        assert!(p.judge(t0 + Duration::from_secs(1000)).is_ok());
        assert_eq!(lim(0).head_timeout(), Duration::from_secs(30));
        assert_eq!(lim(0).head_late().0, TransferKind::Timeout);
        assert_eq!(lim(1).head_timeout(), Duration::from_secs(10));
        assert_eq!(lim(1).head_late().0, TransferKind::Slow);
        // a stall timeout shorter than the period bounds the head instead
        let short = Limits {
            stall: Duration::from_secs(2),
            ..lim(1)
        };
        assert_eq!(short.head_timeout(), Duration::from_secs(2));
        assert_eq!(short.head_late().0, TransferKind::Timeout);
    }
}
