//! The session task's inputs: accepted and connected sockets, and what arrives on them
//! (decoded here with the connection's negotiated context, then fed to the state machine).

use bytes::Bytes;
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::framing::{from_codec, ConnEvent, Io};
use super::open::negotiate;
use super::socket;
use super::task::{Conn, Task};
use crate::bgp::codec::{Context, DecodeError, Message};
use crate::bgp::fsm::{ConnId, Event};

impl Task {
    pub(super) fn on_accept(&mut self, stream: TcpStream) {
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
    pub(super) fn start_conn(&mut self, conn: ConnId, stream: TcpStream) -> bool {
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

    pub(super) fn on_conn_event(&mut self, conn: ConnId, event: ConnEvent) {
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

    pub(super) fn on_frame(&mut self, conn: ConnId, frame: &Bytes) {
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

    pub(super) fn on_decode_error(&mut self, conn: ConnId, error: DecodeError) {
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
}
