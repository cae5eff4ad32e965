//! Well-formed messages, byte for byte, both directions.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::super::pack::Ipv6NextHop;
use super::super::*;
use super::{decode, frame, update_body, CTX2, CTX4};

fn both_ways(bytes: &[u8], message: &Message, ctx: &Context) {
    assert_eq!(decode(bytes, ctx).unwrap(), *message, "decode");
    assert_eq!(message.encode(ctx).unwrap().as_ref(), bytes, "encode");
}

#[test]
fn keepalive() {
    let bytes = frame(4, &[]);
    assert_eq!(bytes.len(), 19);
    both_ways(&bytes, &Message::Keepalive, &CTX4);
}

#[test]
fn open_with_every_capability() {
    #[rustfmt::skip]
    let body = [
        4, 0xfd, 0xe9, 0, 90, 10, 0, 0, 1, // version, AS 65001, hold 90, id 10.0.0.1
        32, 2, 30,                          // optional parameters: one, capabilities
        1, 4, 0, 1, 0, 1,                   // multiprotocol IPv4 unicast
        1, 4, 0, 2, 0, 1,                   // multiprotocol IPv6 unicast
        2, 0,                               // route refresh
        65, 4, 0, 0, 0xfd, 0xe9,            // 4-octet AS 65001
        64, 6, 0x80, 120, 0, 2, 1, 0x80,    // graceful restart: R, 120 s, IPv6 unicast F
        6, 0,                               // extended messages
    ];
    let open = Open {
        asn: 65001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(10, 0, 0, 1),
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::GracefulRestart(GracefulRestart {
                restarting: true,
                notification: false,
                restart_time: 120,
                families: vec![GracefulRestartFamily {
                    family: AfiSafi::IPV6_UNICAST,
                    forwarding_preserved: true,
                }],
            }),
            Capability::ExtendedMessage,
        ],
    };
    let msg = Message::Open(open.clone());
    both_ways(&frame(1, &body), &msg, &Context::default());
    assert!(open.route_refresh() && open.extended_messages());
    assert_eq!(open.families().count(), 2);
    assert_eq!(open.graceful_restart().map(|g| g.restart_time), Some(120));
    let ctx = Context::negotiated(&open, &open);
    assert_eq!((ctx.four_octet_as, ctx.max_message_len()), (true, 65535));
}

#[test]
fn open_with_four_octet_as_puts_as_trans_in_my_as() {
    let body = [
        4, 0x5b, 0xa0, 0, 3, 192, 0, 2, 1, 8, 2, 6, 65, 4, 0xfa, 0x56, 0xea, 0x01,
    ];
    let open = Open {
        asn: 4_200_000_001,
        hold_time: 3,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![Capability::FourOctetAs(4_200_000_001)],
    };
    both_ways(&frame(1, &body), &Message::Open(open), &CTX4);
}

#[test]
fn open_keeps_unknown_capabilities_and_reads_split_parameters() {
    // Two parameters, one capability each (Cisco's old route refresh, code 128, is unknown).
    let body = [4, 0, 100, 0, 0, 1, 2, 3, 4, 8, 2, 2, 128, 0, 2, 2, 70, 0];
    let Message::Open(open) = decode(&frame(1, &body), &CTX2).unwrap() else {
        panic!("not an OPEN");
    };
    assert_eq!(
        open.capabilities,
        vec![
            Capability::Unknown {
                code: 128,
                value: vec![]
            },
            Capability::Unknown {
                code: 70,
                value: vec![]
            }
        ]
    );
    assert_eq!((open.asn, open.hold_time), (100, 0));
}

#[rustfmt::skip]
const IPV4_ATTRS: [u8; 49] = [
    0x40, 1, 1, 0,                                   // ORIGIN IGP
    0x40, 2, 6, 2, 1, 0, 0, 0xfd, 0xe9,              // AS_PATH: AS_SEQUENCE 65001
    0x40, 3, 4, 192, 0, 2, 1,                        // NEXT_HOP 192.0.2.1
    0x80, 4, 4, 0, 0, 0, 0,                          // MED 0
    0xc0, 8, 4, 0xfd, 0xe9, 0, 100,                  // COMMUNITIES 65001:100
    0xc0, 32, 12, 0, 0, 0xfd, 0xe9, 0, 0, 0, 1, 0, 0, 0, 2, // LARGE_COMMUNITY 65001:1:2
];

fn ipv4_attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::sequence([65001])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(0),
        communities: vec![Community::new(65001, 100)],
        large_communities: vec![LargeCommunity {
            global: 65001,
            local1: 1,
            local2: 2,
        }],
        ..PathAttributes::default()
    }
}

#[test]
fn update_ipv4_announcement() {
    let nlri = [32, 198, 51, 100, 10, 24, 198, 51, 101];
    let bytes = frame(2, &update_body(&[], &IPV4_ATTRS, &nlri));
    let update = Update {
        attributes: ipv4_attributes(),
        nlri: vec![
            "198.51.100.10/32".parse().unwrap(),
            "198.51.101.0/24".parse().unwrap(),
        ],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), &CTX4);
}

