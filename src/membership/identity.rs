//! Who a gossip member is: its Kubernetes node name, the address its gossip listens on, and a
//! boot id that grows with every start of the daemon.
//!
//! foca keys members by [`foca::Identity::addr`] — here the gossip socket address — and when
//! two identities share an address keeps the one that wins [`foca::Identity::win_addr_conflict`]:
//! the higher boot id. So a restarted daemon (new boot id: its start time in milliseconds)
//! replaces its previous life at once, everywhere, without waiting for that one to be declared
//! down. [`foca::Identity::renew`] (called when the cluster declared us down, e.g. after a
//! partition or a long stall) bumps the boot id by one, which wins as well and rejoins at once.
//!
//! The identity is deliberately lean — it travels in every message header, twice — so the
//! member's metadata (pool fingerprint, pools, claims) travels separately, in versioned
//! broadcasts (see `meta`).

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

/// A member's identity.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId {
    /// The Kubernetes Node name.
    pub node: String,
    /// Where its gossip listens (the address others send to).
    pub addr: SocketAddr,
    /// Grows with every start (milliseconds since the epoch at start) and every renewal.
    pub boot: u64,
}

impl NodeId {
    /// An identity.
    pub fn new(node: impl Into<String>, addr: SocketAddr, boot: u64) -> NodeId {
        NodeId {
            node: node.into(),
            addr,
            boot,
        }
    }

    /// What we send a join request to when all we know is an address: foca accepts an
    /// announce addressed to any identity with the receiver's address.
    pub fn placeholder(addr: SocketAddr) -> NodeId {
        NodeId {
            node: String::new(),
            addr,
            boot: 0,
        }
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.node, self.addr, self.boot)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl foca::Identity for NodeId {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(NodeId {
            node: self.node.clone(),
            addr: self.addr,
            boot: self.boot.saturating_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        // Newer life wins; the node name only breaks (pathological) ties deterministically.
        (self.boot, &self.node) > (adversary.boot, &adversary.node)
    }
}

#[cfg(test)]
mod tests {
    use foca::Identity;

    use super::*;

    fn id(node: &str, boot: u64) -> NodeId {
        NodeId::new(node, "10.0.0.1:7946".parse().unwrap(), boot)
    }

    #[test]
    fn a_restart_wins_over_its_previous_life() {
        let old = id("n1", 1_000);
        let new = id("n1", 2_000);
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
        assert_eq!(old.addr(), new.addr());
    }

    #[test]
    fn renew_wins_and_keeps_name_and_address() {
        let me = id("n1", 5);
        let renewed = me.renew().unwrap();
        assert_ne!(renewed, me);
        assert_eq!((renewed.node.as_str(), renewed.addr), ("n1", me.addr));
        assert!(renewed.win_addr_conflict(&me));
        // And a later restart (start time in ms) still beats a renewed identity.
        assert!(id("n1", 1_700_000_000_000).win_addr_conflict(&renewed.renew().unwrap()));
    }

    #[test]
    fn conflicts_are_antisymmetric() {
        let a = id("a", 7);
        let b = id("b", 7);
        assert_ne!(a.win_addr_conflict(&b), b.win_addr_conflict(&a));
    }

    #[test]
    fn placeholder_shares_only_the_address() {
        let p = NodeId::placeholder("10.0.0.1:7946".parse().unwrap());
        assert_eq!(p.addr(), id("n1", 1).addr());
        assert!(id("n1", 1).win_addr_conflict(&p));
    }
}
