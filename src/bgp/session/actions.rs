//! The session task's outputs: the state machine's actions carried out in order, and the
//! UPDATEs that bring the peer to the current routes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tracing::{debug, info, warn};

use super::framing::{to_codec, ConnEvent};
use super::open::local_open;
use super::socket;
use super::status::describe;
use super::task::Task;
use crate::bgp::codec::Message;
use crate::bgp::fsm::{Action, ConnId, DownReason, Negotiated};
use crate::bgp::speaker::{AdjRibOut, Routes, SessionFacts};

impl Task {
    pub(super) fn send(&mut self, conn: ConnId, message: &Message) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        match message.encode(&c.ctx) {
            Ok(bytes) => c.io.send(bytes),
            Err(e) => warn!(peer = %self.cfg.name, error = %e, "cannot encode a message"),
        }
    }

    pub(super) fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            self.execute_one(action);
        }
    }

    pub(super) fn execute_one(&mut self, action: Action) {
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
                let why = self.reason(&reason);
                if reason.is_error() {
                    warn!(peer = %name, reason = %why, sent = self.adj.advertised(), "BGP session down");
                } else {
                    info!(peer = %name, reason = %why, sent = self.adj.advertised(), "BGP session down");
                }
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
    pub(super) fn reason(&self, reason: &DownReason) -> String {
        match (reason, &self.last_io_error) {
            (DownReason::ConnectionClosed | DownReason::ConnectFailed, Some(io)) => {
                format!("{}: {io}", describe(reason))
            }
            _ => describe(reason),
        }
    }

    pub(super) fn on_established(&mut self, conn: ConnId, negotiated: Negotiated) {
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
    pub(super) fn advertise(&mut self, full: bool) {
        let routes = Arc::clone(&self.routes.borrow_and_update());
        self.sync_to(&routes, full);
    }

    pub(super) fn sync_to(&mut self, routes: &Routes, end_of_rib: bool) {
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
}
