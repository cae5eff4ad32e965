//! Metadata anti-entropy: digests out every [`DIGEST_EVERY`], and what a digest in leads to.

use super::*;
use crate::membership::wire::{Digest, DigestEntry};

/// Send a digest to one random member this often.
const DIGEST_EVERY: Duration = Duration::from_secs(1);

impl Driver {
    /// What we hold: our own version first, then every member's whose metadata we have.
    fn digest(&self, reply: bool) -> Digest {
        let mut entries = vec![DigestEntry {
            addr: self.me.addr,
            boot: self.me.boot,
            version: self.meta_version,
        }];
        let inbox = lock(&self.inbox);
        let mut others: Vec<DigestEntry> = self
            .foca
            .iter_members()
            .filter_map(|m| inbox.table.get(&m.id().addr).map(|s| (m.id().addr, s)))
            .map(|(addr, s)| DigestEntry {
                addr,
                boot: s.boot,
                version: s.version,
            })
            .collect();
        // A digest that does not fit carries a random subset; over rounds, all of it.
        fastrand::shuffle(&mut others);
        entries.extend(others);
        Digest {
            reply_to: self.me.addr,
            reply,
            entries,
        }
    }

    /// Housekeeping: time for a digest to a random member?
    pub(super) fn digest_round(&mut self, now: Instant) {
        if self.left
            || self
                .last_digest
                .is_some_and(|t| now.saturating_duration_since(t) < DIGEST_EVERY)
        {
            return;
        }
        self.last_digest = Some(now);
        let members: Vec<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        if let Some(&to) = members.get(fastrand::usize(..members.len().max(1))) {
            let body = wire::digest(&self.digest(true), BODY_BUDGET);
            self.outbox.push((to, body));
        }
        self.refresh_requested
            .retain(|_, t| now.saturating_duration_since(*t) < META_REQUEST_EVERY);
    }

    /// A member told us which versions it holds: ask owners for what is newer than ours;
    /// send our own metadata, or our digest, where the sender is behind.
    pub(super) async fn digest_received(&mut self, d: Digest) {
        let members: HashMap<SocketAddr, u64> = self
            .foca
            .iter_members()
            .map(|m| (m.id().addr, m.id().boot))
            .collect();
        // Members only: a key holder must not make us send to arbitrary places.
        if !members.contains_key(&d.reply_to) || self.left {
            return;
        }
        let now = Instant::now();
        let mut sender_behind = false;
        let mut send_ours = false;
        let mut ask = Vec::new();
        {
            let inbox = lock(&self.inbox);
            for e in &d.entries {
                let theirs = (e.boot, e.version);
                if e.addr == self.me.addr {
                    send_ours |= theirs < (self.me.boot, self.meta_version);
                    continue;
                }
                let ours = inbox.table.get(&e.addr).map(|s| (s.boot, s.version));
                if ours.is_some_and(|o| o > theirs) {
                    sender_behind = true;
                } else if ours < Some(theirs) && members.get(&e.addr) == Some(&e.boot) {
                    ask.push(e.addr);
                }
            }
        }
        for addr in ask {
            if self.refresh_requested.contains_key(&addr) {
                continue;
            }
            self.refresh_requested.insert(addr, now);
            bump(&self.shared.counters.meta_refreshes);
            tracing::debug!(member = %addr, from = %d.reply_to, "missed a metadata version; asking its owner");
            self.outbox.push((addr, wire::meta_request(self.me.addr)));
        }
        if send_ours {
            self.send_meta_to(d.reply_to).await;
        }
        if sender_behind && d.reply {
            let body = wire::digest(&self.digest(false), BODY_BUDGET);
            self.outbox.push((d.reply_to, body));
        }
    }
}
