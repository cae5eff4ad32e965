//! The adj-RIB-out of one peer: what it holds from us, and the UPDATEs that change that.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{RouteAttrs, Routes, SessionFacts, DEFAULT_LOCAL_PREF};
use crate::bgp::codec::{
    pack, AsPath, EncodeError, Family, Message, Origin, PathAttributes, Update,
};

/// What one peer holds from us (adj-RIB-out).
#[derive(Debug, Default)]
pub struct AdjRibOut {
    sent: Routes,
    /// The facts the routes in `sent` were announced under; different facts (a new session)
    /// mean every route must be announced again.
    facts: Option<SessionFacts>,
}

impl AdjRibOut {
    /// An empty adj-RIB-out: the peer holds nothing from us.
    pub fn new() -> Self {
        Self::default()
    }

    /// Encoded UPDATEs that take the peer from what it holds to `desired` (only what the
    /// session can carry): withdrawals first, so a moved prefix is never briefly doubled,
    /// then announcements grouped by equal attributes and packed up to the size limit.
    /// Records the new state only when every message could be encoded.
    pub fn sync(
        &mut self,
        desired: &Routes,
        facts: &SessionFacts,
    ) -> Result<Vec<Bytes>, EncodeError> {
        let same_session = self.facts.as_ref() == Some(facts);
        let mut withdraw_v4: Vec<Ipv4Net> = Vec::new();
        let mut withdraw_v6: Vec<Ipv6Net> = Vec::new();
        for prefix in self.sent.keys() {
            if !(desired.contains_key(prefix) && facts.carries(prefix)) {
                match prefix {
                    IpNet::V4(n) => withdraw_v4.push(*n),
                    IpNet::V6(n) => withdraw_v6.push(*n),
                }
            }
        }
        // Group what changed by attributes: one run of UPDATEs per distinct attribute set.
        let mut announce: BTreeMap<&RouteAttrs, (Vec<Ipv4Net>, Vec<Ipv6Net>)> = BTreeMap::new();
        let mut next = Routes::new();
        for (prefix, attrs) in desired.iter().filter(|(p, _)| facts.carries(p)) {
            next.insert(*prefix, Arc::clone(attrs));
            let unchanged = same_session
                && self
                    .sent
                    .get(prefix)
                    .is_some_and(|old| Arc::ptr_eq(old, attrs) || old == attrs);
            if unchanged {
                continue;
            }
            let group = announce.entry(attrs.as_ref()).or_default();
            match prefix {
                IpNet::V4(n) => group.0.push(*n),
                IpNet::V6(n) => group.1.push(*n),
            }
        }

        let mut out = pack::withdraw_ipv4(&withdraw_v4, &facts.ctx)?;
        out.extend(pack::withdraw_ipv6(&withdraw_v6, &facts.ctx)?);
        for (attrs, (v4, v6)) in announce {
            let attributes = path_attributes(attrs, facts);
            if let (false, Some(next_hop)) = (v4.is_empty(), facts.next_hop_v4) {
                let attributes = PathAttributes {
                    next_hop: Some(next_hop),
                    ..attributes.clone()
                };
                out.extend(pack::announce_ipv4(&attributes, &v4, &facts.ctx)?);
            }
            if let (false, Some(next_hop)) = (v6.is_empty(), facts.next_hop_v6) {
                out.extend(pack::announce_ipv6(&attributes, next_hop, &v6, &facts.ctx)?);
            }
        }
        self.sent = next;
        self.facts = Some(facts.clone());
        Ok(out)
    }

    /// One End-of-RIB marker per negotiated family, IPv4 first (RFC 4724 §2): sent after the
    /// first full [`AdjRibOut::sync`] of a session, so a restarting router knows it has
    /// everything.
    pub fn end_of_rib(facts: &SessionFacts) -> Result<Vec<Bytes>, EncodeError> {
        [
            (facts.ipv4, Family::Ipv4Unicast),
            (facts.ipv6, Family::Ipv6Unicast),
        ]
        .into_iter()
        .filter(|(negotiated, _)| *negotiated)
        .map(|(_, family)| Message::Update(Update::end_of_rib(family)).encode(&facts.ctx))
        .collect()
    }

    /// The session is gone: the peer holds nothing from us any more.
    pub fn clear(&mut self) {
        self.sent.clear();
        self.facts = None;
    }

    /// Prefixes the peer holds from us.
    pub fn advertised(&self) -> usize {
        self.sent.len()
    }

    /// What the peer holds from us.
    pub fn routes(&self) -> &Routes {
        &self.sent
    }
}

/// The attributes of a route on this session, without the IPv4 next hop.
fn path_attributes(attrs: &RouteAttrs, facts: &SessionFacts) -> PathAttributes {
    let (as_path, local_pref) = if facts.ibgp {
        (
            AsPath::sequence([]),
            Some(attrs.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)),
        )
    } else {
        (AsPath::sequence([facts.local_asn]), None)
    };
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(as_path),
        local_pref,
        communities: attrs.communities.clone(),
        large_communities: attrs.large_communities.clone(),
        ..PathAttributes::default()
    }
}
