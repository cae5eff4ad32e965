//! Address pools as IPAM sees them, and the allocator's table of them.
//!
//! A [`Pool`] is a value built from the configuration: a name, its ranges, and two switches.
//! Configuration order matters — auto-assignment takes the first eligible pool. The table
//! normalises pools defensively (configuration validation already refuses these, but IPAM must
//! not depend on it): a pool's ranges are merged, an address listed by two pools belongs to the
//! first, and a second pool with an already-used name is ignored.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::range::{from_u128, to_u128, Family, IpRange};
use super::space::{buggy_v4, Space};

/// An address pool: where auto-assigned and requested addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// The pool's name, as Services name it in the address-pool annotation.
    pub name: String,
    /// Its addresses, IPv4 and IPv6 ranges in any order.
    pub ranges: Vec<IpRange>,
    /// Never hand out IPv4 addresses ending in `.0` or `.255`, neither automatically nor on
    /// request.
    pub avoid_buggy_ips: bool,
    /// Whether Services that ask for nothing in particular may get addresses from it; when
    /// `false` only Services that name the pool or request one of its addresses do.
    pub auto_assign: bool,
}

impl Pool {
    /// A pool with `auto_assign` on and `avoid_buggy_ips` off (the configuration defaults).
    pub fn new(name: impl Into<String>, ranges: Vec<IpRange>) -> Pool {
        Pool {
            name: name.into(),
            ranges,
            avoid_buggy_ips: false,
            auto_assign: true,
        }
    }

    /// The same pool with `auto_assign` set.
    pub fn with_auto_assign(mut self, auto_assign: bool) -> Pool {
        self.auto_assign = auto_assign;
        self
    }

    /// The same pool with `avoid_buggy_ips` set.
    pub fn with_avoid_buggy_ips(mut self, avoid: bool) -> Pool {
        self.avoid_buggy_ips = avoid;
        self
    }
}

/// Whether `ip` is an IPv4 address ending in `.0` or `.255`, which pools with
/// `avoid_buggy_ips` never hand out.
pub fn is_buggy_ip(ip: IpAddr) -> bool {
    Family::of(ip) == Family::V4 && buggy_v4(to_u128(ip))
}

/// Size and use of one family of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FamilyUsage {
    /// Addresses that can be handed out (`.0`/`.255` excluded when the pool avoids them),
    /// saturating at `u128::MAX`.
    pub size: u128,
    /// Distinct addresses in use (an address shared by several Services counts once).
    pub used: u128,
}

/// Size and use of a pool, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUsage {
    /// Addresses that can be handed out, both families, saturating.
    pub size: u128,
    /// Distinct addresses in use, both families.
    pub used: u128,
    /// The IPv4 part.
    pub ipv4: FamilyUsage,
    /// The IPv6 part.
    pub ipv6: FamilyUsage,
}

/// One pool in the allocator's table.
#[derive(Debug, Clone)]
pub(crate) struct PoolState {
    pub(crate) name: String,
    pub(crate) auto_assign: bool,
    v4: Space,
    v6: Space,
}

impl PoolState {
    /// The pool's addresses of `family`.
    pub(crate) fn space(&self, family: Family) -> &Space {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    pub(crate) fn space_mut(&mut self, family: Family) -> &mut Space {
        match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        }
    }

    /// Whether the pool has any address of `family` (assignable or not).
    pub(crate) fn has_family(&self, family: Family) -> bool {
        !self.space(family).segments().is_empty()
    }

    /// Whether the pool never hands out `ip`.
    pub(crate) fn skips(&self, ip: IpAddr) -> bool {
        self.space(Family::of(ip)).skips(to_u128(ip))
    }

    /// The lowest address of `family` neither taken nor skipped.
    pub(crate) fn lowest_free(&self, family: Family) -> Option<IpAddr> {
        self.space(family)
            .lowest_free()
            .map(|v| from_u128(family, v))
    }

    pub(crate) fn usage(&self) -> PoolUsage {
        let fam = |s: &Space| FamilyUsage {
            size: s.size(),
            used: s.used(),
        };
        let (ipv4, ipv6) = (fam(&self.v4), fam(&self.v6));
        PoolUsage {
            size: ipv4.size.saturating_add(ipv6.size),
            used: ipv4.used.saturating_add(ipv6.used),
            ipv4,
            ipv6,
        }
    }
}

/// The pools, normalised, with an index from address to pool.
#[derive(Debug, Clone, Default)]
pub(crate) struct PoolTable {
    pools: Vec<PoolState>,
    by_name: BTreeMap<String, usize>,
    /// `(family, segment start)` → `(segment end, pool index)`.
    index: BTreeMap<(Family, u128), (u128, usize)>,
}

impl PoolTable {
    pub(crate) fn new(pools: &[Pool]) -> PoolTable {
        let mut table = PoolTable::default();
        let mut claimed: [Vec<(u128, u128)>; 2] = [Vec::new(), Vec::new()];
        for pool in pools {
            if table.by_name.contains_key(&pool.name) {
                continue;
            }
            let idx = table.pools.len();
            let spaces = [Family::V4, Family::V6].map(|family| {
                let fi = family_index(family);
                let own = merge(
                    pool.ranges
                        .iter()
                        .filter(|r| r.family() == family)
                        .map(|r| (to_u128(r.start()), to_u128(r.end())))
                        .collect(),
                );
                let segments = subtract(&own, &claimed[fi]);
                let mut all = std::mem::take(&mut claimed[fi]);
                all.extend(own);
                claimed[fi] = merge(all);
                for &(lo, hi) in &segments {
                    table.index.insert((family, lo), (hi, idx));
                }
                Space::new(segments, pool.avoid_buggy_ips && family == Family::V4)
            });
            let [v4, v6] = spaces;
            table.by_name.insert(pool.name.clone(), idx);
            table.pools.push(PoolState {
                name: pool.name.clone(),
                auto_assign: pool.auto_assign,
                v4,
                v6,
            });
        }
        table
    }

