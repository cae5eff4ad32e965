//! Gossip membership: which nodes are alive, found in hundreds of milliseconds (SWIM over UDP,
//! port 7946), with every packet encrypted and authenticated.
//!
//! **Why foca.** [foca](https://crates.io/crates/foca) 2.x is a sans-IO SWIM state machine
//! (suspicion, indirect probes, piggybacked dissemination, custom broadcasts, renewable
//! identities) with a small dependency tree (`bytes`, `rand`, optionally `postcard`), no
//! runtime of its own, and production use in fly.io's corrosion. Being sans-IO, it lets us own
//! the socket, the clock and the timers — which is exactly where encryption, replay
//! protection and Lifeguard have to go, since foca has none of them. The alternative,
//! `memberlist` 0.8.x (a port of hashicorp's), was rejected: its published LAN defaults have
//! the probe interval and timeout swapped, and its main branch is an unreleased rewrite whose
//! wire format is incompatible with the released one — we would be pinning a format with no
//! future, or tracking a moving one.
//!
//! Pure parts (no sockets, no clock): [`identity`] (who a member is, how restarts supersede),
//! [`keys`] (the key file), [`packet`] (the AEAD envelope and replay window), [`wire`] (packet
//! bodies), [`meta`] (pool fingerprint, per-member metadata and its versioned, chunked
//! broadcasts), [`broadcast`] (foca's broadcast handler), [`lifeguard`] (local health and
//! dogpile suspicion), [`view`] (what is published). IO: `driver` (the task owning the socket
//! and foca) behind [`Membership`].
//!
//! For the daemon: start with [`Membership::start`] (settings from
//! [`Settings::from_config`]); give it the join list ([`Membership::set_join`]: `cluster.join`,
//! or every Node's InternalIP), this node's announceable pools ([`Membership::set_pools`]) and
//! its L2 claims ([`Membership::set_claims`]) as they change; read [`MembershipView`] from
//! [`Membership::view`] (members by node name with state, fingerprint, pools, claims, and
//! `synced` for the startup gate) and the [`Counters`]; call [`Membership::leave`] on a
//! planned stop.
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod broadcast;
pub mod codec;
mod driver;
pub mod identity;
pub mod keys;
pub mod lifeguard;
pub mod meta;
pub mod packet;
pub mod settings;
pub mod view;
pub mod wire;

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use rand::SeedableRng as _;
use ring::rand::SecureRandom as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use driver::Faults;
pub use identity::NodeId;
pub use keys::{Key, KeyError, KeyId, Keyring};
pub use meta::{pool_fingerprint, Fingerprint, Meta};
pub use packet::Security;
pub use settings::{Settings, Timing};
pub use view::{CounterSnapshot, Counters, MemberInfo, MemberState, MembershipView};

use crate::config::JoinAddress;
use driver::{Command, Driver, Shared, Start};

