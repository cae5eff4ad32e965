//! The plan: which of the Services' addresses THIS node announces, and why not the others.
//! Pure — no IO, no clock, no tokio; a function of values ([`PlanInput`] → [`Plan`]).
//!
//! Inputs are only what every daemon sees alike: the configured pools, the Nodes, the
//! Services' *status* addresses with their endpoint nodes, and (once gossip lands) the alive
//! members. Never the allocator's memory: a speaker announces what the API says.
//!
//! # Rules
//!
//! - **Pool.** An address belongs to the pool whose ranges contain it (validation keeps pools
//!   from overlapping). In no pool: nobody announces it ([`Reason::NoPool`]).
//! - **Eligible nodes** for an address of Service `S` in pool `P`: known to the API; alive —
//!   without gossip, `Ready=True`; with gossip, in the alive set and `Ready` not `False`;
//!   matching `P`'s `node_selector` (every pair); without the label
//!   [`EXCLUDE_LABEL`](eligibility::EXCLUDE_LABEL) (any value); without `NetworkUnavailable=True`;
//!   and, when `S` has `externalTrafficPolicy: Local`, holding an endpoint of `S`. A Service
//!   without endpoints on any node has no eligible node.
//! - **Layer-2 owner.** Exactly one node announces an l2 address: the eligible node with the
//!   smallest [`rank_key`] for the Service's FIRST address (MetalLB's ranking; see [`rank`]),
//!   so both families of a dual-stack Service land on one node. When several Services hold one
//!   address (`allow-shared-ip`) it still gets one owner: the candidates are the union of the
//!   holders' eligible nodes, ranked by the first address of the holder with the smallest key.
//!   When the holders agree on both (same first address, same endpoints: the normal case),
//!   that is exactly MetalLB's choice; when they do not, MetalLB would let two nodes answer
//!   ARP for one address, ferrolb does not.
//! - **BGP.** Every eligible node advertises a bgp address; there is no owner.
//! - **Reasons.** When this node does not announce an address it says why, checked in this
//!   order: [`NoPool`](Reason::NoPool); its own standing — [`NodeUnknown`](Reason::NodeUnknown),
//!   [`NodeNotAlive`](Reason::NodeNotAlive), [`NodeNotReady`](Reason::NodeNotReady),
//!   [`NodeExcluded`](Reason::NodeExcluded),
//!   [`NodeNetworkUnavailable`](Reason::NodeNetworkUnavailable),
//!   [`NodeNotSelected`](Reason::NodeNotSelected); then the Service's —
//!   [`NoEndpoints`](Reason::NoEndpoints); then (l2) [`NoEligibleNode`](Reason::NoEligibleNode)
//!   when nobody at all may announce it (its endpoints are all on ineligible nodes);
//!   [`NoLocalEndpoints`](Reason::NoLocalEndpoints); (l2) [`NotOwner`](Reason::NotOwner).
//!   A node that is itself ineligible reports its own standing even when nobody else is
//!   eligible either: that is what can be fixed on this node, and the entry's `owner: None`
//!   already says the address is dark.
//!
//! The ranking and eligibility are built once per plan (per node, then per pool), so a plan
//! costs one SHA-256 per (Service, candidate node) plus a sort: see `benches/plan.rs`.
//!
//! Sticky ownership (the membership issue) will add the owners' current claims as one more
//! input; the output does not change shape.

mod decide;
pub mod eligibility;
pub mod rank;
pub mod reason;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::config::Mode;
use crate::ipam::IpRange;

pub use decide::plan;
pub use eligibility::{node_blocker, selects, EXCLUDE_LABEL};
pub use rank::{owner, rank_key};
pub use reason::Reason;

/// A configured pool, as far as announcing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPool {
    /// The pool's name.
    pub name: String,
    /// Its addresses (pools never overlap).
    pub ranges: Vec<IpRange>,
    /// How its addresses are announced.
    pub mode: PlanMode,
    /// Nodes that may announce its addresses (label → value, all must match); empty: all.
    pub node_selector: BTreeMap<String, String>,
}

/// How a pool's addresses are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanMode {
    /// ARP/NDP from one owner node.
    L2 {
        /// Interfaces to answer on; empty: chosen automatically.
        interfaces: Vec<String>,
    },
    /// Routes to BGP peers from every eligible node.
    Bgp,
}

/// A Node object, as far as announcing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanNode {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The `Ready` condition: `Some(true)` True, `Some(false)` False, `None` Unknown or absent.
    pub ready: Option<bool>,
    /// The condition `NetworkUnavailable` is `True`.
    pub network_unavailable: bool,
}

/// A LoadBalancer Service, as far as announcing goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanService {
    /// `"namespace/name"`.
    pub key: String,
    /// `status.loadBalancer.ingress` IPs in status order; the first is the ranking address.
    pub addresses: Vec<IpAddr>,
    /// `externalTrafficPolicy: Local`: only nodes holding an endpoint may announce.
    pub local_traffic: bool,
    /// Nodes holding a ready (or serving) endpoint of the Service.
    pub endpoint_nodes: BTreeSet<String>,
}

/// Everything a plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// This node's name.
    pub node: &'a str,
    /// The configured pools.
    pub pools: &'a [PlanPool],
    /// The Node objects.
    pub nodes: &'a [PlanNode],
    /// The Services holding addresses.
    pub services: &'a [PlanService],
    /// Alive members from gossip; `None` = no gossip yet: liveness is Node `Ready == Some(true)`.
    pub alive: Option<&'a BTreeSet<String>>,
}

/// This node's desired announcements: one [`Entry`] per (Service, address), sorted by
/// (address, Service).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// The entries.
    pub entries: Vec<Entry>,
}

/// One address of one Service, from this node's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The Service's `"namespace/name"`.
    pub service: String,
    /// The address.
    pub address: IpAddr,
    /// The pool holding the address; `None`: in no pool.
    pub pool: Option<String>,
    /// The pool's mode; `None`: in no pool.
    pub mode: Option<Mode>,
    /// l2: the node announcing the address (this one or another), `None` if nobody may;
    /// bgp and no pool: `None`.
    pub owner: Option<String>,
    /// What this node does with the address.
    pub decision: Decision,
}

/// Whether this node announces an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Announce it.
    Announce {
        /// l2: the pool's explicit interfaces; empty = automatic selection. bgp: empty.
        interfaces: Vec<String>,
    },
    /// Do not, and why.
    Skip(Reason),
}

impl Decision {
    /// Whether this is [`Decision::Announce`].
    pub fn is_announce(&self) -> bool {
        matches!(self, Decision::Announce { .. })
    }
}

impl Plan {
    /// This node's L2 announcements: address → interfaces (empty Vec = automatic selection).
    /// Union over Services sharing an address (interfaces merged; an address is in one pool,
    /// so they agree).
    pub fn l2(&self) -> BTreeMap<IpAddr, Vec<String>> {
        let mut out: BTreeMap<IpAddr, Vec<String>> = BTreeMap::new();
        for e in &self.entries {
            if let (Some(Mode::L2), Decision::Announce { interfaces }) = (e.mode, &e.decision) {
                let merged = out.entry(e.address).or_default();
                for i in interfaces {
                    if !merged.contains(i) {
                        merged.push(i.clone());
                    }
                }
            }
        }
        out
    }

    /// This node's BGP announcements (every eligible node advertises).
    pub fn bgp(&self) -> BTreeSet<IpAddr> {
        self.entries
            .iter()
            .filter(|e| e.mode == Some(Mode::Bgp) && e.decision.is_announce())
            .map(|e| e.address)
            .collect()
    }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