    /// The pools in configuration order.
    pub(crate) fn pools(&self) -> &[PoolState] {
        &self.pools
    }

    pub(crate) fn get(&self, idx: usize) -> Option<&PoolState> {
        self.pools.get(idx)
    }

    pub(crate) fn get_mut(&mut self, idx: usize) -> Option<&mut PoolState> {
        self.pools.get_mut(idx)
    }

    /// The index of the pool called `name`.
    pub(crate) fn by_name(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The index of the pool holding `ip`.
    pub(crate) fn locate(&self, ip: IpAddr) -> Option<usize> {
        let family = Family::of(ip);
        let v = to_u128(ip);
        self.index
            .range(..=(family, v))
            .next_back()
            .filter(|((f, _), (end, _))| *f == family && *end >= v)
            .map(|(_, &(_, idx))| idx)
    }

    /// The pool names in configuration order.
    pub(crate) fn names(&self) -> Vec<String> {
        self.pools.iter().map(|p| p.name.clone()).collect()
    }
}

fn family_index(family: Family) -> usize {
    match family {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// Sorted, disjoint, non-adjacent intervals covering the same values.
fn merge(mut intervals: Vec<(u128, u128)>) -> Vec<(u128, u128)> {
    intervals.sort_unstable();
    let mut out: Vec<(u128, u128)> = Vec::with_capacity(intervals.len());
    for (lo, hi) in intervals {
        match out.last_mut() {
            Some((_, last_hi)) if last_hi.checked_add(1).is_none_or(|n| lo <= n) => {
                *last_hi = (*last_hi).max(hi);
            }
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// `a` minus `b`; both sorted, disjoint, non-adjacent; so is the result.
fn subtract(a: &[(u128, u128)], b: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    for &(lo, hi) in a {
        let mut cur = Some(lo);
        for &(blo, bhi) in b {
            let Some(c) = cur else { break };
            if bhi < c || blo > hi {
                continue;
            }
            if blo > c {
                out.push((c, blo - 1));
            }
            cur = bhi.checked_add(1).filter(|n| *n <= hi);
        }
        if let Some(c) = cur {
            out.push((c, hi));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> IpRange {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn merge_and_subtract() {
        assert_eq!(
            merge(vec![(5, 9), (1, 3), (4, 4), (20, 30)]),
            [(1, 9), (20, 30)]
        );
        assert_eq!(merge(vec![(0, u128::MAX), (5, 6)]), [(0, u128::MAX)]);
        assert_eq!(
            subtract(&[(0, 100)], &[(10, 20), (50, 60)]),
            [(0, 9), (21, 49), (61, 100)]
        );
        assert_eq!(subtract(&[(10, 20)], &[(0, 100)]), []);
        assert_eq!(subtract(&[(0, u128::MAX)], &[(5, u128::MAX)]), [(0, 4)]);
    }

    #[test]
    fn locate_finds_the_first_pool_holding_an_address() {
        let t = PoolTable::new(&[
            Pool::new("a", vec![r("10.0.0.0/30"), r("fd00::/127")]),
            Pool::new("b", vec![r("10.0.0.2-10.0.0.9")]),
            Pool::new("a", vec![r("192.168.0.0/24")]),
        ]);
        assert_eq!(t.pools().len(), 2, "a duplicate name is ignored");
        assert_eq!(t.locate(ip("10.0.0.3")), Some(0));
        assert_eq!(t.locate(ip("10.0.0.4")), Some(1));
        assert_eq!(t.locate(ip("fd00::1")), Some(0));
        assert_eq!(t.locate(ip("fd00::2")), None);
        assert_eq!(t.locate(ip("192.168.0.1")), None);
        assert_eq!(
            t.get(1).unwrap().usage().size,
            6,
            "overlap belongs to the first pool"
        );
        assert_eq!(t.by_name("b"), Some(1));
    }

    #[test]
    fn usage_counts_sizes_without_buggy_addresses() {
        let t = PoolTable::new(&[
            Pool::new("p", vec![r("10.0.0.0/23"), r("fd00::/120")]).with_avoid_buggy_ips(true)
        ]);
        let u = t.get(0).unwrap().usage();
        assert_eq!(u.ipv4.size, 512 - 4);
        assert_eq!(u.ipv6.size, 256, "IPv6 has no buggy addresses");
        assert_eq!(u.size, 508 + 256);
        assert!(is_buggy_ip(ip("10.0.1.255")) && !is_buggy_ip(ip("fd00::ff")));
    }

    #[test]
    fn huge_pools_are_never_materialised() {
        let t = PoolTable::new(&[Pool::new("v6", vec![r("fd00::/64"), r("::/0")])]);
        let p = t.get(0).unwrap();
        assert_eq!(p.usage().ipv6.size, u128::MAX);
        assert_eq!(p.lowest_free(Family::V6), Some(ip("::")));
    }
}
