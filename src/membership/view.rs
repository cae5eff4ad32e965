//! What the membership layer publishes: the members as this node sees them, and counters.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};

use super::meta::Fingerprint;

/// A member's state as seen from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemberState {
    /// Answering probes.
    Alive,
    /// Missed a probe; will be declared down unless it refutes. SWIM counts it as alive.
    Suspect,
    /// Declared dead by the cluster (stopped answering).
    Down,
    /// Left on purpose (planned stop or drain): already handing its addresses over.
    Left,
}

impl MemberState {
    /// Alive or suspect: still a member in SWIM's eyes.
    pub fn is_alive(self) -> bool {
        matches!(self, MemberState::Alive | MemberState::Suspect)
    }

    /// Stable lower-case name (logs, metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
            MemberState::Left => "left",
        }
    }
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// Its gossip address.
    pub addr: SocketAddr,
    /// Its state.
    pub state: MemberState,
    /// Its boot id: changes when its daemon restarts (or rejoins after being declared down);
    /// its claims start over then.
    pub boot: u64,
    /// SWIM incarnation within this boot (raised each time it refutes a suspicion).
    pub incarnation: u16,
    /// Whether its metadata for this boot has arrived (the fields below are empty until then).
    pub meta_known: bool,
    /// Fingerprint of its pool configuration.
    pub fingerprint: Option<Fingerprint>,
    /// Pools it can announce.
    pub pools: BTreeSet<String>,
    /// Addresses it announces (L2 claims).
    pub claims: BTreeSet<IpAddr>,
}

/// The membership as this node sees it, published on a `tokio::sync::watch`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// This node's name (its entry in `members` is itself).
    pub me: String,
    /// Every member known, by Kubernetes node name, this node included.
    pub members: BTreeMap<String, MemberInfo>,
    /// This node has joined and holds the metadata of every live member it knows — or
    /// `cluster.sync_timeout` passed (then `sync_timed_out`). Never goes back to false.
    pub synced: bool,
    /// `synced` came from the timeout, not from a complete sync.
    pub sync_timed_out: bool,
    /// At least one other member is alive in our view.
    pub connected: bool,
    /// This node has left the cluster (`leave()`).
    pub left: bool,
    /// Lifeguard local-health score (0 healthy … 8).
    pub health: u32,
}

impl MembershipView {
    /// Members in `state`.
    pub fn count(&self, state: MemberState) -> usize {
        self.members.values().filter(|m| m.state == state).count()
    }

    /// Whether `node` is alive or suspect.
    pub fn is_alive(&self, node: &str) -> bool {
        self.members.get(node).is_some_and(|m| m.state.is_alive())
    }

    /// Names of the members alive or suspect, this node included.
    pub fn alive(&self) -> impl Iterator<Item = &str> {
        self.members
            .iter()
            .filter(|(_, m)| m.state.is_alive())
            .map(|(n, _)| n.as_str())
    }

    /// Live members whose fingerprint is known and differs from ours.
    pub fn fingerprint_mismatches(&self) -> Vec<&str> {
        let mine = self.members.get(&self.me).and_then(|m| m.fingerprint);
        self.members
            .iter()
            .filter(|(_, m)| m.state.is_alive())
            .filter(|(_, m)| m.fingerprint.is_some() && m.fingerprint != mine)
            .map(|(n, _)| n.as_str())
            .collect()
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// Monotonic counters of the membership layer (shared with the daemon's metrics).
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A copy of the [`Counters`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct CounterSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Their values now.
            pub fn snapshot(&self) -> CounterSnapshot {
                CounterSnapshot { $($name: self.$name.load(Ordering::Relaxed),)* }
            }
        }
    };
}

counters! {
    /// Datagrams received.
    packets_in,
    /// Datagrams sent.
    packets_out,
    /// Bytes received (UDP payload).
    bytes_in,
    /// Bytes sent (UDP payload).
    bytes_out,
    /// Dropped: failed authentication (forged, corrupted, wrong key with a colliding id).
    dropped_auth,
    /// Dropped: sealed with a key this node does not have.
    dropped_unknown_key,
    /// Dropped: not even a valid envelope (truncated, oversized, bad version or flags).
    dropped_malformed,
    /// Dropped: plaintext while this node has keys, or sealed while it runs insecure.
    dropped_security_mismatch,
    /// Dropped: replayed (counter already seen).
    dropped_replay,
    /// Dropped: a new session whose time is more than a minute from ours.
    dropped_stale,
    /// Dropped after authentication: the content did not parse or foca refused it.
    dropped_invalid,
    /// Dropped by the test fault hook.
    dropped_fault,
    /// Sends that failed at the socket.
    send_errors,
    /// Members that came up (joined, or came back).
    member_up,
    /// Members declared down (unplanned: they stopped answering).
    member_down,
    /// Members that left on purpose.
    member_left,
    /// Members that restarted (a newer boot replaced the old one).
    member_restarted,
    /// Suspicions this node raised (its probe got no answer).
    suspicions,
    /// Others' suspicions this node confirmed (the suspect did not answer its own check).
    confirmations,
    /// Suspicions about this node that it refuted.
    refutations,
    /// Times this node was declared down and rejoined with a new boot id.
    rejoins,
    /// Join requests sent to addresses not (yet) members.
    join_attempts,
    /// Metadata versions this node had missed and asked their owner for after a digest.
    meta_refreshes,
}

impl CounterSnapshot {
    /// Every packet dropped before it could affect anything (forged, replayed, malformed…).
    pub fn dropped_total(&self) -> u64 {
        self.dropped_auth
            + self.dropped_unknown_key
            + self.dropped_malformed
            + self.dropped_security_mismatch
            + self.dropped_replay
            + self.dropped_stale
            + self.dropped_invalid
    }
}

/// Adds one to a counter.
pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}
