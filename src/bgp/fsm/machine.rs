//! The transitions that start, stop and lose connections, and the timers. Received
//! messages are in `messages.rs`.

use std::time::Duration;

use super::conn::{Conn, Stage};
use super::timers::{backoff, OPEN_SENT_HOLD};
use super::{
    cease, code, Action, ConnId, Direction, DownReason, Event, Fsm, LocalOpen, Notification,
    StopKind,
};

impl Fsm {
    pub(super) fn apply(&mut self, now: Duration, event: Event, out: &mut Vec<Action>) {
        match event {
            Event::ManualStart => self.start(now, out),
            Event::ManualStop(kind) => self.stop(kind, out),
            Event::TcpConnected { conn } => self.connected(now, conn, out),
            Event::TcpAccepted { conn } => self.accepted(now, conn, out),
            Event::TcpClosed { conn } => {
                if let Some(c) = self.conn(conn) {
                    let reason = match c.stage {
                        Stage::Connecting => DownReason::ConnectFailed,
                        _ => DownReason::ConnectionClosed,
                    };
                    self.drop_conn(conn, None, reason, out);
                }
            }
            Event::Open { conn, open } => self.open_received(now, conn, &open, out),
            Event::Keepalive { conn } => self.keepalive_received(now, conn, out),
            Event::Update { conn } => self.update_received(now, conn, false, out),
            Event::RouteRefresh { conn } => self.update_received(now, conn, true, out),
            Event::Notification { conn, notification } => {
                if self.conn(conn).is_some() {
                    let reason = DownReason::NotificationReceived(notification);
                    self.drop_conn(conn, None, reason, out);
                }
            }
            Event::MessageError { conn, notification } => {
                if self.conn(conn).is_some() {
                    self.fail(conn, notification, out);
                }
            }
        }
    }

    /// Fires every timer due at `now`. A fired timer is either cleared or rearmed after
    /// `now`, so one pass is enough.
    pub(super) fn fire_due(&mut self, now: Duration, out: &mut Vec<Action>) {
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            let Some(c) = self.conn_mut(id) else { continue };
            if c.hold_at.is_some_and(|t| t <= now) {
                if c.stage == Stage::Connecting {
                    self.drop_conn(id, None, DownReason::ConnectTimeout, out);
                } else {
                    let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
                    self.drop_conn(id, Some(n), DownReason::HoldTimerExpired, out);
                }
            } else if c.keepalive_at.is_some_and(|t| t <= now) {
                // From now, not from the missed deadline: a late wake-up sends one
                // KEEPALIVE, not a burst.
                c.restart_keepalive(now);
                out.push(Action::SendKeepalive { conn: id });
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.started && self.conns.is_empty() && !self.cfg.passive {
                self.start_connect(now, out);
            }
        }
    }

    /// Restores the invariants between calls: the connect-retry timer runs exactly when
    /// started, active (not passive) and without any connection.
    pub(super) fn settle(&mut self, now: Duration) {
        if !self.started || self.cfg.passive || !self.conns.is_empty() {
            self.retry_at = None;
        } else if self.retry_at.is_none() {
            let d = backoff(
                self.cfg.connect_retry,
                self.cfg.connect_retry_max,
                self.failures,
            );
            self.failures = self.failures.saturating_add(1);
            self.retry_at = Some(now + self.jitter.apply(d));
        }
    }

    fn start(&mut self, now: Duration, out: &mut Vec<Action>) {
        if self.started {
            return;
        }
        self.started = true;
        self.failures = 0;
        if !self.cfg.passive {
            self.start_connect(now, out);
        }
    }

    fn stop(&mut self, kind: StopKind, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let subcode = kind.cease_subcode();
        let ids: Vec<ConnId> = self.conns.iter().map(|c| c.id).collect();
        for id in ids {
            let n = Notification::cease(subcode);
            self.drop_conn(id, Some(n), DownReason::Stopped(kind), out);
        }
        self.retry_at = None;
        // A reset starts again after the base delay, as if nothing had failed.
        self.failures = 0;
        self.started = kind.restarts();
    }

    fn start_connect(&mut self, now: Duration, out: &mut Vec<Action>) {
        let id = ConnId {
            direction: Direction::Outbound,
            seq: self.next_outbound,
        };
        self.next_outbound += 1;
        let timeout = self.jitter.apply(self.cfg.connect_retry);
        self.conns
            .push(Conn::new(id, Stage::Connecting, now + timeout));
        out.push(Action::Connect { conn: id });
    }

    fn connected(&mut self, now: Duration, id: ConnId, out: &mut Vec<Action>) {
        let open = self.local_open();
        let Some(c) = self.conn_mut(id) else { return };
        if c.stage != Stage::Connecting {
            return;
        }
        c.stage = Stage::OpenSent;
        c.hold_at = Some(now + OPEN_SENT_HOLD);
        out.push(Action::SendOpen { conn: id, open });
    }

    fn accepted(&mut self, now: Duration, id: ConnId, out: &mut Vec<Action>) {
        if id.direction != Direction::Inbound || self.conn(id).is_some() {
            // Not a new inbound connection: a bug in the caller; do not disturb the session.
            return;
        }
        let refuse = if !self.started {
            Some((cease::CONNECTION_REJECTED, DownReason::Rejected))
        } else if self.conns.iter().any(|c| c.stage == Stage::Established) {
            // RFC 4271 §6.8: a collision with an Established session closes the newcomer.
            let sub = cease::CONNECTION_COLLISION_RESOLUTION;
            Some((sub, DownReason::Collision))
        } else if self
            .conns
            .iter()
            .any(|c| c.id.direction == Direction::Inbound)
        {
            Some((cease::CONNECTION_REJECTED, DownReason::Rejected))
        } else {
            None
        };
        if let Some((subcode, reason)) = refuse {
            out.push(Action::SendNotification {
                conn: id,
                notification: Notification::cease(subcode),
            });
            out.push(Action::Close { conn: id, reason });
            return;
        }
        self.conns
            .push(Conn::new(id, Stage::OpenSent, now + OPEN_SENT_HOLD));
        out.push(Action::SendOpen {
            conn: id,
            open: self.local_open(),
        });
    }

    /// Closes `id` with a NOTIFICATION for an error found on it.
    pub(super) fn fail(&mut self, id: ConnId, n: Notification, out: &mut Vec<Action>) {
        let reason = DownReason::NotificationSent(n.clone());
        self.drop_conn(id, Some(n), reason, out);
    }

    /// Forgets `id`: NOTIFICATION (if it sent an OPEN and one is given), Close, and
    /// SessionDown if it carried the session.
    pub(super) fn drop_conn(
        &mut self,
        id: ConnId,
        n: Option<Notification>,
        reason: DownReason,
        out: &mut Vec<Action>,
    ) {
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.conns.swap_remove(pos);
        if let Some(notification) = n.filter(|_| c.stage >= Stage::OpenSent) {
            out.push(Action::SendNotification {
                conn: id,
                notification,
            });
        }
        out.push(Action::Close {
            conn: id,
            reason: reason.clone(),
        });
        if reason.is_error() {
            self.last_error = Some(reason.clone());
        }
        if c.stage == Stage::Established {
            out.push(Action::SessionDown { reason });
        }
    }

    pub(super) fn local_open(&self) -> LocalOpen {
        LocalOpen {
            asn: self.cfg.local_asn,
            hold_time: self.cfg.hold_time,
            router_id: self.cfg.router_id,
        }
    }

    pub(super) fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    pub(super) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }
}
