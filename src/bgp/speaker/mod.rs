//! What each BGP peer should hold from this node, and the UPDATEs that get it there. Pure:
//! no sockets, no tokio, no clock.
//!
//! The daemon turns the plan's bgp entries into [`Routes`] for each peer with
//! [`routes::build`] (aggregation length, communities, local preference per pool). The
//! session task keeps one [`AdjRibOut`] per peer: when the session is Established it calls
//! [`AdjRibOut::sync`] with the peer's routes and the [`SessionFacts`] negotiated in the
//! OPEN exchange, and writes the returned UPDATEs; [`AdjRibOut::end_of_rib`] follows the
//! first full sync; [`AdjRibOut::clear`] forgets everything when the session goes down, so
//! the next session is sent the whole set again.
//!
//! Next hop and AS_PATH are per session, not per route: a node always advertises its own
//! address on the session as next hop (the router forwards straight to it), and an AS_PATH
//! of just our AS (eBGP) or empty (iBGP).

mod adj_rib_out;
pub mod routes;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::IpNet;

pub use adj_rib_out::AdjRibOut;

use super::codec::pack::Ipv6NextHop;
use super::codec::{Community, Context, LargeCommunity};

/// Attributes a pool attaches to its routes. ORIGIN, AS_PATH and the next hop are added per
/// session.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouteAttrs {
    /// Standard communities, sorted and without repeats.
    pub communities: Vec<Community>,
    /// Large communities, sorted and without repeats.
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF; sent to iBGP peers only (eBGP peers must ignore it, RFC 4271 §5.1.5).
    pub local_pref: Option<u32>,
}

/// What one peer should hold from us: prefix → attributes.
pub type Routes = BTreeMap<IpNet, Arc<RouteAttrs>>;

/// Facts about an Established session that decide what goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFacts {
    /// Our AS number.
    pub local_asn: u32,
    /// Both sides are in one AS.
    pub ibgp: bool,
    /// IPv4 unicast was negotiated (or neither side sent multiprotocol capabilities).
    pub ipv4: bool,
    /// IPv6 unicast was negotiated.
    pub ipv6: bool,
    /// Our IPv4 address on the session; `None`: IPv4 routes cannot be sent.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// Our IPv6 next hop; `None`: IPv6 routes cannot be sent.
    pub next_hop_v6: Option<Ipv6NextHop>,
    /// Wire format negotiated in the OPEN exchange.
    pub ctx: Context,
}

impl SessionFacts {
    /// Whether this session can carry `prefix`.
    pub fn carries(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => self.ipv4 && self.next_hop_v4.is_some(),
            IpNet::V6(_) => self.ipv6 && self.next_hop_v6.is_some(),
        }
    }
}

/// The LOCAL_PREF an iBGP peer gets when the pool sets none: FRR's, BIRD's and GoBGP's
/// default, sent explicitly because RFC 4271 §5.1.5 requires the attribute towards internal
/// peers.
pub const DEFAULT_LOCAL_PREF: u32 = 100;
