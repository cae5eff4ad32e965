//! One responder thread per (interface, protocol): reads what the socket filter lets through,
//! answers requests for the addresses announced on that interface, from its MAC.
//!
//! pnet's receive blocks, hence a thread rather than a task; it wakes at least every
//! [`READ_TIMEOUT`](super::socket::READ_TIMEOUT) to notice it must stop. The set of addresses
//! answered is the [`Table`] shared with the speaker, read for every frame; the read lock is
//! held until the reply is sent, so once [`Speaker::set`](super::Speaker::set) has replaced the
//! table no reply for a removed address can still go out. A socket failure is logged, counted
//! and the socket reopened with backoff; a frame that does not parse is counted and dropped.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pnet_datalink::{DataLinkReceiver, DataLinkSender};

use super::assign::Assignments;
use super::counters::{bump, CounterCells};
use super::frame::{FrameError, MacAddr};
use super::socket::{self, Protocol};
use super::{arp, ndp};

/// First delay before reopening a failed socket; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// A socket that worked this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(30);

/// What is answered on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answering {
    /// The interface's MAC: replies come from it.
    pub(crate) mac: MacAddr,
    pub(crate) v4: HashSet<Ipv4Addr>,
    pub(crate) v6: HashSet<Ipv6Addr>,
}

/// What is answered where: interface index → addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) interfaces: HashMap<u32, Answering>,
}

impl Table {
    /// The table for an assignment.
    pub(crate) fn from_assignments(assignments: &Assignments) -> Table {
        let mut table = Table::default();
        for (address, targets) in assignments {
            for target in targets.values() {
                let entry = table
                    .interfaces
                    .entry(target.index)
                    .or_insert_with(|| Answering {
                        mac: target.mac,
                        v4: HashSet::new(),
                        v6: HashSet::new(),
                    });
                match address {
                    std::net::IpAddr::V4(a) => entry.v4.insert(*a),
                    std::net::IpAddr::V6(a) => entry.v6.insert(*a),
                };
            }
        }
        table
    }
}

/// What to do with one frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Send this reply.
    Reply(Vec<u8>),
    /// A valid request that is not ours to answer.
    Ignored(&'static str),
    /// Not a valid request.
    Malformed(FrameError),
}

/// The answer to `frame`, received for `protocol` on an interface answering `entry` — pure.
pub(crate) fn answer(protocol: Protocol, frame: &[u8], entry: Option<&Answering>) -> Verdict {
    let (eth_source, reply) = match protocol {
        Protocol::Arp => match arp::parse_request(frame) {
            Err(e) => return Verdict::Malformed(e),
            Ok(request) => {
                let Some(entry) = entry.filter(|e| e.v4.contains(&request.target_ip)) else {
                    return Verdict::Ignored("address not announced on this interface");
                };
                (request.eth_source, arp::reply(&request, entry.mac))
            }
        },
        Protocol::Ndp => match ndp::parse_solicitation(frame) {
            Err(e) => return Verdict::Malformed(e),
            Ok(ns) => {
                let Some(entry) = entry.filter(|e| e.v6.contains(&ns.target)) else {
                    return Verdict::Ignored("address not announced on this interface");
                };
                (ns.eth_source, ndp::advertisement(&ns, entry.mac))
            }
        },
    };
    // Both checks after parsing: a frame that parsed is at least an Ethernet header long.
    let mac = entry.map(|e| e.mac);
    let destination = frame.get(..6).unwrap_or_default();
    let group = destination.first().is_some_and(|b| b & 1 == 1);
    if !group && mac.is_some_and(|m| destination != m.octets()) {
        // A unicast frame for another host that reached us anyway (a flooding switch, a veth).
        return Verdict::Ignored("addressed to another host");
    }
    if Some(eth_source) == mac {
        return Verdict::Ignored("our own frame");
    }
    Verdict::Reply(reply)
}

/// The send half of a responder's socket, shared with the speaker for announcements; `None`
/// while the socket is being reopened.
pub(crate) type SenderSlot = Arc<Mutex<Option<Box<dyn DataLinkSender>>>>;

/// Sends `frame` through `slot`; `false` (and logged) when it could not be sent.
pub(crate) fn send(slot: &SenderSlot, frame: &[u8], ifname: &str) -> bool {
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    let Some(tx) = guard.as_mut() else {
        tracing::debug!(interface = %ifname, "socket not open; frame not sent");
        return false;
    };
    match tx.send_to(frame, None) {
        Some(Ok(())) => true,
        Some(Err(error)) => {
            tracing::warn!(interface = %ifname, %error, "cannot send frame");
            false
        }
        None => {
            tracing::warn!(interface = %ifname, len = frame.len(), "frame too large to send");
            false
        }
    }
}

/// Everything a responder thread uses.
struct Context {
    ifindex: u32,
    ifname: String,
    mac: MacAddr,
    protocol: Protocol,
    table: Arc<RwLock<Table>>,
    counters: Arc<CounterCells>,
    stop: Arc<AtomicBool>,
    sender: SenderSlot,
}

/// A running responder thread. Dropping it tells the thread to stop (without waiting).
pub(crate) struct Responder {
    stop: Arc<AtomicBool>,
    sender: SenderSlot,
    thread: Option<JoinHandle<()>>,
    ifname: String,
}

