//! The L2 speaker: the handle the daemon holds. It keeps the desired set (address → explicit
//! interfaces) and the interface table (from [`super::netlink`]), and on every change of
//! either reconciles, in this order:
//!
//! 1. the table the responder threads answer from (removals take effect before `set` returns);
//! 2. responder threads: one per (interface, protocol) that has something to answer;
//! 3. solicited-node group memberships (reference-counted);
//! 4. takeover announcements (gratuitous ARP / unsolicited NA) for every newly announced
//!    (address, interface), the first at once, the repeats from a timer task;
//! 5. events for the daemon and the kernel-would-answer check.
//!
//! `l2` knows nothing of Kubernetes: it announces what it is given.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::time::Instant;

use super::announce::Schedule;
use super::assign::{assign, diff, Assignments, Target};
use super::counters::{bump, CounterCells, Counters};
use super::interfaces::NetState;
use super::kernel;
use super::multicast::Memberships;
use super::netlink::{self, Applied, Connection, NetlinkError};
use super::responder::{Responder, Table};
use super::socket::Protocol;
use super::{arp, ndp};

/// Delay before reconnecting a broken rtnetlink connection; doubles up to a minute.
const NETLINK_BACKOFF_MIN: Duration = Duration::from_millis(200);
const NETLINK_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Speaker settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeakerSettings {
    /// Periodic gratuitous ARP / unsolicited NA after the takeover burst; `None` = off.
    pub refresh: Option<Duration>,
}

/// Things the daemon turns into logs and Events on the Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum L2Event {
    /// The address is announced on (new) interfaces: the first gratuitous burst was sent.
    /// `interfaces` lists every interface it is announced on now.
    Announcing {
        /// The address.
        address: IpAddr,
        /// Where it is announced.
        interfaces: Vec<String>,
    },
    /// The address should be announced but no interface is usable for it.
    NoInterface {
        /// The address.
        address: IpAddr,
    },
    /// The interface table changed (a link or an address came, went, went up or down): which
    /// pools this node can announce may have changed.
    InterfacesChanged,
    /// The kernel answers ARP/NDP for the address on that interface too.
    KernelWouldAnswer {
        /// The address.
        address: IpAddr,
        /// The announcing interface.
        interface: String,
        /// Why, and what to change.
        detail: String,
    },
}

/// Where one address is announced now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    /// The address.
    pub address: IpAddr,
    /// The interfaces it is answered on (empty: none usable).
    pub interfaces: Vec<String>,
}

