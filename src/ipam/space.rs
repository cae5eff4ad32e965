//! The addresses of one family of one pool, and which of them are taken, without ever
//! materialising the pool (an IPv6 /64 is 2^64 addresses).
//!
//! The pool's addresses are a few disjoint *segments* (its ranges, merged). Taken addresses are
//! kept as maximal *runs* in a `BTreeMap<start, end>`: a run is a maximal stretch of addresses
//! that are taken or skipped (`.0`/`.255` when the pool avoids buggy IPs) and contains at least
//! one taken address. Because runs are maximal, the address after a run is free (or outside the
//! segment), so the lowest free address is found with one or two `O(log n)` look-ups however
//! densely the pool is used, and marking or freeing an address costs `O(log n)`.
//!
//! Addresses are handled as `u128` values (see [`super::range::to_u128`]); IPv4 values stay
//! below 2^32, so the arithmetic near the ends only needs care for IPv6.

use std::collections::BTreeMap;

/// Whether the IPv4 address with value `v` ends in `.0` or `.255` (it confuses the smurf
/// protection of some consumer routers, hence MetalLB's `avoid-buggy-ips`).
pub(crate) fn buggy_v4(v: u128) -> bool {
    matches!(v & 0xff, 0 | 0xff)
}

/// How many IPv4 values in `0..=n` end in `.0` or `.255`.
fn buggy_upto(n: u128) -> u128 {
    2 * (n >> 8) + 1 + u128::from(n & 0xff == 0xff)
}

/// How many IPv4 values in `lo..=hi` end in `.0` or `.255`.
fn buggy_between(lo: u128, hi: u128) -> u128 {
    buggy_upto(hi) - lo.checked_sub(1).map_or(0, buggy_upto)
}

/// One family's addresses of one pool and the runs taken from them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Space {
    /// Disjoint, sorted, non-adjacent inclusive segments.
    segments: Vec<(u128, u128)>,
    /// Skip `.0` and `.255` (only ever set for IPv4).
    skip_buggy: bool,
    /// Maximal runs of taken-or-skipped addresses, each inside one segment.
    runs: BTreeMap<u128, u128>,
    /// Addresses that may be handed out.
    size: u128,
    /// Addresses marked taken.
    used: u128,
}

impl Space {
    /// A space over `segments` (disjoint, sorted, non-adjacent), skipping `.0`/`.255` if
    /// `skip_buggy` (callers set it for IPv4 only).
    pub(crate) fn new(segments: Vec<(u128, u128)>, skip_buggy: bool) -> Space {
        let size = segments.iter().fold(0u128, |acc, &(lo, hi)| {
            let mut n = (hi - lo).saturating_add(1);
            if skip_buggy {
                n -= buggy_between(lo, hi);
            }
            acc.saturating_add(n)
        });
        Space {
            segments,
            skip_buggy,
            runs: BTreeMap::new(),
            size,
            used: 0,
        }
    }

    /// The segments.
    pub(crate) fn segments(&self) -> &[(u128, u128)] {
        &self.segments
    }

    /// Addresses that may be handed out (skipped ones excluded), saturating.
    pub(crate) fn size(&self) -> u128 {
        self.size
    }

    /// Addresses marked taken.
    pub(crate) fn used(&self) -> u128 {
        self.used
    }

    /// Whether `v` is never handed out from this space (`.0`/`.255` when avoiding buggy IPs).
    pub(crate) fn skips(&self, v: u128) -> bool {
        self.skip_buggy && buggy_v4(v)
    }

    /// The segment holding `v`.
    fn segment_of(&self, v: u128) -> Option<(u128, u128)> {
        let i = self.segments.partition_point(|&(lo, _)| lo <= v);
        let (lo, hi) = *self.segments.get(i.checked_sub(1)?)?;
        (v <= hi).then_some((lo, hi))
    }

