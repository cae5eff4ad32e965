//! The published view.

use super::*;

impl Driver {
    pub(super) fn publish(&mut self) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for m in self.foca.iter_membership_state() {
            (m.id(), m.incarnation(), m.state() as u8).hash(&mut h);
        }
        let sig = h.finish();
        if sig == self.signature && !self.dirty {
            return;
        }
        self.signature = sig;
        self.dirty = false;
        let view = self.build_view();
        self.view_tx.send_if_modified(|v| {
            if *v == view {
                false
            } else {
                *v = view;
                true
            }
        });
    }

    pub(super) fn build_view(&self) -> MembershipView {
        let inbox = lock(&self.inbox);
        let mut view = MembershipView {
            me: self.me.node.clone(),
            synced: self.synced,
            sync_timed_out: self.sync_timed_out,
            connected: self.connected,
            left: self.left,
            health: self.awareness.score(),
            ..MembershipView::default()
        };
        for m in self.foca.iter_membership_state() {
            let id = m.id();
            if id.addr == self.me.addr {
                continue;
            }
            let stamped = inbox.table.get(&id.addr).filter(|s| s.boot == id.boot);
            let state = match (stamped.is_some_and(|s| s.meta.leaving), m.state()) {
                (true, _) => MemberState::Left,
                (false, State::Alive) => MemberState::Alive,
                (false, State::Suspect) => MemberState::Suspect,
                (false, State::Down) => MemberState::Down,
            };
            let info = MemberInfo {
                addr: id.addr,
                state,
                boot: id.boot,
                incarnation: m.incarnation(),
                meta_known: stamped.is_some(),
                fingerprint: stamped.map(|s| s.meta.fingerprint),
                pools: stamped.map(|s| s.meta.pools.clone()).unwrap_or_default(),
                claims: stamped.map(|s| s.meta.claims.clone()).unwrap_or_default(),
            };
            // One node name at two addresses (a moved node): the live one, else the newer.
            match view.members.get(&id.node) {
                Some(o) if (o.state.is_alive(), o.boot) >= (info.state.is_alive(), info.boot) => {}
                _ => {
                    view.members.insert(id.node.clone(), info);
                }
            }
        }
        view.members.insert(
            self.me.node.clone(),
            MemberInfo {
                addr: self.me.addr,
                state: if self.left {
                    MemberState::Left
                } else {
                    MemberState::Alive
                },
                boot: self.me.boot,
                incarnation: u16::try_from(self.last_incarnation).unwrap_or(u16::MAX),
                meta_known: true,
                fingerprint: Some(self.meta.fingerprint),
                pools: self.meta.pools.clone(),
                claims: self.meta.claims.clone(),
            },
        );
        view
    }
}
