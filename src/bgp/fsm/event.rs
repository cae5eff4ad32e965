//! Inputs of the state machine: what happened on the connections, what the operator asked.

use std::net::Ipv4Addr;

use super::Notification;

/// Who opened a transport connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// We connected to the peer.
    Outbound,
    /// The peer connected to us.
    Inbound,
}

/// Names one transport connection of the session. Outbound ids are chosen by the state
/// machine (in [`Action::Connect`](super::Action::Connect)); inbound ids by the session
/// layer when it hands over an accepted socket ([`Event::TcpAccepted`]), each `seq` once.
/// The direction is part of the id, so the two never clash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Who opened the connection.
    pub direction: Direction,
    /// A number unique among the connections of this direction.
    pub seq: u64,
}

impl ConnId {
    /// An id for an accepted connection.
    pub fn inbound(seq: u64) -> ConnId {
        ConnId {
            direction: Direction::Inbound,
            seq,
        }
    }
}

/// How the operator stops a session; chooses the Cease subcode (RFC 4486).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StopKind {
    /// Administrative Shutdown: close and stay down until [`Event::ManualStart`].
    Shutdown,
    /// Administrative Reset: close and start again (after the connect-retry base delay).
    Reset,
    /// Peer De-configured: the peer was removed from the configuration; stay down (the
    /// machine is about to be dropped).
    Deconfigured,
    /// Other Configuration Change: the session's settings changed; start again (a new
    /// machine with the new configuration usually replaces this one).
    ConfigChanged,
}

impl StopKind {
    /// The Cease subcode (RFC 4486) sent on every connection that sent an OPEN.
    pub fn cease_subcode(self) -> u8 {
        use super::cease;
        match self {
            StopKind::Shutdown => cease::ADMINISTRATIVE_SHUTDOWN,
            StopKind::Reset => cease::ADMINISTRATIVE_RESET,
            StopKind::Deconfigured => cease::PEER_DECONFIGURED,
            StopKind::ConfigChanged => cease::OTHER_CONFIGURATION_CHANGE,
        }
    }

    /// Whether the session starts again afterwards.
    pub fn restarts(self) -> bool {
        matches!(self, StopKind::Reset | StopKind::ConfigChanged)
    }
}

/// What the state machine needs of a received OPEN. The codec has already decoded it and
/// resolved the 4-octet AS (RFC 6793); capabilities are the session layer's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerOpen {
    /// BGP version (we speak 4).
    pub version: u8,
    /// The peer's AS, 4 octets.
    pub asn: u32,
    /// The hold time the peer proposes, in seconds.
    pub hold_time: u16,
    /// The peer's BGP identifier.
    pub router_id: Ipv4Addr,
}

/// An input of [`Fsm::handle`](super::Fsm::handle). Events naming a connection the state
/// machine no longer knows (closed by an earlier action) are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Start the session (connect, or wait for the peer when passive).
    ManualStart,
    /// Stop the session: every connection gets a Cease NOTIFICATION and is closed.
    ManualStop(StopKind),
    /// An outbound connection asked for with [`Action::Connect`](super::Action::Connect)
    /// is up.
    TcpConnected {
        /// The connection.
        conn: ConnId,
    },
    /// The peer connected to us. Its id must be inbound and new.
    TcpAccepted {
        /// The connection.
        conn: ConnId,
    },
    /// A connect attempt failed, or the connection closed or failed (EOF, reset, IO error).
    TcpClosed {
        /// The connection.
        conn: ConnId,
    },
    /// An OPEN arrived.
    Open {
        /// The connection.
        conn: ConnId,
        /// Its contents.
        open: PeerOpen,
    },
    /// A KEEPALIVE arrived.
    Keepalive {
        /// The connection.
        conn: ConnId,
    },
    /// An UPDATE arrived (well-formed, or treat-as-withdraw: the codec decides).
    Update {
        /// The connection.
        conn: ConnId,
    },
    /// A ROUTE-REFRESH arrived.
    RouteRefresh {
        /// The connection.
        conn: ConnId,
    },
    /// A NOTIFICATION arrived: the peer closes the connection.
    Notification {
        /// The connection.
        conn: ConnId,
        /// What the peer sent.
        notification: Notification,
    },
    /// A message could not be accepted (malformed, or an OPEN with a capability we
    /// require missing): the codec or session layer says which NOTIFICATION answers it.
    MessageError {
        /// The connection.
        conn: ConnId,
        /// The NOTIFICATION to send before closing.
        notification: Notification,
    },
}

impl Event {
    /// The connection the event is about, if any.
    pub fn conn(&self) -> Option<ConnId> {
        match self {
            Event::ManualStart | Event::ManualStop(_) => None,
            Event::TcpConnected { conn }
            | Event::TcpAccepted { conn }
            | Event::TcpClosed { conn }
            | Event::Open { conn, .. }
            | Event::Keepalive { conn }
            | Event::Update { conn }
            | Event::RouteRefresh { conn }
            | Event::Notification { conn, .. }
            | Event::MessageError { conn, .. } => Some(*conn),
        }
    }
}
