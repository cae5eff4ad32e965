//! Property tests: every message type round-trips, decoding never panics, packing covers
//! exactly the set within the size limit.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::collection::{btree_set, vec};
use proptest::option;
use proptest::prelude::*;

use super::super::pack::{self, Ipv6NextHop};
use super::super::*;

fn v4_net() -> impl Strategy<Value = Ipv4Net> {
    (any::<u32>(), 0..=32u8).prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
}

fn v6_net() -> impl Strategy<Value = Ipv6Net> {
    (any::<u128>(), 0..=128u8)
        .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
}

fn context() -> impl Strategy<Value = Context> {
    (any::<bool>(), any::<bool>()).prop_map(|(four_octet_as, extended_messages)| Context {
        four_octet_as,
        extended_messages,
    })
}

fn as_path() -> impl Strategy<Value = AsPath> {
    let kind = prop_oneof![
        Just(SegmentKind::Sequence),
        Just(SegmentKind::Set),
        Just(SegmentKind::ConfedSequence),
        Just(SegmentKind::ConfedSet)
    ];
    let asn = prop_oneof![any::<u32>(), 0..=65535u32, Just(u32::from(AS_TRANS))];
    vec(
        (kind, vec(asn, 1..6)).prop_map(|(kind, asns)| AsSegment { kind, asns }),
        0..4,
    )
    .prop_map(|segments| AsPath { segments })
}

/// Codes of attributes the codec decodes itself, which a raw attribute must not use.
const KNOWN: [u8; 13] = [1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 17, 18, 32];

fn attributes() -> impl Strategy<Value = PathAttributes> {
    let raw = (any::<u8>(), any::<bool>(), vec(any::<u8>(), 0..300)).prop_filter_map(
        "known code",
        |(type_code, partial, value)| {
            (!KNOWN.contains(&type_code)).then_some(RawAttribute {
                flags: 0xc0 | if partial { 0x20 } else { 0 },
                type_code,
                value,
            })
        },
    );
    let large = (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(global, local1, local2)| {
        LargeCommunity {
            global,
            local1,
            local2,
        }
    });
    let aggregator = (any::<u32>(), any::<u32>()).prop_map(|(asn, a)| Aggregator {
        asn,
        address: Ipv4Addr::from(a),
    });
    (
        (
            option::of(prop_oneof![
                Just(Origin::Igp),
                Just(Origin::Egp),
                Just(Origin::Incomplete)
            ]),
            option::of(as_path()),
            option::of(any::<u32>().prop_map(Ipv4Addr::from)),
            option::of(any::<u32>()),
            option::of(any::<u32>()),
            any::<bool>(),
        ),
        (
            option::of(aggregator),
            vec(any::<u32>().prop_map(Community), 0..20),
            vec(large, 0..5),
            vec(raw, 0..3),
        ),
    )
        .prop_map(
            |(
                (origin, as_path, next_hop, med, local_pref, atomic_aggregate),
                (aggregator, communities, large_communities, mut other),
            )| {
                // A repeated code is discarded on decode (RFC 7606 §3 g): keep the first.
                let mut seen = BTreeSet::new();
                other.retain(|r| seen.insert(r.type_code));
                PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref,
                    atomic_aggregate,
                    aggregator,
                    communities,
                    large_communities,
                    other,
                }
            },
        )
}

fn reach() -> impl Strategy<Value = Ipv6Reach> {
    (
        any::<u128>(),
        option::of(any::<u128>()),
        vec(v6_net(), 0..20),
    )
        .prop_map(|(g, l, nlri)| Ipv6Reach {
            next_hop: Ipv6Addr::from(g),
            link_local: l.map(Ipv6Addr::from),
            nlri,
        })
}

/// A valid UPDATE for `ctx`: mandatory attributes present when it announces, and (for a
/// 2-octet session) nothing RFC 6793 makes unrepresentable.
fn update(ctx: Context) -> impl Strategy<Value = Update> {
    (
        vec(v4_net(), 0..20),
        attributes(),
        option::of(reach()),
        option::of(vec(v6_net(), 0..20).prop_map(|withdrawn| Ipv6Unreach { withdrawn })),
        vec(v4_net(), 0..20),
    )
        .prop_map(
            move |(withdrawn, mut attributes, mp_reach, mp_unreach, nlri)| {
                let announces =
                    !nlri.is_empty() || mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
                if announces {
                    attributes.origin.get_or_insert(Origin::Igp);
                    attributes.as_path.get_or_insert_with(AsPath::default);
                }
                if !nlri.is_empty() {
                    attributes
                        .next_hop
                        .get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
                }
                if !ctx.four_octet_as {
                    two_octet_representable(&mut attributes);
                }
                Update {
                    withdrawn,
                    attributes,
                    mp_reach,
                    mp_unreach,
                    nlri,
                    discarded: Vec::new(),
                }
            },
        )
}

