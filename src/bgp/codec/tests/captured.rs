//! Messages captured from GoBGP 3.10 (Debian's gobgpd) peering with a stand-in listener in a
//! network namespace: AS 4200000001, graceful restart on, routes injected with `gobgp global
//! rib add/del`. Each decodes to what GoBGP meant and re-encodes to the same bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::super::*;
use super::{decode, CTX4};

const OPEN: &str = concat!(
    "ffffffffffffffffffffffffffffffff004d01045ba0005a0a63000130022e0200490402766d000104000100",
    "010104000200014104fa56ea01400a007800010100000201000506000100010002"
);

const KEEPALIVE: &str = "ffffffffffffffffffffffffffffffff001304";

const UPDATE_V4_A: &str = concat!(
    "ffffffffffffffffffffffffffffffff004d0200000031400101024002060201fa56ea01400304c000020180",
    "04040000000ac00804fde90064c0200cfa56ea01000000010000000220c633640a"
);

const UPDATE_V4_B: &str = concat!(
    "ffffffffffffffffffffffffffffffff004d0200000031400101024002060201fa56ea01400304c000020180",
    "04040000000ac00804fde90064c0200cfa56ea01000000010000000220c633640b"
);

const UPDATE_V6: &str = concat!(
    "ffffffffffffffffffffffffffffffff0054020000003d400101024002060201fa56ea01c00804fde9006480",
    "0e260002011020010db8000000000000000000000001008020010db8000000000000000000000010"
);

const WITHDRAW_V4: &str = "ffffffffffffffffffffffffffffffff001c02000520c633640a0000";

const WITHDRAW_V6: &str = concat!(
    "ffffffffffffffffffffffffffffffff002e0200000017800f140002018020010db800000000000000000000",
    "0010"
);

fn bytes(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn same_bytes_back(hex: &str, ctx: &Context) -> Message {
    let wire = bytes(hex);
    let msg = decode(&wire, ctx).unwrap();
    assert_eq!(
        msg.encode(ctx).unwrap().as_ref(),
        wire.as_slice(),
        "re-encoding {msg:?}"
    );
    msg
}

#[test]
fn gobgp_open() {
    let Message::Open(open) = same_bytes_back(OPEN, &Context::default()) else {
        panic!("not an OPEN");
    };
    assert_eq!(open.asn, 4_200_000_001);
    assert_eq!(open.four_octet_as(), Some(4_200_000_001));
    assert_eq!(
        (open.hold_time, open.bgp_id),
        (90, Ipv4Addr::new(10, 99, 0, 1))
    );
    assert_eq!(
        open.families().collect::<Vec<_>>(),
        vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST]
    );
    assert!(open.route_refresh() && !open.extended_messages());
    let gr = open.graceful_restart().unwrap();
    assert_eq!(
        (gr.restarting, gr.restart_time, gr.families.len()),
        (false, 120, 2)
    );
    // GoBGP also sends the FQDN (73) and extended next hop (5) capabilities: kept raw.
    let unknown: Vec<u8> = open
        .capabilities
        .iter()
        .filter_map(|c| match c {
            Capability::Unknown { code, .. } => Some(*code),
            _ => None,
        })
        .collect();
    assert_eq!(unknown, vec![73, 5]);
}

#[test]
fn gobgp_keepalive() {
    assert_eq!(same_bytes_back(KEEPALIVE, &CTX4), Message::Keepalive);
}

#[test]
fn gobgp_ipv4_updates() {
    for (hex, last) in [(UPDATE_V4_A, 10), (UPDATE_V4_B, 11)] {
        let Message::Update(u) = same_bytes_back(hex, &CTX4) else {
            panic!("not an UPDATE");
        };
        let a = &u.attributes;
        assert_eq!(a.origin, Some(Origin::Incomplete));
        assert_eq!(a.as_path, Some(AsPath::sequence([4_200_000_001])));
        assert_eq!(
            (a.next_hop, a.med),
            (Some(Ipv4Addr::new(192, 0, 2, 1)), Some(10))
        );
        assert_eq!(a.communities, vec![Community::new(65001, 100)]);
        assert_eq!(
            a.large_communities,
            vec![LargeCommunity {
                global: 4_200_000_001,
                local1: 1,
                local2: 2
            }]
        );
        assert_eq!(
            u.nlri,
            vec![ipnet::Ipv4Net::new(Ipv4Addr::new(198, 51, 100, last), 32).unwrap()]
        );
    }
    let Message::Update(w) = same_bytes_back(WITHDRAW_V4, &CTX4) else {
        panic!("not an UPDATE");
    };
    assert_eq!(
        w.withdrawn,
        vec!["198.51.100.10/32".parse::<ipnet::Ipv4Net>().unwrap()]
    );
}

#[test]
fn gobgp_ipv6_updates() {
    let Message::Update(u) = same_bytes_back(UPDATE_V6, &CTX4) else {
        panic!("not an UPDATE");
    };
    let reach = u.mp_reach.unwrap();
    assert_eq!(
        reach.next_hop,
        Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)
    );
    assert_eq!(reach.link_local, None);
    assert_eq!(
        reach.nlri,
        vec!["2001:db8::10/128".parse::<ipnet::Ipv6Net>().unwrap()]
    );
    assert_eq!(u.attributes.communities, vec![Community::new(65001, 100)]);
    let Message::Update(w) = same_bytes_back(WITHDRAW_V6, &CTX4) else {
        panic!("not an UPDATE");
    };
    assert_eq!(w.mp_unreach.unwrap().withdrawn, reach.nlri);
}
