//! A filtered link-layer channel for one interface and one protocol.
//!
//! pnet's own `channel()` would open a promiscuous `ETH_P_ALL` socket and copy every frame on
//! the node to user space. Instead: our own `AF_PACKET`/`SOCK_RAW` socket with protocol 0
//! (receives nothing yet), the classic BPF program attached, then handed to pnet
//! (`Config::socket_fd`), which binds it to the interface with the ethertype we pass as
//! `ChannelType::Layer3` — the socket stays `SOCK_RAW`, so it still reads and writes whole
//! Ethernet frames. Not promiscuous: the NIC's own filter (our MAC, broadcast, the multicast
//! groups joined through the IP stack) already lets through everything we answer.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsFd, IntoRawFd};
use std::time::Duration;

use pnet_datalink::{ChannelType, Config, DataLinkReceiver, DataLinkSender, NetworkInterface};

use super::bpf::{self, Insn};
use super::frame::MacAddr;
use super::sys;

/// How long a receive blocks: how quickly a responder thread notices it must stop.
pub(crate) const READ_TIMEOUT: Duration = Duration::from_millis(200);
/// A send never blocks longer than this (a wedged queue must not stall a responder).
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);

/// The two protocols answered, one socket (and thread) each per interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// ARP, for IPv4 addresses.
    Arp,
    /// Neighbour Discovery, for IPv6 addresses.
    Ndp,
}

impl Protocol {
    /// The protocol answering for `address`.
    pub fn of(address: IpAddr) -> Protocol {
        match address {
            IpAddr::V4(_) => Protocol::Arp,
            IpAddr::V6(_) => Protocol::Ndp,
        }
    }

    /// The ethertype the socket is bound to.
    pub fn ethertype(self) -> u16 {
        match self {
            Protocol::Arp => 0x0806,
            Protocol::Ndp => 0x86dd,
        }
    }

    /// The socket filter: only what this protocol's responder answers.
    fn program(self) -> Vec<Insn> {
        match self {
            Protocol::Arp => bpf::arp_requests(),
            Protocol::Ndp => bpf::neighbor_solicitations(),
        }
    }

    /// Lower-case name for logs.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Arp => "arp",
            Protocol::Ndp => "ndp",
        }
    }
}

/// Why a channel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// socket(AF_PACKET) failed (no CAP_NET_RAW?).
    #[error("cannot open an AF_PACKET socket: {0}")]
    Open(#[source] io::Error),
    /// The kernel refused the BPF program.
    #[error("cannot attach the {protocol} socket filter: {source}")]
    Filter {
        /// Which program.
        protocol: &'static str,
        /// What the kernel said.
        source: io::Error,
    },
    /// Binding to the interface failed (it may have just gone away).
    #[error("cannot bind to interface #{ifindex}: {source}")]
    Bind {
        /// The interface index.
        ifindex: u32,
        /// What the kernel said.
        source: io::Error,
    },
    /// pnet handed back a channel that is not Ethernet.
    #[error("unexpected datalink channel type")]
    ChannelType,
}

/// Receive buffer of a responder socket: ~10,000 ARP frames.
const RECEIVE_BUFFER: u32 = 2 << 20;

/// Both halves of an open channel.
pub(crate) struct Channel {
    pub(crate) tx: Box<dyn DataLinkSender>,
    pub(crate) rx: Box<dyn DataLinkReceiver>,
}

/// Opens the filtered channel for `protocol` on interface `ifindex` (in the network namespace
/// of the calling thread).
pub(crate) fn open(
    ifindex: u32,
    name: &str,
    mac: MacAddr,
    protocol: Protocol,
) -> Result<Channel, SocketError> {
    let fd = sys::packet_socket().map_err(SocketError::Open)?;
    let program: Vec<libc::sock_filter> = protocol
        .program()
        .into_iter()
        .map(|i| libc::sock_filter {
            code: i.code,
            jt: i.jt,
            jf: i.jf,
            k: i.k,
        })
        .collect();
    sys::attach_filter(fd.as_fd(), &program).map_err(|source| SocketError::Filter {
        protocol: protocol.name(),
        source,
    })?;
    // A burst of requests (a broadcast storm, a flood) arrives faster than a thread is
    // scheduled; the default buffer (~200 KiB, a few hundred frames) overflowed in the
    // benchmark's floods while the kernel, answering in softirq, dropped nothing.
    match sys::set_receive_buffer(fd.as_fd(), RECEIVE_BUFFER) {
        Ok(bytes) => tracing::debug!(interface = name, bytes, "responder receive buffer"),
        Err(error) => {
            tracing::debug!(interface = name, %error, "receive buffer left at the default")
        }
    }
    let interface = NetworkInterface {
        name: name.to_string(),
        description: String::new(),
        index: ifindex,
        mac: Some(mac),
        ips: Vec::new(),
        flags: 0,
    };
    let config = Config {
        read_timeout: Some(READ_TIMEOUT),
        write_timeout: Some(WRITE_TIMEOUT),
        channel_type: ChannelType::Layer3(protocol.ethertype()),
        promiscuous: false,
        // pnet owns the descriptor from here: it closes it on error and when both halves drop.
        socket_fd: Some(fd.into_raw_fd()),
        ..Config::default()
    };
    match pnet_datalink::channel(&interface, config) {
        Ok(pnet_datalink::Channel::Ethernet(tx, rx)) => Ok(Channel { tx, rx }),
        Ok(_) => Err(SocketError::ChannelType),
        Err(source) => Err(SocketError::Bind { ifindex, source }),
    }
}
