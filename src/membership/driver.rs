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

use super::broadcast::{lock, Handler, Inbox};
use super::codec::Codec;
use super::identity::NodeId;
use super::lifeguard::{Awareness, SuspicionBounds, Suspicions};
use super::meta::{split, Item, Meta, SuspicionNote};
use super::packet::{Opener, Reject, Sealer, MAX_DATAGRAM, OVERHEAD};
use super::settings::Timing;
use super::view::{add, bump, Counters, MemberInfo, MemberState, MembershipView};
use super::wire::{self, Body, Check};
use crate::config::JoinAddress;

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

    // === commands ===

    async fn command(&mut self, c: Command) {
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
            Command::Faults(f) => self.faults = f,
            Command::Leave(done) => {
                self.leave().await;
                let _ = done.send(());
            }
        }
    }

    /// A new version of our metadata: into foca's broadcast queue, pushed now.
    fn publish_meta(&mut self) {
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

    fn set_join(&mut self, targets: Vec<JoinAddress>) {
        self.join = targets;
        self.join_backoff.clear();
        self.resolved.clear();
        self.resolve_names();
        self.join_round(Instant::now());
    }

    fn resolve_names(&mut self) {
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

    fn join_targets(&self) -> BTreeSet<SocketAddr> {
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
    fn join_round(&mut self, now: Instant) {
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

    async fn leave(&mut self) {
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

    // === packets ===

    async fn datagram(&mut self, packet: &[u8], from: SocketAddr) {
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
            Err(e) => {
                bump(&c.dropped_invalid);
                tracing::debug!(%from, error = %e, "gossip body refused");
            }
        }
    }

    /// Someone checks on us: answer, and refute if told we are suspected.
    fn answer_check(&mut self, check: Check) {
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
    fn buddy(&mut self, suspect: SocketAddr, incarnation: u16) {
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
    fn patch_announce(&self, data: &[u8]) -> Option<Vec<u8>> {
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

    async fn send_body(&mut self, to: SocketAddr, body: &[u8]) {
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

    async fn send_meta_to(&mut self, to: SocketAddr) {
        let Ok(parts) = split(&self.me, self.meta_version, &self.meta) else {
            return;
        };
        let items: Vec<Vec<u8>> = parts.into_iter().map(|p| Item::Meta(p).encode()).collect();
        for body in wire::items(&items, BODY_BUDGET) {
            self.send_body(to, &body).await;
        }
    }

    // === timers ===

    fn fire_timers(&mut self) {
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

    fn drain_schedule(&mut self) {
        while let Some((after, timer)) = self.rt.to_schedule() {
            self.schedule(after, timer);
        }
    }

    fn schedule(&mut self, after: Duration, timer: Timer<NodeId>) {
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
    fn add_note(&mut self, note: SuspicionNote) {
        lock(&self.inbox).adding_local = true;
        let _ = self.foca.add_broadcast(&Item::Suspicion(note).encode());
        lock(&self.inbox).adding_local = false;
        self.gossip_now = true;
    }

    // === after every event ===

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

    async fn notification(&mut self, n: OwnedNotification<NodeId>) {
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

    fn drain_inbox(&mut self) {
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

    fn housekeeping(&mut self) {
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
    }

    // === the view ===

    fn publish(&mut self) {
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

    fn build_view(&self) -> MembershipView {
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

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
