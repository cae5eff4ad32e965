//! The session task: one select loop over connection events, the state machine's next
//! deadline, route changes and the handle's commands, carrying out the machine's actions in
//! order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use super::framing::{ConnEvent, Events, Io, LINGER};
use super::open::Agreed;
use super::socket::{self, SocketOptions};
use super::{Command, PeerStatus, SessionConfig, Stop};
use crate::bgp::codec::{Context, Open};
use crate::bgp::fsm::{ConnId, Event, Fsm, FsmConfig, State, StopKind};
use crate::bgp::speaker::{AdjRibOut, Routes, SessionFacts};

/// Runs one peer's session until it is stopped.
pub(super) async fn run(
    cfg: SessionConfig,
    routes: watch::Receiver<Arc<Routes>>,
    mut commands: mpsc::Receiver<Command>,
    status: watch::Sender<PeerStatus>,
) {
    let Some(fsm) = build_fsm(&cfg, &mut commands, &status).await else {
        return;
    };
    let (events_tx, events) = mpsc::channel(64);
    let mut task = Task {
        opts: SocketOptions {
            md5_key: cfg.password.as_ref().map(|p| p.as_bytes().to_vec()),
            ttl: socket::session_ttl(cfg.local_asn == cfg.peer_asn, cfg.ebgp_multihop),
            source: cfg.source_address,
        },
        cfg,
        fsm,
        epoch: Instant::now(),
        conns: HashMap::new(),
        connecting: HashMap::new(),
        closing: Vec::new(),
        next_inbound: 0,
        events_tx,
        adj: AdjRibOut::new(),
        session: None,
        routes,
        status,
        last_io_error: None,
    };
    task.run(events, commands).await;
}

/// The state machine, once our router id is known. Until then (no address toward the peer
/// yet), retries every connect-retry period; `None` when stopped meanwhile or misconfigured.
async fn build_fsm(
    cfg: &SessionConfig,
    commands: &mut mpsc::Receiver<Command>,
    status: &watch::Sender<PeerStatus>,
) -> Option<Fsm> {
    loop {
        let router_id = match cfg.router_id {
            Some(id) => Ok(id),
            None => socket::router_id_toward(cfg.peer, cfg.source_address),
        };
        match router_id {
            Ok(router_id) => {
                let mut fc = FsmConfig::new(cfg.local_asn, router_id, cfg.peer_asn);
                fc.hold_time = u16::try_from(cfg.hold_time.as_secs()).unwrap_or(u16::MAX);
                fc.keepalive_time = cfg.keepalive_time;
                fc.connect_retry = cfg.connect_retry;
                fc.passive = cfg.passive;
                fc.jitter_seed = fastrand::u64(..);
                match Fsm::new(fc) {
                    Ok(fsm) => {
                        info!(peer = %cfg.name, addr = %cfg.peer, %router_id, "BGP session starting");
                        return Some(fsm);
                    }
                    Err(e) => {
                        warn!(peer = %cfg.name, error = %e, "BGP session not started: invalid settings");
                        status.send_modify(|s| s.last_error = Some(e.to_string()));
                    }
                }
            }
            Err(e) => {
                warn!(peer = %cfg.name, error = %e, "BGP session waiting for a router id");
                status.send_modify(|s| s.last_error = Some(e.to_string()));
            }
        }
        let retry = tokio::time::sleep(cfg.connect_retry);
        tokio::select! {
            _ = retry => {}
            cmd = commands.recv() => match cmd {
                Some(Command::Accept(_)) => {}
                Some(Command::Stop(_, done)) => {
                    let _ = done.send(());
                    return None;
                }
                None => return None,
            },
        }
    }
}

/// A connection that is up (TCP), with what was exchanged on it.
pub(super) struct Conn {
    pub(super) io: Io,
    pub(super) local: SocketAddr,
    pub(super) ctx: Context,
    pub(super) sent_open: Option<Open>,
    pub(super) agreed: Option<Agreed>,
}

