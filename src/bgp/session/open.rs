//! Our OPEN and the negotiation of the peer's (RFC 5492 capabilities): which families, the
//! wire [`Context`], and what the state machine needs ([`PeerOpen`]). Pure.

use std::time::Duration;

use crate::bgp::codec::{
    AfiSafi, Capability, Context, GracefulRestart, GracefulRestartFamily, Open, BGP_VERSION,
};
use crate::bgp::fsm::{open_error, LocalOpen, Notification, PeerOpen};

/// The families we speak, in the order we advertise them.
const FAMILIES: [AfiSafi; 2] = [AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST];

/// Largest restart time the capability can carry (12 bits).
const MAX_RESTART_TIME: u16 = 0x0fff;

/// Our OPEN: the state machine's fixed fields plus multiprotocol IPv4 and IPv6 unicast,
/// route refresh, 4-octet AS and, when `graceful_restart` is `Some(restart_time)`, graceful
/// restart. No extended messages: our UPDATEs pack into 4096 octets well enough.
///
/// Graceful restart: the forwarding bit is set for both families, because the traffic we
/// announce is forwarded by the node's service proxy, which keeps running while this daemon
/// restarts; the restarting bit stays clear (we do not know here whether we restarted, and
/// the peer's stale routes are replaced by End-of-RIB either way); no N bit (RFC 8538), so
/// our Cease on a deliberate stop removes our routes at once.
pub fn local_open(fixed: &LocalOpen, graceful_restart: Option<Duration>) -> Open {
    let mut capabilities: Vec<Capability> = FAMILIES
        .iter()
        .copied()
        .map(Capability::Multiprotocol)
        .collect();
    capabilities.push(Capability::RouteRefresh);
    if let Some(restart) = graceful_restart {
        let secs = u16::try_from(restart.as_secs()).unwrap_or(u16::MAX);
        capabilities.push(Capability::GracefulRestart(GracefulRestart {
            restarting: false,
            notification: false,
            restart_time: secs.min(MAX_RESTART_TIME),
            families: FAMILIES
                .iter()
                .map(|&family| GracefulRestartFamily {
                    family,
                    forwarding_preserved: true,
                })
                .collect(),
        }));
    }
    capabilities.push(Capability::FourOctetAs(fixed.asn));
    Open {
        asn: fixed.asn,
        hold_time: fixed.hold_time,
        bgp_id: fixed.router_id,
        capabilities,
    }
}

/// What the OPEN exchange agreed on, beyond what the state machine checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// The wire format.
    pub ctx: Context,
    /// IPv4 unicast negotiated.
    pub ipv4: bool,
    /// IPv6 unicast negotiated.
    pub ipv6: bool,
    /// The peer's fixed fields, for the state machine.
    pub peer: PeerOpen,
}

