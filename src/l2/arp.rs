//! ARP (RFC 826) for IPv4 over Ethernet: parse requests, build replies and gratuitous ARP.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     htype (1 = Ethernet)      |     ptype (0x0800 = IPv4)     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |   hlen (6)    |   plen (4)    |  oper (1 request, 2 reply)    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |        sender hardware address (6) | sender protocol address (4) |
//! |        target hardware address (6) | target protocol address (4) |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! 28 bytes after a 14-byte Ethernet header: 42 bytes, padded to the 60-byte minimum.

use std::net::Ipv4Addr;

use pnet_packet::arp::{
    ArpHardwareTypes, ArpOperation, ArpOperations, ArpPacket, MutableArpPacket,
};
use pnet_packet::ethernet::{EtherTypes, EthernetPacket, MutableEthernetPacket};
use pnet_packet::Packet;

use super::frame::{
    pad_to_minimum, truncated, FrameError, MacAddr, BROADCAST, ETHERNET_HEADER_LEN,
    ETHERNET_MIN_FRAME_LEN,
};

/// Length of an ARP packet for Ethernet and IPv4.
pub const ARP_LEN: usize = 28;

/// An ARP request for an IPv4 address on Ethernet, as far as a responder needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpRequest {
    /// The Ethernet source of the frame: where the reply goes.
    pub eth_source: MacAddr,
    /// The sender hardware address in the ARP packet.
    pub sender_mac: MacAddr,
    /// The sender protocol address; `0.0.0.0` in an RFC 5227 probe (duplicate detection).
    pub sender_ip: Ipv4Addr,
    /// The address asked about.
    pub target_ip: Ipv4Addr,
}

impl ArpRequest {
    /// An RFC 5227 probe: a host checking the address is free before it takes it (sender
    /// `0.0.0.0`). Answering it for an address we announce is right: it is in use.
    pub fn is_probe(&self) -> bool {
        self.sender_ip.is_unspecified()
    }

    /// An announcement (gratuitous request): the sender claims `target_ip` for itself. For an
    /// address we announce, another host is claiming it too.
    pub fn is_announcement(&self) -> bool {
        self.sender_ip == self.target_ip
    }
}

/// Parses a whole Ethernet II frame as an ARP request for an IPv4 address.
///
/// Probes (sender `0.0.0.0`) and announcements (sender = target) are requests too: answering
/// a probe for an address we own is right, it tells the prober the address is taken.
pub fn parse_request(frame: &[u8]) -> Result<ArpRequest, FrameError> {
    let eth = EthernetPacket::new(frame)
        .ok_or_else(|| truncated("ethernet", ETHERNET_HEADER_LEN, frame))?;
    if eth.get_ethertype() != EtherTypes::Arp {
        return Err(FrameError::NotArp);
    }
    let arp = ArpPacket::new(eth.payload())
        .ok_or_else(|| truncated("arp", ETHERNET_HEADER_LEN + ARP_LEN, frame))?;
    // pnet reads the addresses at fixed Ethernet/IPv4 offsets whatever hlen/plen say, so the
    // lengths must be checked here before those fields mean anything.
    if arp.get_hardware_type() != ArpHardwareTypes::Ethernet
        || arp.get_protocol_type() != EtherTypes::Ipv4
        || arp.get_hw_addr_len() != 6
        || arp.get_proto_addr_len() != 4
    {
        return Err(FrameError::NotEthernetIpv4);
    }
    if arp.get_operation() != ArpOperations::Request {
        return Err(FrameError::NotRequest);
    }
    Ok(ArpRequest {
        eth_source: eth.get_source(),
        sender_mac: arp.get_sender_hw_addr(),
        sender_ip: arp.get_sender_proto_addr(),
        target_ip: arp.get_target_proto_addr(),
    })
}

/// The reply to `request` from `our_mac`: unicast to the requester's Ethernet source, saying
/// `request.target_ip` is at `our_mac`; 60 bytes.
pub fn reply(request: &ArpRequest, our_mac: MacAddr) -> Vec<u8> {
    build(&Fields {
        eth_destination: request.eth_source,
        our_mac,
        operation: ArpOperations::Reply,
        sender_ip: request.target_ip,
        target_mac: request.sender_mac,
        target_ip: request.sender_ip,
    })
}

/// Gratuitous ARP for `address` at `our_mac`: `[request, reply]`, both broadcast, with sender
/// and target protocol address both `address`.
///
/// The request is an RFC 5227 §2.3 announcement (target hardware address zero); every stack
/// takes it. The reply form is for hosts that only look at replies; as RFC 5944 §4.6 says, its
/// target hardware address is `our_mac`. That matters: Linux counts a reply as gratuitous only
/// when target and sender hardware address are equal (`arp_is_garp`), and ignores a
/// non-gratuitous one within `locktime` (1 s) of the entry's last change. MetalLB sends the same
/// pair with the broadcast address there, and its reply is ignored in that window
/// (`tests/l2_frames_kernel.rs` shows both).
pub fn gratuitous(address: Ipv4Addr, our_mac: MacAddr) -> [Vec<u8>; 2] {
    let request = build(&Fields {
        eth_destination: BROADCAST,
        our_mac,
        operation: ArpOperations::Request,
        sender_ip: address,
        target_mac: MacAddr::zero(),
        target_ip: address,
    });
    let reply = build(&Fields {
        eth_destination: BROADCAST,
        our_mac,
        operation: ArpOperations::Reply,
        sender_ip: address,
        target_mac: our_mac,
        target_ip: address,
    });
    [request, reply]
}

/// What varies between the ARP frames we send; the sender hardware address is always ours.
struct Fields {
    eth_destination: MacAddr,
    our_mac: MacAddr,
    operation: ArpOperation,
    sender_ip: Ipv4Addr,
    target_mac: MacAddr,
    target_ip: Ipv4Addr,
}

fn build(fields: &Fields) -> Vec<u8> {
    let mut frame = vec![0u8; ETHERNET_HEADER_LEN + ARP_LEN];
    // Sizes are fixed above, so these views always exist; the `if let` keeps a panic path out.
    if let Some(mut eth) = MutableEthernetPacket::new(&mut frame) {
        eth.set_destination(fields.eth_destination);
        eth.set_source(fields.our_mac);
        eth.set_ethertype(EtherTypes::Arp);
    }
    if let Some(mut arp) = MutableArpPacket::new(&mut frame[ETHERNET_HEADER_LEN..]) {
        arp.set_hardware_type(ArpHardwareTypes::Ethernet);
        arp.set_protocol_type(EtherTypes::Ipv4);
        arp.set_hw_addr_len(6);
        arp.set_proto_addr_len(4);
        arp.set_operation(fields.operation);
        arp.set_sender_hw_addr(fields.our_mac);
        arp.set_sender_proto_addr(fields.sender_ip);
        arp.set_target_hw_addr(fields.target_mac);
        arp.set_target_proto_addr(fields.target_ip);
    }
    pad_to_minimum(&mut frame);
    debug_assert_eq!(frame.len(), ETHERNET_MIN_FRAME_LEN);
    frame
}

#[cfg(test)]
mod tests;
