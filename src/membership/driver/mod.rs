//! The membership task: owns the UDP socket and the foca instance, feeds foca the packets
//! that pass the envelope, sends what foca produces, runs its timers on tokio time (stretched
//! by Lifeguard awareness, suspicions on our dogpile clock), joins, and publishes the view.
//! Everything here runs on one task; nothing blocks.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroUsize};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{
    AccumulatingRuntime, Codec as _, Foca, Member, Message, OwnedNotification, PeriodicParams,
    State, Timer,
};
use rand::rngs::SmallRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use super::broadcast::{lock, Direct, Handler, Inbox};
use super::codec::Codec;
use super::identity::NodeId;
use super::lifeguard::{Awareness, SuspicionBounds, Suspicions};
use super::meta::{split, Item, Meta, SuspicionNote};
use super::packet::{Opener, Reject, Sealer, MAX_DATAGRAM, OVERHEAD};
use super::settings::Timing;
use super::view::{add, bump, Counters, MemberInfo, MemberState, MembershipView};
use super::wire::{self, Body, Check};
use crate::config::JoinAddress;

mod commands;
mod digest;
mod events;
mod packets;
mod timers;
mod view;

/// foca's packet budget: a datagram minus the envelope and the body kind byte.
pub const FOCA_MAX_PACKET: usize = MAX_DATAGRAM - OVERHEAD - 1;
/// Body budget for our own messages.
const BODY_BUDGET: usize = MAX_DATAGRAM - OVERHEAD;
/// Forget down members after this long (then a node of that address could rejoin with the
/// same identity; ours never do — every start has a new boot id).
const REMOVE_DOWN_AFTER: Duration = Duration::from_secs(3600);
/// Housekeeping period: sync check, metadata requests, join retries.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// Join retries back off from this…
const JOIN_MIN: Duration = Duration::from_millis(250);
/// …to this.
const JOIN_MAX: Duration = Duration::from_secs(5);
/// Ask a member for its metadata at most this often.
const META_REQUEST_EVERY: Duration = Duration::from_millis(300);
/// Re-resolve host names in the join list this often.
const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// Captured packets kept for tests.
const MAX_CAPTURED: usize = 10_000;

/// Test hooks on the transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Drop every received datagram (as if the link were cut inbound).
    pub drop_incoming: bool,
    /// Drop every datagram we would send.
    pub drop_outgoing: bool,
    /// Keep a copy of every datagram sent (see `Membership::take_captured`).
    pub capture_outgoing: bool,
    /// Ignore metadata that arrives by broadcast (as if every broadcast of it were lost);
    /// metadata sent directly, on request, still counts.
    pub ignore_broadcast_meta: bool,
}

/// Requests from the handle.
#[derive(Debug)]
pub(crate) enum Command {
    Claims(BTreeSet<std::net::IpAddr>),
    Pools(BTreeSet<String>),
    Fingerprint(super::meta::Fingerprint),
    Join(Vec<JoinAddress>),
    Leave(oneshot::Sender<()>),
    Faults(Faults),
}

#[derive(Debug)]
enum Pending {
    Foca(Timer<NodeId>),
    Suspicion(SocketAddr, u16),
    Check(u64),
}

#[derive(Debug)]
struct Scheduled {
    at: Instant,
    seq: u64,
    what: Pending,
}

