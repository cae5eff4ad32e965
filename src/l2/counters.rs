//! What the responders did, counted with atomics (shared by the responder threads and the
//! speaker; read for status and, later, metrics).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the L2 counters (monotonic since [`super::Speaker::start`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// ARP requests answered.
    pub arp_replies: u64,
    /// Neighbour solicitations answered.
    pub na_replies: u64,
    /// Gratuitous ARP frames sent (a request and a reply per announcement).
    pub gratuitous_arp_sent: u64,
    /// Unsolicited neighbour advertisements sent.
    pub unsolicited_na_sent: u64,
    /// Frames that passed the socket filter but did not parse; dropped.
    pub malformed: u64,
    /// Well-formed requests not for us (an address we do not announce on that interface, or a
    /// frame addressed to another host); not answered.
    pub ignored: u64,
    /// Frames read from the responder sockets (what the BPF filters let through).
    pub frames_read: u64,
    /// Frames that could not be sent.
    pub send_errors: u64,
    /// Socket failures of responder threads (each followed by a restart with backoff).
    pub socket_errors: u64,
    /// Times the kernel was found to answer for an announced address too.
    pub kernel_would_answer: u64,
}

impl Counters {
    /// Gratuitous ARP and unsolicited NA frames together.
    pub fn gratuitous_sent(&self) -> u64 {
        self.gratuitous_arp_sent + self.unsolicited_na_sent
    }
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct CounterCells {
    pub(crate) arp_replies: AtomicU64,
    pub(crate) na_replies: AtomicU64,
    pub(crate) gratuitous_arp_sent: AtomicU64,
    pub(crate) unsolicited_na_sent: AtomicU64,
    pub(crate) malformed: AtomicU64,
    pub(crate) ignored: AtomicU64,
    pub(crate) frames_read: AtomicU64,
    pub(crate) send_errors: AtomicU64,
    pub(crate) socket_errors: AtomicU64,
    pub(crate) kernel_would_answer: AtomicU64,
}

/// Adds one.
pub(crate) fn bump(cell: &AtomicU64) {
    cell.fetch_add(1, Ordering::Relaxed);
}

impl CounterCells {
    pub(crate) fn snapshot(&self) -> Counters {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            arp_replies: get(&self.arp_replies),
            na_replies: get(&self.na_replies),
            gratuitous_arp_sent: get(&self.gratuitous_arp_sent),
            unsolicited_na_sent: get(&self.unsolicited_na_sent),
            malformed: get(&self.malformed),
            ignored: get(&self.ignored),
            frames_read: get(&self.frames_read),
            send_errors: get(&self.send_errors),
            socket_errors: get(&self.socket_errors),
            kernel_would_answer: get(&self.kernel_would_answer),
        }
    }
}
