//! [`plan`]: the rules of the module documentation, computed in one pass over the Services'
//! addresses sorted by (address, Service), with node and pool eligibility worked out once.

use std::net::IpAddr;

use crate::config::{Failback, Mode};
use crate::ipam::range::to_u128;
use crate::ipam::Family;

use super::eligibility::{NodeTable, PoolNodes};
use super::memo::{RankMemo, TOP};
use super::rank::{min_by_rank, AddrText};
use super::{Decision, Entry, Plan, PlanInput, PlanMode, PlanPool, PlanService, Reason};

/// This node's desired announcements for `input` (see the [module documentation](super)).
/// [`Planner`](super::Planner) gives the same plans faster when called repeatedly.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    run(input, None)
}

/// [`plan`], with remembered rankings if `memo` is given.
pub(super) fn run(input: &PlanInput<'_>, mut memo: Option<&mut RankMemo>) -> Plan {
    let nodes = NodeTable::new(input.nodes, input.alive, input.node);
    if let Some(m) = memo.as_deref_mut() {
        m.begin(&nodes);
    }
    let pools: Vec<PoolNodes> = input
        .pools
        .iter()
        .map(|p| PoolNodes::new(&nodes, p, input.announceable))
        .collect();
    let index = RangeIndex::new(input.pools);
    let services: Vec<Svc> = input
        .services
        .iter()
        .map(|s| Svc::new(s, &nodes, input.node))
        .collect();
    let mut ctx = Ctx {
        input,
        nodes: &nodes,
        pools: &pools,
        services: &services,
        memo,
    };

    // One row per (address, Service), sorted by address; a Service listing an address twice
    // gets one. Holders of one address are put in key order below (most addresses have one).
    // Sorting by (family, number) orders as `IpAddr` does, comparing integers.
    let mut rows: Vec<(Family, u128, u32, IpAddr)> = Vec::new();
    for (i, s) in input.services.iter().enumerate() {
        let Ok(i) = u32::try_from(i) else { break };
        rows.extend(
            s.addresses
                .iter()
                .map(|&a| (Family::of(a), to_u128(a), i, a)),
        );
    }
    rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));
    rows.dedup_by_key(|r| (r.0, r.1, r.2));

    // The last owner worked out per Service: (pool, owner). A dual-stack Service's two
    // addresses are far apart in `rows` but rank the same way, so this halves the hashing.
    let mut last: Vec<Option<(usize, Option<u32>)>> = vec![None; services.len()];
    let mut holders: Vec<u32> = Vec::new();
    let mut entries = Vec::with_capacity(rows.len());
    for run in rows.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let address = run[0].3;
        holders.clear();
        holders.extend(run.iter().map(|r| r.2));
        if holders.len() > 1 {
            holders.sort_by(|&a, &b| {
                let key = |s: u32| &input.services[s as usize].key;
                key(a).cmp(key(b)).then(a.cmp(&b))
            });
        }
        let Some(p) = index.find(address) else {
            for &s in &holders {
                entries.push(ctx.entry(s, address, None, None, Decision::Skip(Reason::NoPool)));
            }
            continue;
        };
        match &input.pools[p].mode {
            PlanMode::L2 { interfaces } => {
                let owner = match ctx.claimed(p, &holders, address) {
                    Some(o) => Some(o),
                    None => match holders.as_slice() {
                        [s] => match last[*s as usize] {
                            Some((q, o)) if q == p => o,
                            _ => {
                                let o = ctx.l2_owner(p, &holders);
                                last[*s as usize] = Some((p, o));
                                o
                            }
                        },
                        _ => ctx.l2_owner(p, &holders),
                    },
                };
                for &s in &holders {
                    let decision = if owner.is_some() && owner == nodes.me {
                        Decision::Announce {
                            interfaces: interfaces.clone(),
                        }
                    } else {
                        Decision::Skip(ctx.l2_reason(p, s, owner))
                    };
                    entries.push(ctx.entry(s, address, Some(p), owner, decision));
                }
            }
            PlanMode::Bgp => {
                for &s in &holders {
                    let decision = match ctx.bgp_reason(p, s) {
                        None => Decision::Announce {
                            interfaces: Vec::new(),
                        },
                        Some(r) => Decision::Skip(r),
                    };
                    entries.push(ctx.entry(s, address, Some(p), None, decision));
                }
            }
        }
    }
    if let Some(m) = ctx.memo {
        m.end();
    }
    Plan { entries }
}

