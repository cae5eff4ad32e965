//! The client's side of ARP and NDP: the requests it sends and what it recognises in the frames
//! it receives (replies to it, gratuitous announcements). Built and parsed with `pnet_packet`,
//! independently of ferrolb's own frame code, so the benchmark does not test ferrolb with itself.

use std::net::{Ipv4Addr, Ipv6Addr};

use pnet_packet::arp::{ArpHardwareTypes, ArpOperations, ArpPacket, MutableArpPacket};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::{self, Icmpv6Packet};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::Packet;

pub use pnet_datalink::MacAddr;

/// Ethernet type of ARP.
pub const ETH_ARP: u16 = 0x0806;
/// Ethernet type of IPv6.
pub const ETH_IPV6: u16 = 0x86dd;
/// Shortest Ethernet frame without its FCS: what a NIC pads an ARP frame to.
const MIN_FRAME: usize = 60;

/// A broadcast ARP request from `mac`/`ip` for `target`, padded to the minimum frame size.
pub fn arp_request(mac: MacAddr, ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    let mut frame = vec![0u8; MIN_FRAME];
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(MacAddr::broadcast());
        eth.set_source(mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[14..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(ArpOperations::Request);
        arp.set_sender_hw_addr(mac);
        arp.set_sender_proto_addr(ip);
        arp.set_target_hw_addr(MacAddr::zero());
        arp.set_target_proto_addr(target);
    }
    frame
}

/// An ARP frame, as far as the client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Request (`true`) or reply.
    pub request: bool,
    /// Ethernet destination.
    pub eth_destination: MacAddr,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address.
    pub sender_ip: Ipv4Addr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl Arp {
    /// A gratuitous ARP for `ip`: sender and target address both `ip`, broadcast (RFC 5227's
    /// announcement, as request or reply).
    pub fn is_gratuitous_for(&self, ip: Ipv4Addr) -> bool {
        self.sender_ip == ip && self.target_ip == ip && self.eth_destination.is_broadcast()
    }

    /// A reply from `ip` to `to`.
    pub fn is_reply(&self, ip: Ipv4Addr, to: Ipv4Addr) -> bool {
        !self.request && self.sender_ip == ip && self.target_ip == to
    }
}

/// Parses an Ethernet/IPv4 ARP frame; `None` for anything else.
pub fn parse_arp(frame: &[u8]) -> Option<Arp> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return None;
    }
    let arp = ArpPacket::new(eth.payload())?;
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return None;
    }
    let op = arp.get_operation();
    if op != ArpOperations::Request && op != ArpOperations::Reply {
        return None;
    }
    Some(Arp {
        request: op == ArpOperations::Request,
        eth_destination: eth.get_destination(),
        sender_mac: arp.get_sender_hw_addr(),
        sender_ip: arp.get_sender_proto_addr(),
        target_ip: arp.get_target_proto_addr(),
    })
}

/// The solicited-node multicast address of `a` (RFC 4291 §2.7.1).
fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// A multicast Neighbor Solicitation from `mac`/`ip` for `target`, with a source link-layer
/// address option, to `target`'s solicited-node group (what a host's kernel sends to resolve).
pub fn neighbor_solicitation(mac: MacAddr, ip: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    let g = group.octets();
    // ICMPv6: type, code, checksum, reserved, target, option (type 1, length 1 = 8 bytes, MAC).
    let mut icmp = vec![135u8, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&target.octets());
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&mac.octets());
    let sum = Icmpv6Packet::new(&icmp)
        .map(|p| icmpv6::checksum(&p, &ip, &group))
        .unwrap_or(0);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());

    let mut frame = Vec::with_capacity(14 + 40 + icmp.len());
    frame.extend_from_slice(&[0x33, 0x33, g[12], g[13], g[14], g[15]]);
    frame.extend_from_slice(&mac.octets());
    frame.extend_from_slice(&ETH_IPV6.to_be_bytes());
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(icmp.len() as u16).to_be_bytes());
    frame.push(IpNextHeaderProtocols::Icmpv6.0);
    frame.push(255);
    frame.extend_from_slice(&ip.octets());
    frame.extend_from_slice(&g);
    frame.extend_from_slice(&icmp);
    frame
}

/// A Neighbor Advertisement, as far as the client cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertisement {
    /// Ethernet source.
    pub eth_source: MacAddr,
    /// The IPv6 destination.
    pub destination: Ipv6Addr,
    /// The target address advertised.
    pub target: Ipv6Addr,
    /// Solicited flag.
    pub solicited: bool,
    /// Override flag.
    pub override_flag: bool,
}

/// Parses an Ethernet/IPv6 Neighbor Advertisement (no extension headers); `None` otherwise.
pub fn parse_advertisement(frame: &[u8]) -> Option<Advertisement> {
    let eth = EthernetPacket::new(frame)?;
    if eth.get_ethertype() != EtherTypes::Ipv6 {
        return None;
    }
    let ip = Ipv6Packet::new(eth.payload())?;
    if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
        return None;
    }
    let icmp = ip.payload();
    if icmp.len() < 24 || icmp[0] != 136 {
        return None;
    }
    let mut target = [0u8; 16];
    target.copy_from_slice(&icmp[8..24]);
    Some(Advertisement {
        eth_source: eth.get_source(),
        destination: ip.get_destination(),
        target: Ipv6Addr::from(target),
        solicited: icmp[4] & 0x40 != 0,
        override_flag: icmp[4] & 0x20 != 0,
    })
}
