use std::net::Ipv6Addr;

use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmpv6::ndp::{NdpOptionTypes, NeighborAdvertPacket};
use pnet_packet::icmpv6::{Icmpv6Code, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::Packet;

use super::*;
use crate::l2::frame::testutil::{
    icmpv6_checksum, icmpv6_checksum_valid, ns_frame, slla, NsSpec, OURS, PEER,
};

fn addr(text: &str) -> Ipv6Addr {
    text.parse().expect("test address")
}

/// Every varying field of an NA we built, read back with pnet.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct DecodedNa {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub flags: u8,
    pub target: Ipv6Addr,
    pub target_link_addr: MacAddr,
}

/// Decodes with pnet, asserting what every NA we send has: 86 bytes, IPv6 with traffic class
/// and flow label 0, payload length 32, next header 58, hop limit 255, type 136, code 0, a
/// checksum valid by an independent computation, zero reserved bits, and exactly one option:
/// a target link-layer address of length 1.
pub(super) fn decode_na(frame: &[u8]) -> DecodedNa {
    assert_eq!(frame.len(), 86);
    let eth = EthernetPacket::new(frame).expect("ethernet");
    assert_eq!(eth.get_ethertype(), EtherTypes::Ipv6);
    let ip = Ipv6Packet::new(eth.payload()).expect("ipv6");
    assert_eq!(ip.get_version(), 6);
    assert_eq!(ip.get_traffic_class(), 0);
    assert_eq!(ip.get_flow_label(), 0);
    assert_eq!(ip.get_payload_length(), 32);
    assert_eq!(ip.get_next_header(), IpNextHeaderProtocols::Icmpv6);
    assert_eq!(ip.get_hop_limit(), 255);
    let message = &frame[54..];
    assert!(
        icmpv6_checksum_valid(ip.get_source(), ip.get_destination(), message),
        "checksum"
    );
    let na = NeighborAdvertPacket::new(message).expect("na");
    assert_eq!(na.get_icmpv6_type(), Icmpv6Types::NeighborAdvert);
    assert_eq!(na.get_icmpv6_code(), Icmpv6Code(0));
    assert_eq!(na.get_flags() & 0x1f, 0, "reserved bits");
    assert_eq!(na.get_reserved(), 0);
    let options = na.get_options();
    assert_eq!(options.len(), 1);
    assert_eq!(options[0].option_type, NdpOptionTypes::TargetLLAddr);
    assert_eq!(options[0].length, 1);
    let [a, b, c, d, e, f] = options[0].data[..] else {
        panic!("option data {:?}", options[0].data)
    };
    DecodedNa {
        eth_dst: eth.get_destination(),
        eth_src: eth.get_source(),
        source: ip.get_source(),
        destination: ip.get_destination(),
        flags: na.get_flags(),
        target: na.get_target_addr(),
        target_link_addr: MacAddr(a, b, c, d, e, f),
    }
}

const SOLICITED_OVERRIDE: u8 = 0x60;
const OVERRIDE: u8 = 0x20;

#[test]
fn parses_a_multicast_solicitation_with_source_link_address() {
    let spec = NsSpec::default();
    assert_eq!(
        parse_solicitation(&ns_frame(&spec)),
        Ok(NeighborSolicitation {
            eth_source: PEER,
            source: spec.source,
            destination: addr("ff02::1:ff00:10"),
            target: addr("2001:db8::10"),
            source_link_addr: Some(PEER),
        })
    );
}

#[test]
fn solicited_advertisement_round_trip_checks_every_field() {
    let ns = parse_solicitation(&ns_frame(&NsSpec::default())).expect("valid NS");
    assert!(!ns.is_dad());
    assert_eq!(
        decode_na(&advertisement(&ns, OURS)),
        DecodedNa {
            eth_dst: PEER,
            eth_src: OURS,
            source: addr("2001:db8::10"),
            destination: addr("fe80::aa:bbff:fecc:ddee"),
            flags: SOLICITED_OVERRIDE,
            target: addr("2001:db8::10"),
            target_link_addr: OURS,
        }
    );
}