impl PartialEq for Scheduled {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

type Swim = Foca<NodeId, Codec, SmallRng, Handler>;

/// Datagrams captured by the test hook, with their destinations.
pub(crate) type Captured = Arc<Mutex<Vec<(SocketAddr, Vec<u8>)>>>;

/// What the handle and the task share.
pub(crate) struct Shared {
    pub counters: Arc<Counters>,
    pub captured: Captured,
}

/// The task's state.
pub(crate) struct Driver {
    me: NodeId,
    foca: Swim,
    rt: AccumulatingRuntime<NodeId>,
    socket: UdpSocket,
    sealer: Sealer,
    opener: Opener,
    inbox: Arc<Mutex<Inbox>>,
    own_incarnation: Arc<AtomicU32>,
    last_incarnation: u32,
    timing: Timing,
    epoch: Instant,
    timers: BinaryHeap<Reverse<Scheduled>>,
    seq: u64,
    suspicions: Suspicions,
    awareness: Awareness,
    last_late: Option<Instant>,
    suspected_now: bool,
    gossip_now: bool,
    broadcast_now: bool,
    meta: Meta,
    meta_version: u64,
    join: Vec<JoinAddress>,
    resolved: HashMap<(String, u16), Vec<SocketAddr>>,
    last_resolve: Option<Instant>,
    resolved_tx: mpsc::UnboundedSender<((String, u16), Vec<SocketAddr>)>,
    resolved_rx: mpsc::UnboundedReceiver<((String, u16), Vec<SocketAddr>)>,
    join_backoff: HashMap<SocketAddr, (Instant, Duration)>,
    meta_requested: HashMap<SocketAddr, Instant>,
    /// Newer metadata versions asked for after a digest, and when.
    refresh_requested: HashMap<SocketAddr, Instant>,
    last_digest: Option<Instant>,
    cmds: mpsc::UnboundedReceiver<Command>,
    view_tx: watch::Sender<MembershipView>,
    shared: Shared,
    faults: Faults,
    connected: bool,
    synced: bool,
    sync_timed_out: bool,
    left: bool,
    members_seen: usize,
    signature: u64,
    dirty: bool,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// Checks of suspects awaiting an answer: nonce → (suspect, its boot, incarnation).
    checks: HashMap<u64, (SocketAddr, u64, u16)>,
    /// When we last checked a suspect on someone else's word.
    checked: HashMap<(SocketAddr, u16), Instant>,
    next_nonce: u64,
}

/// Milliseconds since the Unix epoch (the envelope's clock).
pub(crate) fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn max_transmissions(members: usize) -> NonZeroU8 {
    // memberlist's retransmit multiplier 4 · log10(n + 1), at least 3.
    let tx = (4.0 * ((members + 1) as f64).log10())
        .ceil()
        .clamp(3.0, 255.0) as u8;
    NonZeroU8::new(tx).unwrap_or(NonZeroU8::MIN)
}

fn foca_config(t: &Timing, members: usize) -> foca::Config {
    let nz = |n: u32| NonZeroUsize::new(n as usize).unwrap_or(NonZeroUsize::MIN);
    foca::Config {
        probe_period: t.probe_interval,
        probe_rtt: t.probe_timeout,
        num_indirect_probes: nz(t.indirect_probes),
        max_transmissions: max_transmissions(members),
        // foca's own suspicion timer is replaced by ours (see `schedule`).
        suspect_to_down_after: t.suspicion_timeout,
        remove_down_after: Some(REMOVE_DOWN_AFTER),
        max_packet_size: NonZeroUsize::new(FOCA_MAX_PACKET).unwrap_or(NonZeroUsize::MIN),
        notify_down_members: true,
        periodic_announce: Some(PeriodicParams {
            frequency: Duration::from_secs(5),
            num_members: NonZeroUsize::MIN,
        }),
        // Heals partitions: whoever was declared down on the other side hears it and rejoins.
        periodic_announce_to_down_members: Some(PeriodicParams {
            frequency: Duration::from_secs(1),
            num_members: nz(2),
        }),
        periodic_gossip: Some(PeriodicParams {
            frequency: t.gossip_interval,
            num_members: nz(t.gossip_fanout),
        }),
    }
}

/// What `Driver::new` needs.
pub(crate) struct Start {
    pub me: NodeId,
    pub socket: UdpSocket,
    pub sealer: Sealer,
    pub opener: Opener,
    pub rng: SmallRng,
    pub timing: Timing,
    pub meta: Meta,
    pub join: Vec<JoinAddress>,
    pub cmds: mpsc::UnboundedReceiver<Command>,
    pub view_tx: watch::Sender<MembershipView>,
    pub shared: Shared,
}

impl Driver {
    pub(crate) fn new(s: Start) -> Driver {
        let inbox = Inbox::shared(s.me.addr);
        let own_incarnation = Arc::new(AtomicU32::new(0));
        let foca = Foca::with_custom_broadcast(
            s.me.clone(),
            foca_config(&s.timing, 1),
            s.rng,
            Codec::new(own_incarnation.clone()),
            Handler::new(inbox.clone()),
        );
        let (resolved_tx, resolved_rx) = mpsc::unbounded_channel();
        let mut d = Driver {
            me: s.me,
            foca,
            rt: AccumulatingRuntime::new(),
            socket: s.socket,
            sealer: s.sealer,
            opener: s.opener,
            inbox,
            own_incarnation,
            last_incarnation: 0,
            timing: s.timing,
            epoch: Instant::now(),
            timers: BinaryHeap::new(),
            seq: 0,
            suspicions: Suspicions::new(),
            awareness: Awareness::default(),
            last_late: None,
            suspected_now: false,
            gossip_now: false,
            broadcast_now: false,
            meta: s.meta,
            meta_version: 0,
            join: Vec::new(),
            resolved: HashMap::new(),
            last_resolve: None,
            resolved_tx,
            resolved_rx,
            join_backoff: HashMap::new(),
            meta_requested: HashMap::new(),
            refresh_requested: HashMap::new(),
            last_digest: None,
            cmds: s.cmds,
            view_tx: s.view_tx,
            shared: s.shared,
            faults: Faults::default(),
            connected: false,
            synced: false,
            sync_timed_out: false,
            left: false,
            members_seen: 0,
            signature: 0,
            dirty: true,
            outbox: Vec::new(),
            checks: HashMap::new(),
            checked: HashMap::new(),
            next_nonce: 0,
        };
        d.publish_meta();
        d.set_join(s.join);
        d
    }

