//! foca's timers on tokio time, stretched by awareness; suspicions on the dogpile clock.

use super::*;

impl Driver {
    pub(super) fn fire_timers(&mut self) {
        let now = Instant::now();
        let late = (self.timing.probe_timeout / 2).max(Duration::from_millis(10));
        while let Some(Reverse(s)) = self.timers.peek() {
            if s.at > now {
                break;
            }
            let Some(Reverse(s)) = self.timers.pop() else {
                break;
            };
            // Our own timers firing late means this node is starved: be slower to blame others.
            if now.saturating_duration_since(s.at) > late
                && self
                    .last_late
                    .is_none_or(|t| now.saturating_duration_since(t) >= self.timing.probe_interval)
            {
                self.last_late = Some(now);
                self.awareness.worse();
                self.dirty = true;
                tracing::debug!(
                    late_ms = now.saturating_duration_since(s.at).as_millis() as u64,
                    health = self.awareness.score(),
                    "gossip timer fired late"
                );
            }
            match s.what {
                Pending::Foca(timer) => {
                    let probe = matches!(timer, Timer::ProbeRandomMember(_));
                    self.suspected_now = false;
                    if let Err(e) = self.foca.handle_timer(timer, &mut self.rt) {
                        tracing::debug!(error = %e, "gossip timer refused");
                    }
                    if probe {
                        // foca judges the previous probe when starting the next one.
                        self.drain_schedule();
                        let before = self.awareness;
                        if self.suspected_now {
                            self.awareness.worse();
                        } else {
                            self.awareness.better();
                        }
                        self.dirty |= before != self.awareness;
                    }
                }
                Pending::Check(nonce) => {
                    if let Some((about, boot, incarnation)) = self.checks.remove(&nonce) {
                        // No answer: we confirm the suspicion, independently.
                        bump(&self.shared.counters.confirmations);
                        tracing::debug!(%about, incarnation, "suspect did not answer our check; confirming");
                        self.add_note(SuspicionNote {
                            by: self.me.addr,
                            about,
                            boot,
                            incarnation,
                        });
                    }
                }
                Pending::Suspicion(addr, inc) => {
                    if let Some(exp) = self.suspicions.take_due(addr, inc, self.elapsed()) {
                        // Only while it is still suspect in that incarnation: foca 2.0.0 sends
                        // the member "you are down" (TurnUndead) on this timer even when the
                        // member has refuted and is not declared down — it would then rejoin
                        // under a new boot id for nothing.
                        let still_suspect = self.foca.iter_membership_state().any(|m| {
                            m.id() == &exp.member
                                && m.incarnation() == exp.incarnation
                                && m.state() == State::Suspect
                        });
                        if !still_suspect {
                            continue;
                        }
                        let timer = Timer::ChangeSuspectToDown {
                            member_id: exp.member,
                            incarnation: exp.incarnation,
                            token: exp.token,
                        };
                        if let Err(e) = self.foca.handle_timer(timer, &mut self.rt) {
                            tracing::debug!(error = %e, "suspicion timer refused");
                        }
                    }
                }
            }
        }
    }

    pub(super) fn drain_schedule(&mut self) {
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.schedule(after, timer);
        }
    }

    pub(super) fn schedule(&mut self, after: Duration, timer: Timer<NodeId>) {
        let now = Instant::now();
        match timer {
            Timer::ProbeRandomMember(_) | Timer::SendIndirectProbe { .. } => {
                let at = now + self.awareness.scale(after);
                self.push(at, Pending::Foca(timer));
            }
            Timer::ChangeSuspectToDown {
                member_id,
                incarnation,
                token,
            } => {
                self.suspected_now = true;
                let addr = member_id.addr;
                let new = self.suspicions.deadline(addr, incarnation).is_none();
                let bounds = SuspicionBounds::new(
                    self.timing.suspicion_timeout,
                    self.timing.suspicion_max_multiplier,
                    self.timing.suspicion_confirmations,
                    self.foca.num_members() + 1,
                );
                let boot = member_id.boot;
                let deadline =
                    self.suspicions
                        .start(member_id, incarnation, token, self.elapsed(), bounds);
                self.push(self.epoch + deadline, Pending::Suspicion(addr, incarnation));
                if new {
                    bump(&self.shared.counters.suspicions);
                    tracing::debug!(%addr, incarnation, timeout_ms = deadline.saturating_sub(self.elapsed()).as_millis() as u64, "suspecting member");
                    self.add_note(SuspicionNote {
                        by: self.me.addr,
                        about: addr,
                        boot,
                        incarnation,
                    });
                    self.buddy(addr, incarnation);
                }
            }
            other => self.push(now + after, Pending::Foca(other)),
        }
    }

    /// Our suspicion (or confirmation) of a member, for the others to count; pushed now so
    /// the suspect can refute and the others can check.
    pub(super) fn add_note(&mut self, note: SuspicionNote) {
        lock(&self.inbox).adding_local = true;
        let _ = self.foca.add_broadcast(&Item::Suspicion(note).encode());
        lock(&self.inbox).adding_local = false;
        self.gossip_now = true;
    }
}