#[test]
fn a_unicast_probe_without_link_address_is_answered_at_its_ethernet_source() {
    // A NUD probe: unicast to the target, no source link-layer option (RFC 4861 §7.2.2 lets
    // a sender omit it when it sends to a unicast address). MetalLB drops these.
    let spec = NsSpec {
        eth_dst: OURS,
        source: addr("2001:db8::1"),
        destination: addr("2001:db8::10"),
        options: vec![],
        ..NsSpec::default()
    };
    let ns = parse_solicitation(&ns_frame(&spec)).expect("NUD probe is valid");
    assert_eq!(ns.source_link_addr, None);
    let na = decode_na(&advertisement(&ns, OURS));
    assert_eq!(na.eth_dst, PEER);
    assert_eq!(na.destination, addr("2001:db8::1"));
    assert_eq!(na.source, addr("2001:db8::10"));
    assert_eq!(na.flags, SOLICITED_OVERRIDE);
}

#[test]
fn the_source_link_address_option_wins_over_the_ethernet_source() {
    let other = MacAddr(0x02, 0x11, 0x22, 0x33, 0x44, 0x55);
    let ns = parse_solicitation(&ns_frame(&NsSpec {
        options: slla(other).to_vec(),
        ..NsSpec::default()
    }))
    .expect("valid NS");
    assert_eq!(decode_na(&advertisement(&ns, OURS)).eth_dst, other);
}

#[test]
fn unknown_options_are_skipped_and_the_first_link_address_counts() {
    let other = MacAddr(0x02, 0x11, 0x22, 0x33, 0x44, 0x55);
    // A nonce option (RFC 3971 type 14, one unit), then two source link-layer options.
    let mut options = vec![14, 1, 1, 2, 3, 4, 5, 6];
    options.extend_from_slice(&slla(other));
    options.extend_from_slice(&slla(PEER));
    let ns = parse_solicitation(&ns_frame(&NsSpec {
        options,
        ..NsSpec::default()
    }))
    .expect("valid NS");
    assert_eq!(ns.source_link_addr, Some(other));
}

#[test]
fn ethernet_padding_after_the_message_is_ignored() {
    let ns = parse_solicitation(&ns_frame(&NsSpec {
        options: vec![],
        trailer: 10,
        ..NsSpec::default()
    }))
    .expect("padding is not part of the message");
    assert_eq!(ns.target, addr("2001:db8::10"));
}

fn dad_spec() -> NsSpec {
    NsSpec {
        eth_dst: MacAddr(0x33, 0x33, 0xff, 0x00, 0x00, 0x10),
        source: Ipv6Addr::UNSPECIFIED,
        destination: addr("ff02::1:ff00:10"),
        options: vec![],
        ..NsSpec::default()
    }
}

#[test]
fn a_dad_probe_is_answered_to_all_nodes_without_the_solicited_flag() {
    let ns = parse_solicitation(&ns_frame(&dad_spec())).expect("valid DAD probe");
    assert!(ns.is_dad());
    assert_eq!(
        decode_na(&advertisement(&ns, OURS)),
        DecodedNa {
            eth_dst: MacAddr(0x33, 0x33, 0, 0, 0, 1),
            eth_src: OURS,
            source: addr("2001:db8::10"),
            destination: addr("ff02::1"),
            flags: OVERRIDE,
            target: addr("2001:db8::10"),
            target_link_addr: OURS,
        }
    );
}

#[test]
fn unsolicited_advertisement_overrides_to_all_nodes() {
    assert_eq!(
        decode_na(&unsolicited(addr("2001:db8::7"), OURS)),
        DecodedNa {
            eth_dst: MacAddr(0x33, 0x33, 0, 0, 0, 1),
            eth_src: OURS,
            source: addr("2001:db8::7"),
            destination: addr("ff02::1"),
            flags: OVERRIDE,
            target: addr("2001:db8::7"),
            target_link_addr: OURS,
        }
    );
}

#[test]
fn advertisement_checksum_matches_an_independent_computation() {
    let frame = unsolicited(addr("2001:db8::7"), OURS);
    let stored = u16::from_be_bytes([frame[56], frame[57]]);
    assert_eq!(
        stored,
        icmpv6_checksum(addr("2001:db8::7"), ALL_NODES, &frame[54..])
    );
    // And the parser's check agrees with the independent one on frames it did not build.
    let ns = ns_frame(&NsSpec::default());
    assert!(icmpv6_checksum_valid(
        NsSpec::default().source,
        NsSpec::default().destination,
        &ns[54..]
    ));
}

