//! A peer's [`Routes`] from the addresses this node advertises and their pools' settings.

use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::{RouteAttrs, Routes};
use crate::bgp::codec::{Community, LargeCommunity};
use crate::config::{self, BgpAdvertisement};

/// How a pool's addresses become routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAdvert {
    /// Prefix length of IPv4 routes (32: one route per address).
    pub aggregation_length: u8,
    /// Prefix length of IPv6 routes (128: one route per address).
    pub aggregation_length_v6: u8,
    /// Attributes of the pool's routes.
    pub attrs: Arc<RouteAttrs>,
}

impl PoolAdvert {
    /// From a pool's `[pool.bgp]`.
    pub fn from_config(adv: &BgpAdvertisement) -> Self {
        let mut attrs = RouteAttrs {
            local_pref: adv.local_pref,
            ..RouteAttrs::default()
        };
        for community in &adv.communities {
            match *community {
                config::Community::Standard(value) => attrs.communities.push(Community(value)),
                config::Community::Large(global, local1, local2) => {
                    attrs.large_communities.push(LargeCommunity {
                        global,
                        local1,
                        local2,
                    })
                }
            }
        }
        normalise(&mut attrs);
        Self {
            aggregation_length: adv.aggregation_length,
            aggregation_length_v6: adv.aggregation_length_v6,
            attrs: Arc::new(attrs),
        }
    }

    /// The route covering `address`: the address itself, or the aggregate it falls in.
    pub fn prefix(&self, address: IpAddr) -> IpNet {
        let len = match address {
            IpAddr::V4(_) => self.aggregation_length.min(32),
            IpAddr::V6(_) => self.aggregation_length_v6.min(128),
        };
        // Lengths are clamped to the family's maximum, so this cannot fail; fall back to a
        // host route rather than panic.
        IpNet::new(address, len)
            .map(|n| n.trunc())
            .unwrap_or_else(|_| IpNet::from(address))
    }
}

/// The routes for `addresses` (each with its pool's settings). Two addresses aggregated into
/// one prefix with different attributes (pools sharing an aggregate) give one route with
/// both pools' communities and the higher local preference, so the result does not depend
/// on the order of the input.
pub fn build<'a>(addresses: impl IntoIterator<Item = (IpAddr, &'a PoolAdvert)>) -> Routes {
    let mut routes = Routes::new();
    for (address, pool) in addresses {
        match routes.entry(pool.prefix(address)) {
            Entry::Vacant(e) => {
                e.insert(Arc::clone(&pool.attrs));
            }
            Entry::Occupied(mut e) => {
                if *e.get() != pool.attrs {
                    let merged = merge(e.get(), &pool.attrs);
                    e.insert(Arc::new(merged));
                }
            }
        }
    }
    routes
}

fn merge(a: &RouteAttrs, b: &RouteAttrs) -> RouteAttrs {
    let mut out = RouteAttrs {
        communities: [a.communities.as_slice(), b.communities.as_slice()].concat(),
        large_communities: [
            a.large_communities.as_slice(),
            b.large_communities.as_slice(),
        ]
        .concat(),
        local_pref: a.local_pref.max(b.local_pref),
    };
    normalise(&mut out);
    out
}

fn normalise(attrs: &mut RouteAttrs) {
    attrs.communities.sort_unstable();
    attrs.communities.dedup();
    attrs.large_communities.sort_unstable();
    attrs.large_communities.dedup();
}