/// RFC 6793 loses 4-octet ASes in confederation segments, and ignores AS4_PATH when the
/// AGGREGATOR carries a real 2-octet AS: keep such paths within 2 octets.
fn two_octet_representable(a: &mut PathAttributes) {
    let Some(path) = &mut a.as_path else { return };
    let confed = path
        .segments
        .iter()
        .any(|s| matches!(s.kind, SegmentKind::ConfedSequence | SegmentKind::ConfedSet));
    let real_2_octet_aggregator = a
        .aggregator
        .is_some_and(|g| g.asn <= 65535 && g.asn != u32::from(AS_TRANS));
    if confed || real_2_octet_aggregator {
        for asn in path.segments.iter_mut().flat_map(|s| &mut s.asns) {
            *asn &= 0xffff;
        }
    }
}

fn open() -> impl Strategy<Value = Open> {
    let family = (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| AfiSafi { afi, safi });
    let gr_family = (family.clone(), any::<bool>()).prop_map(|(family, forwarding_preserved)| {
        GracefulRestartFamily {
            family,
            forwarding_preserved,
        }
    });
    let gr = (
        any::<bool>(),
        any::<bool>(),
        0..=4095u16,
        vec(gr_family, 0..4),
    )
        .prop_map(
            |(restarting, notification, restart_time, families)| GracefulRestart {
                restarting,
                notification,
                restart_time,
                families,
            },
        );
    let capability = prop_oneof![
        family.prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::ExtendedMessage),
        gr.prop_map(Capability::GracefulRestart),
        (any::<u8>(), vec(any::<u8>(), 0..20)).prop_filter_map("known code", |(code, value)| {
            (![1, 2, 6, 64, 65].contains(&code)).then_some(Capability::Unknown { code, value })
        }),
    ];
    (
        1..=u32::MAX,
        any::<u16>().prop_filter("1 or 2", |h| !matches!(h, 1 | 2)),
        1..=u32::MAX,
        vec(capability, 0..8),
        any::<bool>(),
        0..8usize,
    )
        .prop_map(|(asn, hold_time, id, mut capabilities, four, at)| {
            if asn > 65535 || four {
                capabilities.insert(at.min(capabilities.len()), Capability::FourOctetAs(asn));
            }
            Open {
                asn,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                capabilities,
            }
        })
}

fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..100))
        .prop_map(|(code, sub, data)| Notification::new(ErrorCode::from_wire(code, sub), data))
}

fn message(ctx: Context) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        update(ctx).prop_map(Message::Update),
        notification().prop_map(Message::Notification),
        Just(Message::Keepalive),
        (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, subtype, safi)| {
            Message::RouteRefresh(RouteRefresh {
                family: AfiSafi { afi, safi },
                subtype,
            })
        }),
    ]
}

