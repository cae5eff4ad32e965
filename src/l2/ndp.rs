//! NDP (RFC 4861) for IPv6 over Ethernet: parse Neighbor Solicitations, build Neighbor
//! Advertisements.
//!
//! ```text
//! Ethernet (14) | IPv6 (40, next header 58, hop limit 255) | ICMPv6 NS or NA:
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Type (135/136)|    Code (0)   |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |R|S|O|                     Reserved (NS: all reserved)         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Target Address (16)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Options: Type | Length (units of 8 bytes) | Link-layer address |
//! ```
//!
//! Our advertisements are 86 bytes: 14 + 40 + 24 + an 8-byte target link-layer address option.

use std::net::Ipv6Addr;

use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::icmpv6::ndp::{
    MutableNeighborAdvertPacket, NdpOption, NdpOptionTypes, NeighborAdvertFlags,
    NeighborSolicitPacket,
};
use pnet_packet::icmpv6::{self, Icmpv6Code, Icmpv6Packet, Icmpv6Types};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::ipv6::{Ipv6Packet, MutableIpv6Packet};
use pnet_packet::Packet;

use super::frame::{truncated, FrameError, MacAddr, ETHERNET_HEADER_LEN};

/// Length of the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

/// Length of a Neighbor Solicitation or Advertisement without options.
pub const ND_MESSAGE_LEN: usize = 24;

/// Length of an Ethernet link-layer address option (type, length 1, six bytes of MAC).
pub const LINK_ADDR_OPTION_LEN: usize = 8;

/// Length of every advertisement we build.
pub const ADVERTISEMENT_LEN: usize =
    ETHERNET_HEADER_LEN + IPV6_HEADER_LEN + ND_MESSAGE_LEN + LINK_ADDR_OPTION_LEN;

/// Where the ICMPv6 message starts in a frame without extension headers.
const ICMP_OFFSET: usize = ETHERNET_HEADER_LEN + IPV6_HEADER_LEN;

/// The hop limit every NDP message is sent with and must arrive with (RFC 4861 §7.1).
const NDP_HOP_LIMIT: u8 = 255;

/// `ff02::1`, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// A Neighbor Solicitation that passed the RFC 4861 §7.1.1 checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The Ethernet source of the frame.
    pub eth_source: MacAddr,
    /// The IPv6 source; `::` for a duplicate address detection probe.
    pub source: Ipv6Addr,
    /// The IPv6 destination: a solicited-node group, or the target itself for a unicast
    /// reachability (NUD) probe.
    pub destination: Ipv6Addr,
    /// The address asked about.
    pub target: Ipv6Addr,
    /// The source link-layer address option, if the solicitation has one (NUD probes often
    /// do not; DAD probes never do).
    pub source_link_addr: Option<MacAddr>,
}

impl NeighborSolicitation {
    /// Whether this is a duplicate address detection probe (source `::`).
    pub fn is_dad(&self) -> bool {
        self.source.is_unspecified()
    }
}