impl Responder {
    /// Starts the responder for `protocol` on interface `ifindex`. The socket is opened here,
    /// before returning, so announcements can be sent at once; if that fails the thread keeps
    /// trying with backoff.
    pub(crate) fn start(
        ifindex: u32,
        ifname: &str,
        mac: MacAddr,
        protocol: Protocol,
        table: Arc<RwLock<Table>>,
        counters: Arc<CounterCells>,
    ) -> Responder {
        let stop = Arc::new(AtomicBool::new(false));
        let sender: SenderSlot = Arc::new(Mutex::new(None));
        let first = match socket::open(ifindex, ifname, mac, protocol) {
            Ok(channel) => {
                *sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(channel.tx);
                Some(channel.rx)
            }
            Err(error) => {
                bump(&counters.socket_errors);
                tracing::warn!(interface = %ifname, protocol = protocol.name(), %error,
                    "cannot open the responder socket; retrying");
                None
            }
        };
        let context = Context {
            ifindex,
            ifname: ifname.to_string(),
            mac,
            protocol,
            table,
            counters,
            stop: stop.clone(),
            sender: sender.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("l2-{}-{ifindex}", protocol.name()))
            .spawn(move || run(context, first));
        let thread = match thread {
            Ok(t) => Some(t),
            Err(error) => {
                tracing::error!(interface = %ifname, protocol = protocol.name(), %error,
                    "cannot start the responder thread");
                None
            }
        };
        tracing::debug!(interface = %ifname, protocol = protocol.name(), "responder started");
        Responder {
            stop,
            sender,
            thread,
            ifname: ifname.to_string(),
        }
    }

    /// Whether the thread is there (it failed to start otherwise).
    pub(crate) fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Sends `frame` out of this responder's socket.
    pub(crate) fn send(&self, frame: &[u8]) -> bool {
        send(&self.sender, frame, &self.ifname)
    }

    /// Tells the thread to stop; returns it to be joined (it ends within a read timeout).
    pub(crate) fn stop(mut self) -> Option<JoinHandle<()>> {
        self.signal_stop();
        self.thread.take()
    }

    fn signal_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.signal_stop();
    }
}

/// The thread: receive until stopped, reopening the socket after failures.
fn run(context: Context, first: Option<Box<dyn DataLinkReceiver>>) {
    let mut rx = first;
    let mut backoff = BACKOFF_MIN;
    let span = tracing::info_span!("responder", interface = %context.ifname,
        protocol = context.protocol.name());
    let _entered = span.enter();
    while !context.stop.load(Ordering::SeqCst) {
        let mut receiver = match rx.take() {
            Some(r) => r,
            None => match socket::open(
                context.ifindex,
                &context.ifname,
                context.mac,
                context.protocol,
            ) {
                Ok(channel) => {
                    *context.sender.lock().unwrap_or_else(|p| p.into_inner()) = Some(channel.tx);
                    tracing::info!("responder socket reopened");
                    channel.rx
                }
                Err(error) => {
                    bump(&context.counters.socket_errors);
                    tracing::warn!(%error, retry_in = ?backoff, "cannot open the responder socket");
                    sleep_unless_stopped(&context.stop, backoff);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            },
        };
        let opened = Instant::now();
        // A panic in a dependency must not take announcements down for good: treat it like a
        // socket failure.
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| receive(&context, &mut *receiver)));
        *context.sender.lock().unwrap_or_else(|p| p.into_inner()) = None;
        drop(receiver);
        match outcome {
            Ok(Ok(())) => break,
            Ok(Err(error)) => {
                tracing::warn!(%error, retry_in = ?backoff, "responder socket failed; reopening")
            }
            Err(_) => tracing::error!(retry_in = ?backoff, "responder panicked; restarting"),
        }
        bump(&context.counters.socket_errors);
        if opened.elapsed() > HEALTHY {
            backoff = BACKOFF_MIN;
        }
        sleep_unless_stopped(&context.stop, backoff);
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
    tracing::debug!("responder stopped");
}

/// Reads frames until stopped (`Ok`) or the socket fails (`Err`).
fn receive(context: &Context, rx: &mut dyn DataLinkReceiver) -> std::io::Result<()> {
    use std::io::ErrorKind;
    while !context.stop.load(Ordering::SeqCst) {
        match rx.next() {
            Ok(frame) => handle(context, frame),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock | ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn handle(context: &Context, frame: &[u8]) {
    let counters = &context.counters;
    bump(&counters.frames_read);
    // Held until the reply is sent: see the module doc.
    let table = context.table.read().unwrap_or_else(|p| p.into_inner());
    if context.stop.load(Ordering::SeqCst) {
        return;
    }
    match answer(
        context.protocol,
        frame,
        table.interfaces.get(&context.ifindex),
    ) {
        Verdict::Reply(reply) => {
            if send(&context.sender, &reply, &context.ifname) {
                bump(match context.protocol {
                    Protocol::Arp => &counters.arp_replies,
                    Protocol::Ndp => &counters.na_replies,
                });
            } else {
                bump(&counters.send_errors);
            }
        }
        Verdict::Ignored(why) => {
            bump(&counters.ignored);
            tracing::trace!(why, "request ignored");
        }
        Verdict::Malformed(error) => {
            bump(&counters.malformed);
            tracing::debug!(%error, "malformed frame dropped");
        }
    }
}

/// Sleeps for `duration`, returning early when `stop` is set (the stopper unparks us).
fn sleep_unless_stopped(stop: &AtomicBool, duration: Duration) {
    let deadline = Instant::now() + duration;
    while !stop.load(Ordering::SeqCst) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::park_timeout(left);
    }
}
