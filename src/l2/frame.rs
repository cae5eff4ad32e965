//! What ARP and NDP frames share: the error type, Ethernet constants and small helpers.
//!
//! Every parser here takes a whole Ethernet II frame as an `AF_PACKET`/`SOCK_RAW` socket
//! delivers it (destination MAC first, no FCS, VLAN tag already stripped by the NIC or the
//! kernel) and never panics, whatever the bytes.

/// The MAC address type used everywhere in L2 mode.
///
/// `pnet_packet` uses `pnet_base::MacAddr` but does not re-export it; `pnet_datalink` does, and
/// it is the very same type, so no extra dependency is needed.
pub use pnet_datalink::MacAddr;

/// Length of an Ethernet II header: destination, source, ethertype.
pub const ETHERNET_HEADER_LEN: usize = 14;

/// Shortest Ethernet frame on the wire without the FCS (64 bytes minus 4). A raw socket must
/// pad shorter frames itself: some NICs pad with garbage, some drivers drop runts.
pub const ETHERNET_MIN_FRAME_LEN: usize = 60;

/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// Ethertype of IPv4 (ARP's protocol type for IPv4 addresses).
pub const ETHERTYPE_IPV4: u16 = 0x0800;

/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;

/// The Ethernet broadcast address.
pub const BROADCAST: MacAddr = MacAddr(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

/// Why a frame was not taken as an ARP request or a Neighbor Solicitation.
///
/// A responder drops such frames (counting them is enough); none of these is a fault of ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame ends before a header or message that it announces is complete.
    #[error("truncated {layer}: needs {needed} bytes, frame has {got}")]
    Truncated {
        /// Which header or message is cut short (`"ethernet"`, `"arp"`, `"ipv6"`, …).
        layer: &'static str,
        /// Bytes that layer needs, counted from the start of the frame.
        needed: usize,
        /// Bytes the frame has.
        got: usize,
    },
    /// The ethertype is not ARP (0x0806); VLAN-tagged frames land here too.
    #[error("not an ARP frame")]
    NotArp,
    /// An ARP packet that is not a request (a reply, RARP, InARP, …).
    #[error("ARP operation is not a request")]
    NotRequest,
    /// An ARP packet for another pair than Ethernet (htype 1, hlen 6) and IPv4 (ptype 0x0800, plen 4).
    #[error("ARP packet is not Ethernet/IPv4")]
    NotEthernetIpv4,
    /// The ethertype is not IPv6 (0x86DD), or the IP version field is not 6.
    #[error("not an IPv6 frame")]
    NotIpv6,
    /// The IPv6 next header is not ICMPv6 (58); extension headers land here too.
    #[error("IPv6 packet does not carry ICMPv6 directly")]
    NotIcmpv6,
    /// An ICMPv6 message other than a Neighbor Solicitation (type 135).
    #[error("ICMPv6 message is not a neighbor solicitation")]
    NotSolicitation,
    /// A solicitation whose IPv6 hop limit is not 255: it may come from off-link (RFC 4861 §7.1.1).
    #[error("hop limit {0} (must be 255)")]
    BadHopLimit(u8),
    /// A solicitation whose ICMPv6 code is not 0.
    #[error("ICMPv6 code {0} (must be 0)")]
    BadCode(u8),
    /// The ICMPv6 checksum does not match the message.
    #[error("bad ICMPv6 checksum")]
    BadChecksum,
    /// An NDP option of length 0, one running past the message, or a source link-layer
    /// address option whose length does not fit Ethernet.
    #[error("malformed NDP option")]
    BadOption,
    /// A solicitation for a multicast target address.
    #[error("solicitation target is a multicast address")]
    MulticastTarget,
    /// A packet whose IPv6 source is a multicast address (RFC 4291 §2.7 forbids it).
    #[error("IPv6 source is a multicast address")]
    MulticastSource,
    /// A duplicate address detection probe (source `::`) not sent to a solicited-node group,
    /// or carrying a source link-layer address option.
    #[error("DAD solicitation not to a solicited-node group or with a source link-layer option")]
    InvalidDad,
}

/// [`FrameError::Truncated`] for `frame`, whose `layer` needs `needed` bytes from its start.
pub(crate) fn truncated(layer: &'static str, needed: usize, frame: &[u8]) -> FrameError {
    FrameError::Truncated {
        layer,
        needed,
        got: frame.len(),
    }
}

/// Pads a frame with zeros to [`ETHERNET_MIN_FRAME_LEN`].
pub(crate) fn pad_to_minimum(frame: &mut Vec<u8>) {
    if frame.len() < ETHERNET_MIN_FRAME_LEN {
        frame.resize(ETHERNET_MIN_FRAME_LEN, 0);
    }
}

#[cfg(test)]
pub(crate) mod captured;
#[cfg(test)]
pub(crate) mod testutil;
