//! Which nodes may announce a pool's addresses, worked out once per plan (not per Service):
//! a node table with each node's pool-independent standing, then per pool the eligible nodes.

use std::collections::{BTreeMap, BTreeSet};

use super::{PlanNode, PlanPool, Reason};

/// The label that keeps a node out of load balancing (any value, as Kubernetes' service
/// controller and MetalLB read it).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Why `node` may announce nothing at all, whatever the pool: `None` if it may.
///
/// Liveness: without gossip (`alive == None`) the Node's `Ready` condition must be `True`; with
/// gossip the node must be in the alive set, and `Ready` must not be `False` (gossip notices a
/// dead node long before the API does; an unknown `Ready` does not veto a live member).
pub fn node_blocker(node: &PlanNode, alive: Option<&BTreeSet<String>>) -> Option<Reason> {
    match alive {
        None if node.ready != Some(true) => return Some(Reason::NodeNotReady),
        Some(set) if !set.contains(&node.name) => return Some(Reason::NodeNotAlive),
        Some(_) if node.ready == Some(false) => return Some(Reason::NodeNotReady),
        _ => {}
    }
    if node.labels.contains_key(EXCLUDE_LABEL) {
        return Some(Reason::NodeExcluded);
    }
    if node.network_unavailable {
        return Some(Reason::NodeNetworkUnavailable);
    }
    None
}

/// Whether `labels` carry every pair of `selector` (an empty selector selects every node).
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The nodes known to the API, by index (sorted by name, one per name), and this node's index.
pub(super) struct NodeTable<'a> {
    /// Sorted, unique.
    pub names: Vec<&'a str>,
    nodes: Vec<&'a PlanNode>,
    blockers: Vec<Option<Reason>>,
    /// This node's index; `None` if the API does not know it.
    pub me: Option<u32>,
}

impl<'a> NodeTable<'a> {
    /// The table of `nodes` (a repeated name keeps its first object), standing judged with
    /// `alive`; `me` is this node's name.
    pub fn new(nodes: &'a [PlanNode], alive: Option<&BTreeSet<String>>, me: &str) -> Self {
        let mut sorted: Vec<&PlanNode> = nodes.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        sorted.dedup_by(|later, first| later.name == first.name);
        let names: Vec<&str> = sorted.iter().map(|n| n.name.as_str()).collect();
        let blockers = sorted.iter().map(|n| node_blocker(n, alive)).collect();
        let mut table = NodeTable {
            names,
            nodes: sorted,
            blockers,
            me: None,
        };
        table.me = table.index(me);
        table
    }

    /// The index of the node called `name`.
    pub fn index(&self, name: &str) -> Option<u32> {
        let i = self.names.binary_search(&name).ok()?;
        u32::try_from(i).ok()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// The name of node `i`.
    pub fn name(&self, i: u32) -> &'a str {
        self.names[i as usize]
    }
}

/// The nodes that may announce one pool's addresses (before endpoints are considered).
pub(super) struct PoolNodes {
    /// Eligible node indices, ascending.
    pub eligible: Vec<u32>,
    /// `member[i]`: node `i` is eligible.
    pub member: Vec<bool>,
    /// This node's standing for the pool: `Err` says why it may not announce.
    pub me: Result<(), Reason>,
}

impl PoolNodes {
    /// The eligible nodes of `pool` among `table`.
    pub fn new(table: &NodeTable<'_>, pool: &PlanPool) -> Self {
        let mut member = vec![false; table.len()];
        let mut eligible = Vec::new();
        for (i, node) in table.nodes.iter().enumerate() {
            if table.blockers[i].is_none() && selects(&pool.node_selector, &node.labels) {
                member[i] = true;
                // The table's length came from a Vec of indices that fit u32 (see `index`).
                eligible.extend(u32::try_from(i).ok());
            }
        }
        let me = match table.me {
            None => Err(Reason::NodeUnknown),
            Some(i) => match table.blockers[i as usize] {
                Some(reason) => Err(reason),
                None if !member[i as usize] => Err(Reason::NodeNotSelected),
                None => Ok(()),
            },
        };
        PoolNodes {
            eligible,
            member,
            me,
        }
    }

    /// Whether node `i` is eligible.
    pub fn has(&self, i: u32) -> bool {
        self.member.get(i as usize).copied().unwrap_or(false)
    }
}
