//! Property tests: the parser never panics, accepts every valid solicitation with the right
//! fields, and every advertisement built from one is well formed.

use std::net::Ipv6Addr;

use proptest::prelude::*;

use super::tests::{decode_na, DecodedNa};
use super::*;
use crate::l2::frame::testutil::{ns_frame, slla, NsSpec};

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(|[a, b, c, d, e, f]| MacAddr(a, b, c, d, e, f))
}

fn unicast() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>()
        .prop_map(Ipv6Addr::from)
        .prop_filter("not multicast", |a| !a.is_multicast())
}

/// Options other than the source link-layer address: any type but 1, one to three units.
fn other_options() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        (2u8..=255, 1usize..=3, any::<[u8; 22]>()).prop_map(|(kind, units, data)| {
            let mut option = vec![kind, units as u8];
            option.extend_from_slice(&data[..units * 8 - 2]);
            option
        }),
        0..3,
    )
    .prop_map(|options| options.concat())
}

/// A valid NS: an ordinary one (multicast or unicast destination, with or without a source
/// link-layer option) or a DAD probe.
fn valid_ns() -> impl Strategy<Value = NsSpec> {
    (
        mac(),
        mac(),
        unicast(),
        unicast(),
        any::<bool>(),
        proptest::option::of(mac()),
        other_options(),
        any::<bool>(),
        0usize..8,
    )
        .prop_map(
            |(eth_dst, eth_src, source, target, unicast_probe, link, others, dad, trailer)| {
                let dad = dad || source.is_unspecified();
                let mut options = others;
                if let (Some(link), false) = (link, dad) {
                    options.extend_from_slice(&slla(link));
                }
                NsSpec {
                    eth_dst,
                    eth_src,
                    source: if dad { Ipv6Addr::UNSPECIFIED } else { source },
                    destination: if unicast_probe && !dad {
                        target
                    } else {
                        solicited_node(target)
                    },
                    target,
                    options,
                    trailer,
                    ..NsSpec::default()
                }
            },
        )
}

/// The source link-layer address in `options`, read independently of the parser.
fn link_in(options: &[u8]) -> Option<MacAddr> {
    let mut rest = options;
    while rest.len() >= 8 {
        let len = usize::from(rest[1]) * 8;
        if rest[0] == 1 {
            return Some(MacAddr(
                rest[2], rest[3], rest[4], rest[5], rest[6], rest[7],
            ));
        }
        rest = &rest[len..];
    }
    None
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let _ = parse_solicitation(&bytes);
    }

    #[test]
    fn parse_never_panics_behind_a_plausible_header(
        spec in valid_ns(),
        tail in proptest::collection::vec(any::<u8>(), 0..120),
        payload_length in any::<u16>(),
    ) {
        // A real Ethernet/IPv6/NS prefix, then arbitrary bytes as options and length.
        let mut frame = ns_frame(&spec);
        frame.truncate(78);
        frame.extend_from_slice(&tail);
        frame[18..20].copy_from_slice(&payload_length.to_be_bytes());
        let _ = parse_solicitation(&frame);
    }

    #[test]
    fn parse_never_panics_on_mutated_solicitations(
        spec in valid_ns(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut frame = ns_frame(&spec);
        for (at, byte) in edits {
            let len = frame.len();
            frame[at % len] = byte;
        }
        let cut = cut % (frame.len() + 1);
        if let Ok(ns) = parse_solicitation(&frame[..cut]) {
            // Whatever passes still yields a well-formed advertisement.
            let na = decode_na(&advertisement(&ns, MacAddr(2, 0, 0, 0, 0, 1)));
            prop_assert_eq!(na.source, ns.target);
            prop_assert!(!ns.target.is_multicast());
        }
    }

    #[test]
    fn every_valid_solicitation_parses_and_gets_a_well_formed_answer(spec in valid_ns(), ours in mac()) {
        let ns = parse_solicitation(&ns_frame(&spec)).expect("valid NS");
        let link = link_in(&spec.options);
        prop_assert_eq!(ns, NeighborSolicitation {
            eth_source: spec.eth_src,
            source: spec.source,
            destination: spec.destination,
            target: spec.target,
            source_link_addr: link,
        });
        let expected = if spec.source.is_unspecified() {
            DecodedNa {
                eth_dst: MacAddr(0x33, 0x33, 0, 0, 0, 1),
                eth_src: ours,
                source: spec.target,
                destination: ALL_NODES,
                flags: 0x20,
                target: spec.target,
                target_link_addr: ours,
            }
        } else {
            DecodedNa {
                eth_dst: link.unwrap_or(spec.eth_src),
                eth_src: ours,
                source: spec.target,
                destination: spec.source,
                flags: 0x60,
                target: spec.target,
                target_link_addr: ours,
            }
        };
        prop_assert_eq!(decode_na(&advertisement(&ns, ours)), expected);
    }

    #[test]
    fn unsolicited_advertisements_are_well_formed(target in unicast(), ours in mac()) {
        prop_assert_eq!(decode_na(&unsolicited(target, ours)), DecodedNa {
            eth_dst: MacAddr(0x33, 0x33, 0, 0, 0, 1),
            eth_src: ours,
            source: target,
            destination: ALL_NODES,
            flags: 0x20,
            target,
            target_link_addr: ours,
        });
    }

    #[test]
    fn solicited_node_is_in_the_group_range_and_keeps_24_bits(address in any::<u128>()) {
        let group = solicited_node(Ipv6Addr::from(address));
        prop_assert!(is_solicited_node(group));
        prop_assert_eq!(u128::from(group) & 0xff_ffff, address & 0xff_ffff);
        prop_assert_eq!(
            u128::from(group) & !0xff_ffff,
            u128::from(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 1, 0xff00, 0))
        );
    }
}