    /// The run holding `v`, as `(start, end)`.
    fn run_at(&self, v: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=v)
            .next_back()
            .filter(|(_, &end)| end >= v)
            .map(|(&s, &e)| (s, e))
    }

    /// The first value `>= v` that is not skipped (`None` past `u128::MAX`).
    fn unskipped_from(&self, mut v: u128) -> Option<u128> {
        while self.skips(v) {
            v = v.checked_add(1)?;
        }
        Some(v)
    }

    /// The lowest address that is neither taken nor skipped.
    pub(crate) fn lowest_free(&self) -> Option<u128> {
        for &(lo, hi) in &self.segments {
            let mut c = lo;
            while let Some(v) = self.unskipped_from(c).filter(|v| *v <= hi) {
                match self.run_at(v) {
                    None => return Some(v),
                    Some((_, end)) => match end.checked_add(1) {
                        Some(next) => c = next,
                        None => break,
                    },
                }
            }
        }
        None
    }

    /// Whether `v` is in a run (taken, or a skipped address next to a taken one).
    #[cfg(test)]
    pub(crate) fn in_run(&self, v: u128) -> bool {
        self.run_at(v).is_some()
    }

    /// Marks `v` taken. The caller marks each address once, when its first holder arrives;
    /// values outside the space, skipped values and values already taken are ignored.
    pub(crate) fn mark(&mut self, v: u128) {
        let Some((lo, hi)) = self.segment_of(v) else {
            return;
        };
        if self.skips(v) || self.run_at(v).is_some() {
            return;
        }
        let mut start = v;
        while start > lo && self.skips(start - 1) {
            start -= 1;
        }
        let mut end = v;
        while end < hi && self.skips(end + 1) {
            end += 1;
        }
        // Absorb the run touching on the left, then every run touching on the right.
        if let Some((rs, re)) = self
            .runs
            .range(..=start)
            .next_back()
            .map(|(&s, &e)| (s, e))
            .filter(|&(rs, re)| rs >= lo && re.saturating_add(1) >= start)
        {
            self.runs.remove(&rs);
            start = rs;
            end = end.max(re);
        }
        while let Some((rs, re)) = self
            .runs
            .range(start..)
            .next()
            .map(|(&s, &e)| (s, e))
            .filter(|&(rs, _)| rs <= hi && end.checked_add(1).is_none_or(|n| rs <= n))
        {
            self.runs.remove(&rs);
            end = end.max(re);
        }
        self.runs.insert(start, end);
        self.used = self.used.saturating_add(1);
    }

    /// Frees `v`. Values that are not taken are ignored.
    pub(crate) fn unmark(&mut self, v: u128) {
        if self.skips(v) {
            return;
        }
        let Some((rs, re)) = self.run_at(v) else {
            return;
        };
        self.runs.remove(&rs);
        if rs < v && !self.only_skipped(rs, v - 1) {
            self.runs.insert(rs, v - 1);
        }
        if v < re && !self.only_skipped(v + 1, re) {
            self.runs.insert(v + 1, re);
        }
        self.used = self.used.saturating_sub(1);
    }

    /// Whether every value of `a..=b` is skipped (at most two consecutive values can be).
    fn only_skipped(&self, a: u128, b: u128) -> bool {
        self.skip_buggy && b - a < 2 && (a..=b).all(buggy_v4)
    }

    /// Number of runs (for tests of the structure's compactness).
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> u128 {
        u128::from(u32::from_be_bytes([a, b, c, d]))
    }

    #[test]
    fn buggy_counting() {
        assert_eq!(buggy_between(0, 255), 2);
        assert_eq!(buggy_between(1, 254), 0);
        assert_eq!(buggy_between(255, 256), 2);
        assert_eq!(buggy_between(v4(10, 0, 0, 0), v4(10, 0, 255, 255)), 512);
        let s = Space::new(vec![(v4(10, 0, 0, 0), v4(10, 0, 0, 255))], true);
        assert_eq!(s.size(), 254);
    }

    #[test]
    fn lowest_free_skips_runs_and_buggy_addresses() {
        let mut s = Space::new(vec![(v4(10, 0, 0, 250), v4(10, 0, 1, 5))], true);
        assert_eq!(s.lowest_free(), Some(v4(10, 0, 0, 250)));
        for d in 250..=254 {
            s.mark(v4(10, 0, 0, d));
        }
        assert_eq!(s.lowest_free(), Some(v4(10, 0, 1, 1)));
        assert_eq!(s.run_count(), 1);
        s.mark(v4(10, 0, 1, 1));
        assert_eq!(s.run_count(), 1, "runs merge across .255/.0");
        s.unmark(v4(10, 0, 0, 252));
        assert_eq!(s.lowest_free(), Some(v4(10, 0, 0, 252)));
        assert_eq!(s.used(), 5);
    }

    #[test]
    fn lowest_free_moves_to_the_next_segment_and_reports_full() {
        let mut s = Space::new(vec![(1, 2), (10, 11)], false);
        s.mark(1);
        s.mark(2);
        assert_eq!(s.lowest_free(), Some(10));
        s.mark(10);
        s.mark(11);
        assert_eq!(s.lowest_free(), None);
        assert_eq!(s.used(), s.size());
    }

    #[test]
    fn ends_of_the_ipv6_space_do_not_overflow() {
        let mut s = Space::new(vec![(u128::MAX - 1, u128::MAX)], false);
        s.mark(u128::MAX);
        assert_eq!(s.lowest_free(), Some(u128::MAX - 1));
        s.mark(u128::MAX - 1);
        assert_eq!(s.lowest_free(), None);
        s.unmark(u128::MAX);
        assert_eq!(s.lowest_free(), Some(u128::MAX));
        let all = Space::new(vec![(0, u128::MAX)], false);
        assert_eq!(all.size(), u128::MAX);
    }

    proptest! {
        /// The run structure agrees with a naive set of taken addresses.
        #[test]
        fn agrees_with_a_naive_model(
            segs in proptest::collection::vec((0u32..1200, 0u32..300), 1..4),
            skip in any::<bool>(),
            ops in proptest::collection::vec((any::<bool>(), 0u32..1600), 0..200),
        ) {
            // Build disjoint, non-adjacent segments.
            let mut segments = Vec::new();
            let mut next = 0u128;
            for (gap, len) in segs {
                let lo = next + u128::from(gap);
                let hi = lo + u128::from(len);
                segments.push((lo, hi));
                next = hi + 2;
            }
            let mut s = Space::new(segments.clone(), skip);
            let usable = |v: u128| segments.iter().any(|&(lo, hi)| lo <= v && v <= hi)
                && !(skip && buggy_v4(v));
            let mut taken = BTreeSet::new();
            for (add, v) in ops {
                let v = u128::from(v);
                if add {
                    if usable(v) && taken.insert(v) {
                        s.mark(v);
                    }
                } else if taken.remove(&v) {
                    s.unmark(v);
                }
                let naive = segments
                    .iter()
                    .flat_map(|&(lo, hi)| lo..=hi)
                    .find(|v| usable(*v) && !taken.contains(v));
                prop_assert_eq!(s.lowest_free(), naive);
                prop_assert_eq!(s.used(), taken.len() as u128);
                for t in &taken {
                    prop_assert!(s.in_run(*t));
                }
            }
            let naive_size = segments.iter().flat_map(|&(lo, hi)| lo..=hi).filter(|v| usable(*v)).count();
            prop_assert_eq!(s.size(), naive_size as u128);
        }
    }
}