/// Parses a whole Ethernet II frame as a Neighbor Solicitation and validates it as RFC 4861
/// §7.1.1 asks: hop limit 255, code 0, valid checksum, at least 24 bytes, target not multicast,
/// no option of length 0, and for a DAD probe (source `::`) a solicited-node destination and no
/// source link-layer address option. Extension headers are not followed (next header must be
/// 58): nothing on a LAN puts them before an NS, and the kernel BPF filter matches offset 54.
pub fn parse_solicitation(frame: &[u8]) -> Result<NeighborSolicitation, FrameError> {
    let eth = EthernetPacket::new(frame)
        .ok_or_else(|| truncated("ethernet", ETHERNET_HEADER_LEN, frame))?;
    if eth.get_ethertype() != EtherTypes::Ipv6 {
        return Err(FrameError::NotIpv6);
    }
    let ip = Ipv6Packet::new(eth.payload()).ok_or_else(|| truncated("ipv6", ICMP_OFFSET, frame))?;
    if ip.get_version() != 6 {
        return Err(FrameError::NotIpv6);
    }
    if ip.get_next_header() != IpNextHeaderProtocols::Icmpv6 {
        return Err(FrameError::NotIcmpv6);
    }
    // The IPv6 payload length bounds the message; bytes after it are Ethernet padding.
    let end = ICMP_OFFSET + usize::from(ip.get_payload_length());
    let icmp = frame
        .get(ICMP_OFFSET..end)
        .ok_or_else(|| truncated("ipv6 payload", end, frame))?;
    let message_truncated = |needed| FrameError::Truncated {
        layer: "icmpv6",
        needed: ICMP_OFFSET + needed,
        got: end,
    };
    let header = Icmpv6Packet::new(icmp).ok_or_else(|| message_truncated(4))?;
    if header.get_icmpv6_type() != Icmpv6Types::NeighborSolicit {
        return Err(FrameError::NotSolicitation);
    }
    let ns = NeighborSolicitPacket::new(icmp).ok_or_else(|| message_truncated(ND_MESSAGE_LEN))?;
    if ip.get_hop_limit() != NDP_HOP_LIMIT {
        return Err(FrameError::BadHopLimit(ip.get_hop_limit()));
    }
    if ns.get_icmpv6_code() != Icmpv6Code(0) {
        return Err(FrameError::BadCode(ns.get_icmpv6_code().0));
    }
    let source = ip.get_source();
    let destination = ip.get_destination();
    if !checksum_ok(&header, source, destination) {
        return Err(FrameError::BadChecksum);
    }
    if source.is_multicast() {
        return Err(FrameError::MulticastSource);
    }
    let target = ns.get_target_addr();
    if target.is_multicast() {
        return Err(FrameError::MulticastTarget);
    }
    let source_link_addr = source_link_addr(&icmp[ND_MESSAGE_LEN..])?;
    if source.is_unspecified() && (!is_solicited_node(destination) || source_link_addr.is_some()) {
        return Err(FrameError::InvalidDad);
    }
    Ok(NeighborSolicitation {
        eth_source: eth.get_source(),
        source,
        destination,
        target,
        source_link_addr,
    })
}

/// The answer to `ns` from `our_mac`: a Neighbor Advertisement for `ns.target` with our MAC in
/// the target link-layer address option, IPv6 source = the target (ndisc6 ignores an NA from any
/// other source), hop limit 255.
///
/// An ordinary solicitation gets a solicited advertisement (Solicited and Override set) to its
/// source, at the source link-layer address if the NS had one, else at its Ethernet source
/// (the case of unicast NUD probes, which carry no option). A DAD probe (source `::`) gets the
/// RFC 4861 §7.2.4 answer: to all nodes (`ff02::1`), Solicited clear, Override set.
///
/// Linux answers a unicast NS for its own address without the option and therefore without
/// Override (§7.2.4 allows both); we always include the option and set Override, because after
/// a takeover the asker's entry must move to us. For a multicast NS and a DAD probe our bytes
/// are the kernel's exactly (see the captured fixtures in the tests).
pub fn advertisement(ns: &NeighborSolicitation, our_mac: MacAddr) -> Vec<u8> {
    if ns.is_dad() {
        build_advertisement(
            multicast_mac(ALL_NODES),
            our_mac,
            ns.target,
            ALL_NODES,
            NeighborAdvertFlags::Override,
        )
    } else {
        build_advertisement(
            ns.source_link_addr.unwrap_or(ns.eth_source),
            our_mac,
            ns.target,
            ns.source,
            NeighborAdvertFlags::Solicited | NeighborAdvertFlags::Override,
        )
    }
}

/// An unsolicited Neighbor Advertisement for `target` at `our_mac` (RFC 4861 §7.2.6): to all
/// nodes (`ff02::1`), Override set so neighbours replace an existing entry, Solicited clear.
pub fn unsolicited(target: Ipv6Addr, our_mac: MacAddr) -> Vec<u8> {
    build_advertisement(
        multicast_mac(ALL_NODES),
        our_mac,
        target,
        ALL_NODES,
        NeighborAdvertFlags::Override,
    )
}

/// The solicited-node multicast group of `address`: `ff02::1:ff00:0/104` with the low 24 bits
/// of the address (RFC 4291 §2.7.1). Solicitations for `address` are sent there.
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let [.., a, b, c] = address.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(a),
        u16::from_be_bytes([b, c]),
    )
}

