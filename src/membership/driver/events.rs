//! Reactions to foca's notifications and our inbox, and periodic housekeeping.

use super::*;

impl Driver {
    pub(super) async fn notification(&mut self, n: OwnedNotification<NodeId>) {
        let c = self.shared.counters.clone();
        self.dirty = true;
        match n {
            OwnedNotification::MemberUp(id) => {
                bump(&c.member_up);
                tracing::info!(member = %id, "gossip member up");
                self.join_backoff.remove(&id.addr);
                self.send_meta_to(id.addr).await;
                self.gossip_now = true;
            }
            OwnedNotification::MemberDown(id) => {
                let leaving = lock(&self.inbox)
                    .table
                    .get(&id.addr)
                    .is_some_and(|s| s.boot == id.boot && s.meta.leaving);
                if leaving {
                    bump(&c.member_left);
                    tracing::info!(member = %id, "gossip member left");
                } else {
                    bump(&c.member_down);
                    tracing::warn!(member = %id, "gossip member down");
                }
                self.gossip_now = true;
            }
            OwnedNotification::Rename(old, new) => {
                if new.boot > old.boot && old.boot != 0 {
                    bump(&c.member_restarted);
                }
                tracing::info!(old = %old, new = %new, "gossip member restarted");
                self.send_meta_to(new.addr).await;
            }
            OwnedNotification::Active => {
                self.connected = true;
                tracing::info!(
                    members = self.foca.num_members(),
                    "joined the gossip cluster"
                );
            }
            OwnedNotification::Idle => {
                self.connected = false;
                if !self.left {
                    tracing::warn!("no other gossip member is reachable");
                }
            }
            OwnedNotification::Defunct => {
                if !self.left {
                    tracing::error!("declared down by the cluster and cannot rejoin");
                }
            }
            OwnedNotification::Rejoin(new) => {
                bump(&c.rejoins);
                tracing::warn!(new = %new, "declared down by the cluster; rejoined with a new boot id");
                self.me = new;
                self.last_incarnation = 0;
                self.publish_meta();
                let members: Vec<SocketAddr> =
                    self.foca.iter_members().map(|m| m.id().addr).collect();
                for addr in members {
                    self.send_meta_to(addr).await;
                }
            }
        }
    }

    pub(super) fn drain_inbox(&mut self) {
        let (notes, changed) = {
            let mut inbox = lock(&self.inbox);
            (
                std::mem::take(&mut inbox.notes),
                std::mem::take(&mut inbox.meta_changed),
            )
        };
        self.dirty |= changed;
        let now = self.elapsed();
        for n in notes {
            if let Some(deadline) = self.suspicions.confirm(n.about, n.incarnation, n.by, now) {
                self.push(
                    self.epoch + deadline,
                    Pending::Suspicion(n.about, n.incarnation),
                );
                continue;
            }
            // Not our suspicion (yet): check the suspect ourselves before confirming.
            let key = (n.about, n.incarnation);
            let at = Instant::now();
            let recently = self
                .checked
                .get(&key)
                .is_some_and(|t| at.saturating_duration_since(*t) < self.timing.probe_interval);
            let known = self
                .foca
                .iter_members()
                .any(|m| m.id().addr == n.about && m.id().boot == n.boot);
            if recently || !known || n.about == self.me.addr || self.left {
                continue;
            }
            self.checked.insert(key, at);
            self.next_nonce += 1;
            let nonce = self.next_nonce;
            self.checks.insert(nonce, (n.about, n.boot, n.incarnation));
            let body = wire::check(&Check {
                nonce,
                about: n.about,
                suspected: Some(n.incarnation),
                reply_to: self.me.addr,
            });
            self.outbox.push((n.about, body));
            self.push(at + self.timing.probe_timeout, Pending::Check(nonce));
        }
    }

    pub(super) fn housekeeping(&mut self) {
        let now = Instant::now();
        // Cluster size drives how often updates are retransmitted.
        let n = self.foca.num_members() + 1;
        if n != self.members_seen {
            self.members_seen = n;
            if let Err(e) = self.foca.set_config(foca_config(&self.timing, n)) {
                tracing::debug!(error = ?e, "gossip config not updated");
            }
        }
        // Keep telling suspects they are suspected (a deaf moment may have eaten the first).
        for (addr, inc) in self.suspicions.held() {
            self.buddy(addr, inc);
        }
        self.checked
            .retain(|_, t| now.saturating_duration_since(*t) < Duration::from_secs(10));
        // Metadata we lack: ask its owner.
        let missing: Vec<SocketAddr> = {
            let inbox = lock(&self.inbox);
            self.foca
                .iter_members()
                .filter(|m| {
                    inbox
                        .table
                        .get(&m.id().addr)
                        .is_none_or(|s| s.boot != m.id().boot)
                })
                .map(|m| m.id().addr)
                .collect()
        };
        if !self.left {
            for addr in &missing {
                let due = self
                    .meta_requested
                    .get(addr)
                    .is_none_or(|t| now.saturating_duration_since(*t) >= META_REQUEST_EVERY);
                if due {
                    self.meta_requested.insert(*addr, now);
                    // Sent by the flush that follows.
                    self.outbox.push((*addr, wire::meta_request(self.me.addr)));
                }
            }
        }
        self.meta_requested.retain(|a, _| missing.contains(a));
        // Synced: joined and holding everyone's metadata, or waited long enough.
        if !self.synced {
            if self.connected && missing.is_empty() {
                self.synced = true;
                self.dirty = true;
                tracing::info!(members = n, "gossip state synced");
            } else if self.elapsed() >= self.timing.sync_timeout {
                self.synced = true;
                self.sync_timed_out = true;
                self.dirty = true;
                tracing::warn!(
                    members = n,
                    missing = missing.len(),
                    "gossip sync timed out; going on with what is known"
                );
            }
        }
        // Forget what no longer matters.
        let suspects: HashSet<(SocketAddr, u16)> = self
            .foca
            .iter_membership_state()
            .filter(|m| m.state() == State::Suspect)
            .map(|m| (m.id().addr, m.incarnation()))
            .collect();
        self.suspicions
            .prune(self.elapsed(), Duration::from_secs(10), |a, i| {
                suspects.contains(&(a, i))
            });
        self.opener.expire(wall_ms());
        let known: HashSet<SocketAddr> = self
            .foca
            .iter_membership_state()
            .map(|m| m.id().addr)
            .collect();
        lock(&self.inbox).table.retain(|a| known.contains(a));
        if self
            .last_resolve
            .is_none_or(|t| now.saturating_duration_since(t) >= RESOLVE_EVERY)
        {
            self.resolve_names();
        }
        self.join_round(now);
        self.digest_round(now);
    }
}
