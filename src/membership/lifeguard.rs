//! Lifeguard (Dadgar et al., 2018) around foca, which has none of its own. Pure: time is a
//! `Duration` since the driver's start.
//!
//! - **Local health awareness (LHA-probe).** [`Awareness`] is a score from 0 to
//!   [`MAX_AWARENESS`]: +1 when a probe this node ran got no answer, when this node had to
//!   refute a suspicion about itself, or when its own timers fired late (it is starved of
//!   CPU); −1 for every probe that succeeded. The driver stretches the probe interval and the
//!   direct-ack timeout it hands foca by `score + 1`, so a node that is itself slow probes
//!   less eagerly and waits longer before blaming others — instead of declaring healthy
//!   peers dead.
//! - **Dogpile suspicion.** When this node suspects a member it tells the others (a
//!   suspicion note); a node that independently suspects the same member in the same
//!   incarnation confirms it. The time before *suspect* becomes *down* starts at `max` and
//!   shrinks towards `min` logarithmically with the confirmations, as in memberlist:
//!   `max − (max − min) · ln(c + 1) / ln(k + 1)`, with `k` the confirmations expected —
//!   `min(suspicion_confirmations, members − 2)` (ourselves and the suspect cannot confirm).
//!   So a lone suspicion (maybe our own fault) waits longest, and a suspicion the rest of the
//!   cluster shares acts at `min`. With 2 members nobody can confirm and `min` applies.
//! - **Indirect probes** are foca's own (`num_indirect_probes`): a member that misses a
//!   direct ping is pinged through others before it is suspected.
//!
//! - **Buddy system and independent confirmation** (the driver, with `wire::Check`): the
//!   suspector tells the suspect directly, at once and every 100 ms while the suspicion lasts,
//!   so a member that was briefly deaf refutes even if foca's gossip of the suspicion was spent
//!   while it was; a member that hears of a suspicion checks the suspect itself and confirms
//!   only if no answer comes within the probe timeout — so in a 3-node cluster the third
//!   node's confirmation arrives ~40 ms after the suspicion instead of at its next probe.
//!
//! Not done: nack-based awareness (foca's indirect probes have no nacks, so the score counts
//! every failed probe, as memberlist does when its peers cannot nack).

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::Duration;

use super::identity::NodeId;

/// Highest awareness score: timeouts stretch at most 9-fold (memberlist's default is 8).
pub const MAX_AWARENESS: u32 = 8;

/// Suspicions remembered before our own probe confirms them.
const MAX_EARLY: usize = 1024;

/// This node's health score.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Awareness {
    score: u32,
}

impl Awareness {
    /// The score: 0 is healthy.
    pub fn score(&self) -> u32 {
        self.score
    }

    /// Something went wrong that may be our own fault.
    pub fn worse(&mut self) {
        self.score = (self.score + 1).min(MAX_AWARENESS);
    }

    /// A probe succeeded.
    pub fn better(&mut self) {
        self.score = self.score.saturating_sub(1);
    }

    /// `d` stretched by the score.
    pub fn scale(&self, d: Duration) -> Duration {
        d * (self.score + 1)
    }
}

/// How long suspicions last, for a cluster of a given size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SuspicionBounds {
    /// With all expected confirmations.
    pub min: Duration,
    /// With none.
    pub max: Duration,
    /// Confirmations expected.
    pub expected: u32,
}

impl SuspicionBounds {
    /// `base` (`cluster.suspicion_timeout`) grows with `log10(members)` beyond 10 members,
    /// since gossip needs more rounds to reach everyone; `max` is `max_multiplier · min`.
    pub fn new(
        base: Duration,
        max_multiplier: u32,
        confirmations: u32,
        members: usize,
    ) -> SuspicionBounds {
        let scale = (members.max(1) as f64).log10().max(1.0);
        let min = base.mul_f64(scale);
        SuspicionBounds {
            min,
            max: min * max_multiplier.max(1),
            expected: confirmations
                .min(u32::try_from(members.saturating_sub(2)).unwrap_or(u32::MAX)),
        }
    }