/// Whether `address` is in `ff02::1:ff00:0/104`.
pub fn is_solicited_node(address: Ipv6Addr) -> bool {
    let s = address.segments();
    s[..6] == [0xff02, 0, 0, 0, 0, 1] && s[6] & 0xff00 == 0xff00
}

/// The Ethernet address an IPv6 multicast group maps to: `33:33` and the group's low 32 bits
/// (RFC 2464 §7).
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let [.., a, b, c, d] = group.octets();
    MacAddr(0x33, 0x33, a, b, c, d)
}

/// Whether the message's checksum is right. The stored value may be either zero of one's
/// complement arithmetic, so `0xffff` also matches a computed `0`.
fn checksum_ok(message: &Icmpv6Packet<'_>, source: Ipv6Addr, destination: Ipv6Addr) -> bool {
    let computed = icmpv6::checksum(message, &source, &destination);
    let stored = message.get_checksum();
    stored == computed || (computed == 0 && stored == 0xffff)
}

/// Walks the options after the fixed part of an NS and returns the first source link-layer
/// address option.
///
/// Done by hand rather than with pnet's `get_options_iter`: pnet computes an option's size as
/// `length * 8` in `u8`, which overflows (and panics in debug builds) for lengths from 32 on,
/// and it accepts length-0 options, which RFC 4861 §7.1.1 says to drop.
fn source_link_addr(mut options: &[u8]) -> Result<Option<MacAddr>, FrameError> {
    let mut found = None;
    while !options.is_empty() {
        let [kind, units, ..] = *options else {
            return Err(FrameError::BadOption);
        };
        let len = usize::from(units) * 8;
        if len == 0 || len > options.len() {
            return Err(FrameError::BadOption);
        }
        if kind == NdpOptionTypes::SourceLLAddr.0 {
            // Ethernet's option is exactly one unit (RFC 2464 §6); Linux drops an NS whose
            // option is any other size rather than guess where the address is.
            let [_, _, a, b, c, d, e, f] = options[..len] else {
                return Err(FrameError::BadOption);
            };
            // A repeated option is ignored, as Linux does: the first one counts.
            found.get_or_insert(MacAddr(a, b, c, d, e, f));
        }
        options = &options[len..];
    }
    Ok(found)
}

fn build_advertisement(
    eth_destination: MacAddr,
    our_mac: MacAddr,
    target: Ipv6Addr,
    destination: Ipv6Addr,
    flags: u8,
) -> Vec<u8> {
    let mut frame = vec![0u8; ADVERTISEMENT_LEN];
    // The sizes are fixed above, so each view exists; the `if let`s keep panic paths out.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(eth_destination);
        eth.set_source(our_mac);
        eth.set_ethertype(EtherTypes::Ipv6);
    }
    if let Some(mut ip) = MutableIpv6Packet::new(&mut frame[ETHERNET_HEADER_LEN..]) {
        ip.set_version(6);
        ip.set_payload_length((ND_MESSAGE_LEN + LINK_ADDR_OPTION_LEN) as u16);
        ip.set_next_header(IpNextHeaderProtocols::Icmpv6);
        ip.set_hop_limit(NDP_HOP_LIMIT);
        ip.set_source(target);
        ip.set_destination(destination);
    }
    if let Some(mut na) = MutableNeighborAdvertPacket::new(&mut frame[ICMP_OFFSET..]) {
        na.set_icmpv6_type(Icmpv6Types::NeighborAdvert);
        na.set_icmpv6_code(Icmpv6Code(0));
        na.set_flags(flags);
        na.set_target_addr(target);
        let MacAddr(a, b, c, d, e, f) = our_mac;
        na.set_options(&[NdpOption {
            option_type: NdpOptionTypes::TargetLLAddr,
            length: 1,
            data: vec![a, b, c, d, e, f],
        }]);
        let checksum = Icmpv6Packet::new(na.packet())
            .map(|message| icmpv6::checksum(&message, &target, &destination));
        if let Some(checksum) = checksum {
            na.set_checksum(checksum);
        }
    }
    frame
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