/// Why membership cannot start or act.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// The gossip socket cannot be bound.
    #[error("cannot bind the gossip socket {addr}: {source}")]
    Bind {
        /// `cluster.bind`.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Others could not reach us at the address we would advertise.
    #[error("gossip is bound to {bind}, which others cannot send to; give the address this node is reached at (its InternalIP)")]
    NoAdvertiseAddress {
        /// `cluster.bind`.
        bind: SocketAddr,
    },
    /// The system random generator failed.
    #[error("no randomness available for the gossip session")]
    Random,
    /// Session key derivation failed.
    #[error(transparent)]
    KeyDerivation(#[from] packet::KeyDerivationError),
    /// The membership task is gone.
    #[error("the gossip task has stopped")]
    Stopped,
}

/// The running membership layer. Dropping it stops the task at once, without leaving (as a
/// crash would); call [`Membership::leave`] first for a planned stop.
#[derive(Debug)]
pub struct Membership {
    cmds: mpsc::UnboundedSender<Command>,
    view: watch::Receiver<MembershipView>,
    counters: Arc<Counters>,
    captured: driver::Captured,
    identity: NodeId,
    task: JoinHandle<()>,
}

impl Membership {
    /// Binds the socket and starts the task (on the current tokio runtime).
    pub async fn start(settings: Settings) -> Result<Membership, MembershipError> {
        let socket =
            UdpSocket::bind(settings.bind)
                .await
                .map_err(|source| MembershipError::Bind {
                    addr: settings.bind,
                    source,
                })?;
        let bound = socket
            .local_addr()
            .map_err(|source| MembershipError::Bind {
                addr: settings.bind,
                source,
            })?;
        let mut advertise = settings.advertise.unwrap_or(bound);
        if advertise.port() == 0 {
            advertise.set_port(bound.port());
        }
        if advertise.ip().is_unspecified() {
            return Err(MembershipError::NoAdvertiseAddress {
                bind: settings.bind,
            });
        }
        let rng = ring::rand::SystemRandom::new();
        let mut seed = [0u8; 32];
        let mut session = [0u8; 16];
        rng.fill(&mut seed).map_err(|_| MembershipError::Random)?;
        rng.fill(&mut session)
            .map_err(|_| MembershipError::Random)?;
        let me = NodeId::new(settings.node.clone(), advertise, driver::wall_ms());
        let sealer = packet::Sealer::new(&settings.security, packet::SessionId(session))?;
        let opener = packet::Opener::new(settings.security.clone());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (view_tx, view_rx) = watch::channel(MembershipView {
            me: settings.node.clone(),
            ..MembershipView::default()
        });
        let counters = Arc::new(Counters::default());
        let captured = Arc::new(Mutex::new(Vec::new()));
        let driver = Driver::new(Start {
            me: me.clone(),
            socket,
            sealer,
            opener,
            rng: rand::rngs::SmallRng::from_seed(seed),
            timing: settings.timing,
            meta: Meta {
                fingerprint: settings.fingerprint,
                pools: settings.pools.clone(),
                claims: BTreeSet::new(),
                leaving: false,
            },
            join: settings.join.clone(),
            cmds: cmd_rx,
            view_tx,
            shared: Shared {
                counters: counters.clone(),
                captured: captured.clone(),
            },
        });
        let task = tokio::spawn(driver.run());
        Ok(Membership {
            cmds: cmd_tx,
            view: view_rx,
            counters,
            captured,
            identity: me,
            task,
        })
    }

    /// The membership as this node sees it; changes are published as they happen.
    pub fn view(&self) -> watch::Receiver<MembershipView> {
        self.view.clone()
    }

    /// The counters (forged and replayed packets dropped, members up/down, …).
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// This node's identity at start (address others reach it at, boot id).
    pub fn identity(&self) -> &NodeId {
        &self.identity
    }

    /// The addresses this node announces now (its L2 claims), gossiped to the others.
    pub fn set_claims(&self, claims: BTreeSet<IpAddr>) {
        let _ = self.cmds.send(Command::Claims(claims));
    }

    /// The pools this node can announce (it has a usable interface for them).
    pub fn set_pools(&self, pools: BTreeSet<String>) {
        let _ = self.cmds.send(Command::Pools(pools));
    }

    /// This node's pool fingerprint, after a configuration reload.
    pub fn set_fingerprint(&self, fingerprint: Fingerprint) {
        let _ = self.cmds.send(Command::Fingerprint(fingerprint));
    }

    /// Whom to join and keep joining while they are not members: `cluster.join`, or every
    /// Node's InternalIP (with `cluster.bind`'s port). Replaces the previous list.
    pub fn set_join(&self, targets: Vec<JoinAddress>) {
        let _ = self.cmds.send(Command::Join(targets));
    }

    /// [`Membership::set_join`] with plain socket addresses (every Node's InternalIP with
    /// `cluster.bind`'s port).
    pub fn set_join_addrs(&self, addrs: impl IntoIterator<Item = SocketAddr>) {
        self.set_join(
            addrs
                .into_iter()
                .map(|a| JoinAddress {
                    host: a.ip().to_string(),
                    port: a.port(),
                })
                .collect(),
        );
    }

    /// Leaves the cluster on purpose: every live member is told directly (they see this
    /// node as [`MemberState::Left`] at once, not after a suspicion), then SWIM's own leave
    /// is gossiped. Returns once those packets are on the wire. The task keeps running (and
    /// answers nothing) until the handle is dropped.
    pub async fn leave(&self) -> Result<(), MembershipError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Command::Leave(tx))
            .map_err(|_| MembershipError::Stopped)?;
        rx.await.map_err(|_| MembershipError::Stopped)
    }

    /// Test hook: drop or capture this node's traffic.
    pub fn set_faults(&self, faults: Faults) {
        let _ = self.cmds.send(Command::Faults(faults));
    }

    /// Test hook: the datagrams sent since capture was turned on, with their destinations.
    pub fn take_captured(&self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut *self.captured.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}