#[test]
fn solicited_node_groups_keep_the_low_24_bits() {
    assert_eq!(
        solicited_node(addr("2001:db8::1234:5678")),
        addr("ff02::1:ff34:5678")
    );
    assert_eq!(
        solicited_node(addr("fe80::aa:bbff:fecc:ddee")),
        addr("ff02::1:ffcc:ddee")
    );
    assert_eq!(solicited_node(addr("::")), addr("ff02::1:ff00:0"));
    assert!(is_solicited_node(addr("ff02::1:ff00:10")));
    assert!(is_solicited_node(solicited_node(addr(
        "2001:db8::ffff:ffff"
    ))));
    for other in [
        "ff02::1",
        "ff02::2:ff00:10",
        "ff05::1:ff00:10",
        "ff02::1:fe00:10",
        "2001:db8::1",
    ] {
        assert!(!is_solicited_node(addr(other)), "{other}");
    }
    assert_eq!(
        multicast_mac(addr("ff02::1:ff34:5678")),
        MacAddr(0x33, 0x33, 0xff, 0x34, 0x56, 0x78)
    );
}

/// A checksum of `0xffff` is the other zero of one's complement: accepted where `0` is computed.
#[test]
fn negative_zero_checksum_is_accepted() {
    // An unknown option whose first data word makes the sum of everything but the checksum
    // 0xffff, so the computed checksum is 0; then store 0xffff instead.
    let mut spec = NsSpec {
        options: vec![200, 1, 0, 0, 0, 0, 0, 0],
        ..NsSpec::default()
    };
    let c = u16::from_be_bytes(ns_frame(&spec)[56..58].try_into().expect("two bytes"));
    spec.options[2..4].copy_from_slice(&c.to_be_bytes());
    let zero = ns_frame(&spec);
    assert_eq!(&zero[56..58], &[0, 0], "computed checksum is zero");
    assert!(parse_solicitation(&zero).is_ok());
    spec.checksum = Some(0xffff);
    assert!(parse_solicitation(&ns_frame(&spec)).is_ok());
}

fn parse(spec: NsSpec) -> Result<NeighborSolicitation, FrameError> {
    parse_solicitation(&ns_frame(&spec))
}

#[test]
fn short_frames_are_truncated_with_the_layer_and_sizes() {
    let full = ns_frame(&NsSpec::default());
    assert_eq!(
        parse_solicitation(&full[..10]),
        Err(FrameError::Truncated {
            layer: "ethernet",
            needed: 14,
            got: 10
        })
    );
    for len in 14..54 {
        assert_eq!(
            parse_solicitation(&full[..len]),
            Err(FrameError::Truncated {
                layer: "ipv6",
                needed: 54,
                got: len
            })
        );
    }
    // The IPv6 payload length says 32 bytes follow; fewer do.
    for len in 54..full.len() {
        assert_eq!(
            parse_solicitation(&full[..len]),
            Err(FrameError::Truncated {
                layer: "ipv6 payload",
                needed: 86,
                got: len
            })
        );
    }
}

#[test]
fn short_icmp_messages_are_truncated() {
    // Payload length 2: not even an ICMPv6 header.
    assert_eq!(
        parse(NsSpec {
            payload_length: Some(2),
            trailer: 8,
            ..NsSpec::default()
        }),
        Err(FrameError::Truncated {
            layer: "icmpv6",
            needed: 58,
            got: 56
        })
    );
    // An NS of 20 bytes (RFC 4861 §7.1.1: at least 24).
    assert_eq!(
        parse(NsSpec {
            payload_length: Some(20),
            ..NsSpec::default()
        }),
        Err(FrameError::Truncated {
            layer: "icmpv6",
            needed: 78,
            got: 74
        })
    );
}

#[test]
fn other_ethertypes_and_ip_versions_are_not_ipv6() {
    for ethertype in [0x0800, 0x0806, 0x8100] {
        assert_eq!(
            parse(NsSpec {
                ethertype,
                ..NsSpec::default()
            }),
            Err(FrameError::NotIpv6)
        );
    }
    assert_eq!(
        parse(NsSpec {
            version: 4,
            ..NsSpec::default()
        }),
        Err(FrameError::NotIpv6)
    );
}

