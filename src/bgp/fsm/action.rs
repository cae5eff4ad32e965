//! Outputs of the state machine: what the session layer must do, in order.

use std::net::Ipv4Addr;
use std::time::Duration;

use super::{cease, code, ConnId, Notification, StopKind};

/// The OPEN we send. Capabilities are added by the session layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalOpen {
    /// Our AS, 4 octets.
    pub asn: u32,
    /// The hold time we propose, in seconds.
    pub hold_time: u16,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
}

/// What both sides agreed on, known once the peer's OPEN is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Negotiated {
    /// The smaller of the two proposed hold times; zero: no hold timer, no keepalives.
    pub hold_time: Duration,
    /// How often we send KEEPALIVE; `None` when the hold time is zero.
    pub keepalive_interval: Option<Duration>,
    /// The peer's AS.
    pub peer_asn: u32,
    /// The peer's BGP identifier.
    pub peer_router_id: Ipv4Addr,
}

/// Why a connection (or the session) went down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// The operator stopped or reset the session.
    Stopped(StopKind),
    /// The outbound connect attempt failed.
    ConnectFailed,
    /// The outbound connect attempt took longer than the connect-retry base.
    ConnectTimeout,
    /// The transport connection closed or failed.
    ConnectionClosed,
    /// The peer was silent for the hold time; we sent Hold Timer Expired.
    HoldTimerExpired,
    /// The peer sent this NOTIFICATION.
    NotificationReceived(Notification),
    /// We found an error and sent this NOTIFICATION (OPEN error, FSM error, a malformed
    /// message).
    NotificationSent(Notification),
    /// This connection lost the collision resolution (RFC 4271 §6.8) to the other one.
    Collision,
    /// An inbound connection we did not want (session stopped, or one already open).
    Rejected,
}

impl DownReason {
    /// Whether this is a failure worth reporting as the session's last error: not an
    /// operator's stop, a collision lost on either side, or a refused extra connection.
    pub fn is_error(&self) -> bool {
        match self {
            DownReason::Stopped(_) | DownReason::Collision | DownReason::Rejected => false,
            DownReason::NotificationReceived(n) => {
                (n.code, n.subcode) != (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION)
            }
            _ => true,
        }
    }
}

/// An output of the state machine. Carry them out in order: a `SendNotification` comes
/// before the `Close` of the same connection, and the session layer must flush it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to the peer; answer with [`Event::TcpConnected`] or
    /// [`Event::TcpClosed`](super::Event::TcpClosed) naming `conn`.
    ///
    /// [`Event::TcpConnected`]: super::Event::TcpConnected
    Connect {
        /// The id of the new connection.
        conn: ConnId,
    },
    /// Send our OPEN.
    SendOpen {
        /// The connection.
        conn: ConnId,
        /// Its fixed fields.
        open: LocalOpen,
    },
    /// Send a KEEPALIVE.
    SendKeepalive {
        /// The connection.
        conn: ConnId,
    },
    /// Send a NOTIFICATION (then a `Close` follows).
    SendNotification {
        /// The connection.
        conn: ConnId,
        /// What to send.
        notification: Notification,
    },
    /// Close the connection (after writing what is queued) and forget it; later events
    /// naming it are ignored.
    Close {
        /// The connection.
        conn: ConnId,
        /// Why, for the log and the operator.
        reason: DownReason,
    },
    /// The session is Established on `conn`.
    SessionEstablished {
        /// The connection carrying the session.
        conn: ConnId,
        /// What was agreed.
        negotiated: Negotiated,
    },
    /// Send the whole adj-RIB-out on `conn` (then End-of-RIB): right after
    /// `SessionEstablished`, and when the peer asks with ROUTE-REFRESH.
    AdvertiseAll {
        /// The connection.
        conn: ConnId,
    },
    /// The Established session is gone: forget what was advertised to the peer.
    SessionDown {
        /// Why.
        reason: DownReason,
    },
}
