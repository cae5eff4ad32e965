//! [`Planner`]: plans that remember rankings between calls, so the daemon's re-plan on every
//! change hashes almost nothing.

use std::collections::HashMap;
use std::net::IpAddr;

use super::decide::run;
use super::eligibility::NodeTable;
use super::rank::{rank_key_text, AddrText};
use super::{Plan, PlanInput};

/// How many of the best-ranked nodes are remembered per address. An owner is found in the
/// memory unless all of them are ineligible for the address.
pub(super) const TOP: usize = 4;

/// Plans exactly like [`plan`](super::plan) (a property test checks it), remembering between
/// calls, per ranking address, the four best-ranked of all known nodes. Readiness,
/// endpoints, labels and Services may change freely between calls: while the set of node
/// names stays the same, an owner among the remembered nodes needs no hashing. A new set of
/// names starts afresh; addresses a plan did not rank are forgotten.
///
/// Pure like the rest of the module: memory, no IO, no clock. The daemon keeps one and calls
/// [`Planner::plan`] on every change.
#[derive(Debug, Default)]
pub struct Planner {
    memo: RankMemo,
}

impl Planner {
    /// A planner with an empty memory.
    pub fn new() -> Self {
        Self::default()
    }

    /// This node's desired announcements for `input`: the same as [`plan`](super::plan).
    pub fn plan(&mut self, input: &PlanInput<'_>) -> Plan {
        run(input, Some(&mut self.memo))
    }
}

/// The remembered rankings.
#[derive(Debug, Default)]
pub(super) struct RankMemo {
    /// The node names (sorted) that [`Top::best`] indexes.
    names: Vec<String>,
    /// Per ranking address.
    tops: HashMap<IpAddr, Top>,
}

/// The best-ranked nodes of the whole node table for one address, best first.
#[derive(Debug)]
struct Top {
    best: Vec<u32>,
    /// Ranked by the current plan (the others are forgotten at its end).
    used: bool,
}

impl RankMemo {
    /// Starts a plan over `nodes`: forgets everything if the node names changed.
    pub(super) fn begin(&mut self, nodes: &NodeTable<'_>) {
        if !self
            .names
            .iter()
            .map(String::as_str)
            .eq(nodes.names.iter().copied())
        {
            self.names = nodes.names.iter().map(|s| s.to_string()).collect();
            self.tops.clear();
        }
    }

    /// The best-ranked node for `address` among those `is_candidate` accepts, if it is one of
    /// the remembered; `None`: rank the candidates directly.
    pub(super) fn lookup(
        &mut self,
        nodes: &NodeTable<'_>,
        address: IpAddr,
        is_candidate: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        let top = self
            .tops
            .entry(address)
            .or_insert_with(|| Top::of(nodes, address));
        top.used = true;
        top.best.iter().copied().find(|&i| is_candidate(i))
    }

    /// Notes that the current plan ranked `address` without the memory, so it is kept.
    pub(super) fn touch(&mut self, address: IpAddr) {
        if let Some(top) = self.tops.get_mut(&address) {
            top.used = true;
        }
    }

    /// Ends a plan: forgets the addresses it did not rank.
    pub(super) fn end(&mut self) {
        self.tops.retain(|_, t| std::mem::take(&mut t.used));
    }
}

impl Top {
    /// The [`TOP`] smallest `(rank_key, name)` of all nodes for `address`. Any node outside
    /// them ranks after every one of them, so the first candidate among them is the owner.
    fn of(nodes: &NodeTable<'_>, address: IpAddr) -> Top {
        let text = AddrText::new(address);
        let mut best: Vec<([u8; 32], u32)> = Vec::with_capacity(TOP + 1);
        // Indices ascend with names, so among equal keys a later node ranks after.
        for i in (0..nodes.len()).filter_map(|i| u32::try_from(i).ok()) {
            let key = rank_key_text(nodes.name(i), &text);
            if best.len() < TOP || best.last().is_some_and(|last| key < last.0) {
                let at = best.partition_point(|b| b.0 <= key);
                best.insert(at, (key, i));
                best.truncate(TOP);
            }
        }
        Top {
            best: best.into_iter().map(|(_, i)| i).collect(),
            used: true,
        }
    }
}