fn with_context() -> impl Strategy<Value = (Context, Message)> {
    context().prop_flat_map(|ctx| (Just(ctx), message(ctx)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips((ctx, msg) in with_context()) {
        let bytes = msg.encode(&ctx).unwrap();
        prop_assert!(bytes.len() <= ctx.max_message_len());
        prop_assert_eq!(frame_len(&bytes, &ctx), Ok(Some(bytes.len())));
        prop_assert_eq!(Message::decode(&bytes, &ctx), Ok(msg));
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(ctx in context(), bytes in vec(any::<u8>(), 0..300)) {
        let _ = frame_len(&bytes, &ctx);
        let _ = Message::decode(&bytes, &ctx);
    }

    /// Random bodies behind a valid header, so the body decoders are reached.
    #[test]
    fn decoding_arbitrary_bodies_never_panics(
        ctx in context(),
        kind in 1..=5u8,
        body in vec(any::<u8>(), 0..300),
    ) {
        let bytes = super::frame(kind, &body);
        match Message::decode(&bytes, &ctx) {
            Ok(mut msg) => {
                // What decodes re-encodes to the same value (not always the same bytes:
                // lengths forms, parameter splits and discarded attributes are normalised).
                // RFC 6793 merging is lossy by design, so 2-octet UPDATEs are left out.
                if let Message::Update(u) = &mut msg {
                    if !ctx.four_octet_as {
                        return Ok(());
                    }
                    u.discarded.clear();
                }
                let again = msg.encode(&ctx).unwrap();
                prop_assert_eq!(Message::decode(&again, &ctx), Ok(msg));
            }
            Err(DecodeError::SessionReset { notification, .. }) => {
                let sent = Message::Notification(notification).encode(&ctx).unwrap();
                prop_assert!(sent.len() <= ctx.max_message_len());
            }
            Err(DecodeError::TreatAsWithdraw { withdraw, .. }) => {
                prop_assert!(withdraw.nlri.is_empty() && withdraw.mp_reach.is_none());
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn packing_ipv4_covers_the_set_within_the_limit(
        ctx in context(),
        attributes in attributes(),
        prefixes in btree_set(v4_net(), 0..3000),
    ) {
        let mut attributes = attributes;
        attributes.origin.get_or_insert(Origin::Igp);
        attributes.as_path.get_or_insert_with(AsPath::default);
        attributes.next_hop.get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
        if !ctx.four_octet_as {
            two_octet_representable(&mut attributes);
        }
        let list: Vec<Ipv4Net> = prefixes.iter().copied().collect();
        let announced = pack::announce_ipv4(&attributes, &list, &ctx).unwrap();
        let mut got = BTreeSet::new();
        let mut decoded = Vec::new();
        for bytes in &announced {
            prop_assert!(bytes.len() <= ctx.max_message_len());
            let Ok(Message::Update(u)) = Message::decode(bytes, &ctx) else {
                return Err(TestCaseError::fail("packed UPDATE does not decode"));
            };
            prop_assert_eq!(&u.attributes, &attributes);
            for p in &u.nlri {
                prop_assert!(got.insert(*p), "prefix sent twice");
            }
            decoded.push(u);
        }
        // Tight: the first prefix of each message would not have fitted in the one before.
        for (i, bytes) in announced.iter().enumerate().skip(1) {
            let first = decoded[i].nlri[0];
            let first_len = 1 + usize::from(first.prefix_len()).div_ceil(8);
            prop_assert!(announced[i - 1].len() + first_len > ctx.max_message_len());
            prop_assert!(bytes.len() > 23);
        }
        prop_assert_eq!(&got, &prefixes);

        let withdrawals = pack::withdraw_ipv4(&list, &ctx).unwrap();
        let mut gone = BTreeSet::new();
        for bytes in &withdrawals {
            prop_assert!(bytes.len() <= ctx.max_message_len());
            let Ok(Message::Update(u)) = Message::decode(bytes, &ctx) else {
                return Err(TestCaseError::fail("packed withdrawal does not decode"));
            };
            gone.extend(u.withdrawn);
        }
        prop_assert_eq!(&gone, &prefixes);
    }

    #[test]
    fn packing_ipv6_covers_the_set_within_the_limit(
        ctx in context(),
        prefixes in btree_set(v6_net(), 0..2000),
        link_local in option::of(any::<u128>()),
        communities in vec(any::<u32>().prop_map(Community), 0..300),
    ) {
        let attributes = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::sequence([64512])),
            communities,
            ..PathAttributes::default()
        };
        let hop = Ipv6NextHop {
            global: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1),
            link_local: link_local.map(Ipv6Addr::from),
        };
        let list: Vec<Ipv6Net> = prefixes.iter().copied().collect();
        let limit = ctx.max_message_len();
        let announced = pack::announce_ipv6(&attributes, hop, &list, &ctx).unwrap();
        let mut got = BTreeSet::new();
        for bytes in &announced {
            prop_assert!(bytes.len() <= limit);
            let Ok(Message::Update(u)) = Message::decode(bytes, &ctx) else {
                return Err(TestCaseError::fail("packed UPDATE does not decode"));
            };
            prop_assert_eq!(&u.attributes, &attributes);
            let reach = u.mp_reach.unwrap();
            prop_assert_eq!((reach.next_hop, reach.link_local), (hop.global, hop.link_local));
            got.extend(reach.nlri);
        }
        prop_assert_eq!(&got, &prefixes);
        // Fewest messages: each holds at least limit - base - 17 octets of prefixes, so the
        // count is bounded by the total over that.
        let total: usize = list.iter().map(|p| 1 + usize::from(p.prefix_len()).div_ceil(8)).sum();
        let base = Message::Update(Update {
            attributes: attributes.clone(),
            mp_reach: Some(Ipv6Reach { next_hop: hop.global, link_local: hop.link_local, nlri: vec![] }),
            ..Update::default()
        }).encode(&ctx).unwrap().len();
        let per_message = limit - base - 1 - 16;
        prop_assert!(announced.len() <= total.div_ceil(per_message).max(usize::from(!list.is_empty())));

        let mut gone = BTreeSet::new();
        for bytes in pack::withdraw_ipv6(&list, &ctx).unwrap() {
            prop_assert!(bytes.len() <= limit);
            let Ok(Message::Update(u)) = Message::decode(&bytes, &ctx) else {
                return Err(TestCaseError::fail("packed withdrawal does not decode"));
            };
            gone.extend(u.mp_unreach.unwrap().withdrawn);
        }
        prop_assert_eq!(&gone, &prefixes);
    }
}
