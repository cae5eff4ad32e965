use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use bytes::Bytes;
use ipnet::IpNet;
use proptest::prelude::*;

use super::routes::{self, PoolAdvert};
use super::*;
use crate::bgp::codec::{pack, AsPath, Family, Message, Origin, PathAttributes, Update};
use crate::config::{self, BgpAdvertisement};

/// What a peer holds after reading our UPDATEs: prefix → (attributes, next hop).
type PeerRib = BTreeMap<IpNet, (PathAttributes, IpAddr)>;

fn decode(msgs: &[Bytes], ctx: &Context) -> Vec<Update> {
    msgs.iter()
        .map(|m| match Message::decode(m, ctx) {
            Ok(Message::Update(u)) => u,
            other => panic!("not an UPDATE: {other:?}"),
        })
        .collect()
}

/// Applies UPDATEs the way a receiving speaker does.
fn apply(rib: &mut PeerRib, msgs: &[Bytes], ctx: &Context) {
    for u in decode(msgs, ctx) {
        for n in &u.withdrawn {
            rib.remove(&IpNet::V4(*n));
        }
        if let Some(unreach) = &u.mp_unreach {
            for n in &unreach.withdrawn {
                rib.remove(&IpNet::V6(*n));
            }
        }
        let mut attrs = u.attributes.clone();
        let v4_next_hop = attrs.next_hop.take();
        for n in &u.nlri {
            let nh = v4_next_hop.expect("IPv4 NLRI without NEXT_HOP");
            rib.insert(IpNet::V4(*n), (attrs.clone(), nh.into()));
        }
        if let Some(reach) = &u.mp_reach {
            for n in &reach.nlri {
                rib.insert(IpNet::V6(*n), (attrs.clone(), reach.next_hop.into()));
            }
        }
    }
}

