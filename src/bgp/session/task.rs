//! The session task: one select loop over connection events, the state machine's next
//! deadline, route changes and the handle's commands, carrying out the machine's actions in
//! order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::framing::{from_codec, to_codec, ConnEvent, Events, Io, LINGER};
use super::open::{local_open, negotiate, Agreed};
use super::socket::{self, SocketOptions};
use super::status::describe;
use super::{Command, PeerStatus, SessionConfig, Stop};
use crate::bgp::codec::{Context, DecodeError, Message, Open};
use crate::bgp::fsm::{
    Action, ConnId, DownReason, Event, Fsm, FsmConfig, Negotiated, State, StopKind,
};
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
struct Conn {
    io: Io,
    local: SocketAddr,
    ctx: Context,
    sent_open: Option<Open>,
    agreed: Option<Agreed>,
}

struct Task {
    cfg: SessionConfig,
    opts: SocketOptions,
    fsm: Fsm,
    /// The state machine's clock starts here.
    epoch: Instant,
    conns: HashMap<ConnId, Conn>,
    connecting: HashMap<ConnId, JoinHandle<()>>,
    /// Connections closed and still flushing their goodbye.
    closing: Vec<JoinHandle<()>>,
    next_inbound: u64,
    events_tx: Events,
    adj: AdjRibOut,
    /// The Established connection and what goes on its wire.
    session: Option<(ConnId, SessionFacts)>,
    routes: watch::Receiver<Arc<Routes>>,
    status: watch::Sender<PeerStatus>,
    /// The last socket failure, shown when the state machine reports a mere "closed".
    last_io_error: Option<String>,
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

    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn handle(&mut self, event: Event) {
        let actions = self.fsm.handle(self.now(), event);
        self.execute(actions);
    }

    fn on_accept(&mut self, stream: TcpStream) {
        self.next_inbound += 1;
        let conn = ConnId::inbound(self.next_inbound);
        let v6 = stream.local_addr().is_ok_and(|a| a.is_ipv6());
        if let Err(e) = socket::set_ttl(std::os::fd::AsFd::as_fd(&stream), v6, self.opts.ttl) {
            warn!(peer = %self.cfg.name, error = %e, "cannot set the TTL of an inbound connection");
        }
        debug!(peer = %self.cfg.name, ?conn, "inbound connection");
        if self.start_conn(conn, stream) {
            self.handle(Event::TcpAccepted { conn });
        }
    }

    /// Starts the IO of a connection; false (and the connection closed) if its addresses
    /// cannot be read.
    fn start_conn(&mut self, conn: ConnId, stream: TcpStream) -> bool {
        let _ = stream.set_nodelay(true);
        let local = match stream.local_addr() {
            Ok(local) => local,
            Err(e) => {
                warn!(peer = %self.cfg.name, error = %e, "connection without a local address");
                return false;
            }
        };
        let io = Io::start(conn, stream, self.events_tx.clone());
        self.conns.insert(
            conn,
            Conn {
                io,
                local,
                ctx: Context::default(),
                sent_open: None,
                agreed: None,
            },
        );
        true
    }

