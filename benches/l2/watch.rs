//! Background observers in the client namespace, each a thread that timestamps what it sees
//! on the monotonic clock and hands it over a channel: gratuitous ARPs on the wire (stamped
//! with the kernel's receive time, `SO_TIMESTAMPNS`, so the thread's wake-up does not count),
//! and changes of the client kernel's neighbour table (stamped when the netlink notification
//! is read: the kernel gives it no time).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::frames::{self, MacAddr, ETH_ARP};
use crate::netns::{self, NeighSocket, PacketSocket};

/// How long a blocked observer waits before looking at its stop flag.
const TICK: Duration = Duration::from_millis(100);

/// A running observer; stops (and is joined) when dropped.
pub struct Observer<T> {
    /// What it saw, in order.
    pub events: Receiver<T>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl<T> Drop for Observer<T> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => eprintln!("an observer failed: {e}"),
                Err(_) => eprintln!("an observer panicked"),
            }
        }
    }
}

fn observe<T: Send + 'static>(
    ns: &str,
    body: impl FnOnce(&AtomicBool, mpsc::Sender<T>) -> io::Result<()> + Send + 'static,
) -> Observer<T> {
    let (tx, rx) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = netns::spawn_in(ns, move || body(&flag, tx));
    Observer {
        events: rx,
        stop,
        thread: Some(thread),
    }
}

/// A gratuitous ARP seen on the client's interface.
#[derive(Debug, Clone, Copy)]
pub struct Garp {
    /// When the client's kernel received it.
    pub at: Instant,
    /// The announced address.
    pub ip: Ipv4Addr,
    /// Who announced it (ARP sender hardware address).
    pub mac: MacAddr,
}

/// Captures every gratuitous ARP arriving on `ifname` in namespace `ns`.
pub fn gratuitous_arps(ns: &str, ifname: &str) -> Observer<Garp> {
    let ifname = ifname.to_string();
    observe(ns, move |stop, tx| {
        let sock = PacketSocket::open(&ifname, ETH_ARP, 1 << 20)?;
        sock.enable_timestamps()?;
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            let Some((n, at)) = sock.recv_stamped(&mut buf, Instant::now() + TICK)? else {
                continue;
            };
            let Some(a) = frames::parse_arp(&buf[..n]) else {
                continue;
            };
            if a.is_gratuitous_for(a.sender_ip) {
                let _ = tx.send(Garp {
                    at,
                    ip: a.sender_ip,
                    mac: a.sender_mac,
                });
            }
        }
        Ok(())
    })
}

/// A change of one neighbour entry in the client's kernel (an `RTM_NEWNEIGH` notification).
#[derive(Debug, Clone, Copy)]
pub struct NeighChange {
    /// When the notification was received.
    pub at: Instant,
    /// The neighbour's address.
    pub ip: IpAddr,
    /// Its link-layer address, when the entry has one.
    pub mac: Option<MacAddr>,
}

/// Follows the neighbour table of namespace `ns`.
pub fn neighbours(ns: &str) -> Observer<NeighChange> {
    observe(ns, move |stop, tx| {
        let sock = NeighSocket::open()?;
        let mut buf = vec![0u8; 64 * 1024];
        while !stop.load(Ordering::Relaxed) {
            let Some(n) = sock.recv_until(&mut buf, Instant::now() + TICK)? else {
                continue;
            };
            let at = Instant::now();
            for mut change in parse_neigh(&buf[..n]) {
                change.at = at;
                let _ = tx.send(change);
            }
        }
        Ok(())
    })
}

const NLMSG_HDR: usize = 16;
const NDMSG: usize = 12;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// The `RTM_NEWNEIGH` messages of one netlink datagram (`at` is filled in by the caller).
fn parse_neigh(mut b: &[u8]) -> Vec<NeighChange> {
    let mut out = Vec::new();
    while b.len() >= NLMSG_HDR {
        let Some(len) = u32_at(b, 0).map(|l| l as usize) else {
            break;
        };
        if len < NLMSG_HDR || len > b.len() {
            break;
        }
        let msg = &b[..len];
        if u16_at(msg, 4) == Some(libc::RTM_NEWNEIGH) {
            if let Some(c) = parse_ndmsg(&msg[NLMSG_HDR..]) {
                out.push(c);
            }
        }
        b = &b[align4(len).min(b.len())..];
    }
    out
}

fn parse_ndmsg(m: &[u8]) -> Option<NeighChange> {
    let family = *m.first()?;
    let mut attrs = m.get(NDMSG..)?;
    let (mut ip, mut mac) = (None, None);
    while attrs.len() >= 4 {
        let len = usize::from(u16_at(attrs, 0)?);
        let kind = u16_at(attrs, 2)?;
        if len < 4 || len > attrs.len() {
            break;
        }
        let data = &attrs[4..len];
        match (kind, family as i32, data.len()) {
            (NDA_DST, libc::AF_INET, 4) => {
                ip = Some(IpAddr::V4(Ipv4Addr::new(
                    data[0], data[1], data[2], data[3],
                )))
            }
            (NDA_DST, libc::AF_INET6, 16) => {
                let o: [u8; 16] = data.try_into().ok()?;
                ip = Some(IpAddr::V6(Ipv6Addr::from(o)));
            }
            (NDA_LLADDR, _, 6) => {
                mac = Some(MacAddr::new(
                    data[0], data[1], data[2], data[3], data[4], data[5],
                ))
            }
            _ => {}
        }
        attrs = &attrs[align4(len).min(attrs.len())..];
    }
    Some(NeighChange {
        at: Instant::now(),
        ip: ip?,
        mac,
    })
}
