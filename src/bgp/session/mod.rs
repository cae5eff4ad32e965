//! One tokio task per BGP peer: it drives the pure state machine ([`crate::bgp::fsm`]) over
//! real TCP, negotiates capabilities, keeps the peer's adj-RIB-out
//! ([`crate::bgp::speaker::AdjRibOut`]) in step with the routes it is given through a watch
//! channel, and publishes a [`PeerStatus`] on every change.
//!
//! - [`Session::spawn`] starts the task; the session connects out (unless `passive`) and
//!   takes inbound connections handed over by a [`Listener`] (or [`Session::accept`]).
//! - Once Established it sends every route then End-of-RIB; a change of the routes is sent as
//!   the difference; when the session goes down the adj-RIB-out is forgotten, so the next
//!   session is sent everything again.
//! - [`Session::stop`] with [`Stop::Withdraw`] withdraws everything, sends Cease /
//!   Administrative Shutdown and closes; [`Stop::Restart`] just closes, so a peer that
//!   supports graceful restart keeps our routes until we are back.
//!
//! A failing socket is an event for the state machine (the connection closed), never the end
//! of the task; malformed input is answered with the NOTIFICATION the codec prescribes.
//!
//! Files: [`socket`] (MD5, TTL, addresses), `sys` (the unsafe system calls), `open` (our
//! OPEN, negotiation), `framing` (per-connection reader/writer), `task` (the event loop),
//! `inbound` (what arrives on connections), `actions` (carrying out the state machine's
//! actions, UPDATEs), `status`, `listener`.

mod actions;
mod framing;
mod inbound;
mod listener;
mod open;
pub mod socket;
mod status;
mod sys;
mod task;

#[cfg(test)]
mod tests;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use listener::Listener;
pub use open::{local_open, negotiate, Agreed};
pub use status::{describe, PeerStatus};

use super::speaker::Routes;

/// Everything one peer's task needs (the daemon builds it from `[[bgp.peer]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The peer's name, for logs and status.
    pub name: String,
    /// The peer's address.
    pub peer: IpAddr,
    /// The peer's BGP port (179).
    pub port: u16,
    /// Our AS.
    pub local_asn: u32,
    /// The peer's AS.
    pub peer_asn: u32,
    /// Hold time we propose (whole seconds; 0 or at least 3).
    pub hold_time: Duration,
    /// Keepalive interval; `None`: a third of the negotiated hold time.
    pub keepalive_time: Option<Duration>,
    /// Base of the connect-retry backoff.
    pub connect_retry: Duration,
    /// TCP MD5 key (the daemon reads `password_file`).
    pub password: Option<String>,
    /// TTL of an eBGP session's packets; `None`: 1 (directly connected), as FRR and BIRD.
    /// iBGP always uses 255.
    pub ebgp_multihop: Option<u8>,
    /// Address to connect from.
    pub source_address: Option<IpAddr>,
    /// Our BGP identifier; `None`: our IPv4 address toward the peer.
    pub router_id: Option<Ipv4Addr>,
    /// Never connect out; wait for the peer (through a [`Listener`]).
    pub passive: bool,
    /// Advertise graceful restart (RFC 4724).
    pub graceful_restart: bool,
    /// Restart time advertised in the graceful restart capability.
    pub restart_time: Duration,
}

impl SessionConfig {
    /// A configuration with the defaults (port 179, hold time 90 s, connect retry 10 s,
    /// graceful restart with 120 s, active, no password).
    pub fn new(name: &str, peer: IpAddr, local_asn: u32, peer_asn: u32) -> SessionConfig {
        SessionConfig {
            name: name.to_string(),
            peer,
            port: 179,
            local_asn,
            peer_asn,
            hold_time: Duration::from_secs(90),
            keepalive_time: None,
            connect_retry: Duration::from_secs(10),
            password: None,
            ebgp_multihop: None,
            source_address: None,
            router_id: None,
            passive: false,
            graceful_restart: true,
            restart_time: Duration::from_secs(120),
        }
    }
}

/// How a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Stop for good (SIGTERM, drain): withdraw every route, send Cease / Administrative
    /// Shutdown (6/2), close.
    Withdraw,
    /// Restart (SIGUSR2): close the socket without withdrawing and without NOTIFICATION, so
    /// a peer doing graceful restart keeps forwarding to us.
    Restart,
}

/// What the handle asks of the task.
#[derive(Debug)]
enum Command {
    Accept(TcpStream),
    Stop(Stop, oneshot::Sender<()>),
}

/// Hands inbound connections to one session; cheap to clone (a [`Listener`] keeps one per
/// peer).
#[derive(Debug, Clone)]
pub struct Acceptor {
    commands: mpsc::Sender<Command>,
}

impl Acceptor {
    /// Gives the session a connection the peer opened. Dropped (closed) if the session is
    /// gone or has a backlog of them.
    pub fn accept(&self, stream: TcpStream) {
        if self.commands.try_send(Command::Accept(stream)).is_err() {
            tracing::debug!("session busy or gone: inbound connection closed");
        }
    }
}

/// The handle of a spawned session task.
#[derive(Debug)]
pub struct Session {
    acceptor: Acceptor,
    status: watch::Receiver<PeerStatus>,
    task: JoinHandle<()>,
}

/// Longest [`Session::stop`] waits for the task (the goodbye itself is bounded by ~2 s).
const STOP_WAIT: Duration = Duration::from_secs(5);

impl Session {
    /// Starts the task of one peer; it follows `routes` for what to advertise.
    /// Must be called inside a tokio runtime.
    pub fn spawn(config: SessionConfig, routes: watch::Receiver<Arc<Routes>>) -> Session {
        let (commands, rx) = mpsc::channel(8);
        let (status_tx, status) = watch::channel(PeerStatus::new(&config.name, config.peer));
        let task = tokio::spawn(task::run(config, routes, rx, status_tx));
        Session {
            acceptor: Acceptor { commands },
            status,
            task,
        }
    }

    /// The session's status, updated on every change.
    pub fn status(&self) -> watch::Receiver<PeerStatus> {
        self.status.clone()
    }

    /// Stops the session and returns once the goodbye is flushed (bounded wait).
    pub async fn stop(self, how: Stop) {
        let (done, wait) = oneshot::channel();
        if self
            .acceptor
            .commands
            .send(Command::Stop(how, done))
            .await
            .is_ok()
        {
            let _ = tokio::time::timeout(STOP_WAIT, wait).await;
        }
        self.task.abort();
    }

    /// Gives the session an inbound connection from its peer (the listener's job).
    pub fn accept(&self, stream: TcpStream) {
        self.acceptor.accept(stream);
    }

    /// A cloneable handle for handing over inbound connections.
    pub fn acceptor(&self) -> Acceptor {
        self.acceptor.clone()
    }
}
