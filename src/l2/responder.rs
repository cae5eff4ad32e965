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
                if request.is_announcement() {
                    // Another node's gratuitous ARP for an address we still hold: during a
                    // handover the new owner announces while we let go a few milliseconds later.
                    // A "defending" reply would only go to that node and changes nothing for
                    // clients, so it is noise.
                    return Verdict::Ignored("another node's announcement");
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2::frame::testutil::{arp_frame, ns_frame, ArpSpec, NsSpec, OURS, PEER};
    use crate::l2::frame::FrameError;

    fn answering(v4: &[&str], v6: &[&str]) -> Answering {
        Answering {
            mac: OURS,
            v4: v4.iter().map(|a| a.parse().unwrap()).collect(),
            v6: v6.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn reply(v: Verdict) -> Vec<u8> {
        match v {
            Verdict::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    #[test]
    fn an_arp_request_for_an_announced_address_gets_a_unicast_reply_from_our_mac() {
        let entry = answering(&["192.0.2.10"], &[]);
        let r = reply(answer(
            Protocol::Arp,
            &arp_frame(&ArpSpec::default()),
            Some(&entry),
        ));
        assert_eq!(
            r[..6],
            [PEER.0, PEER.1, PEER.2, PEER.3, PEER.4, PEER.5],
            "to the asker"
        );
        assert_eq!(r[6..12], OURS.octets(), "from our MAC");
        assert_eq!(u16::from_be_bytes([r[20], r[21]]), 2, "an ARP reply");
        // Unicast to our MAC (a refresh of the asker's entry) is answered too.
        let unicast = arp_frame(&ArpSpec {
            eth_dst: OURS,
            ..ArpSpec::default()
        });
        assert!(matches!(
            answer(Protocol::Arp, &unicast, Some(&entry)),
            Verdict::Reply(_)
        ));
    }

    #[test]
    fn another_nodes_gratuitous_arp_is_not_answered_but_a_probe_is() {
        let entry = answering(&["192.0.2.10"], &[]);
        let target: std::net::Ipv4Addr = "192.0.2.10".parse().unwrap();
        let announcement = arp_frame(&ArpSpec {
            spa: target,
            tpa: target,
            ..ArpSpec::default()
        });
        assert_eq!(
            answer(Protocol::Arp, &announcement, Some(&entry)),
            Verdict::Ignored("another node's announcement")
        );
        let probe = arp_frame(&ArpSpec {
            spa: std::net::Ipv4Addr::UNSPECIFIED,
            tpa: target,
            ..ArpSpec::default()
        });
        assert!(matches!(
            answer(Protocol::Arp, &probe, Some(&entry)),
            Verdict::Reply(_)
        ));
    }

    #[test]
    fn arp_requests_not_ours_are_ignored() {
        let entry = answering(&["192.0.2.11"], &["2001:db8::10"]);
        let frame = arp_frame(&ArpSpec::default());
        assert!(matches!(
            answer(Protocol::Arp, &frame, Some(&entry)),
            Verdict::Ignored(_)
        ));
        assert!(matches!(
            answer(Protocol::Arp, &frame, None),
            Verdict::Ignored(_)
        ));
        let mine = answering(&["192.0.2.10"], &[]);
        let for_another_host = arp_frame(&ArpSpec {
            eth_dst: MacAddr(2, 9, 9, 9, 9, 9),
            ..ArpSpec::default()
        });
        assert_eq!(
            answer(Protocol::Arp, &for_another_host, Some(&mine)),
            Verdict::Ignored("addressed to another host")
        );
        let own = arp_frame(&ArpSpec {
            eth_src: OURS,
            sha: OURS,
            ..ArpSpec::default()
        });
        assert_eq!(
            answer(Protocol::Arp, &own, Some(&mine)),
            Verdict::Ignored("our own frame")
        );
    }

    #[test]
    fn malformed_frames_are_reported_not_answered() {
        let entry = answering(&["192.0.2.10"], &["2001:db8::10"]);
        let short = &arp_frame(&ArpSpec::default())[..30];
        assert!(matches!(
            answer(Protocol::Arp, short, Some(&entry)),
            Verdict::Malformed(FrameError::Truncated { .. })
        ));
        let a_reply = arp_frame(&ArpSpec {
            op: 2,
            ..ArpSpec::default()
        });
        assert!(matches!(
            answer(Protocol::Arp, &a_reply, Some(&entry)),
            Verdict::Malformed(_)
        ));
        let bad_hops = ns_frame(&NsSpec {
            hop_limit: 64,
            ..NsSpec::default()
        });
        assert!(matches!(
            answer(Protocol::Ndp, &bad_hops, Some(&entry)),
            Verdict::Malformed(_)
        ));
        assert!(matches!(
            answer(Protocol::Ndp, &[], Some(&entry)),
            Verdict::Malformed(_)
        ));
    }

    #[test]
    fn solicitations_for_announced_addresses_are_answered_including_nud_without_option() {
        let entry = answering(&[], &["2001:db8::10"]);
        let r = reply(answer(
            Protocol::Ndp,
            &ns_frame(&NsSpec::default()),
            Some(&entry),
        ));
        assert_eq!(r[6..12], OURS.octets());
        assert_eq!(r[54], 136, "a neighbour advertisement");
        // A unicast NUD probe: to our MAC and the address itself, no source link-layer option.
        let nud = ns_frame(&NsSpec {
            eth_dst: OURS,
            destination: "2001:db8::10".parse().unwrap(),
            options: Vec::new(),
            ..NsSpec::default()
        });
        let r = reply(answer(Protocol::Ndp, &nud, Some(&entry)));
        assert_eq!(r[..6], [PEER.0, PEER.1, PEER.2, PEER.3, PEER.4, PEER.5]);
        // Another target: ignored.
        let other = ns_frame(&NsSpec {
            target: "2001:db8::11".parse().unwrap(),
            ..NsSpec::default()
        });
        assert!(matches!(
            answer(Protocol::Ndp, &other, Some(&entry)),
            Verdict::Ignored(_)
        ));
    }

    /// A receiver that fails at once, or panics.
    struct Broken {
        panic: bool,
    }

    impl DataLinkReceiver for Broken {
        fn next(&mut self) -> std::io::Result<&[u8]> {
            assert!(!self.panic, "a bug in a dependency");
            Err(std::io::Error::from_raw_os_error(libc::ENETDOWN))
        }
    }

    /// A responder whose socket fails (and whose interface cannot be reopened: there is no
    /// interface with that index) counts the failures, retries with growing delays rather than
    /// spinning, survives a panic, and still stops promptly when told.
    fn failing_thread(panic: bool) {
        let counters = Arc::new(CounterCells::default());
        let stop = Arc::new(AtomicBool::new(false));
        let context = Context {
            ifindex: 0x7fff_fff0,
            ifname: "gone0".into(),
            mac: OURS,
            protocol: Protocol::Arp,
            table: Arc::default(),
            counters: counters.clone(),
            stop: stop.clone(),
            sender: Arc::default(),
        };
        let thread = std::thread::spawn(move || run(context, Some(Box::new(Broken { panic }))));
        std::thread::sleep(Duration::from_millis(1000));
        let errors = counters.snapshot().socket_errors;
        // 1 failure, then reopen attempts at +0.1, +0.3, +0.7 s (backoff 0.1, 0.2, 0.4 s).
        assert!((2..=5).contains(&errors), "{errors} failures in a second");
        let asked = Instant::now();
        stop.store(true, Ordering::SeqCst);
        thread.thread().unpark();
        thread.join().expect("the thread never panics");
        assert!(
            asked.elapsed() < Duration::from_millis(300),
            "{:?}",
            asked.elapsed()
        );
    }

    #[test]
    fn a_failing_socket_is_retried_with_backoff_and_the_thread_still_stops() {
        failing_thread(false);
    }

    #[test]
    fn a_panic_while_receiving_is_caught_and_retried() {
        failing_thread(true);
    }

    #[test]
    fn the_table_follows_the_assignment() {
        use crate::l2::assign::Target;
        let target = |index, last| Target {
            index,
            name: format!("eth{index}"),
            mac: MacAddr(2, 0, 0, 0, 0, last),
        };
        let mut a = Assignments::new();
        a.insert("192.0.2.10".parse().unwrap(), [(2, target(2, 2))].into());
        a.insert(
            "2001:db8::10".parse().unwrap(),
            [(2, target(2, 2)), (3, target(3, 3))].into(),
        );
        a.insert("192.0.2.11".parse().unwrap(), Default::default());
        let t = Table::from_assignments(&a);
        assert_eq!(t.interfaces.len(), 2);
        assert_eq!(t.interfaces[&2].v4.len(), 1);
        assert_eq!(t.interfaces[&2].v6.len(), 1);
        assert!(t.interfaces[&3].v4.is_empty());
        assert_eq!(t.interfaces[&3].mac, MacAddr(2, 0, 0, 0, 0, 3));
    }
}
