//! Why this node does not announce an address. The `Display` strings are user-visible (status
//! output, logs, Events) and stable: never rename one.

use std::fmt;

/// Why this node does not announce an address of a Service, most actionable first: see
/// [`plan`](super::plan) for the order in which they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The address lies in no configured pool, so no node announces it.
    NoPool,
    /// This node has no Node object in the API.
    NodeUnknown,
    /// This node is not in the gossip membership's alive set.
    NodeNotAlive,
    /// This node's `Ready` condition is not `True` (without gossip) or is `False` (with gossip).
    NodeNotReady,
    /// This node carries the label `node.kubernetes.io/exclude-from-external-load-balancers`.
    NodeExcluded,
    /// This node has the condition `NetworkUnavailable=True`.
    NodeNetworkUnavailable,
    /// This node does not match the pool's `node_selector`.
    NodeNotSelected,
    /// The pool is l2 and this node has no usable interface for it (its gossip metadata
    /// says so): no interface is up with a subnet containing the pool's addresses.
    NoUsableInterface,
    /// The Service has no ready (or serving) endpoint on any node, so no node announces it.
    NoEndpoints,
    /// Nobody may announce the address: the nodes holding the Service's endpoints
    /// (`externalTrafficPolicy: Local`) are all ineligible.
    NoEligibleNode,
    /// `externalTrafficPolicy: Local` and this node holds no endpoint of the Service.
    NoLocalEndpoints,
    /// Another node ranks first for the address (layer 2: one node announces it).
    NotOwner,
    /// `l2.require_quorum` is on and this node sees no majority of the known gossip members
    /// (it may be on the small side of a partition). Decided by the daemon after planning.
    NoQuorum,
}

impl Reason {
    /// The stable camelCase name (`"notOwner"`, `"noLocalEndpoints"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoPool => "noPool",
            Reason::NodeUnknown => "nodeUnknown",
            Reason::NodeNotAlive => "nodeNotAlive",
            Reason::NodeNotReady => "nodeNotReady",
            Reason::NodeExcluded => "nodeExcluded",
            Reason::NodeNetworkUnavailable => "nodeNetworkUnavailable",
            Reason::NodeNotSelected => "nodeNotSelected",
            Reason::NoUsableInterface => "noUsableInterface",
            Reason::NoEndpoints => "noEndpoints",
            Reason::NoEligibleNode => "noEligibleNode",
            Reason::NoLocalEndpoints => "noLocalEndpoints",
            Reason::NotOwner => "notOwner",
            Reason::NoQuorum => "noQuorum",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