#[test]
fn update_ipv4_withdrawal_and_end_of_rib() {
    let bytes = frame(2, &update_body(&[32, 198, 51, 100, 10, 0], &[], &[]));
    let update = Update {
        withdrawn: vec![
            "198.51.100.10/32".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update.clone()), &CTX4);
    assert_eq!(update.end_of_rib_family(), None);

    let eor = frame(2, &[0, 0, 0, 0]);
    both_ways(
        &eor,
        &Message::Update(Update::end_of_rib(Family::Ipv4Unicast)),
        &CTX4,
    );
    assert_eq!(
        Update::end_of_rib(Family::Ipv4Unicast).end_of_rib_family(),
        Some(Family::Ipv4Unicast)
    );
}

const GLOBAL: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

#[test]
fn update_ipv6_mp_reach_with_link_local_next_hop() {
    let mut mp = vec![0x80, 14, 63, 0, 2, 1, 32];
    mp.extend_from_slice(&GLOBAL.octets());
    mp.extend_from_slice(&LINK_LOCAL.octets());
    mp.push(0); // reserved
    mp.push(128);
    mp.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).octets());
    mp.extend_from_slice(&[64, 0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0]);
    let attrs = [&IPV4_ATTRS[..13], &mp].concat(); // ORIGIN, AS_PATH, MP_REACH_NLRI
    let bytes = frame(2, &update_body(&[], &attrs, &[]));
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([65001])),
            ..PathAttributes::default()
        },
        mp_reach: Some(Ipv6Reach {
            next_hop: GLOBAL,
            link_local: Some(LINK_LOCAL),
            nlri: vec![
                "2001:db8::10/128".parse().unwrap(),
                "2001:db8:1::/64".parse().unwrap(),
            ],
        }),
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), &CTX4);
}

#[test]
fn update_ipv6_withdrawal_and_end_of_rib() {
    let mut mp = vec![0x80, 15, 20, 0, 2, 1, 128];
    mp.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).octets());
    let update = Update {
        mp_unreach: Some(Ipv6Unreach {
            withdrawn: vec!["2001:db8::10/128".parse().unwrap()],
        }),
        ..Update::default()
    };
    both_ways(
        &frame(2, &update_body(&[], &mp, &[])),
        &Message::Update(update),
        &CTX4,
    );

    let eor = Update::end_of_rib(Family::Ipv6Unicast);
    both_ways(
        &frame(2, &update_body(&[], &[0x80, 15, 3, 0, 2, 1], &[])),
        &Message::Update(eor.clone()),
        &CTX4,
    );
    assert_eq!(eor.end_of_rib_family(), Some(Family::Ipv6Unicast));
}

#[test]
fn update_two_octet_as_path_with_as4_path() {
    // RFC 6793: to an old speaker, AS 4200000001 is AS_TRANS in AS_PATH and real in AS4_PATH.
    #[rustfmt::skip]
    let attrs = [
        0x40, 1, 1, 2,                                  // ORIGIN INCOMPLETE
        0x40, 2, 4, 2, 1, 0x5b, 0xa0,                   // AS_PATH: AS_SEQUENCE AS_TRANS
        0x40, 3, 4, 192, 0, 2, 1,                       // NEXT_HOP
        0xc0, 17, 6, 2, 1, 0xfa, 0x56, 0xea, 0x01,      // AS4_PATH: AS_SEQUENCE 4200000001
    ];
    let bytes = frame(2, &update_body(&[], &attrs, &[32, 10, 0, 0, 1]));
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Incomplete),
            as_path: Some(AsPath::sequence([4_200_000_001])),
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..PathAttributes::default()
        },
        nlri: vec!["10.0.0.1/32".parse().unwrap()],
        ..Update::default()
    };
    both_ways(&bytes, &Message::Update(update), &CTX2);
}

#[test]
fn update_as4_path_longer_than_as_path_is_ignored() {
    #[rustfmt::skip]
    let attrs = [
        0x40, 1, 1, 0,
        0x40, 2, 4, 2, 1, 0x00, 0x64,                               // AS_SEQUENCE 100
        0x40, 3, 4, 192, 0, 2, 1,
        0xc0, 17, 10, 2, 2, 0, 0, 0, 1, 0, 0, 0, 2,                 // AS4_PATH of two
    ];
    let Message::Update(u) = decode(&frame(2, &update_body(&[], &attrs, &[])), &CTX2).unwrap()
    else {
        panic!("not an UPDATE");
    };
    assert_eq!(u.attributes.as_path, Some(AsPath::sequence([100])));
}

