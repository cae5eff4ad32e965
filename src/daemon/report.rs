//! What the daemon reports about itself: the main loop publishes a [`LoopReport`] after every
//! message it handles, and [`DaemonMetrics`] — the metrics endpoint's [`Source`] — combines
//! the latest one with counters read live (responders, gossip, reflectors, API client), so a
//! scrape during a quiet minute still sees packets counted meanwhile.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::bgp::fsm::State;
use crate::bgp::session::PeerStatus;
use crate::host::dbus::DaemonStatus;
use crate::host::metrics::{BgpPeerStat, GossipStat, L2Stat, PoolStat, Snapshot, Source};
use crate::kube::reflector::Health;
use crate::kube::Client;
use crate::l2::CounterHandle;
use crate::membership::{Counters, MemberState, MembershipView};

/// What only the main loop knows.
#[derive(Debug, Clone, Default)]
pub(super) struct LoopReport {
    /// The responders' counters (when there are l2 pools).
    pub l2: Option<CounterHandle>,
    /// Pool use (the allocator's, on the Lease holder; empty elsewhere).
    pub pools: Vec<PoolStat>,
    /// Services holding addresses (Lease holder).
    pub services_allocated: u64,
    /// Services waiting, by kind of refusal (Lease holder).
    pub pending: BTreeMap<&'static str, u64>,
    /// L2 addresses this node answers for.
    pub announced_l2: u64,
    /// Addresses this node advertises over BGP.
    pub announced_bgp: u64,
    /// The BGP sessions' status, read at scrape time.
    pub bgp: Vec<watch::Receiver<PeerStatus>>,
    /// Members running another pool configuration.
    pub config_mismatch_members: u64,
    /// Reloads that applied, and that were refused.
    pub reloads_ok: u64,
    /// Reloads refused (invalid file).
    pub reloads_failed: u64,
    /// First sync done.
    pub ready: bool,
}

/// The main loop's end of the reporting: where it publishes, and where it leaves the
/// membership's handles once gossip has started.
#[derive(Debug)]
pub(super) struct Reporting {
    pub report: watch::Sender<LoopReport>,
    pub gossip: Arc<OnceLock<GossipHandles>>,
    /// What D-Bus shows (`ferrolb status`).
    pub status: watch::Sender<DaemonStatus>,
}

/// The membership's live parts, set once gossip has started.
#[derive(Debug, Clone)]
pub(super) struct GossipHandles {
    /// Packet and member counters.
    pub counters: Arc<Counters>,
    /// The latest view.
    pub view: watch::Receiver<MembershipView>,
}

/// The daemon's metrics source.
#[derive(Debug)]
pub(super) struct DaemonMetrics {
    pub report: watch::Receiver<LoopReport>,
    pub gossip: Arc<OnceLock<GossipHandles>>,
    pub health: Arc<Health>,
    pub client: Client,
}

impl Source for DaemonMetrics {
    fn snapshot(&self) -> Snapshot {
        let r = self.report.borrow().clone();
        let health = self.health.snapshot();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Snapshot {
            pools: r.pools,
            services_allocated: r.services_allocated,
            allocation_failures: r
                .pending
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            announced: [("l2", r.announced_l2), ("bgp", r.announced_bgp)].into(),
            bgp: r.bgp.iter().map(|rx| bgp_stat(&rx.borrow())).collect(),
            l2: r.l2.as_ref().map(|h| {
                let c = h.snapshot();
                L2Stat {
                    responses: [("arp", c.arp_replies), ("ndp", c.na_replies)].into(),
                    gratuitous: [
                        ("arp", c.gratuitous_arp_sent),
                        ("ndp", c.unsolicited_na_sent),
                    ]
                    .into(),
                }
            }),
            gossip: self
                .gossip
                .get()
                .map(|g| gossip_stat(g, r.config_mismatch_members)),
            api_requests: self.client.requests_sent(),
            api_watch_restarts: health.watch_restarts,
            api_errors: health.errors,
            seconds_since_sync: (health.last_ok_ms > 0)
                .then(|| now_ms.saturating_sub(health.last_ok_ms) as f64 / 1000.0),
            reloads: [("ok", r.reloads_ok), ("failed", r.reloads_failed)].into(),
            ready: r.ready,
        }
    }
}

fn bgp_stat(s: &PeerStatus) -> BgpPeerStat {
    BgpPeerStat {
        peer: s.name.clone(),
        up: s.state == State::Established,
        updates_sent: s.updates_sent,
        updates_received: s.updates_received,
        prefixes: s.prefixes_sent as u64,
    }
}

fn gossip_stat(g: &GossipHandles, config_mismatch_members: u64) -> GossipStat {
    let c = g.counters.snapshot();
    let v = g.view.borrow();
    let count = |s| v.count(s) as u64;
    GossipStat {
        members: [
            ("alive", count(MemberState::Alive)),
            ("suspect", count(MemberState::Suspect)),
            ("down", count(MemberState::Down)),
            ("left", count(MemberState::Left)),
        ]
        .into(),
        dropped: [
            ("auth", c.dropped_auth),
            ("unknown_key", c.dropped_unknown_key),
            ("malformed", c.dropped_malformed),
            ("security_mismatch", c.dropped_security_mismatch),
            ("replay", c.dropped_replay),
            ("stale", c.dropped_stale),
            ("invalid", c.dropped_invalid),
        ]
        .into(),
        members_down: c.member_down,
        config_mismatch_members,
    }
}
