use std::net::Ipv4Addr;

use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::Packet;
use proptest::prelude::*;

use super::*;
use crate::l2::frame::testutil::{arp_frame, ArpSpec, OURS, PEER};

const ASKED: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const ASKER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

/// Every field of an ARP frame we built, read back with pnet.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    eth_dst: MacAddr,
    eth_src: MacAddr,
    op: ArpOperation,
    sha: MacAddr,
    spa: Ipv4Addr,
    tha: MacAddr,
    tpa: Ipv4Addr,
}

/// Decodes with pnet, asserting the parts that are the same in every frame we send: 60 bytes,
/// ethertype ARP, Ethernet/IPv4 with lengths 6 and 4, our MAC as sender, zero padding.
fn decode(frame: &[u8]) -> Decoded {
    assert_eq!(frame.len(), 60, "padded to the Ethernet minimum");
    assert!(frame[42..].iter().all(|&b| b == 0), "padding is zeros");
    let eth = EthernetPacket::new(frame).expect("ethernet");
    assert_eq!(eth.get_ethertype(), EtherTypes::Arp);
    let arp = ArpPacket::new(eth.payload()).expect("arp");
    assert_eq!(arp.get_hardware_type(), ArpHardwareTypes::Ethernet);
    assert_eq!(arp.get_protocol_type(), EtherTypes::Ipv4);
    assert_eq!(arp.get_hw_addr_len(), 6);
    assert_eq!(arp.get_proto_addr_len(), 4);
    Decoded {
        eth_dst: eth.get_destination(),
        eth_src: eth.get_source(),
        op: arp.get_operation(),
        sha: arp.get_sender_hw_addr(),
        spa: arp.get_sender_proto_addr(),
        tha: arp.get_target_hw_addr(),
        tpa: arp.get_target_proto_addr(),
    }
}

#[test]
fn parses_a_broadcast_request() {
    let request = parse_request(&arp_frame(&ArpSpec::default())).expect("a request");
    assert!(!request.is_probe() && !request.is_announcement());
    assert_eq!(
        request,
        ArpRequest {
            eth_source: PEER,
            sender_mac: PEER,
            sender_ip: ASKER,
            target_ip: ASKED,
        }
    );
}

#[test]
fn parses_an_unpadded_request() {
    // A frame read from a local sender (or a veth) can be 42 bytes: padding is added by NICs.
    let frame = arp_frame(&ArpSpec {
        len: 42,
        ..ArpSpec::default()
    });
    assert_eq!(parse_request(&frame).map(|r| r.target_ip), Ok(ASKED));
}

#[test]
fn reply_round_trip_checks_every_field() {
    let request = parse_request(&arp_frame(&ArpSpec::default())).expect("a request");
    let reply = reply(&request, OURS);
    assert_eq!(
        decode(&reply),
        Decoded {
            eth_dst: PEER,
            eth_src: OURS,
            op: ArpOperations::Reply,
            sha: OURS,
            spa: ASKED,
            tha: PEER,
            tpa: ASKER,
        }
    );
    assert_eq!(parse_request(&reply), Err(FrameError::NotRequest));
}

#[test]
fn reply_goes_to_the_ethernet_source_and_names_the_arp_sender() {
    // A proxy or bridge may forward a request with another Ethernet source than the ARP
    // sender: the frame goes back where it came from, the ARP target is the asker.
    let other = MacAddr(0x02, 0x11, 0x22, 0x33, 0x44, 0x55);
    let request = parse_request(&arp_frame(&ArpSpec {
        eth_src: other,
        ..ArpSpec::default()
    }))
    .expect("a request");
    let decoded = decode(&reply(&request, OURS));
    assert_eq!(decoded.eth_dst, other);
    assert_eq!(decoded.tha, PEER);
}

#[test]
fn a_probe_is_a_request_and_is_answered_to_the_prober() {
    // RFC 5227 §2.1.1: sender IP 0.0.0.0, target hardware address zero.
    let probe = parse_request(&arp_frame(&ArpSpec {
        spa: Ipv4Addr::UNSPECIFIED,
        ..ArpSpec::default()
    }))
    .expect("a probe is a request");
    assert_eq!(probe.sender_ip, Ipv4Addr::UNSPECIFIED);
    assert!(probe.is_probe());
    assert!(!probe.is_announcement());
    let decoded = decode(&reply(&probe, OURS));
    assert_eq!(decoded.eth_dst, PEER);
    assert_eq!(decoded.spa, ASKED);
    assert_eq!(decoded.tpa, Ipv4Addr::UNSPECIFIED);
}

#[test]
fn gratuitous_is_a_broadcast_announcement_and_a_broadcast_reply() {
    let [request, reply] = gratuitous(ASKED, OURS);
    assert_eq!(
        decode(&request),
        Decoded {
            eth_dst: MacAddr::broadcast(),
            eth_src: OURS,
            op: ArpOperations::Request,
            sha: OURS,
            spa: ASKED,
            tha: MacAddr::zero(),
            tpa: ASKED,
        }
    );
    assert_eq!(
        decode(&reply),
        Decoded {
            eth_dst: MacAddr::broadcast(),
            eth_src: OURS,
            op: ArpOperations::Reply,
            sha: OURS,
            spa: ASKED,
            tha: OURS,
            tpa: ASKED,
        }
    );
    // Our own announcement is a well-formed request (sender IP = target IP).
    let parsed = parse_request(&request).expect("announcement parses as a request");
    assert_eq!((parsed.sender_ip, parsed.target_ip), (ASKED, ASKED));
    assert!(parsed.is_announcement());
    assert!(!parsed.is_probe());
}