/// What the rows are decided from.
struct Ctx<'a, 'i, 'm> {
    input: &'a PlanInput<'i>,
    nodes: &'a NodeTable<'i>,
    pools: &'a [PoolNodes],
    services: &'a [Svc],
    memo: Option<&'m mut RankMemo>,
}

impl Ctx<'_, '_, '_> {
    /// The owner of an l2 address of pool `p` held by `holders` (in key order, not empty): the
    /// first-ranked of the union of their eligible nodes, for the first holder's first address.
    fn l2_owner(&mut self, p: usize, holders: &[u32]) -> Option<u32> {
        let lead = &self.input.services[*holders.first()? as usize];
        let address = *lead.addresses.first()?;
        let pool = &self.pools[p];
        if let [s] = holders {
            let svc = &self.services[*s as usize];
            return self.rank(address, svc.candidates(pool), |i| svc.accepts(pool, i));
        }
        let mut union = vec![false; self.nodes.len()];
        for &s in holders {
            for i in self.services[s as usize].candidates(pool) {
                union[i as usize] = true;
            }
        }
        let candidates = pool.eligible.iter().copied().filter(|&i| union[i as usize]);
        self.rank(address, candidates, |i| union[i as usize])
    }

    /// Sticky failback: the best-ranked (for the lead holder's first address) of the eligible
    /// candidates that currently claim `address`; `None` when nobody eligible claims it or
    /// claims do not count (no gossip, or `immediate`).
    fn claimed(&self, p: usize, holders: &[u32], address: IpAddr) -> Option<u32> {
        if self.input.failback != Failback::Sticky {
            return None;
        }
        let claimants = self.input.claims?.get(&address)?;
        let lead = &self.input.services[*holders.first()? as usize];
        let rank_address = *lead.addresses.first()?;
        let pool = &self.pools[p];
        let accepted = claimants
            .iter()
            .filter_map(|n| self.nodes.index(n))
            .filter(|&i| {
                holders
                    .iter()
                    .any(|&s| self.services[s as usize].accepts(pool, i))
            });
        let text = AddrText::new(rank_address);
        min_by_rank(accepted, &text, |&i| self.nodes.name(i)).map(|(_, i)| i)
    }

    /// The first-ranked of `candidates` (`accepts` tells them apart) for `address`: from the
    /// remembered rankings when there are enough candidates for that to pay, else by hashing
    /// each one.
    fn rank(
        &mut self,
        address: IpAddr,
        candidates: impl Iterator<Item = u32> + Clone,
        accepts: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        if let Some(memo) = self.memo.as_deref_mut() {
            // The memory holds the best few of all nodes: it answers when there are few nodes
            // or many candidates. A few candidates among many nodes (`Local` endpoints) are
            // most likely not among them: hashing those is cheaper than a miss.
            if self.nodes.len() <= TOP || candidates.clone().nth(TOP).is_some() {
                if let Some(i) = memo.lookup(self.nodes, address, accepts) {
                    return Some(i);
                }
            } else {
                memo.touch(address);
            }
        }
        let text = AddrText::new(address);
        min_by_rank(candidates, &text, |&i| self.nodes.name(i)).map(|(_, i)| i)
    }

    /// Why this node does not announce Service `s`'s l2 address of pool `p` owned by `owner`.
    fn l2_reason(&self, p: usize, s: u32, owner: Option<u32>) -> Reason {
        let svc = &self.services[s as usize];
        if let Err(r) = self.pools[p].me {
            r
        } else if !svc.has_endpoints {
            Reason::NoEndpoints
        } else if owner.is_none() {
            Reason::NoEligibleNode
        } else if svc.local && !svc.local_here {
            Reason::NoLocalEndpoints
        } else {
            Reason::NotOwner
        }
    }

    /// Why this node does not advertise Service `s`'s bgp address of pool `p`; `None`: it does.
    fn bgp_reason(&self, p: usize, s: u32) -> Option<Reason> {
        let svc = &self.services[s as usize];
        if let Err(r) = self.pools[p].me {
            Some(r)
        } else if !svc.has_endpoints {
            Some(Reason::NoEndpoints)
        } else if svc.local && !svc.local_here {
            Some(Reason::NoLocalEndpoints)
        } else {
            None
        }
    }

    fn entry(
        &self,
        s: u32,
        address: IpAddr,
        pool: Option<usize>,
        owner: Option<u32>,
        decision: Decision,
    ) -> Entry {
        let pool = pool.map(|p| &self.input.pools[p]);
        Entry {
            service: self.input.services[s as usize].key.clone(),
            address,
            pool: pool.map(|p| p.name.clone()),
            mode: pool.map(|p| match p.mode {
                PlanMode::L2 { .. } => Mode::L2,
                PlanMode::Bgp => Mode::Bgp,
            }),
            owner: owner.map(|i| self.nodes.name(i).to_string()),
            decision,
        }
    }
}