#[test]
fn unknown_optional_transitive_attribute_is_kept_and_passed_on_partial() {
    let attrs = [0xc0, 99, 2, 0xab, 0xcd, 0x80, 98, 1, 7];
    let Message::Update(u) = decode(&frame(2, &update_body(&[], &attrs, &[])), &CTX4).unwrap()
    else {
        panic!("not an UPDATE");
    };
    let raw = RawAttribute {
        flags: 0xc0,
        type_code: 99,
        value: vec![0xab, 0xcd],
    };
    assert_eq!(u.attributes.other, vec![raw.clone()]);
    assert_eq!(
        u.discarded,
        vec![98],
        "optional non-transitive unknown is dropped"
    );
    let passed = Update {
        attributes: PathAttributes {
            other: vec![raw.passed_on()],
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    let bytes = Message::Update(passed).encode(&CTX4).unwrap();
    assert_eq!(&bytes[23..], &[0xe0, 99, 2, 0xab, 0xcd]);
}

#[test]
fn long_attribute_uses_extended_length() {
    let communities: Vec<Community> = (0..100).map(Community).collect();
    let update = Update {
        attributes: PathAttributes {
            communities: communities.clone(),
            ..PathAttributes::default()
        },
        ..Update::default()
    };
    let bytes = Message::Update(update.clone()).encode(&CTX4).unwrap();
    assert_eq!(&bytes[23..27], &[0xd0, 8, 0x01, 0x90]); // flags with E, 400 octets
    assert_eq!(decode(&bytes, &CTX4).unwrap(), Message::Update(update));
}

#[test]
fn notification_cease_administrative_shutdown() {
    let bytes = frame(3, &[6, 2, 5, b'b', b'y', b'e', b'!', b'!']);
    let n = Notification::new(
        ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown),
        b"\x05bye!!".to_vec(),
    );
    both_ways(&bytes, &Message::Notification(n), &CTX4);
    both_ways(
        &frame(3, &[4, 0]),
        &Message::Notification(Notification::hold_timer_expired()),
        &CTX4,
    );
    let odd = Notification::new(
        ErrorCode::Other {
            code: 9,
            subcode: 9,
        },
        vec![],
    );
    both_ways(&frame(3, &[9, 9]), &Message::Notification(odd), &CTX4);
}

#[test]
fn route_refresh() {
    let rr = RouteRefresh {
        family: AfiSafi::IPV6_UNICAST,
        subtype: 0,
    };
    both_ways(&frame(5, &[0, 2, 0, 1]), &Message::RouteRefresh(rr), &CTX4);
}

#[test]
fn frame_len_waits_for_the_whole_message() {
    let bytes = frame(4, &[]);
    assert_eq!(frame_len(&bytes[..10], &CTX4), Ok(None));
    assert_eq!(frame_len(&bytes[..18], &CTX4), Ok(None));
    let update = frame(2, &[0, 0, 0, 0]);
    assert_eq!(frame_len(&update[..22], &CTX4), Ok(None));
    let two = [update.clone(), bytes.clone()].concat();
    assert_eq!(frame_len(&two, &CTX4), Ok(Some(23)));
}

#[test]
fn packing_fills_messages_to_the_limit() {
    let prefixes: Vec<ipnet::Ipv4Net> = (0..10_000u32)
        .map(|i| ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap())
        .collect();
    let msgs = pack::announce_ipv4(&ipv4_attributes(), &prefixes, &CTX4).unwrap();
    // 4096 - 19 header - 4 field lengths - 49 attributes = 4024 octets = 804 /32s a message.
    assert_eq!(
        msgs.iter().map(|m| m.len()).max(),
        Some(19 + 4 + 49 + 804 * 5)
    );
    assert_eq!(msgs.len(), 10_000usize.div_ceil(804));
    let ext = Context {
        extended_messages: true,
        ..CTX4
    };
    assert_eq!(
        pack::announce_ipv4(&ipv4_attributes(), &prefixes, &ext)
            .unwrap()
            .len(),
        1
    );

    let v6: Vec<ipnet::Ipv6Net> = (0..1000u128)
        .map(|i| ipnet::Ipv6Net::new(Ipv6Addr::from((0x2001_0db8u128 << 96) + i), 128).unwrap())
        .collect();
    let hop = Ipv6NextHop {
        global: GLOBAL,
        link_local: Some(LINK_LOCAL),
    };
    let msgs = pack::announce_ipv6(&ipv4_attributes(), hop, &v6, &CTX4).unwrap();
    assert!(msgs.iter().all(|m| m.len() <= 4096));
    assert_eq!(msgs.len(), 5, "234 /128s fit a 4096-octet UPDATE");
    assert_eq!(pack::withdraw_ipv6(&v6, &CTX4).unwrap().len(), 5);
    assert_eq!(
        pack::withdraw_ipv4(&prefixes, &CTX4).unwrap().len(),
        10_000usize.div_ceil(814)
    );
}

#[test]
fn packing_refuses_an_announcement_without_mandatory_attributes() {
    let p = ["10.0.0.1/32".parse().unwrap()];
    assert!(matches!(
        pack::announce_ipv4(&PathAttributes::default(), &p, &CTX4),
        Err(EncodeError::Invalid(_))
    ));
    let huge = PathAttributes {
        communities: (0..1100).map(Community).collect(),
        ..ipv4_attributes()
    };
    assert!(matches!(
        pack::announce_ipv4(&huge, &p, &CTX4),
        Err(EncodeError::TooLong { .. })
    ));
}