#[test]
fn short_frames_are_truncated_with_the_layer_and_sizes() {
    assert_eq!(
        parse_request(&[]),
        Err(FrameError::Truncated {
            layer: "ethernet",
            needed: 14,
            got: 0
        })
    );
    let full = arp_frame(&ArpSpec::default());
    assert_eq!(
        parse_request(&full[..13]),
        Err(FrameError::Truncated {
            layer: "ethernet",
            needed: 14,
            got: 13
        })
    );
    for len in 14..42 {
        assert_eq!(
            parse_request(&full[..len]),
            Err(FrameError::Truncated {
                layer: "arp",
                needed: 42,
                got: len
            }),
            "{len} bytes"
        );
    }
    let error = parse_request(&full[..30]).expect_err("truncated");
    assert_eq!(
        error.to_string(),
        "truncated arp: needs 42 bytes, frame has 30"
    );
}

#[test]
fn other_ethertypes_are_not_arp() {
    // IPv4, IPv6, a VLAN tag in front of ARP, RARP.
    for ethertype in [0x0800, 0x86dd, 0x8100, 0x8035] {
        let frame = arp_frame(&ArpSpec {
            ethertype,
            ..ArpSpec::default()
        });
        assert_eq!(
            parse_request(&frame),
            Err(FrameError::NotArp),
            "{ethertype:#06x}"
        );
    }
}

#[test]
fn other_hardware_or_protocol_types_are_refused() {
    let cases = [
        ArpSpec {
            htype: 6, // IEEE 802
            ..ArpSpec::default()
        },
        ArpSpec {
            ptype: 0x86dd,
            ..ArpSpec::default()
        },
        ArpSpec {
            hlen: 8,
            ..ArpSpec::default()
        },
        ArpSpec {
            plen: 16,
            ..ArpSpec::default()
        },
    ];
    for spec in cases {
        assert_eq!(
            parse_request(&arp_frame(&spec)),
            Err(FrameError::NotEthernetIpv4),
            "{spec:?}"
        );
    }
}

#[test]
fn replies_and_other_operations_are_not_requests() {
    // Reply, RARP request and reply, InARP request.
    for op in [0, 2, 3, 4, 8] {
        let frame = arp_frame(&ArpSpec {
            op,
            ..ArpSpec::default()
        });
        assert_eq!(
            parse_request(&frame),
            Err(FrameError::NotRequest),
            "op {op}"
        );
    }
}

fn mac() -> impl Strategy<Value = MacAddr> {
    any::<[u8; 6]>().prop_map(|[a, b, c, d, e, f]| MacAddr(a, b, c, d, e, f))
}

fn request_spec() -> impl Strategy<Value = ArpSpec> {
    (
        mac(),
        mac(),
        mac(),
        any::<u32>(),
        any::<u32>(),
        mac(),
        42usize..=64,
    )
        .prop_map(|(eth_dst, eth_src, sha, spa, tpa, tha, len)| ArpSpec {
            eth_dst,
            eth_src,
            sha,
            spa: Ipv4Addr::from(spa),
            tha,
            tpa: Ipv4Addr::from(tpa),
            len,
            ..ArpSpec::default()
        })
}

proptest! {
    #[test]
    fn parse_never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_request(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mutated_requests(
        spec in request_spec(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        cut in any::<usize>(),
    ) {
        let mut frame = arp_frame(&spec);
        for (at, byte) in edits {
            let len = frame.len();
            frame[at % len] = byte;
        }
        let cut = cut % (frame.len() + 1);
        if let Ok(request) = parse_request(&frame[..cut]) {
            // Whatever passes is an Ethernet/IPv4 request, and the reply is well formed.
            prop_assert_eq!(&frame[12..14], &[0x08, 0x06]);
            prop_assert_eq!(&frame[14..22], &[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
            prop_assert_eq!(reply(&request, OURS).len(), 60);
        }
    }

    #[test]
    fn a_reply_to_any_request_is_well_formed(spec in request_spec(), ours in mac()) {
        let request = parse_request(&arp_frame(&spec)).expect("valid request");
        prop_assert_eq!(request, ArpRequest {
            eth_source: spec.eth_src,
            sender_mac: spec.sha,
            sender_ip: spec.spa,
            target_ip: spec.tpa,
        });
        let decoded = decode(&reply(&request, ours));
        prop_assert_eq!(decoded, Decoded {
            eth_dst: spec.eth_src,
            eth_src: ours,
            op: ArpOperations::Reply,
            sha: ours,
            spa: spec.tpa,
            tha: spec.sha,
            tpa: spec.spa,
        });
    }
}