/// A Service's endpoint facts, resolved against the node table.
struct Svc {
    /// Some node holds an endpoint.
    has_endpoints: bool,
    local: bool,
    /// This node holds an endpoint.
    local_here: bool,
    /// Indices of the known nodes holding an endpoint, ascending (the table and the set are
    /// both in name order); only kept for `local`.
    endpoint_nodes: Vec<u32>,
}

impl Svc {
    fn new(s: &PlanService, nodes: &NodeTable<'_>, me: &str) -> Self {
        let endpoint_nodes = if s.local_traffic {
            s.endpoint_nodes
                .iter()
                .filter_map(|n| nodes.index(n))
                .collect()
        } else {
            Vec::new()
        };
        Svc {
            has_endpoints: !s.endpoint_nodes.is_empty(),
            local: s.local_traffic,
            local_here: s.endpoint_nodes.contains(me),
            endpoint_nodes,
        }
    }

    /// The nodes that may announce this Service's addresses of `pool`, ascending.
    fn candidates<'p>(&'p self, pool: &'p PoolNodes) -> Candidates<'p> {
        if !self.has_endpoints {
            Candidates::Nobody
        } else if self.local {
            Candidates::Local(self.endpoint_nodes.iter(), pool)
        } else {
            Candidates::Pool(pool.eligible.iter())
        }
    }

    /// Whether node `i` is one of [`Svc::candidates`].
    fn accepts(&self, pool: &PoolNodes, i: u32) -> bool {
        self.has_endpoints
            && pool.has(i)
            && (!self.local || self.endpoint_nodes.binary_search(&i).is_ok())
    }
}

/// The iterator of [`Svc::candidates`].
#[derive(Clone)]
enum Candidates<'p> {
    Nobody,
    /// Endpoint nodes that are eligible for the pool.
    Local(std::slice::Iter<'p, u32>, &'p PoolNodes),
    /// Every eligible node of the pool.
    Pool(std::slice::Iter<'p, u32>),
}

impl Iterator for Candidates<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Candidates::Nobody => None,
            Candidates::Local(it, pool) => it.by_ref().copied().find(|&i| pool.has(i)),
            Candidates::Pool(it) => it.next().copied(),
        }
    }
}

/// The pools' ranges, sorted, for finding an address's pool by binary search.
struct RangeIndex {
    /// (family, first, last, pool index), sorted by (family, first).
    ranges: Vec<(Family, u128, u128, usize)>,
}

impl RangeIndex {
    fn new(pools: &[PlanPool]) -> Self {
        let mut ranges: Vec<_> = pools
            .iter()
            .enumerate()
            .flat_map(|(p, pool)| {
                pool.ranges
                    .iter()
                    .map(move |r| (r.family(), to_u128(r.start()), to_u128(r.end()), p))
            })
            .collect();
        ranges.sort_unstable();
        RangeIndex { ranges }
    }

    /// The pool holding `address`.
    fn find(&self, address: IpAddr) -> Option<usize> {
        let key = (Family::of(address), to_u128(address));
        let after = self.ranges.partition_point(|r| (r.0, r.1) <= key);
        let r = self.ranges.get(after.checked_sub(1)?)?;
        (r.0 == key.0 && key.1 <= r.2).then_some(r.3)
    }
}