fn facts(ibgp: bool, ipv4: bool, ipv6: bool) -> SessionFacts {
    SessionFacts {
        local_asn: 64500,
        ibgp,
        ipv4,
        ipv6,
        next_hop_v4: Some(Ipv4Addr::new(10, 0, 0, 2)),
        next_hop_v6: Some(pack::Ipv6NextHop {
            global: "fd00::2".parse().unwrap(),
            link_local: None,
        }),
        ctx: Context {
            four_octet_as: true,
            extended_messages: false,
        },
    }
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn attrs(communities: &[u32], local_pref: Option<u32>) -> Arc<RouteAttrs> {
    Arc::new(RouteAttrs {
        communities: communities.iter().map(|c| Community(*c)).collect(),
        large_communities: Vec::new(),
        local_pref,
    })
}

fn routes(items: &[(&str, &Arc<RouteAttrs>)]) -> Routes {
    items.iter().map(|(p, a)| (net(p), Arc::clone(a))).collect()
}

#[test]
fn ebgp_announcement_carries_our_as_and_next_hop_but_no_local_pref() {
    let f = facts(false, true, true);
    let a = attrs(&[0xFDE8_0064], Some(200));
    let mut rib = AdjRibOut::new();
    let msgs = rib
        .sync(
            &routes(&[("10.96.0.10/32", &a), ("fd00:96::10/128", &a)]),
            &f,
        )
        .unwrap();
    let mut peer = PeerRib::new();
    apply(&mut peer, &msgs, &f.ctx);
    let (v4, nh4) = &peer[&net("10.96.0.10/32")];
    assert_eq!(*nh4, IpAddr::from([10, 0, 0, 2]));
    assert_eq!(v4.as_path, Some(AsPath::sequence([64500])));
    assert_eq!(v4.origin, Some(Origin::Igp));
    assert_eq!(v4.local_pref, None);
    assert_eq!(v4.communities, vec![Community(0xFDE8_0064)]);
    let (_, nh6) = &peer[&net("fd00:96::10/128")];
    assert_eq!(*nh6, IpAddr::from("fd00::2".parse::<Ipv6Addr>().unwrap()));
    assert_eq!(rib.advertised(), 2);
}

#[test]
fn ibgp_announcement_has_an_empty_as_path_and_a_local_pref() {
    let f = facts(true, true, false);
    let mut rib = AdjRibOut::new();
    let set = attrs(&[], Some(250));
    let unset = attrs(&[7], None);
    let msgs = rib
        .sync(
            &routes(&[("10.0.1.1/32", &set), ("10.0.1.2/32", &unset)]),
            &f,
        )
        .unwrap();
    let mut peer = PeerRib::new();
    apply(&mut peer, &msgs, &f.ctx);
    assert_eq!(peer[&net("10.0.1.1/32")].0.local_pref, Some(250));
    assert_eq!(
        peer[&net("10.0.1.2/32")].0.local_pref,
        Some(DEFAULT_LOCAL_PREF)
    );
    assert_eq!(
        peer[&net("10.0.1.1/32")].0.as_path,
        Some(AsPath::sequence([]))
    );
}

#[test]
fn a_family_the_session_does_not_carry_is_not_sent() {
    let a = attrs(&[], None);
    let desired = routes(&[("10.0.1.1/32", &a), ("fd00::1/128", &a)]);
    let mut rib = AdjRibOut::new();
    let f = facts(false, true, false);
    let mut peer = PeerRib::new();
    apply(&mut peer, &rib.sync(&desired, &f).unwrap(), &f.ctx);
    assert_eq!(
        peer.keys().copied().collect::<Vec<_>>(),
        vec![net("10.0.1.1/32")]
    );
    // IPv6 negotiated but we have no IPv6 next hop on this session: not sent either.
    let mut f6 = facts(false, true, true);
    f6.next_hop_v6 = None;
    let mut rib = AdjRibOut::new();
    let mut peer = PeerRib::new();
    apply(&mut peer, &rib.sync(&desired, &f6).unwrap(), &f6.ctx);
    assert_eq!(peer.len(), 1);
    assert_eq!(rib.advertised(), 1);
}

#[test]
fn an_unchanged_set_sends_nothing_and_a_change_sends_only_the_difference() {
    let f = facts(false, true, true);
    let a = attrs(&[1], None);
    let b = attrs(&[2], None);
    let mut rib = AdjRibOut::new();
    rib.sync(&routes(&[("10.0.0.1/32", &a), ("10.0.0.2/32", &a)]), &f)
        .unwrap();
    assert!(rib
        .sync(&routes(&[("10.0.0.1/32", &a), ("10.0.0.2/32", &a)]), &f)
        .unwrap()
        .is_empty());
    // Equal attributes in a different Arc are still unchanged.
    let a2 = attrs(&[1], None);
    assert!(rib
        .sync(&routes(&[("10.0.0.1/32", &a2), ("10.0.0.2/32", &a2)]), &f)
        .unwrap()
        .is_empty());
    // One withdrawn, one re-attributed, one new: a withdrawal first, then one UPDATE per
    // attribute set.
    let msgs = rib
        .sync(&routes(&[("10.0.0.2/32", &b), ("10.0.0.3/32", &a)]), &f)
        .unwrap();
    let updates = decode(&msgs, &f.ctx);
    assert_eq!(updates.len(), 3, "{updates:?}");
    assert_eq!(updates[0].withdrawn, vec!["10.0.0.1/32".parse().unwrap()]);
    assert!(updates[0].nlri.is_empty());
    let announced: Vec<_> = updates[1..].iter().flat_map(|u| u.nlri.clone()).collect();
    assert_eq!(announced.len(), 2);
}

#[test]
fn withdrawing_everything_and_end_of_rib() {
    let f = facts(false, true, true);
    let a = attrs(&[], None);
    let mut rib = AdjRibOut::new();
    let mut peer = PeerRib::new();
    apply(
        &mut peer,
        &rib.sync(&routes(&[("10.0.0.1/32", &a), ("fd00::1/128", &a)]), &f)
            .unwrap(),
        &f.ctx,
    );
    apply(&mut peer, &rib.sync(&Routes::new(), &f).unwrap(), &f.ctx);
    assert!(peer.is_empty());
    assert_eq!(rib.advertised(), 0);
    let eor = decode(&AdjRibOut::end_of_rib(&f).unwrap(), &f.ctx);
    let families: Vec<_> = eor.iter().map(|u| u.end_of_rib_family()).collect();
    assert_eq!(
        families,
        vec![Some(Family::Ipv4Unicast), Some(Family::Ipv6Unicast)]
    );
    let only_v4 = decode(
        &AdjRibOut::end_of_rib(&facts(false, true, false)).unwrap(),
        &f.ctx,
    );
    assert_eq!(only_v4.len(), 1);
}

#[test]
fn a_new_session_is_sent_everything_again() {
    let f = facts(false, true, false);
    let a = attrs(&[], None);
    let desired = routes(&[("10.0.0.1/32", &a)]);
    let mut rib = AdjRibOut::new();
    rib.sync(&desired, &f).unwrap();
    rib.clear();
    assert_eq!(rib.advertised(), 0);
    let mut peer = PeerRib::new();
    apply(&mut peer, &rib.sync(&desired, &f).unwrap(), &f.ctx);
    assert_eq!(peer.len(), 1);
    // Different facts (another next hop) without clear(): announced again with the new one.
    let mut moved = f.clone();
    moved.next_hop_v4 = Some(Ipv4Addr::new(10, 0, 0, 9));
    apply(&mut peer, &rib.sync(&desired, &moved).unwrap(), &f.ctx);
    assert_eq!(peer[&net("10.0.0.1/32")].1, IpAddr::from([10, 0, 0, 9]));
}

#[test]
fn ten_thousand_prefixes_with_equal_attributes_take_few_updates() {
    let f = facts(false, true, false);
    let a = attrs(&[0xFDE8_0064, 0xFFFF_FF01], None);
    let desired: Routes = (0..10_000u32)
        .map(|i| {
            (
                IpNet::from(IpAddr::from(Ipv4Addr::from(0x0A60_0000 + i))),
                Arc::clone(&a),
            )
        })
        .collect();
    let mut rib = AdjRibOut::new();
    let msgs = rib.sync(&desired, &f).unwrap();
    assert!(msgs.len() <= 13, "{} UPDATEs", msgs.len());
    let mut peer = PeerRib::new();
    apply(&mut peer, &msgs, &f.ctx);
    assert_eq!(peer.len(), 10_000);
    let withdraw = rib.sync(&Routes::new(), &f).unwrap();
    // A withdrawn /32 costs as much as an announced one (5 octets).
    assert!(
        withdraw.len() <= 13,
        "{} withdrawal UPDATEs",
        withdraw.len()
    );
}

fn advert(
    aggregation: u8,
    aggregation_v6: u8,
    communities: &[&str],
    local_pref: Option<u32>,
) -> PoolAdvert {
    PoolAdvert::from_config(&BgpAdvertisement {
        peers: Vec::new(),
        communities: communities
            .iter()
            .map(|c| c.parse::<config::Community>().unwrap())
            .collect(),
        local_pref,
        aggregation_length: aggregation,
        aggregation_length_v6: aggregation_v6,
    })
}

#[test]
fn pool_settings_become_route_attributes() {
    let p = advert(
        32,
        128,
        &["65000:100", "no-export", "large:64500:1:2", "65000:100"],
        Some(150),
    );
    assert_eq!(
        p.attrs.communities,
        vec![Community(0xFDE8_0064), Community(0xFFFF_FF01)]
    );
    assert_eq!(p.attrs.large_communities.len(), 1);
    assert_eq!(p.attrs.local_pref, Some(150));
    let r = routes::build([(IpAddr::from([10, 96, 0, 10]), &p)]);
    assert_eq!(
        r.keys().copied().collect::<Vec<_>>(),
        vec![net("10.96.0.10/32")]
    );
}

#[test]
fn aggregation_merges_addresses_into_one_route() {
    let a = advert(24, 64, &["65000:1"], Some(100));
    let b = advert(24, 64, &["65000:2"], Some(300));
    let r = routes::build([
        (IpAddr::from([10, 96, 0, 10]), &a),
        (IpAddr::from([10, 96, 0, 77]), &a),
        ("fd00:96::10".parse().unwrap(), &a),
    ]);
    assert_eq!(
        r.keys().copied().collect::<Vec<_>>(),
        vec![net("10.96.0.0/24"), net("fd00:96::/64")]
    );
    // Two pools sharing an aggregate: one route, both communities, the higher preference,
    // whatever the order.
    let ab = routes::build([
        (IpAddr::from([10, 96, 0, 10]), &a),
        (IpAddr::from([10, 96, 0, 20]), &b),
    ]);
    let ba = routes::build([
        (IpAddr::from([10, 96, 0, 20]), &b),
        (IpAddr::from([10, 96, 0, 10]), &a),
    ]);
    assert_eq!(ab, ba);
    let merged = &ab[&net("10.96.0.0/24")];
    assert_eq!(
        merged.communities,
        vec![Community(0xFDE8_0001), Community(0xFDE8_0002)]
    );
    assert_eq!(merged.local_pref, Some(300));
}

fn arb_prefix() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        (0u32..64).prop_map(|i| IpNet::from(IpAddr::from(Ipv4Addr::from(0x0A00_0000 + i)))),
        (0u128..32).prop_map(|i| IpNet::from(IpAddr::from(Ipv6Addr::from(0xfd00_u128 << 112 | i)))),
        (0u32..4).prop_map(|i| IpNet::new(
            IpAddr::from(Ipv4Addr::from(0x0B00_0000 + (i << 8))),
            24
        )
        .unwrap()),
    ]
}

