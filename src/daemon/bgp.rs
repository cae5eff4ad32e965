//! BGP wiring: one [`Session`] per `[[bgp.peer]]` that selects this node, fed the routes the
//! plan gives this node for that peer's pools.
//!
//! Peers are kept across reloads and plans: a peer whose session settings are unchanged
//! keeps its session (and the router its routes); only the routes it is fed change. A peer
//! removed from the configuration, or no longer selecting this node, is stopped with
//! withdrawals and a Cease; a peer whose settings changed is stopped the same way and
//! started again.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{watch, Notify};

use crate::bgp::fsm::State;
use crate::bgp::session::{Listener, PeerStatus, Session, SessionConfig, Stop};
use crate::bgp::speaker::routes::{self, PoolAdvert};
use crate::bgp::speaker::Routes;
use crate::config::{Config, Peer, PoolMode};
use crate::host::dbus::BgpSessionRow;
use crate::plan::selects;

/// Restart time advertised in the graceful restart capability: how long a router keeps our
/// routes after the session drops while we restart (FRR's and BIRD's default).
const RESTART_TIME: Duration = Duration::from_secs(120);

/// One configured peer this node talks to.
struct PeerSession {
    config: SessionConfig,
    routes: watch::Sender<Arc<Routes>>,
    session: Session,
}

/// A peer that cannot start (its password file is unreadable).
struct Broken {
    peer: IpAddr,
    error: String,
}

/// The BGP side of the speaker.
pub(super) struct Bgp {
    /// Settings by peer name, from the configuration.
    peers: Vec<Peer>,
    /// Route settings per bgp pool, and the peers each pool is advertised to.
    pools: BTreeMap<String, (PoolAdvert, BTreeSet<String>)>,
    /// Sessions by peer name.
    sessions: BTreeMap<String, PeerSession>,
    broken: BTreeMap<String, Broken>,
    /// This node's labels, for the peers' `node_selector` (None until the Node is known).
    labels: Option<BTreeMap<String, String>>,
    /// Addresses to advertise with their pool (the last plan).
    announced: BTreeMap<IpAddr, String>,
    /// Woken when any session's status changes.
    changed: Arc<Notify>,
    /// `[::]:179`, bound while some peer is passive. Only then: a node may run its own
    /// routing daemon on 179, and active sessions need no listener (the router's
    /// connections are refused and ours succeed).
    listener: Option<Listener>,
}

impl Bgp {
    /// Nothing runs until the node's labels are known ([`Bgp::set_labels`]).
    pub(super) fn new(config: &Config) -> Bgp {
        let mut bgp = Bgp {
            peers: Vec::new(),
            pools: BTreeMap::new(),
            sessions: BTreeMap::new(),
            broken: BTreeMap::new(),
            labels: None,
            announced: BTreeMap::new(),
            changed: Arc::new(Notify::new()),
            listener: None,
        };
        bgp.load(config);
        bgp
    }

    fn load(&mut self, config: &Config) {
        self.peers = config.peers.clone();
        self.pools = config
            .pools
            .iter()
            .filter_map(|pool| match &pool.mode {
                PoolMode::Bgp(adv) => {
                    let peers = config
                        .pool_peers(pool)
                        .iter()
                        .map(|p| p.name.clone())
                        .collect();
                    Some((pool.name.clone(), (PoolAdvert::from_config(adv), peers)))
                }
                PoolMode::L2 { .. } => None,
            })
            .collect();
    }

    /// Applies a reloaded configuration: sessions of unchanged peers stay up.
    pub(super) fn reconfigure(&mut self, config: &Config) {
        self.load(config);
        self.reconcile();
    }

    /// This node's labels (from its Node object); starts and stops sessions per the peers'
    /// `node_selector`.
    pub(super) fn set_labels(&mut self, labels: &BTreeMap<String, String>) {
        if self.labels.as_ref() == Some(labels) {
            return;
        }
        self.labels = Some(labels.clone());
        self.reconcile();
    }

    /// Starts, restarts and stops sessions to match the configuration, then re-feeds routes.
    /// A session being replaced says goodbye in the background (bounded by the session).
    fn reconcile(&mut self) {
        let Some(labels) = self.labels.clone() else {
            return;
        };
        let mut wanted: BTreeMap<String, SessionConfig> = BTreeMap::new();
        self.broken.clear();
        for peer in &self.peers {
            if !selects(&peer.node_selector, &labels) {
                continue;
            }
            match session_config(peer) {
                Ok(config) => {
                    wanted.insert(peer.name.clone(), config);
                }
                Err(error) => {
                    tracing::error!(peer = %peer.name, %error, "BGP peer not started");
                    self.broken.insert(
                        peer.name.clone(),
                        Broken {
                            peer: peer.address,
                            error,
                        },
                    );
                }
            }
        }
        let current: Vec<String> = self.sessions.keys().cloned().collect();
        for name in current {
            let keep = wanted.get(&name) == self.sessions.get(&name).map(|s| &s.config);
            if !keep {
                if let Some(old) = self.sessions.remove(&name) {
                    tracing::info!(peer = %name, "BGP peer removed or changed; withdrawing and closing its session");
                    if let (true, Some(listener)) = (old.config.passive, &self.listener) {
                        if let Err(error) = listener.remove_peer(old.config.peer) {
                            tracing::warn!(peer = %name, %error, "cannot remove the peer from the BGP listener");
                        }
                    }
                    tokio::spawn(old.session.stop(Stop::Withdraw));
                }
            }
        }
        for (name, config) in wanted {
            if self.sessions.contains_key(&name) {
                continue;
            }
            tracing::info!(peer = %name, address = %config.peer, "starting BGP session");
            let (routes, rx) = watch::channel(Arc::new(self.routes_for(&name)));
            let session = Session::spawn(config.clone(), rx);
            forward_changes(session.status(), Arc::clone(&self.changed));
            if config.passive {
                self.listen_for(&name, &config, &session);
            }
            self.sessions.insert(
                name,
                PeerSession {
                    config,
                    routes,
                    session,
                },
            );
        }
        self.feed();
    }