    /// The suspicion timeout after `confirmations` independent confirmations.
    pub fn timeout(&self, confirmations: u32) -> Duration {
        if self.expected == 0 || confirmations >= self.expected {
            return self.min;
        }
        let frac = f64::from(confirmations + 1).ln() / f64::from(self.expected + 1).ln();
        let span = self.max.saturating_sub(self.min);
        self.max.saturating_sub(span.mul_f64(frac)).max(self.min)
    }
}

#[derive(Debug, Clone)]
struct Suspicion {
    member: NodeId,
    token: u8,
    start: Duration,
    bounds: SuspicionBounds,
    confirmers: BTreeSet<SocketAddr>,
}

impl Suspicion {
    fn deadline(&self) -> Duration {
        let c = u32::try_from(self.confirmers.len()).unwrap_or(u32::MAX);
        self.start + self.bounds.timeout(c)
    }
}

/// A suspicion that reached its deadline: what to hand back to foca.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// The suspect.
    pub member: NodeId,
    /// Its incarnation when suspected.
    pub incarnation: u16,
    /// foca's timer token.
    pub token: u8,
}

/// The suspicions this node holds (one per member and incarnation), with their
/// confirmations.
#[derive(Debug, Default)]
pub struct Suspicions {
    active: HashMap<(SocketAddr, u16), Suspicion>,
    early: HashMap<(SocketAddr, u16), (Duration, BTreeSet<SocketAddr>)>,
}

impl Suspicions {
    /// No suspicions.
    pub fn new() -> Suspicions {
        Suspicions::default()
    }

    /// We suspect `member` (foca asked for its suspect→down timer): returns the deadline.
    /// Suspecting again the same incarnation keeps the first start.
    pub fn start(
        &mut self,
        member: NodeId,
        incarnation: u16,
        token: u8,
        now: Duration,
        bounds: SuspicionBounds,
    ) -> Duration {
        let key = (member.addr, incarnation);
        let early = self.early.remove(&key).map(|(_, c)| c).unwrap_or_default();
        let s = self.active.entry(key).or_insert_with(|| Suspicion {
            member,
            token,
            start: now,
            bounds,
            confirmers: BTreeSet::new(),
        });
        s.token = token;
        s.confirmers.extend(early);
        s.deadline()
    }

    /// `by` suspects `about` too. Returns the new deadline if we hold that suspicion.
    pub fn confirm(
        &mut self,
        about: SocketAddr,
        incarnation: u16,
        by: SocketAddr,
        now: Duration,
    ) -> Option<Duration> {
        let key = (about, incarnation);
        if let Some(s) = self.active.get_mut(&key) {
            if by != about {
                s.confirmers.insert(by);
            }
            return Some(s.deadline());
        }
        if self.early.len() >= MAX_EARLY && !self.early.contains_key(&key) {
            return None;
        }
        let e = self.early.entry(key).or_insert((now, BTreeSet::new()));
        if by != about {
            e.1.insert(by);
        }
        None
    }

    /// The suspicion of `(addr, incarnation)` if its deadline has passed (then forgotten).
    pub fn take_due(
        &mut self,
        addr: SocketAddr,
        incarnation: u16,
        now: Duration,
    ) -> Option<Expired> {
        let key = (addr, incarnation);
        if self.active.get(&key)?.deadline() > now {
            return None;
        }
        let s = self.active.remove(&key)?;
        Some(Expired {
            member: s.member,
            incarnation,
            token: s.token,
        })
    }

    /// The deadline of a suspicion we hold.
    pub fn deadline(&self, addr: SocketAddr, incarnation: u16) -> Option<Duration> {
        self.active
            .get(&(addr, incarnation))
            .map(Suspicion::deadline)
    }

    /// Forgets suspicions about members no longer suspect (`keep` says which still are),
    /// and early confirmations older than `max_age`.
    pub fn prune(
        &mut self,
        now: Duration,
        max_age: Duration,
        mut keep: impl FnMut(SocketAddr, u16) -> bool,
    ) {
        self.active.retain(|(a, i), _| keep(*a, *i));
        self.early
            .retain(|_, (seen, _)| now.saturating_sub(*seen) <= max_age);
    }