pub(super) struct Task {
    pub(super) cfg: SessionConfig,
    pub(super) opts: SocketOptions,
    pub(super) fsm: Fsm,
    /// The state machine's clock starts here.
    pub(super) epoch: Instant,
    pub(super) conns: HashMap<ConnId, Conn>,
    pub(super) connecting: HashMap<ConnId, JoinHandle<()>>,
    /// Connections closed and still flushing their goodbye.
    pub(super) closing: Vec<JoinHandle<()>>,
    pub(super) next_inbound: u64,
    pub(super) events_tx: Events,
    pub(super) adj: AdjRibOut,
    /// The Established connection and what goes on its wire.
    pub(super) session: Option<(ConnId, SessionFacts)>,
    pub(super) routes: watch::Receiver<Arc<Routes>>,
    pub(super) status: watch::Sender<PeerStatus>,
    /// The last socket failure, shown when the state machine reports a mere "closed".
    pub(super) last_io_error: Option<String>,
}

impl Task {
    async fn run(
        &mut self,
        mut events: mpsc::Receiver<(ConnId, ConnEvent)>,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let actions = self.fsm.handle(self.now(), Event::ManualStart);
        self.execute(actions);
        self.publish();
        let mut routes_open = true;
        loop {
            let deadline = self
                .fsm
                .next_deadline()
                .map(|d| tokio::time::Instant::from_std(self.epoch + d));
            tokio::select! {
                Some((conn, event)) = events.recv() => self.on_conn_event(conn, event),
                cmd = commands.recv() => match cmd {
                    Some(Command::Accept(stream)) => self.on_accept(stream),
                    Some(Command::Stop(how, done)) => {
                        self.stop(how).await;
                        let _ = done.send(());
                        return;
                    }
                    // Every handle is gone: nobody will ask again, so stop for good.
                    None => {
                        self.stop(Stop::Withdraw).await;
                        return;
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let actions = self.fsm.on_timer(self.now());
                    self.execute(actions);
                }
                changed = self.routes.changed(), if routes_open => match changed {
                    Ok(()) => self.advertise(false),
                    Err(_) => routes_open = false,
                },
            }
            self.closing.retain(|h| !h.is_finished());
            self.publish();
        }
    }

    pub(super) fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    pub(super) fn handle(&mut self, event: Event) {
        let actions = self.fsm.handle(self.now(), event);
        self.execute(actions);
    }

    async fn stop(&mut self, how: Stop) {
        info!(peer = %self.cfg.name, ?how, "BGP session stopping");
        for (_, h) in self.connecting.drain() {
            h.abort();
        }
        match how {
            Stop::Withdraw => {
                self.sync_to(&Routes::new(), false);
                let actions = self
                    .fsm
                    .handle(self.now(), Event::ManualStop(StopKind::Shutdown));
                self.execute(actions);
            }
            Stop::Restart => {
                for (_, c) in self.conns.drain() {
                    self.closing.push(c.io.abort());
                }
                self.session = None;
            }
        }
        let closing = std::mem::take(&mut self.closing);
        let _ = tokio::time::timeout(LINGER + Duration::from_millis(500), async {
            for h in closing {
                let _ = h.await;
            }
        })
        .await;
        self.publish();
        self.status.send_modify(|s| s.state = State::Idle);
    }

    /// Publishes the status fields the state machine and adj-RIB-out own.
    pub(super) fn publish(&mut self) {
        let state = self.fsm.state();
        let prefixes = self.adj.advertised();
        let error = self.fsm.last_error().map(|r| self.reason(r));
        let name = self.cfg.name.clone();
        self.status.send_if_modified(|s| {
            let changed = s.state != state
                || s.prefixes_sent != prefixes
                || s.last_error != error && error.is_some();
            if s.state != state {
                info!(peer = %name, from = ?s.state, to = ?state, "BGP state change");
            }
            s.state = state;
            s.prefixes_sent = prefixes;
            if error.is_some() {
                s.last_error = error;
            }
            changed
        });
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
