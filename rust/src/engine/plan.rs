//! Range planning: which byte ranges of the file are still missing, and how
//! they are cut into pieces for the workers (first stage of a transfer, after
//! the probe and the journal load).
//!
//! Pieces are handed out in file order so the in-order hasher can advance
//! with little buffering, and cut at multiples of `align` where possible so
//! the O_DIRECT path sees aligned offsets.

use std::collections::VecDeque;

/// A sorted set of disjoint, non-adjacent half-open intervals `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `[start, end)`, merging with neighbours.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.ranges {
            if b < s {
                out.push((a, b));
            } else if a > e {
                if !placed {
                    out.push((s, e));
                    placed = true;
                }
                out.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        if !placed {
            out.push((s, e));
        }
        self.ranges = out;
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|(a, b)| b - a).sum()
    }

    /// The complement within `[0, size)`.
    pub fn missing(&self, size: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut pos = 0;
        for &(a, b) in &self.ranges {
            let a = a.min(size);
            if a > pos {
                out.push((pos, a));
            }
            pos = pos.max(b.min(size));
        }
        if pos < size {
            out.push((pos, size));
        }
        out
    }
}

/// Hands out the missing ranges front to back in pieces of at most
/// `max_len` bytes (the size may change between calls: adaptive chunking).
#[derive(Debug, Clone)]
pub struct Planner {
    gaps: VecDeque<(u64, u64)>,
    align: u64,
}

impl Planner {
    pub fn new(missing: Vec<(u64, u64)>, align: u64) -> Self {
        Self {
            gaps: missing.into_iter().filter(|(a, b)| b > a).collect(),
            align: align.max(1),
        }
    }

    /// Bytes not yet handed out.
    pub fn remaining(&self) -> u64 {
        self.gaps.iter().map(|(a, b)| b - a).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.gaps.is_empty()
    }

    /// Length of the next piece for a given maximum, without taking it.
    pub fn peek_len(&self, max_len: u64) -> Option<u64> {
        let &(start, end) = self.gaps.front()?;
        Some(self.cut(start, end, max_len) - start)
    }

    fn cut(&self, start: u64, end: u64, max_len: u64) -> u64 {
        let max_len = max_len.max(1);
        let mut stop = start.saturating_add(max_len);
        // End the piece on an alignment boundary when that keeps it non-empty.
        let aligned = stop / self.align * self.align;
        if aligned > start {
            stop = aligned;
        }
        stop.min(end)
    }

    /// Take the next piece `[start, end)`.
    pub fn next_piece(&mut self, max_len: u64) -> Option<(u64, u64)> {
        let (start, end) = *self.gaps.front()?;
        let stop = self.cut(start, end, max_len);
        if stop >= end {
            self.gaps.pop_front();
        } else if let Some(front) = self.gaps.front_mut() {
            front.0 = stop;
        }
        Some((start, stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn insert_merges_adjacent_and_overlapping() {
        let mut s = RangeSet::new();
        s.insert(10, 20);
        s.insert(30, 40);
        s.insert(20, 30);
        assert_eq!(s.ranges(), &[(10, 40)]);
        s.insert(0, 5);
        s.insert(3, 12);
        assert_eq!(s.ranges(), &[(0, 40)]);
        assert_eq!(s.missing(50), vec![(40, 50)]);
    }

    #[test]
    fn planner_cuts_on_alignment() {
        let mut p = Planner::new(vec![(100, 5000)], 1024);
        assert_eq!(p.next_piece(2048), Some((100, 2048)));
        assert_eq!(p.next_piece(2048), Some((2048, 4096)));
        assert_eq!(p.next_piece(2048), Some((4096, 5000)));
        assert_eq!(p.next_piece(2048), None);
    }

    #[test]
    fn empty_file_has_nothing_to_plan() {
        let p = Planner::new(RangeSet::new().missing(0), 4096);
        assert!(p.is_empty());
    }

    proptest! {
        #[test]
        fn pieces_cover_exactly_the_missing_bytes(
            size in 0u64..1_000_000,
            done in proptest::collection::vec((0u64..1_000_000, 0u64..100_000), 0..20),
            max_len in 1u64..300_000,
            align_pow in 0u32..16,
        ) {
            let mut set = RangeSet::new();
            for (s, l) in done {
                set.insert(s.min(size), (s + l).min(size));
            }
            let missing = set.missing(size);
            prop_assert_eq!(set.total() + missing.iter().map(|(a, b)| b - a).sum::<u64>(), size);
            let mut p = Planner::new(missing.clone(), 1 << align_pow);
            let mut covered = RangeSet::new();
            let mut last_end = 0;
            while let Some((a, b)) = p.next_piece(max_len) {
                prop_assert!(b > a);
                prop_assert!(b - a <= max_len);
                prop_assert!(a >= last_end, "pieces come in file order");
                last_end = b;
                covered.insert(a, b);
            }
            let mut expect = RangeSet::new();
            for (a, b) in missing { expect.insert(a, b); }
            prop_assert_eq!(covered, expect);
        }
    }
}
