//! Adaptive connection count: start with one stream, add connections only
//! while throughput grows, and go back when a step bought nothing.
//!
//! The transfer samples its byte counter every [`TICK`]; each sample is fed
//! to [`Controller::on_tick`], which returns the new target connection count.
//! Growth is multiplicative so a per-connection rate limit (object stores,
//! nginx `limit_rate`) is out-grown in a few ticks. A step that gains less
//! than [`MIN_GAIN`] over its first two ticks (new connections take a
//! moment to open) is undone: where one connection already saturates the
//! path (loopback, a fast LAN), every extra one costs a request, a share of
//! the memory window and out-of-order data for the in-order hasher, and buys
//! nothing. The plateau is probed again now and then in case it was noise.

use std::time::Duration;

pub const TICK: Duration = Duration::from_millis(250);
/// Connections a transfer starts with when adaptive.
pub const START: usize = 1;
/// A step must raise throughput by more than this factor to be kept.
pub const MIN_GAIN: f64 = 1.10;
/// Ticks to wait on a plateau before probing one more step.
const RETRY_TICKS: u32 = 12;

#[derive(Debug, Clone)]
pub struct Controller {
    target: usize,
    /// the count before the last step, restored when the step gains nothing
    before: usize,
    cap: usize,
    fixed: bool,
    baseline: f64,
    growing: bool,
    /// the last step has had one tick only: its connections may still be
    /// opening, so a tick without gain is not yet a verdict
    fresh: bool,
    idle_ticks: u32,
}

impl Controller {
    /// `fixed`: the user chose the count; never change it.
    pub fn new(start: usize, cap: usize, fixed: bool) -> Self {
        let cap = cap.max(1);
        let target = start.clamp(1, cap);
        Self {
            target,
            before: target,
            cap,
            fixed,
            baseline: 0.0,
            growing: true,
            fresh: false,
            idle_ticks: 0,
        }
    }

    pub fn target(&self) -> usize {
        self.target
    }

    /// Feed the throughput (bytes/s) of the last tick; returns the new target.
    pub fn on_tick(&mut self, rate: f64) -> usize {
        if self.fixed {
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
                self.before = self.target;
                self.target = (self.target * factor).min(self.cap);
                self.fresh = true;
                if self.target == self.before {
                    self.settle();
                }
            } else if self.fresh {
                self.fresh = false;
            } else {
                // the last step bought nothing: its connections go
                self.target = self.before;
                self.baseline = self.baseline.max(rate);
                self.settle();
            }
        } else if self.target < self.cap {
            self.idle_ticks += 1;
            if self.idle_ticks >= RETRY_TICKS {
                self.idle_ticks = 0;
                self.growing = true;
                self.baseline = rate;
                self.before = self.target;
                self.target = (self.target + self.target.div_ceil(2)).min(self.cap);
                self.fresh = true;
            }
        }
        self.target
    }

    fn settle(&mut self) {
        self.growing = false;
        self.idle_ticks = 0;
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
    fn one_saturating_stream_stays_one() {
        // one connection already saturates the link: the probe step to two
        // gains nothing in two ticks and is undone
        let seen = simulate(1e9, 1e9, 64, 6);
        assert_eq!(seen, vec![1, 2, 2, 1, 1, 1, 1], "{seen:?}");
    }

    #[test]
    fn a_step_that_gains_nothing_is_undone() {
        // 100 MB/s per connection up to 250 MB/s: 1 -> 2 -> 8 gain (x4 after a
        // near-linear step), 8 -> 16 does not and is undone after two ticks
        let seen = simulate(100e6, 250e6, 64, 5);
        assert_eq!(seen, vec![1, 2, 8, 16, 16, 8], "{seen:?}");
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
        c.on_tick(100.0);
        c.on_tick(100.0); // 16 gained nothing in two ticks: back to 8
        let t = c.target();
        assert_eq!(t, 8);
        for _ in 0..RETRY_TICKS {
            c.on_tick(100.0);
        }
        assert!(c.target() > t);
    }
}