    fn on_conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        match event {
            ConnEvent::Connected(stream) => {
                if self.connecting.remove(&conn).is_none() {
                    return; // the machine gave up on it meanwhile
                }
                if self.start_conn(conn, stream) {
                    self.handle(Event::TcpConnected { conn });
                } else {
                    self.handle(Event::TcpClosed { conn });
                }
            }
            ConnEvent::ConnectFailed(e) => {
                if self.connecting.remove(&conn).is_some() {
                    debug!(peer = %self.cfg.name, error = %e, "connect failed");
                    self.last_io_error = Some(e.to_string());
                    self.handle(Event::TcpClosed { conn });
                }
            }
            ConnEvent::Frame(frame) => self.on_frame(conn, &frame),
            ConnEvent::Malformed(e) => {
                if self.conns.contains_key(&conn) {
                    self.on_decode_error(conn, e);
                }
            }
            ConnEvent::Closed(why) => {
                if self.conns.contains_key(&conn) {
                    debug!(peer = %self.cfg.name, ?conn, %why, "connection lost");
                    self.last_io_error = Some(why);
                    self.handle(Event::TcpClosed { conn });
                }
            }
        }
    }

    fn on_frame(&mut self, conn: ConnId, frame: &Bytes) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let message = match Message::decode(frame, &c.ctx) {
            Ok(message) => message,
            Err(e) => return self.on_decode_error(conn, e),
        };
        let event = match message {
            Message::Open(open) => {
                let Some(ours) = &c.sent_open else {
                    // An OPEN before ours: the machine knows what to answer.
                    let peer = crate::bgp::fsm::PeerOpen {
                        version: crate::bgp::codec::BGP_VERSION,
                        asn: open.asn,
                        hold_time: open.hold_time,
                        router_id: open.bgp_id,
                    };
                    return self.handle(Event::Open { conn, open: peer });
                };
                match negotiate(ours, &open) {
                    Ok(agreed) => {
                        c.ctx = agreed.ctx;
                        c.agreed = Some(agreed);
                        Event::Open {
                            conn,
                            open: agreed.peer,
                        }
                    }
                    Err(notification) => Event::MessageError { conn, notification },
                }
            }
            Message::Update(_) => {
                self.status.send_modify(|s| s.updates_received += 1);
                Event::Update { conn }
            }
            Message::Keepalive => Event::Keepalive { conn },
            Message::RouteRefresh(_) => Event::RouteRefresh { conn },
            Message::Notification(n) => Event::Notification {
                conn,
                notification: from_codec(&n),
            },
        };
        self.handle(event);
    }

    fn on_decode_error(&mut self, conn: ConnId, error: DecodeError) {
        match error {
            DecodeError::SessionReset {
                detail,
                notification,
            } => {
                warn!(peer = %self.cfg.name, ?conn, %detail, %notification, "malformed message from the peer");
                self.handle(Event::MessageError {
                    conn,
                    notification: from_codec(&notification),
                });
            }
            DecodeError::TreatAsWithdraw { detail, .. } => {
                // We keep no routes from peers: nothing to withdraw, but it is an UPDATE.
                warn!(peer = %self.cfg.name, %detail, "malformed UPDATE treated as withdraw (RFC 7606)");
                self.status.send_modify(|s| s.updates_received += 1);
                self.handle(Event::Update { conn });
            }
        }
    }

    fn send(&mut self, conn: ConnId, message: &Message) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match message.encode(&c.ctx) {
            Ok(bytes) => c.io.send(bytes),
            Err(e) => warn!(peer = %self.cfg.name, error = %e, "cannot encode a message"),
        }
    }

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.execute_one(action);
        }
    }

    fn execute_one(&mut self, action: Action) {
        let name = self.cfg.name.clone();
        match action {
            Action::Connect { conn } => {
                let peer = SocketAddr::new(self.cfg.peer, self.cfg.port);
                let opts = self.opts.clone();
                let events = self.events_tx.clone();
                debug!(peer = %name, %peer, "connecting");
                let handle = tokio::spawn(async move {
                    let event = match socket::connect(peer, &opts).await {
                        Ok(stream) => ConnEvent::Connected(stream),
                        Err(e) => ConnEvent::ConnectFailed(e),
                    };
                    let _ = events.send((conn, event)).await;
                });
                self.connecting.insert(conn, handle);
            }
            Action::SendOpen { conn, open } => {
                let graceful = self.cfg.graceful_restart.then_some(self.cfg.restart_time);
                let ours = local_open(&open, graceful);
                self.send(conn, &Message::Open(ours.clone()));
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.sent_open = Some(ours);
                }
            }
            Action::SendKeepalive { conn } => self.send(conn, &Message::Keepalive),
            Action::SendNotification { conn, notification } => {
                info!(peer = %name, ?conn, code = notification.code, subcode = notification.subcode, "sending NOTIFICATION");
                self.send(conn, &Message::Notification(to_codec(&notification)));
            }
            Action::Close { conn, reason } => {
                if let Some(h) = self.connecting.remove(&conn) {
                    h.abort();
                }
                if let Some(c) = self.conns.remove(&conn) {
                    self.closing.push(c.io.close());
                }
                if reason.is_error() {
                    debug!(peer = %name, ?conn, reason = %self.reason(&reason), "connection closed");
                }
            }
            Action::SessionEstablished { conn, negotiated } => {
                self.on_established(conn, negotiated)
            }
            Action::AdvertiseAll { conn } => {
                if self.session.as_ref().is_some_and(|(c, _)| *c == conn) {
                    self.adj.clear();
                    self.advertise(true);
                }
            }
            Action::SessionDown { reason } => {
                warn!(peer = %name, reason = %self.reason(&reason), sent = self.adj.advertised(), "BGP session down");
                self.session = None;
                self.adj.clear();
                self.status.send_modify(|s| {
                    s.established_at = None;
                    s.families = (false, false);
                });
            }
        }
    }

    /// The sentence for a down reason, with the socket error behind a bare "closed".
    fn reason(&self, reason: &DownReason) -> String {
        match (reason, &self.last_io_error) {
            (DownReason::ConnectionClosed | DownReason::ConnectFailed, Some(io)) => {
                format!("{}: {io}", describe(reason))
            }
            _ => describe(reason),
        }
    }

    fn on_established(&mut self, conn: ConnId, negotiated: Negotiated) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let Some(agreed) = c.agreed else {
            return;
        };
        let (next_hop_v4, next_hop_v6) = socket::next_hops(c.local.ip(), self.cfg.peer);
        let facts = SessionFacts {
            local_asn: self.cfg.local_asn,
            ibgp: self.cfg.local_asn == self.cfg.peer_asn,
            ipv4: agreed.ipv4,
            ipv6: agreed.ipv6,
            next_hop_v4,
            next_hop_v6,
            ctx: agreed.ctx,
        };
        info!(
            peer = %self.cfg.name,
            addr = %self.cfg.peer,
            peer_router_id = %negotiated.peer_router_id,
            hold_time = negotiated.hold_time.as_secs(),
            ipv4 = facts.ipv4,
            ipv6 = facts.ipv6,
            ?next_hop_v4,
            ?next_hop_v6,
            "BGP session established"
        );
        self.status.send_modify(|s| {
            s.established_at = Some(SystemTime::now());
            s.families = (agreed.ipv4, agreed.ipv6);
        });
        self.session = Some((conn, facts));
    }

    /// Brings the peer to the current routes; `full` after (re)establishment: then End-of-RIB.
    fn advertise(&mut self, full: bool) {
        let routes = Arc::clone(&self.routes.borrow_and_update());
        self.sync_to(&routes, full);
    }

    fn sync_to(&mut self, routes: &Routes, end_of_rib: bool) {
        let Some((conn, facts)) = self.session.clone() else {
            return;
        };
        let mut messages = match self.adj.sync(routes, &facts) {
            Ok(messages) => messages,
            Err(e) => {
                warn!(peer = %self.cfg.name, error = %e, "cannot encode the UPDATEs for the peer");
                return;
            }
        };
        if end_of_rib {
            match AdjRibOut::end_of_rib(&facts) {
                Ok(eor) => messages.extend(eor),
                Err(e) => warn!(peer = %self.cfg.name, error = %e, "cannot encode End-of-RIB"),
            }
        }
        if messages.is_empty() {
            return;
        }
        debug!(peer = %self.cfg.name, updates = messages.len(), prefixes = self.adj.advertised(), "sending UPDATEs");
        if let Some(c) = self.conns.get(&conn) {
            let n = messages.len() as u64;
            for m in messages {
                c.io.send(m);
            }
            self.status.send_modify(|s| s.updates_sent += n);
        }
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
    fn publish(&mut self) {
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