    /// Has the listener hand `config.peer`'s connections to `session`; binds it first if
    /// needed.
    fn listen_for(&mut self, name: &str, config: &SessionConfig, session: &Session) {
        if self.listener.is_none() {
            let addr = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 179));
            match Listener::bind(addr) {
                Ok(listener) => self.listener = Some(listener),
                Err(error) => {
                    tracing::error!(peer = %name, %error, "cannot listen on port 179 for passive BGP peers");
                    return;
                }
            }
        }
        if let Some(listener) = &self.listener {
            if let Err(error) =
                listener.add_peer(config.peer, config.password.as_deref(), session.acceptor())
            {
                tracing::error!(peer = %name, %error, "cannot take connections from this passive peer");
            }
        }
    }

    /// The plan's bgp addresses for this node (address → pool).
    pub(super) fn set(&mut self, announced: BTreeMap<IpAddr, String>) {
        if announced != self.announced {
            self.announced = announced;
            self.feed();
        }
    }

    /// Hands every session its peer's routes (a no-op for a session whose routes are equal).
    fn feed(&self) {
        for (name, peer) in &self.sessions {
            let routes = self.routes_for(name);
            peer.routes.send_if_modified(|current| {
                if **current == routes {
                    false
                } else {
                    *current = Arc::new(routes);
                    true
                }
            });
        }
    }

    fn routes_for(&self, peer: &str) -> Routes {
        routes::build(self.announced.iter().filter_map(|(address, pool)| {
            let (advert, peers) = self.pools.get(pool)?;
            peers.contains(peer).then_some((*address, advert))
        }))
    }

    /// Addresses advertised (to at least one peer).
    pub(super) fn announced(&self) -> usize {
        self.announced.len()
    }

    /// Withdraws everything, keeping the sessions up (the end of a drain).
    pub(super) fn silence(&mut self) {
        self.set(BTreeMap::new());
    }

    /// One row per configured peer of this node, for `ferrolb status bgp`.
    pub(super) fn rows(&self) -> Vec<BgpSessionRow> {
        let mut rows: Vec<BgpSessionRow> = self
            .sessions
            .iter()
            .map(|(name, peer)| row(name, &peer.session.status().borrow()))
            .collect();
        rows.extend(self.broken.iter().map(|(name, b)| BgpSessionRow {
            peer: label(name, b.peer),
            state: "idle".into(),
            uptime_seconds: 0,
            prefixes_sent: 0,
            last_error: b.error.clone(),
        }));
        rows
    }

    /// (established, configured) for the status line.
    pub(super) fn counts(&self) -> (usize, usize) {
        let established = self
            .sessions
            .values()
            .filter(|p| p.session.status().borrow().state == State::Established)
            .count();
        (established, self.sessions.len() + self.broken.len())
    }

    /// Returns when a session's status changed (state, counters, error) since the last call.
    pub(super) async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The sessions' status channels, for the metrics.
    pub(super) fn status_receivers(&self) -> Vec<watch::Receiver<PeerStatus>> {
        self.sessions.values().map(|p| p.session.status()).collect()
    }

    /// Ends every session: `Stop::Withdraw` on a planned stop, `Stop::Restart` for a
    /// graceful restart (routers keep our routes meanwhile).
    pub(super) async fn stop(self, how: Stop) {
        let stops = self.sessions.into_values().map(|p| p.session.stop(how));
        futures_util::future::join_all(stops).await;
    }
}

/// Wakes `changed` on every change of `status`, until the session is gone.
fn forward_changes(mut status: watch::Receiver<PeerStatus>, changed: Arc<Notify>) {
    tokio::spawn(async move {
        while status.changed().await.is_ok() {
            changed.notify_one();
        }
    });
}

/// `name (address)`, or just the address when the name is the address.
fn label(name: &str, address: IpAddr) -> String {
    if name == address.to_string() {
        name.to_owned()
    } else {
        format!("{name} ({address})")
    }
}

fn row(name: &str, status: &PeerStatus) -> BgpSessionRow {
    let uptime = status
        .established_at
        .filter(|_| status.state == State::Established)
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map_or(0, |d| d.as_secs());
    BgpSessionRow {
        peer: label(name, status.peer),
        state: format!("{:?}", status.state).to_lowercase(),
        uptime_seconds: uptime,
        prefixes_sent: u32::try_from(status.prefixes_sent).unwrap_or(u32::MAX),
        last_error: status.last_error.clone().unwrap_or_default(),
    }
}

/// A peer's session settings; reads its password file.
fn session_config(peer: &Peer) -> Result<SessionConfig, String> {
    let password = match &peer.password_file {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
            // One line; a trailing newline from an editor is not part of the key.
            Some(text.trim_end_matches(['\n', '\r']).to_owned())
        }
    };
    Ok(SessionConfig {
        name: peer.name.clone(),
        peer: peer.address,
        port: peer.port,
        local_asn: peer.my_asn,
        peer_asn: peer.asn,
        hold_time: peer.hold_time,
        keepalive_time: Some(peer.keepalive_time),
        connect_retry: peer.connect_time,
        password,
        ebgp_multihop: peer.ebgp_multihop,
        source_address: peer.source_address,
        router_id: peer.router_id,
        passive: peer.passive,
        graceful_restart: peer.graceful_restart,
        restart_time: RESTART_TIME,
    })
}