fn arb_routes(pool: Vec<Arc<RouteAttrs>>) -> impl Strategy<Value = Routes> {
    prop::collection::btree_map(arb_prefix(), 0..pool.len(), 0..40).prop_map(move |m| {
        m.into_iter()
            .map(|(p, i)| (p, Arc::clone(&pool[i])))
            .collect()
    })
}

proptest! {
    /// Whatever sequence of desired sets, applying our UPDATEs leaves the peer holding
    /// exactly what the session can carry of the latest one, with the right attributes.
    #[test]
    fn the_peer_always_ends_up_holding_the_desired_routes(
        ibgp in any::<bool>(),
        ipv4 in any::<bool>(),
        ipv6 in any::<bool>(),
        steps in prop::collection::vec(
            arb_routes(vec![attrs(&[], None), attrs(&[1, 2], Some(50)), attrs(&[3], None)]),
            1..6,
        ),
        reconnect_at in 0usize..8,
    ) {
        let f = facts(ibgp, ipv4, ipv6);
        let mut rib = AdjRibOut::new();
        let mut peer = PeerRib::new();
        for (i, desired) in steps.iter().enumerate() {
            if i == reconnect_at {
                rib.clear();
                peer.clear();
            }
            let msgs = rib.sync(desired, &f).unwrap();
            apply(&mut peer, &msgs, &f.ctx);
            let expected: Vec<IpNet> = desired.keys().filter(|p| f.carries(p)).copied().collect();
            prop_assert_eq!(peer.keys().copied().collect::<Vec<_>>(), expected);
            prop_assert_eq!(rib.advertised(), peer.len());
            for (prefix, (got, _)) in &peer {
                let want = &desired[prefix];
                prop_assert_eq!(&got.communities, &want.communities);
                let lp = if ibgp { Some(want.local_pref.unwrap_or(DEFAULT_LOCAL_PREF)) } else { None };
                prop_assert_eq!(got.local_pref, lp);
            }
            // Nothing more to say about the same set.
            prop_assert!(rib.sync(desired, &f).unwrap().is_empty());
        }
    }

    /// Building routes does not depend on the order of the addresses.
    #[test]
    fn building_routes_ignores_order(addrs in prop::collection::vec((0u32..512, 0usize..2), 0..30)) {
        let pools = [advert(24, 64, &["65000:1"], None), advert(30, 120, &["65000:2"], Some(9))];
        let items: Vec<(IpAddr, &PoolAdvert)> = addrs
            .iter()
            .map(|(a, p)| (IpAddr::from(Ipv4Addr::from(0x0A60_0000 + a)), &pools[*p]))
            .collect();
        let forward = routes::build(items.iter().copied());
        let backward = routes::build(items.iter().rev().copied());
        prop_assert_eq!(forward, backward);
    }
}