/// Negotiates the peer's OPEN against ours. A peer that sends no multiprotocol capability
/// speaks IPv4 unicast only (RFC 4760 §8); no family in common is refused with OPEN error
/// Unsupported Capability (RFC 5492 §3), its data our multiprotocol capabilities.
pub fn negotiate(ours: &Open, theirs: &Open) -> Result<Agreed, Notification> {
    let their_families: Vec<AfiSafi> = if theirs.families().next().is_none() {
        vec![AfiSafi::IPV4_UNICAST]
    } else {
        theirs.families().collect()
    };
    let both = |f: AfiSafi| ours.families().any(|o| o == f) && their_families.contains(&f);
    let (ipv4, ipv6) = (both(AfiSafi::IPV4_UNICAST), both(AfiSafi::IPV6_UNICAST));
    if !ipv4 && !ipv6 {
        let data = ours
            .families()
            .flat_map(|f| {
                let [hi, lo] = f.afi.to_be_bytes();
                [1, 4, hi, lo, 0, f.safi]
            })
            .collect();
        return Err(Notification::open_error(open_error::UNSUPPORTED_CAPABILITY).with_data(data));
    }
    Ok(Agreed {
        ctx: Context::negotiated(ours, theirs),
        ipv4,
        ipv6,
        peer: PeerOpen {
            version: BGP_VERSION,
            asn: theirs.asn,
            hold_time: theirs.hold_time,
            router_id: theirs.bgp_id,
        },
    })
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::bgp::codec::{Message, AS_TRANS};

    fn fixed() -> LocalOpen {
        LocalOpen {
            asn: 4_200_000_001,
            hold_time: 90,
            router_id: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    fn peer(capabilities: Vec<Capability>) -> Open {
        Open {
            asn: 64512,
            hold_time: 30,
            bgp_id: Ipv4Addr::new(10, 0, 0, 1),
            capabilities,
        }
    }

    #[test]
    fn our_open_carries_families_route_refresh_graceful_restart_and_4_octet_as() {
        let open = local_open(&fixed(), Some(Duration::from_secs(120)));
        assert_eq!(open.families().collect::<Vec<_>>(), FAMILIES);
        assert!(open.route_refresh());
        assert!(!open.extended_messages());
        assert_eq!(open.four_octet_as(), Some(4_200_000_001));
        let gr = open.graceful_restart().unwrap();
        assert_eq!(gr.restart_time, 120);
        assert!(!gr.restarting && !gr.notification);
        assert!(gr.families.iter().all(|f| f.forwarding_preserved));
        // It encodes (AS_TRANS in the 2-octet field) and decodes back to itself.
        let wire = Message::Open(open.clone())
            .encode(&Context::default())
            .unwrap();
        assert_eq!(u16::from_be_bytes([wire[20], wire[21]]), AS_TRANS);
        assert_eq!(
            Message::decode(&wire, &Context::default()).unwrap(),
            Message::Open(open)
        );
    }

    #[test]
    fn graceful_restart_is_left_out_when_off_and_capped_at_4095() {
        assert!(local_open(&fixed(), None).graceful_restart().is_none());
        let open = local_open(&fixed(), Some(Duration::from_secs(100_000)));
        assert_eq!(open.graceful_restart().unwrap().restart_time, 4095);
    }

    #[test]
    fn both_families_and_4_octet_as_when_the_peer_has_them() {
        let ours = local_open(&fixed(), None);
        let theirs = peer(vec![
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::FourOctetAs(64512),
        ]);
        let agreed = negotiate(&ours, &theirs).unwrap();
        assert!(agreed.ipv4 && agreed.ipv6);
        assert!(agreed.ctx.four_octet_as && !agreed.ctx.extended_messages);
        assert_eq!(
            agreed.peer,
            PeerOpen {
                version: 4,
                asn: 64512,
                hold_time: 30,
                router_id: Ipv4Addr::new(10, 0, 0, 1)
            }
        );
    }

    #[test]
    fn no_multiprotocol_capability_means_ipv4_only_and_2_octet_as() {
        let agreed = negotiate(&local_open(&fixed(), None), &peer(vec![])).unwrap();
        assert!(agreed.ipv4 && !agreed.ipv6);
        assert!(!agreed.ctx.four_octet_as);
    }

    #[test]
    fn ipv6_only_peer_gets_ipv6_only() {
        let theirs = peer(vec![Capability::Multiprotocol(AfiSafi::IPV6_UNICAST)]);
        let agreed = negotiate(&local_open(&fixed(), None), &theirs).unwrap();
        assert!(!agreed.ipv4 && agreed.ipv6);
    }

    #[test]
    fn no_common_family_is_an_unsupported_capability_error() {
        let vpn = AfiSafi { afi: 1, safi: 128 };
        let theirs = peer(vec![Capability::Multiprotocol(vpn)]);
        let n = negotiate(&local_open(&fixed(), None), &theirs).unwrap_err();
        assert_eq!((n.code, n.subcode), (2, open_error::UNSUPPORTED_CAPABILITY));
        assert_eq!(n.data, vec![1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1]);
    }
}
