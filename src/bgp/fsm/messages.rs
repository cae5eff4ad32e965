//! The transitions on received messages: OPEN (with collision resolution), KEEPALIVE,
//! UPDATE and ROUTE-REFRESH.

use std::time::Duration;

use super::conn::Stage;
use super::open::{accept_open, collision_winner};
use super::{cease, Action, ConnId, DownReason, Fsm, Notification, PeerOpen};

impl Fsm {
    pub(super) fn open_received(
        &mut self,
        now: Duration,
        id: ConnId,
        open: &PeerOpen,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.conn(id) else { return };
        match c.stage {
            // No byte can arrive before the connection is up: a caller bug, ignore it.
            Stage::Connecting => return,
            Stage::OpenSent => {}
            Stage::OpenConfirm | Stage::Established => {
                let n = Notification::fsm_error(c.unexpected_subcode());
                return self.fail(id, n, out);
            }
        }
        let negotiated = match accept_open(&self.cfg, open) {
            Ok(n) => n,
            Err(n) => return self.fail(id, n, out),
        };
        // The peer's identifier is now known: resolve a collision with the other connection
        // if it has sent its OPEN too (RFC 4271 §6.8).
        let other = self
            .conns
            .iter()
            .find(|o| o.id != id && matches!(o.stage, Stage::OpenSent | Stage::OpenConfirm))
            .map(|o| o.id);
        if let Some(other) = other {
            let loser = if collision_winner(&self.cfg, &negotiated) == id.direction {
                other
            } else {
                id
            };
            self.lose_collision(loser, out);
            if loser == id {
                return;
            }
        }
        let Some(c) = self.conn_mut(id) else { return };
        c.stage = Stage::OpenConfirm;
        c.negotiated = Some(negotiated);
        c.restart_hold(now);
        c.restart_keepalive(now);
        out.push(Action::SendKeepalive { conn: id });
    }

    pub(super) fn keepalive_received(&mut self, now: Duration, id: ConnId, out: &mut Vec<Action>) {
        let Some(c) = self.conn_mut(id) else { return };
        match c.stage {
            Stage::Connecting => {}
            Stage::OpenSent => {
                let n = Notification::fsm_error(c.unexpected_subcode());
                self.fail(id, n, out);
            }
            Stage::Established => c.restart_hold(now),
            Stage::OpenConfirm => {
                c.stage = Stage::Established;
                c.restart_hold(now);
                let negotiated = c.negotiated;
                // Exactly one connection carries an Established session.
                let others: Vec<ConnId> = self
                    .conns
                    .iter()
                    .map(|o| o.id)
                    .filter(|o| *o != id)
                    .collect();
                for other in others {
                    self.lose_collision(other, out);
                }
                self.failures = 0;
                if let Some(negotiated) = negotiated {
                    out.push(Action::SessionEstablished {
                        conn: id,
                        negotiated,
                    });
                }
                out.push(Action::AdvertiseAll { conn: id });
            }
        }
    }

    /// UPDATE, or ROUTE-REFRESH when `refresh`: only in Established.
    pub(super) fn update_received(
        &mut self,
        now: Duration,
        id: ConnId,
        refresh: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(c) = self.conn_mut(id) else { return };
        match c.stage {
            Stage::Connecting => {}
            Stage::Established => {
                c.restart_hold(now);
                if refresh {
                    out.push(Action::AdvertiseAll { conn: id });
                }
            }
            Stage::OpenSent | Stage::OpenConfirm => {
                let n = Notification::fsm_error(c.unexpected_subcode());
                self.fail(id, n, out);
            }
        }
    }

    fn lose_collision(&mut self, id: ConnId, out: &mut Vec<Action>) {
        let n = Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION);
        self.drop_conn(id, Some(n), DownReason::Collision, out);
    }
}
