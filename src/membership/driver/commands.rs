//! What the handle asks for: metadata changes, the join list, leaving; and joining.

use super::*;

impl Driver {
    pub(super) async fn command(&mut self, c: Command) {
        match c {
            Command::Claims(claims) => {
                if self.meta.claims != claims {
                    self.meta.claims = claims;
                    self.publish_meta();
                }
            }
            Command::Pools(pools) => {
                if self.meta.pools != pools {
                    self.meta.pools = pools;
                    self.publish_meta();
                }
            }
            Command::Fingerprint(fp) => {
                if self.meta.fingerprint != fp {
                    self.meta.fingerprint = fp;
                    self.publish_meta();
                }
            }
            Command::Join(targets) => self.set_join(targets),
            Command::Faults(f) => {
                self.faults = f;
                lock(&self.inbox).ignore_broadcast_meta = f.ignore_broadcast_meta;
            }
            Command::Leave(done) => {
                self.leave().await;
                let _ = done.send(());
            }
        }
    }

    /// A new version of our metadata: into foca's broadcast queue, pushed now.
    pub(super) fn publish_meta(&mut self) {
        self.meta_version += 1;
        let parts = match split(&self.me, self.meta_version, &self.meta) {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(error = %e, "cannot gossip this node's metadata");
                return;
            }
        };
        lock(&self.inbox).adding_local = true;
        for p in parts {
            if let Err(e) = self.foca.add_broadcast(&Item::Meta(p).encode()) {
                tracing::warn!(error = %e, "metadata part refused by foca");
            }
        }
        lock(&self.inbox).adding_local = false;
        self.broadcast_now = true;
        self.dirty = true;
    }

    pub(super) fn set_join(&mut self, targets: Vec<JoinAddress>) {
        self.join = targets;
        self.join_backoff.clear();
        self.resolved.clear();
        self.resolve_names();
        self.join_round(Instant::now());
    }

    pub(super) fn resolve_names(&mut self) {
        self.last_resolve = Some(Instant::now());
        for t in &self.join {
            if t.host.parse::<std::net::IpAddr>().is_ok() {
                continue;
            }
            let key = (t.host.clone(), t.port);
            let tx = self.resolved_tx.clone();
            tokio::spawn(async move {
                let found = tokio::net::lookup_host((key.0.as_str(), key.1))
                    .await
                    .map(|addrs| addrs.collect::<Vec<_>>());
                match found {
                    Ok(addrs) => {
                        let _ = tx.send((key, addrs));
                    }
                    Err(e) => {
                        tracing::debug!(host = %key.0, error = %e, "cannot resolve gossip join target")
                    }
                }
            });
        }
    }

    pub(super) fn join_targets(&self) -> BTreeSet<SocketAddr> {
        let mut out = BTreeSet::new();
        for t in &self.join {
            match t.host.parse::<std::net::IpAddr>() {
                Ok(ip) => {
                    out.insert(SocketAddr::new(ip, t.port));
                }
                Err(_) => {
                    if let Some(addrs) = self.resolved.get(&(t.host.clone(), t.port)) {
                        out.extend(addrs.iter().copied());
                    }
                }
            }
        }
        out
    }

    /// Sends a join request to every target that is not a live member and whose back-off
    /// has run out.
    pub(super) fn join_round(&mut self, now: Instant) {
        if self.left {
            return;
        }
        let members: HashSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for target in self.join_targets() {
            if target == self.me.addr || members.contains(&target) {
                self.join_backoff.remove(&target);
                continue;
            }
            let e = self.join_backoff.entry(target).or_insert((now, JOIN_MIN));
            if e.0 > now {
                continue;
            }
            e.0 = now + e.1;
            e.1 = (e.1 * 2).min(JOIN_MAX);
            bump(&self.shared.counters.join_attempts);
            if let Err(err) = self
                .foca
                .announce(NodeId::placeholder(target), &mut self.rt)
            {
                tracing::debug!(%target, error = %err, "join request failed");
            }
        }
    }

    pub(super) async fn leave(&mut self) {
        if self.left {
            return;
        }
        self.meta.leaving = true;
        self.publish_meta();
        // Tell every live member directly that we are leaving (they mark us left at once)…
        let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for addr in &members {
            self.send_meta_to(*addr).await;
        }
        // …then let SWIM declare us down, pushed to as many members as foca's fan-out reaches.
        if let Err(e) = self.foca.leave_cluster(&mut self.rt) {
            tracing::warn!(error = %e, "leaving the gossip cluster failed");
        }
        self.flush().await;
        for _ in 0..2 {
            let _ = self.foca.gossip(&mut self.rt);
            self.flush().await;
        }
        self.left = true;
        self.dirty = true;
        self.publish();
        tracing::info!(node = %self.me.node, members = members.len(), "left the gossip cluster");
    }
}
