//! Test helpers shared by the frame tests: frame builders (with pnet, independent of the code
//! under test) and an RFC 1071 checksum written out from the RFCs.

use std::net::{Ipv4Addr, Ipv6Addr};

use pnet_packet::arp::{ArpHardwareType, ArpOperation, MutableArpPacket};
use pnet_packet::ethernet::{EtherType, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::MutableNeighborSolicitPacket;
use pnet_packet::icmpv6::{Icmpv6Code, Icmpv6Type};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv6::MutableIpv6Packet;

use super::MacAddr;

/// Our MAC in the tests.
pub const OURS: MacAddr = MacAddr(0x02, 0x00, 0x5e, 0x10, 0x00, 0x01);
/// The asking host's MAC.
pub const PEER: MacAddr = MacAddr(0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee);

/// The ARP fields of a test frame; defaults are a valid request from `PEER` for 192.0.2.10.
#[derive(Debug, Clone)]
pub struct ArpSpec {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub ethertype: u16,
    pub htype: u16,
    pub ptype: u16,
    pub hlen: u8,
    pub plen: u8,
    pub op: u16,
    pub sha: MacAddr,
    pub spa: Ipv4Addr,
    pub tha: MacAddr,
    pub tpa: Ipv4Addr,
    /// Total frame length (42 unpadded, 60 padded).
    pub len: usize,
}

impl Default for ArpSpec {
    fn default() -> Self {
        ArpSpec {
            eth_dst: MacAddr::broadcast(),
            eth_src: PEER,
            ethertype: 0x0806,
            htype: 1,
            ptype: 0x0800,
            hlen: 6,
            plen: 4,
            op: 1,
            sha: PEER,
            spa: Ipv4Addr::new(192, 0, 2, 1),
            tha: MacAddr::zero(),
            tpa: Ipv4Addr::new(192, 0, 2, 10),
            len: 60,
        }
    }
}

/// Builds an ARP frame with pnet from `spec`.
pub fn arp_frame(spec: &ArpSpec) -> Vec<u8> {
    let mut frame = vec![0u8; spec.len.max(42)];
    let mut eth = MutableEthernetPacket::new(&mut frame).expect("room for ethernet");
    eth.set_destination(spec.eth_dst);
    eth.set_source(spec.eth_src);
    eth.set_ethertype(EtherType(spec.ethertype));
    let mut arp = MutableArpPacket::new(&mut frame[14..]).expect("room for arp");
    arp.set_hardware_type(ArpHardwareType(spec.htype));
    arp.set_protocol_type(EtherType(spec.ptype));
    arp.set_hw_addr_len(spec.hlen);
    arp.set_proto_addr_len(spec.plen);
    arp.set_operation(ArpOperation(spec.op));
    arp.set_sender_hw_addr(spec.sha);
    arp.set_sender_proto_addr(spec.spa);
    arp.set_target_hw_addr(spec.tha);
    arp.set_target_proto_addr(spec.tpa);
    frame.truncate(spec.len);
    frame
}

/// The fields of a test NS frame; defaults are a valid multicast NS from `PEER`'s link-local
/// address for 2001:db8::10, with a source link-layer address option.
#[derive(Debug, Clone)]
pub struct NsSpec {
    pub eth_dst: MacAddr,
    pub eth_src: MacAddr,
    pub ethertype: u16,
    pub version: u8,
    pub next_header: u8,
    pub hop_limit: u8,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub icmp_type: u8,
    pub code: u8,
    pub target: Ipv6Addr,
    /// Raw option bytes after the 24-byte message.
    pub options: Vec<u8>,
    /// Replaces the computed checksum.
    pub checksum: Option<u16>,
    /// Replaces the IPv6 payload length (default: the message's length).
    pub payload_length: Option<u16>,
    /// Bytes appended after the message (Ethernet padding).
    pub trailer: usize,
}

impl Default for NsSpec {
    fn default() -> Self {
        NsSpec {
            eth_dst: MacAddr(0x33, 0x33, 0xff, 0x00, 0x00, 0x10),
            eth_src: PEER,
            ethertype: 0x86dd,
            version: 6,
            next_header: 58,
            hop_limit: 255,
            source: "fe80::aa:bbff:fecc:ddee".parse().expect("address"),
            destination: "ff02::1:ff00:10".parse().expect("address"),
            icmp_type: 135,
            code: 0,
            target: "2001:db8::10".parse().expect("address"),
            options: slla(PEER).to_vec(),
            checksum: None,
            payload_length: None,
            trailer: 0,
        }
    }
}

/// A source link-layer address option (type 1, one unit) for `mac`.
pub fn slla(mac: MacAddr) -> [u8; 8] {
    [1, 1, mac.0, mac.1, mac.2, mac.3, mac.4, mac.5]
}

/// Builds an NS frame with pnet from `spec`; the checksum comes from [`icmpv6_checksum`].
pub fn ns_frame(spec: &NsSpec) -> Vec<u8> {
    let message_len = 24 + spec.options.len();
    let mut frame = vec![0u8; 54 + message_len + spec.trailer];
    let mut eth = MutableEthernetPacket::new(&mut frame).expect("room for ethernet");
    eth.set_destination(spec.eth_dst);
    eth.set_source(spec.eth_src);
    eth.set_ethertype(EtherType(spec.ethertype));
    let mut ip = MutableIpv6Packet::new(&mut frame[14..]).expect("room for ipv6");
    ip.set_version(spec.version);
    ip.set_payload_length(spec.payload_length.unwrap_or(message_len as u16));
    ip.set_next_header(IpNextHeaderProtocol(spec.next_header));
    ip.set_hop_limit(spec.hop_limit);
    ip.set_source(spec.source);
    ip.set_destination(spec.destination);
    let mut ns =
        MutableNeighborSolicitPacket::new(&mut frame[54..54 + message_len]).expect("room for ns");
    ns.set_icmpv6_type(Icmpv6Type(spec.icmp_type));
    ns.set_icmpv6_code(Icmpv6Code(spec.code));
    ns.set_target_addr(spec.target);
    frame[78..78 + spec.options.len()].copy_from_slice(&spec.options);
    let checksum = spec.checksum.unwrap_or_else(|| {
        icmpv6_checksum(spec.source, spec.destination, &frame[54..54 + message_len])
    });
    frame[56..58].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// The ICMPv6 checksum (RFC 4443 §2.3) of `message`, computed from the RFCs' definition and
/// not with pnet: the one's complement of the one's complement sum of the RFC 8200 §8.1
/// pseudo-header and the message with its checksum field taken as zero.
pub fn icmpv6_checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut zeroed = message.to_vec();
    zeroed[2] = 0;
    zeroed[3] = 0;
    !ones_complement_sum(&with_pseudo_header(source, destination, &zeroed))
}

/// The receiver's check (RFC 1071 §1): the message, checksum field included, and its
/// pseudo-header sum to all ones.
pub fn icmpv6_checksum_valid(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> bool {
    ones_complement_sum(&with_pseudo_header(source, destination, message)) == 0xffff
}

/// Source, destination, 32-bit upper-layer length, three zero bytes, next header 58, then the
/// message.
fn with_pseudo_header(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(40 + message.len() + 1);
    data.extend_from_slice(&source.octets());
    data.extend_from_slice(&destination.octets());
    data.extend_from_slice(&(message.len() as u32).to_be_bytes());
    data.extend_from_slice(&[0, 0, 0, 58]);
    data.extend_from_slice(message);
    data
}

/// The 16-bit one's complement sum of `data` (an odd last byte padded with zero).
fn ones_complement_sum(data: &[u8]) -> u16 {
    let mut sum: u64 = data
        .chunks(2)
        .map(|word| u64::from(word[0]) << 8 | u64::from(word.get(1).copied().unwrap_or(0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}