    /// The suspicions held: (suspect address, incarnation).
    pub fn held(&self) -> Vec<(SocketAddr, u16)> {
        self.active.keys().copied().collect()
    }

    /// Suspicions held.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn member(port: u16) -> NodeId {
        NodeId::new(
            format!("n{port}"),
            SocketAddr::from(([10, 0, 0, 1], port)),
            1,
        )
    }

    #[test]
    fn awareness_stretches_and_recovers() {
        let mut a = Awareness::default();
        assert_eq!(a.scale(100 * MS), 100 * MS);
        a.worse();
        a.worse();
        assert_eq!(a.scale(100 * MS), 300 * MS);
        for _ in 0..20 {
            a.worse();
        }
        assert_eq!(a.score(), MAX_AWARENESS);
        a.better();
        assert_eq!(a.score(), MAX_AWARENESS - 1);
    }

    #[test]
    fn bounds_follow_cluster_size() {
        let b = SuspicionBounds::new(150 * MS, 3, 2, 3);
        assert_eq!((b.min, b.max, b.expected), (150 * MS, 450 * MS, 1));
        assert_eq!(SuspicionBounds::new(150 * MS, 3, 2, 2).expected, 0);
        assert_eq!(SuspicionBounds::new(150 * MS, 3, 2, 2).timeout(0), 150 * MS);
        let big = SuspicionBounds::new(150 * MS, 3, 2, 100);
        assert_eq!((big.min, big.expected), (300 * MS, 2));
    }

    #[test]
    fn timeout_shrinks_with_confirmations() {
        let b = SuspicionBounds::new(100 * MS, 6, 3, 50);
        let t: Vec<_> = (0..5).map(|c| b.timeout(c)).collect();
        assert_eq!(t[0], b.max);
        assert!(t[0] > t[1] && t[1] > t[2] && t[2] > t[3], "{t:?}");
        assert_eq!(t[3], b.min);
        assert_eq!(t[4], b.min);
    }

    #[test]
    fn confirmations_move_the_deadline_forward() {
        let mut s = Suspicions::new();
        let b = SuspicionBounds::new(150 * MS, 3, 2, 3);
        let x = member(1);
        let d = s.start(x.clone(), 4, 9, 1000 * MS, b);
        assert_eq!(d, 1450 * MS);
        assert!(s.take_due(x.addr, 4, 1449 * MS).is_none());
        // A different incarnation's confirmation does not count; the right one does.
        assert_eq!(s.confirm(x.addr, 3, member(2).addr, 1100 * MS), None);
        assert_eq!(s.deadline(x.addr, 4), Some(1450 * MS));
        assert_eq!(
            s.confirm(x.addr, 4, member(2).addr, 1100 * MS),
            Some(1150 * MS)
        );
        let e = s.take_due(x.addr, 4, 1150 * MS).unwrap();
        assert_eq!((e.member, e.incarnation, e.token), (x, 4, 9));
        assert!(s.is_empty());
    }

    #[test]
    fn confirmations_heard_before_our_own_suspicion_count() {
        let mut s = Suspicions::new();
        let b = SuspicionBounds::new(150 * MS, 3, 2, 3);
        let x = member(1);
        s.confirm(x.addr, 0, member(2).addr, Duration::ZERO);
        assert_eq!(s.start(x, 0, 0, 50 * MS, b), 200 * MS);
    }

    #[test]
    fn refuted_suspicions_are_pruned() {
        let mut s = Suspicions::new();
        let b = SuspicionBounds::new(150 * MS, 3, 2, 3);
        s.start(member(1), 0, 0, Duration::ZERO, b);
        s.start(member(2), 0, 0, Duration::ZERO, b);
        s.prune(Duration::ZERO, 10 * MS, |a, _| a.port() == 2);
        assert_eq!(s.len(), 1);
        assert!(s.deadline(member(2).addr, 0).is_some());
    }
}