#[test]
fn other_next_headers_are_not_icmpv6() {
    // Hop-by-hop options (as in MLD reports), TCP, UDP, routing, fragment.
    for next_header in [0, 6, 17, 43, 44] {
        assert_eq!(
            parse(NsSpec {
                next_header,
                ..NsSpec::default()
            }),
            Err(FrameError::NotIcmpv6),
            "{next_header}"
        );
    }
}

#[test]
fn other_icmp_messages_are_not_solicitations() {
    // Echo request, RS, RA, NA, redirect.
    for icmp_type in [128, 133, 134, 136, 137] {
        assert_eq!(
            parse(NsSpec {
                icmp_type,
                ..NsSpec::default()
            }),
            Err(FrameError::NotSolicitation),
            "{icmp_type}"
        );
    }
}

#[test]
fn a_routed_solicitation_has_a_bad_hop_limit() {
    for hop_limit in [0, 1, 64, 254] {
        assert_eq!(
            parse(NsSpec {
                hop_limit,
                ..NsSpec::default()
            }),
            Err(FrameError::BadHopLimit(hop_limit))
        );
    }
    assert_eq!(
        FrameError::BadHopLimit(64).to_string(),
        "hop limit 64 (must be 255)"
    );
}

#[test]
fn a_nonzero_code_is_refused() {
    assert_eq!(
        parse(NsSpec {
            code: 1,
            ..NsSpec::default()
        }),
        Err(FrameError::BadCode(1))
    );
}

#[test]
fn a_wrong_checksum_is_refused() {
    let good = ns_frame(&NsSpec::default());
    let stored = u16::from_be_bytes([good[56], good[57]]);
    assert_eq!(
        parse(NsSpec {
            checksum: Some(stored ^ 0x0100),
            ..NsSpec::default()
        }),
        Err(FrameError::BadChecksum)
    );
    // The pseudo-header counts: the same message from another source fails.
    let mut moved = good.clone();
    moved[22 + 15] ^= 1;
    assert_eq!(parse_solicitation(&moved), Err(FrameError::BadChecksum));
    // So does a flipped bit in the target.
    let mut flipped = good;
    flipped[62 + 15] ^= 1;
    assert_eq!(parse_solicitation(&flipped), Err(FrameError::BadChecksum));
}

#[test]
fn multicast_sources_and_targets_are_refused() {
    assert_eq!(
        parse(NsSpec {
            source: addr("ff02::1"),
            ..NsSpec::default()
        }),
        Err(FrameError::MulticastSource)
    );
    assert_eq!(
        parse(NsSpec {
            target: addr("ff02::1:ff00:10"),
            ..NsSpec::default()
        }),
        Err(FrameError::MulticastTarget)
    );
}

#[test]
fn malformed_options_are_refused() {
    let cases: [Vec<u8>; 5] = [
        vec![1, 0, 0, 0, 0, 0, 0, 0],                           // length 0
        vec![14, 2, 0, 0, 0, 0, 0, 0],                          // runs past the message
        vec![1, 1, 2, 3, 4, 5, 6, 7, 14],                       // a dangling byte
        vec![1, 2, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0],   // two-unit SLLA on Ethernet
        vec![14, 1, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0, 0, 0, 0, 0], // second option length 0
    ];
    for options in cases {
        assert_eq!(
            parse(NsSpec {
                options: options.clone(),
                ..NsSpec::default()
            }),
            Err(FrameError::BadOption),
            "{options:?}"
        );
    }
    // A length that overflows pnet's u8 arithmetic (32 * 8) is refused, not a panic.
    assert_eq!(
        parse(NsSpec {
            options: vec![14, 32, 0, 0, 0, 0, 0, 0],
            ..NsSpec::default()
        }),
        Err(FrameError::BadOption)
    );
}

#[test]
fn dad_probes_must_go_to_a_solicited_node_group_without_a_link_address() {
    assert_eq!(
        parse(NsSpec {
            destination: addr("2001:db8::10"),
            ..dad_spec()
        }),
        Err(FrameError::InvalidDad)
    );
    assert_eq!(
        parse(NsSpec {
            destination: addr("ff02::1"),
            ..dad_spec()
        }),
        Err(FrameError::InvalidDad)
    );
    assert_eq!(
        parse(NsSpec {
            options: slla(PEER).to_vec(),
            ..dad_spec()
        }),
        Err(FrameError::InvalidDad)
    );
}