    /// Runs until the handle is dropped.
    pub(crate) async fn run(mut self) {
        let mut buf = vec![0u8; 65_536];
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        housekeeping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut recv_errors = 0u32;
        tracing::info!(node = %self.me.node, addr = %self.me.addr, boot = self.me.boot, "gossip started");
        loop {
            let next = self.timers.peek().map(|Reverse(s)| s.at);
            tokio::select! {
                biased;
                cmd = self.cmds.recv() => match cmd {
                    Some(c) => self.command(c).await,
                    None => break,
                },
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        recv_errors = 0;
                        self.datagram(&buf[..n], from).await;
                    }
                    Err(e) => {
                        recv_errors = recv_errors.saturating_add(1);
                        tracing::debug!(error = %e, "gossip receive failed");
                        if recv_errors > 10 {
                            // Do not spin on a persistently failing socket.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                },
                _ = sleep_until(next) => self.fire_timers(),
                Some((name, addrs)) = self.resolved_rx.recv() => {
                    self.resolved.insert(name, addrs);
                    self.join_round(Instant::now());
                }
                _ = housekeeping.tick() => self.housekeeping(),
            }
            self.flush().await;
        }
        tracing::debug!(node = %self.me.node, "gossip task stopped");
    }

    fn elapsed(&self) -> Duration {
        Instant::now().saturating_duration_since(self.epoch)
    }

    fn push(&mut self, at: Instant, what: Pending) {
        self.seq += 1;
        self.timers.push(Reverse(Scheduled {
            at,
            seq: self.seq,
            what,
        }));
    }

    async fn flush(&mut self) {
        // Bounded: each round only reacts to what the previous one produced.
        for _ in 0..16 {
            while let Some(n) = self.rt.to_notify() {
                self.notification(n).await;
            }
            self.drain_schedule();
            self.drain_inbox();
            if std::mem::take(&mut self.gossip_now) {
                let _ = self.foca.gossip(&mut self.rt);
            }
            if std::mem::take(&mut self.broadcast_now) && !self.left {
                let _ = self.foca.broadcast(&mut self.rt);
            }
            while let Some((dst, data)) = self.rt.to_send() {
                self.send_body(dst.addr, &wire::foca(&data)).await;
            }
            for (to, body) in std::mem::take(&mut self.outbox) {
                self.send_body(to, &body).await;
            }
            let idle = self.rt.backlog() == 0
                && self.outbox.is_empty()
                && !self.gossip_now
                && !self.broadcast_now
                && lock(&self.inbox).notes.is_empty();
            if idle {
                break;
            }
        }
        let inc = self.own_incarnation.load(Ordering::Relaxed);
        if inc > self.last_incarnation {
            // foca raised our incarnation: it refuted a suspicion about us.
            self.last_incarnation = inc;
            bump(&self.shared.counters.refutations);
            self.awareness.worse();
            self.dirty = true;
            tracing::info!(incarnation = inc, "refuted a suspicion about this node");
        }
        self.publish();
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