/// Why the speaker could not start.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// The interface table could not be read.
    #[error("interface tracking: {0}")]
    Netlink(#[from] NetlinkError),
    /// The socket holding multicast memberships could not be opened.
    #[error("cannot open the socket for solicited-node group memberships: {0}")]
    Multicast(#[source] io::Error),
}

/// Reads the responders' counters (see [`Speaker::counter_handle`]).
#[derive(Debug, Clone)]
pub struct CounterHandle(Arc<CounterCells>);

impl CounterHandle {
    /// The counters now.
    pub fn snapshot(&self) -> Counters {
        self.0.snapshot()
    }
}

/// The L2 speaker (see the module doc). Dropping it stops everything without waiting;
/// [`Speaker::stop`] also waits for the responder threads.
pub struct Speaker {
    core: Arc<Mutex<Core>>,
    counters: Arc<CounterCells>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Speaker {
    /// Starts the netlink watcher (the interface table is read before this returns);
    /// responder threads start lazily per (interface, protocol). Everything runs in the
    /// network namespace of the calling thread.
    pub async fn start(
        settings: SpeakerSettings,
        events: mpsc::UnboundedSender<L2Event>,
    ) -> Result<Speaker, L2Error> {
        let mut connection = Connection::open()?;
        let net = connection.dump().await?;
        let groups = Memberships::new().map_err(L2Error::Multicast)?;
        let counters = Arc::new(CounterCells::default());
        let wake = Arc::new(Notify::new());
        tracing::info!(
            interfaces = net.links.len(),
            addresses = net.addresses.len(),
            "l2 speaker started"
        );
        let core = Arc::new(Mutex::new(Core {
            settings,
            events,
            desired: BTreeMap::new(),
            net: net.clone(),
            assigned: Assignments::new(),
            table: Arc::new(RwLock::new(Table::default())),
            counters: counters.clone(),
            responders: BTreeMap::new(),
            stopping: Vec::new(),
            groups,
            schedules: BTreeMap::new(),
            no_interface: BTreeSet::new(),
            kernel_warned: BTreeSet::new(),
            origin: Instant::now(),
            wake: wake.clone(),
        }));
        let tasks = vec![
            tokio::spawn(watch_interfaces(core.clone(), connection, net)),
            tokio::spawn(announce(core.clone(), wake)),
        ];
        Ok(Speaker {
            core,
            counters,
            tasks,
        })
    }

    /// Replaces the desired set: address → explicit interfaces (empty = automatic selection).
    /// Takes effect at once: removed addresses are no longer answered before this returns,
    /// and new ones are answered and announced.
    pub fn set(&mut self, desired: BTreeMap<IpAddr, Vec<String>>) {
        let mut core = lock(&self.core);
        if core.desired != desired {
            core.desired = desired;
            core.reconcile();
        }
    }

    /// What is announced where now: every desired address, with the interfaces it is
    /// answered on (empty when none is usable).
    pub fn snapshot(&self) -> Vec<Announcement> {
        let core = lock(&self.core);
        core.desired
            .keys()
            .map(|address| Announcement {
                address: *address,
                interfaces: core
                    .assigned
                    .get(address)
                    .map(|t| t.values().map(|t| t.name.clone()).collect())
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// Whether some interface would carry `address` now (`explicit`: a pool's interfaces;
    /// empty: automatic selection), by the same rules [`Speaker::set`] applies. The daemon
    /// asks this for pools none of whose addresses it announces yet, to gossip which pools
    /// it could announce.
    pub fn can_announce(&self, address: IpAddr, explicit: &[String]) -> bool {
        let core = lock(&self.core);
        !super::interfaces::select(&core.net, address, explicit).is_empty()
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters.snapshot()
    }

    /// A handle on the counters for readers that outlive a borrow of the speaker (a metrics
    /// scrape).
    pub fn counter_handle(&self) -> CounterHandle {
        CounterHandle(self.counters.clone())
    }

    /// Stops answering and announcing, leaves the multicast groups and waits for the
    /// responder threads to end.
    pub async fn stop(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.tasks.clear();
        let threads = lock(&self.core).shut_down();
        let joined = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
        if let Err(error) = joined {
            tracing::warn!(%error, "waiting for the responder threads");
        }
        tracing::info!("l2 speaker stopped");
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if !self.tasks.is_empty() {
            // Dropped without stop(): stop the threads, do not wait for them.
            drop(lock(&self.core).shut_down());
        }
    }
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    core.lock().unwrap_or_else(|p| p.into_inner())
}

// === impl Core ===

/// The speaker's state, behind one mutex (set, the netlink watcher and the announcement timer
/// all go through it; no await while it is held).
struct Core {
    settings: SpeakerSettings,
    events: mpsc::UnboundedSender<L2Event>,
    desired: BTreeMap<IpAddr, Vec<String>>,
    net: NetState,
    assigned: Assignments,
    table: Arc<RwLock<Table>>,
    counters: Arc<CounterCells>,
    responders: BTreeMap<(u32, Protocol), Responder>,
    /// Stopped responder threads not yet finished.
    stopping: Vec<JoinHandle<()>>,
    groups: Memberships,
    schedules: BTreeMap<(IpAddr, u32), Schedule>,
    /// Desired addresses already reported as [`L2Event::NoInterface`].
    no_interface: BTreeSet<IpAddr>,
    /// (address, interface index) already reported as [`L2Event::KernelWouldAnswer`].
    kernel_warned: BTreeSet<(IpAddr, u32)>,
    /// Time zero of the announcement schedules.
    origin: Instant,
    wake: Arc<Notify>,
}

impl Core {
    fn reconcile(&mut self) {
        let new = assign(&self.desired, &self.net);
        let changes = diff(&self.assigned, &new);

        // 1. What is answered, at once.
        let table = Table::from_assignments(&new);
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;

        // 2. Responder threads.
        let needed: BTreeMap<(u32, Protocol), &Target> = new
            .iter()
            .flat_map(|(a, targets)| targets.values().map(|t| ((t.index, Protocol::of(*a)), t)))
            .collect();
        let unneeded: Vec<_> = self
            .responders
            .iter()
            .filter(|(key, r)| !needed.contains_key(key) || !r.is_running())
            .map(|(key, _)| *key)
            .collect();
        for key in unneeded {
            if let Some(thread) = self.responders.remove(&key).and_then(Responder::stop) {
                self.stopping.push(thread);
            }
        }
        for (&(index, protocol), target) in &needed {
            if !self.responders.contains_key(&(index, protocol)) {
                let responder = Responder::start(
                    index,
                    &target.name,
                    target.mac,
                    protocol,
                    self.table.clone(),
                    self.counters.clone(),
                );
                self.responders.insert((index, protocol), responder);
            }
        }
        self.stopping.retain(|t| !t.is_finished());

        // 3. Solicited-node groups.
        for (address, target) in &changes.stopped {
            if let IpAddr::V6(a) = address {
                self.groups.release(ndp::solicited_node(*a), target.index);
            }
        }
        for (address, target) in &changes.started {
            if let IpAddr::V6(a) = address {
                self.groups.acquire(ndp::solicited_node(*a), target.index);
            }
        }

        // 4. Announcements: the repeats of what stopped end, what started begins now.
        let now = self.now();
        for (address, target) in &changes.stopped {
            self.schedules.remove(&(*address, target.index));
            tracing::info!(%address, interface = %target.name, "no longer announcing");
        }
        for (address, target) in changes.started.iter().chain(&changes.readdressed) {
            self.schedules.insert(
                (*address, target.index),
                Schedule::new(now, self.settings.refresh),
            );
        }
        self.assigned = new;
        self.fire_due();

        // 5. Events.
        for address in changes.announced_addresses() {
            let interfaces: Vec<String> = self
                .assigned
                .get(&address)
                .map(|t| t.values().map(|t| t.name.clone()).collect())
                .unwrap_or_default();
            tracing::info!(%address, interfaces = ?interfaces, "announcing");
            self.emit(L2Event::Announcing {
                address,
                interfaces,
            });
        }
        self.report_no_interface();
        self.check_kernel();
        self.wake.notify_one();
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Sends every announcement due now.
    fn fire_due(&mut self) {
        let now = self.now();
        let mut due = Vec::new();
        for (key, schedule) in &mut self.schedules {
            if schedule.fire(now) {
                due.push(*key);
            }
        }
        self.schedules.retain(|_, s| s.next_due().is_some());
        for (address, index) in due {
            let Some(target) = self.assigned.get(&address).and_then(|t| t.get(&index)) else {
                continue;
            };
            let Some(responder) = self.responders.get(&(index, Protocol::of(address))) else {
                continue;
            };
            let (frames, counter) = match address {
                IpAddr::V4(a) => (
                    arp::gratuitous(a, target.mac).to_vec(),
                    &self.counters.gratuitous_arp_sent,
                ),
                IpAddr::V6(a) => (
                    vec![ndp::unsolicited(a, target.mac)],
                    &self.counters.unsolicited_na_sent,
                ),
            };
            for frame in &frames {
                if responder.send(frame) {
                    bump(counter);
                } else {
                    bump(&self.counters.send_errors);
                }
            }
            tracing::debug!(%address, interface = %target.name, "announced");
        }
    }

    /// When the next announcement is due.
    fn next_due(&self) -> Option<Instant> {
        self.schedules
            .values()
            .filter_map(Schedule::next_due)
            .min()
            .map(|d| self.origin + d)
    }

    fn report_no_interface(&mut self) {
        let missing: BTreeSet<IpAddr> = self
            .desired
            .keys()
            .filter(|a| self.assigned.get(a).is_none_or(BTreeMap::is_empty))
            .copied()
            .collect();
        for address in missing.difference(&self.no_interface) {
            tracing::warn!(%address, "no usable interface to announce the address on");
            self.emit(L2Event::NoInterface { address: *address });
        }
        self.no_interface = missing;
    }

    /// Warns once per (address, interface) while the kernel would answer for it too.
    fn check_kernel(&mut self) {
        let mut found = BTreeSet::new();
        for (address, targets) in &self.assigned {
            if self.net.holders_of(*address).next().is_none() {
                continue; // configured nowhere: the common case, no /proc read
            }
            for target in targets.values() {
                let Some(link) = self.net.links.get(&target.index) else {
                    continue;
                };
                let arp_ignore = match address {
                    IpAddr::V4(_) => kernel::arp_ignore(&link.name).unwrap_or(0),
                    IpAddr::V6(_) => 0,
                };
                let Some(detail) = kernel::would_answer(*address, link, &self.net, arp_ignore)
                else {
                    continue;
                };
                found.insert((*address, target.index));
                if !self.kernel_warned.contains(&(*address, target.index)) {
                    bump(&self.counters.kernel_would_answer);
                    tracing::warn!(%address, interface = %link.name, %detail,
                        "the kernel answers for this address too");
                    self.emit(L2Event::KernelWouldAnswer {
                        address: *address,
                        interface: link.name.clone(),
                        detail,
                    });
                }
            }
        }
        self.kernel_warned = found;
    }

    fn emit(&self, event: L2Event) {
        // The daemon may have stopped listening; the speaker goes on regardless.
        let _ = self.events.send(event);
    }

    /// A new interface table.
    fn set_net(&mut self, net: NetState) {
        if self.net != net {
            self.net = net;
            self.reconcile();
            self.emit(L2Event::InterfacesChanged);
        }
    }

    /// Stops everything; returns the threads to join.
    fn shut_down(&mut self) -> Vec<JoinHandle<()>> {
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = Table::default();
        self.schedules.clear();
        self.groups.clear();
        self.assigned.clear();
        self.desired.clear();
        let mut threads = std::mem::take(&mut self.stopping);
        threads.extend(
            std::mem::take(&mut self.responders)
                .into_values()
                .filter_map(Responder::stop),
        );
        threads
    }
}

// === tasks ===

/// Sends the repeats and refreshes of announcements when they are due.
async fn announce(core: Arc<Mutex<Core>>, wake: Arc<Notify>) {
    loop {
        let next = lock(&core).next_due();
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
        lock(&core).fire_due();
    }
}

/// Follows rtnetlink events into the speaker; re-dumps after an overrun, reconnects (with
/// backoff) when the connection breaks.
async fn watch_interfaces(core: Arc<Mutex<Core>>, mut connection: Connection, mut net: NetState) {
    let mut backoff = NETLINK_BACKOFF_MIN;
    loop {
        let Some(first) = connection.next().await else {
            tracing::warn!(retry_in = ?backoff, "rtnetlink connection closed; reconnecting");
            (connection, net) = reconnect(&mut backoff).await;
            lock(&core).set_net(net.clone());
            continue;
        };
        // Apply everything already queued before reconciling once.
        let mut message = Some(first);
        let mut overrun = false;
        while let Some(m) = message {
            if netlink::apply(&mut net, m) == Applied::Overrun {
                overrun = true;
            }
            message = connection.next_ready();
        }
        if overrun {
            tracing::warn!("rtnetlink events were lost (overrun); reading the interfaces again");
            match connection.dump().await {
                Ok(fresh) => net = fresh,
                Err(error) => {
                    tracing::warn!(%error, "dump after overrun failed; reconnecting");
                    (connection, net) = reconnect(&mut backoff).await;
                }
            }
        }
        backoff = NETLINK_BACKOFF_MIN;
        lock(&core).set_net(net.clone());
    }
}

/// A new connection and a fresh dump, retrying with backoff until it works.
async fn reconnect(backoff: &mut Duration) -> (Connection, NetState) {
    loop {
        tokio::time::sleep(*backoff).await;
        *backoff = (*backoff * 2).min(NETLINK_BACKOFF_MAX);
        let mut connection = match Connection::open() {
            Ok(c) => c,
            Err(error) => {
                tracing::warn!(%error, retry_in = ?backoff, "cannot reopen rtnetlink");
                continue;
            }
        };
        match connection.dump().await {
            Ok(net) => return (connection, net),
            Err(error) => tracing::warn!(%error, retry_in = ?backoff, "cannot dump interfaces"),
        }
    }
}
