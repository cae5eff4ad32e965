//! What the daemon publishes over D-Bus: plain value types, one per table row, and the snapshot
//! that holds them. The daemon fills these in; `host::dbus` only reads them.

use serde::{Deserialize, Serialize};
use zbus::zvariant::{OwnedValue, Type, Value};

/// One snapshot of what the daemon is doing, published through a
/// `tokio::sync::watch::Sender<DaemonStatus>`; each field is one D-Bus property.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStatus {
    /// The one-line summary the daemon also sends as systemd `STATUS=`, e.g.
    /// "allocator; 12 services; 3/3 members; 2/2 BGP sessions up" (property `Status`).
    pub summary: String,
    /// The LoadBalancer Services this daemon knows of (property `Services`).
    pub services: Vec<ServiceRow>,
    /// The gossip members, this node included (property `Members`).
    pub members: Vec<MemberRow>,
    /// The configured BGP peers (property `BgpSessions`).
    pub bgp_sessions: Vec<BgpSessionRow>,
}

/// A LoadBalancer Service. D-Bus signature `(ssssass)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type, Value, OwnedValue)]
#[zvariant(crate = "zbus::zvariant")]
pub struct ServiceRow {
    /// `namespace/name`.
    pub service: String,
    /// The allocated address, or empty when none is allocated.
    pub address: String,
    /// The pool the address comes from, or empty.
    pub pool: String,
    /// `l2` or `bgp`.
    pub mode: String,
    /// The owner (L2) or the advertising nodes (BGP); empty when not announced.
    pub nodes: Vec<String>,
    /// Why the address is not announced; empty when it is.
    pub reason: String,
}

/// A gossip member. D-Bus signature `(sss)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type, Value, OwnedValue)]
#[zvariant(crate = "zbus::zvariant")]
pub struct MemberRow {
    /// The node name.
    pub name: String,
    /// The gossip address (`ip:port`).
    pub address: String,
    /// `alive`, `suspect`, `down` or `left`.
    pub state: String,
}

/// A BGP session to one peer. D-Bus signature `(sstus)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type, Value, OwnedValue)]
#[zvariant(crate = "zbus::zvariant")]
pub struct BgpSessionRow {
    /// The peer's address (and name, if configured).
    pub peer: String,
    /// The FSM state: `idle`, `connect`, `active`, `opensent`, `openconfirm`, `established`.
    pub state: String,
    /// Seconds since the session was established; 0 when it is not.
    pub uptime_seconds: u64,
    /// Prefixes currently advertised to the peer.
    pub prefixes_sent: u32,
    /// The last error (a NOTIFICATION, a socket error), or empty.
    pub last_error: String,
}

impl ServiceRow {
    /// Whether the address is announced from somewhere (no reason given).
    pub fn announced(&self) -> bool {
        self.reason.is_empty()
    }
}
