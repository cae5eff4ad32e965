//! Datagrams in and out: the envelope, the bodies, checks, metadata pushes.

use super::*;

impl Driver {
    pub(super) async fn datagram(&mut self, packet: &[u8], from: SocketAddr) {
        let c = self.shared.counters.clone();
        bump(&c.packets_in);
        add(&c.bytes_in, packet.len());
        if self.faults.drop_incoming {
            bump(&c.dropped_fault);
            return;
        }
        let opened = match self.opener.open(packet, wall_ms()) {
            Ok(o) => o,
            Err(r) => {
                let counter = match r {
                    Reject::Truncated
                    | Reject::Oversized
                    | Reject::Version(_)
                    | Reject::Flags(_) => &c.dropped_malformed,
                    Reject::Plaintext | Reject::Sealed => &c.dropped_security_mismatch,
                    Reject::UnknownKey(_) => &c.dropped_unknown_key,
                    Reject::Auth => &c.dropped_auth,
                    Reject::Replay => &c.dropped_replay,
                    Reject::Stale { .. } => &c.dropped_stale,
                };
                bump(counter);
                tracing::debug!(%from, reason = %r, "gossip packet dropped");
                return;
            }
        };
        match Body::decode(&opened.body) {
            Ok(Body::Foca(data)) => {
                let patched = self.patch_announce(data);
                let data = patched.as_deref().unwrap_or(data);
                if let Err(e) = self.foca.handle_data(data, &mut self.rt) {
                    bump(&c.dropped_invalid);
                    tracing::debug!(%from, error = %e, "gossip message refused");
                }
            }
            Ok(Body::Items(items)) => {
                let _direct = Direct::mark(&self.inbox);
                for item in items {
                    if let Err(e) = self.foca.add_broadcast(item) {
                        bump(&c.dropped_invalid);
                        tracing::debug!(%from, error = %e, "gossip item refused");
                    }
                }
            }
            Ok(Body::Check(check)) => self.answer_check(check),
            Ok(Body::CheckAck(nonce)) => {
                self.checks.remove(&nonce);
            }
            Ok(Body::MetaRequest(reply_to)) => {
                // Only to members: a key holder must not make us send to arbitrary places.
                if self.foca.iter_members().any(|m| m.id().addr == reply_to) {
                    self.send_meta_to(reply_to).await;
                }
            }
            Ok(Body::Digest(d)) => self.digest_received(d).await,
            Err(e) => {
                bump(&c.dropped_invalid);
                tracing::debug!(%from, error = %e, "gossip body refused");
            }
        }
    }

    /// Someone checks on us: answer, and refute if told we are suspected.
    pub(super) fn answer_check(&mut self, check: Check) {
        if check.about != self.me.addr || self.left {
            return;
        }
        if let Some(incarnation) = check.suspected {
            let me = Member::new(self.foca.identity().clone(), incarnation, State::Suspect);
            if let Err(e) = self
                .foca
                .apply_many(std::iter::once(me), true, &mut self.rt)
            {
                tracing::debug!(error = %e, "cannot refute a suspicion");
            }
        }
        // Answer members only: a key holder must not make us send to arbitrary places.
        if check.nonce != 0
            && self
                .foca
                .iter_members()
                .any(|m| m.id().addr == check.reply_to)
        {
            self.outbox
                .push((check.reply_to, wire::check_ack(check.nonce)));
        }
    }

    /// Tells a member we suspect it (Lifeguard's buddy system), so it can refute at once.
    pub(super) fn buddy(&mut self, suspect: SocketAddr, incarnation: u16) {
        let body = wire::check(&Check {
            nonce: 0,
            about: suspect,
            suspected: Some(incarnation),
            reply_to: self.me.addr,
        });
        self.outbox.push((suspect, body));
    }

    /// foca accepts a join request only if it names our gossip address; one sent to another
    /// of our addresses (a `cluster.join` entry that is not what we advertise) is re-addressed
    /// to us.
    pub(super) fn patch_announce(&self, data: &[u8]) -> Option<Vec<u8>> {
        let mut codec = Codec::default();
        let mut cursor = data;
        let mut header = codec.decode_header(&mut cursor).ok()?;
        if header.message != Message::Announce || header.dst.addr == self.me.addr {
            return None;
        }
        header.dst = self.foca.identity().clone();
        let mut out = Vec::with_capacity(data.len() + 32);
        codec.encode_header(&header, &mut out).ok()?;
        out.extend_from_slice(cursor);
        Some(out)
    }

    pub(super) async fn send_body(&mut self, to: SocketAddr, body: &[u8]) {
        let c = self.shared.counters.clone();
        if self.faults.drop_outgoing {
            bump(&c.dropped_fault);
            return;
        }
        let packet = self.sealer.seal(body, wall_ms());
        if self.faults.capture_outgoing {
            let mut cap = self
                .shared
                .captured
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if cap.len() < MAX_CAPTURED {
                cap.push((to, packet.clone()));
            }
        }
        match self.socket.send_to(&packet, to).await {
            Ok(_) => {
                bump(&c.packets_out);
                add(&c.bytes_out, packet.len());
            }
            Err(e) => {
                bump(&c.send_errors);
                tracing::debug!(%to, error = %e, "gossip send failed");
            }
        }
    }

    pub(super) async fn send_meta_to(&mut self, to: SocketAddr) {
        let Ok(parts) = split(&self.me, self.meta_version, &self.meta) else {
            return;
        };
        let items: Vec<Vec<u8>> = parts.into_iter().map(|p| Item::Meta(p).encode()).collect();
        for body in wire::items(&items, BODY_BUDGET) {
            self.send_body(to, &body).await;
        }
    }
}
