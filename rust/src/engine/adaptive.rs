//! Adaptive connection count: start small, grow while throughput grows.
//!
//! The transfer samples its byte counter every [`TICK`]; each sample is fed
//! to [`Controller::on_tick`], which returns the new target connection count.
//! Growth is multiplicative so a per-connection rate limit (object stores,
//! nginx `limit_rate`) is out-grown in a few ticks; it stops at the first
//! step that gains less than [`MIN_GAIN`], and is retried now and then
//! in case the plateau was noise.

use std::time::Duration;

pub const TICK: Duration = Duration::from_millis(250);
/// Connections a transfer starts with when adaptive.
pub const START: usize = 8;
/// A step must raise throughput by more than this factor to keep growing.
pub const MIN_GAIN: f64 = 1.10;
/// Ticks to wait on a plateau before probing one more step.
const RETRY_TICKS: u32 = 12;

#[derive(Debug, Clone)]
pub struct Controller {
    target: usize,
    cap: usize,
    fixed: bool,
    baseline: f64,
    growing: bool,
    idle_ticks: u32,
}

impl Controller {
    /// `fixed`: the user chose the count; never change it.
    pub fn new(start: usize, cap: usize, fixed: bool) -> Self {
        let cap = cap.max(1);
        Self {
            target: start.clamp(1, cap),
            cap,
            fixed,
            baseline: 0.0,
            growing: true,
            idle_ticks: 0,
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    /// Feed the throughput (bytes/s) of the last tick; returns the new target.
    pub fn on_tick(&mut self, rate: f64) -> usize {
        if self.fixed || self.target >= self.cap {
            return self.target;
        }
        if self.growing {
            if self.baseline == 0.0 || rate > self.baseline * MIN_GAIN {
                // near-linear scaling means we are far from the limit: jump
                let factor = if self.baseline > 0.0 && rate > self.baseline * 1.6 {
                    4
                } else {
                    2
                };
                self.baseline = rate;
                self.target = (self.target * factor).min(self.cap);
            } else {
                self.growing = false;
                self.baseline = self.baseline.max(rate);
                self.idle_ticks = 0;
            }
        } else {
            self.idle_ticks += 1;
            if self.idle_ticks >= RETRY_TICKS {
                self.idle_ticks = 0;
                self.growing = true;
                self.baseline = rate;
                self.target = (self.target + self.target.div_ceil(2)).min(self.cap);
            }
        }
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A link where each connection gets `per_conn` up to a total `limit`.
    fn simulate(per_conn: f64, limit: f64, cap: usize, ticks: usize) -> Vec<usize> {
        let mut c = Controller::new(START, cap, false);
        let mut seen = vec![c.target()];
        for _ in 0..ticks {
            let rate = (c.target() as f64 * per_conn).min(limit);
            seen.push(c.on_tick(rate));
        }
        seen
    }

    #[test]
    fn rate_limited_connections_ramp_to_the_cap_quickly() {
        // 40 MB/s per connection, 4 GB/s link: needs the cap (64) fast
        let seen = simulate(40e6, 4e9, 64, 6);
        let ticks_to_32 = seen.iter().position(|&t| t >= 32).unwrap();
        assert!(ticks_to_32 <= 3, "{seen:?}");
        assert_eq!(*seen.last().unwrap(), 64);
    }

    #[test]
    fn stops_growing_on_a_plateau() {
        // one connection already saturates the link
        let seen = simulate(1e9, 1e9, 64, 6);
        assert!(*seen.last().unwrap() <= 16, "{seen:?}");
    }

    #[test]
    fn fixed_never_changes() {
        let mut c = Controller::new(5, 64, true);
        for r in [1.0, 10.0, 100.0] {
            assert_eq!(c.on_tick(r), 5);
        }
    }

    #[test]
    fn plateau_is_probed_again_later() {
        let mut c = Controller::new(8, 64, false);
        c.on_tick(100.0);
        c.on_tick(100.0); // plateau at 16
        let t = c.target();
        for _ in 0..RETRY_TICKS {
            c.on_tick(100.0);
        }
        assert!(c.target() > t);
    }
}
