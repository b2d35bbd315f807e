//! Retry policy of a range request: which failures are retried, how often
//! (`Budget`), how long to wait (exponential backoff with jitter, or the
//! server's Retry-After).

use std::time::{Duration, SystemTime};

use reqwest::Url;

use crate::error::{redact_url, Error, TransferKind};

/// Base delay of the first retry.
pub const BASE: Duration = Duration::from_millis(200);
/// Ceiling of the computed backoff.
pub const CAP: Duration = Duration::from_secs(20);
/// Ceiling of a server-requested Retry-After (a bogus value must not park a
/// download for hours).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(300);

/// Retries of a request that keeps being too slow (`TransferKind::Slow`):
/// another connection may reach a faster server, but a path that is slow
/// stays slow, and each try costs a whole `speed_time`.
pub const SLOW_RETRIES: u32 = 2;

/// The retries left to one request (or one stream): `max` in all, of which
/// at most `SLOW_RETRIES` for slowness.
#[derive(Debug)]
pub struct Budget {
    max: u32,
    spent: u32,
    slow: u32,
}

/// One retry granted by a `Budget`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Granted {
    /// 1-based, counted against `of`
    pub number: u32,
    pub of: u32,
    pub wait: Duration,
}

impl Budget {
    pub fn new(max: u32) -> Self {
        Self {
            max,
            spent: 0,
            slow: 0,
        }
    }

    /// Retries made so far.
    #[cfg(test)]
    pub fn spent(&self) -> u32 {
        self.spent
    }

    /// One more retry after `what` failed at `url` as `kind`, or the error that ends
    /// the request once the retries are spent (saying how many were made).
    pub fn next(
        &mut self,
        kind: TransferKind,
        retry_after: Option<Duration>,
        url: &Url,
        what: &str,
    ) -> Result<Granted, Error> {
        self.take(kind, retry_after).ok_or_else(|| Error::Transfer {
            url: redact_url(url.as_str()),
            kind,
            message: format!("{what} (gave up after {} retries)", self.spent),
        })
    }

    /// One more retry after a failure of `kind`, or `None` when spent.
    pub fn take(&mut self, kind: TransferKind, retry_after: Option<Duration>) -> Option<Granted> {
        let slow = kind == TransferKind::Slow;
        let (used, of) = if slow {
            (self.slow, self.max.min(SLOW_RETRIES))
        } else {
            (self.spent, self.max)
        };
        if used >= of || self.spent >= self.max {
            return None;
        }
        let wait = delay(self.spent, retry_after);
        self.spent += 1;
        self.slow += u32::from(slow);
        Some(Granted {
            number: used + 1,
            of,
            wait,
        })
    }
}

/// Statuses worth retrying: server errors, request timeout, rate limiting.
pub fn is_retryable_status(status: u16) -> bool {
    status >= 500 || status == 408 || status == 429
}

/// Delay before retry number `attempt` (0-based): `base * 2^attempt` capped,
/// then "equal jitter" — a uniform pick in `[d/2, d]` (`unit` in `[0, 1)`),
/// so many workers failing together do not retry in lockstep.
pub fn backoff(attempt: u32, unit: f64) -> Duration {
    let exp = BASE.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
    let d = exp.min(CAP);
    let unit = unit.clamp(0.0, 1.0);
    d / 2 + d.mul_f64(unit) / 2
}

/// Parse a Retry-After value: delta-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(RETRY_AFTER_CAP));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(
        when.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(RETRY_AFTER_CAP),
    )
}

/// The wait before the next attempt: the server's wish when given, else backoff.
pub fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    match retry_after {
        Some(d) => d,
        None => backoff(attempt, fastrand::f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(is_retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 410, 416] {
            assert!(!is_retryable_status(s), "{s}");
        }
    }

    #[test]
    fn slowness_gets_fewer_retries() {
        let mut b = Budget::new(8);
        let g = b.take(TransferKind::Slow, Some(Duration::ZERO)).unwrap();
        assert_eq!((g.number, g.of, g.wait), (1, 2, Duration::ZERO));
        assert!(b.take(TransferKind::Slow, None).is_some());
        assert!(b.take(TransferKind::Slow, None).is_none());
        // other failures keep the rest of the budget
        let g = b.take(TransferKind::Connect, None).unwrap();
        assert_eq!((g.number, g.of), (3, 8));
        assert_eq!(b.spent(), 3);
        let mut none = Budget::new(0);
        assert!(none.take(TransferKind::Broken, None).is_none());
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0, 0.0), BASE / 2);
        assert_eq!(backoff(0, 1.0), BASE);
        assert_eq!(backoff(3, 1.0), BASE * 8);
        assert_eq!(backoff(30, 1.0), CAP);
        assert!(backoff(30, 0.0) >= CAP / 2);
        for a in 0..12 {
            let d = backoff(a, 0.5);
            assert!(d <= CAP && d >= backoff(a, 0.0));
        }
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("999999", now), Some(RETRY_AFTER_CAP));
        assert_eq!(
            delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
    }
}
