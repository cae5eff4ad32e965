//! [`plan`]: the rules of the module documentation, computed in one pass over the Services'
//! addresses sorted by (address, Service), with node and pool eligibility worked out once.

use std::net::IpAddr;

use crate::config::Mode;
use crate::ipam::range::to_u128;
use crate::ipam::Family;

use super::eligibility::{NodeTable, PoolNodes};
use super::rank::min_by_rank;
use super::{Decision, Entry, Plan, PlanInput, PlanMode, PlanPool, PlanService, Reason};

/// This node's desired announcements for `input` (see the [module documentation](super)).
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let nodes = NodeTable::new(input.nodes, input.alive, input.node);
    let pools: Vec<PoolNodes> = input
        .pools
        .iter()
        .map(|p| PoolNodes::new(&nodes, p))
        .collect();
    let index = RangeIndex::new(input.pools);
    let services: Vec<Svc> = input
        .services
        .iter()
        .map(|s| Svc::new(s, &nodes, input.node))
        .collect();
    let ctx = Ctx {
        input,
        nodes: &nodes,
        pools: &pools,
        services: &services,
    };

    // One row per (address, Service), sorted; a Service listing an address twice gets one.
    let mut rows: Vec<(IpAddr, u32)> = Vec::new();
    for (i, s) in input.services.iter().enumerate() {
        let Ok(i) = u32::try_from(i) else { break };
        rows.extend(s.addresses.iter().map(|&a| (a, i)));
    }
    rows.sort_unstable_by(|a, b| {
        (a.0, &input.services[a.1 as usize].key, a.1).cmp(&(
            b.0,
            &input.services[b.1 as usize].key,
            b.1,
        ))
    });
    rows.dedup();

    // The last owner worked out per Service: (pool, owner). A dual-stack Service's two
    // addresses are far apart in `rows` but rank the same way, so this halves the hashing.
    let mut memo: Vec<Option<(usize, Option<u32>)>> = vec![None; services.len()];
    let mut entries = Vec::with_capacity(rows.len());
    for run in rows.chunk_by(|a, b| a.0 == b.0) {
        let address = run[0].0;
        let holders: Vec<u32> = run.iter().map(|r| r.1).collect();
        match index.find(address) {
            None => {
                for &s in &holders {
                    entries.push(ctx.entry(s, address, None, None, Decision::Skip(Reason::NoPool)));
                }
            }
            Some(p) => match &input.pools[p].mode {
                PlanMode::L2 { interfaces } => {
                    let owner = match holders.as_slice() {
                        [s] => {
                            let s = *s as usize;
                            match memo[s] {
                                Some((q, o)) if q == p => o,
                                _ => {
                                    let o = ctx.l2_owner(p, &holders);
                                    memo[s] = Some((p, o));
                                    o
                                }
                            }
                        }
                        _ => ctx.l2_owner(p, &holders),
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
            },
        }
    }
    Plan { entries }
}

/// What the rows are decided from.
struct Ctx<'a, 'i> {
    input: &'a PlanInput<'i>,
    nodes: &'a NodeTable<'i>,
    pools: &'a [PoolNodes],
    services: &'a [Svc],
}

impl Ctx<'_, '_> {
    /// The owner of an l2 address of pool `p` held by `holders` (sorted by key, not empty): the
    /// first-ranked of the union of their eligible nodes, for the first holder's first address.
    fn l2_owner(&self, p: usize, holders: &[u32]) -> Option<u32> {
        let lead = &self.input.services[*holders.first()? as usize];
        let text = lead.addresses.first()?.to_string();
        let pool = &self.pools[p];
        let rank = |candidates: &mut dyn Iterator<Item = u32>| {
            min_by_rank(candidates, &text, |&i| self.nodes.name(i)).map(|(_, i)| i)
        };
        if let [s] = holders {
            return rank(&mut self.services[*s as usize].candidates(pool));
        }
        let mut union = vec![false; self.nodes.len()];
        for &s in holders {
            for i in self.services[s as usize].candidates(pool) {
                union[i as usize] = true;
            }
        }
        rank(&mut pool.eligible.iter().copied().filter(|&i| union[i as usize]))
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
    /// Indices of the known nodes holding an endpoint, ascending (only kept for `local`).
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
}

/// The iterator of [`Svc::candidates`].
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
