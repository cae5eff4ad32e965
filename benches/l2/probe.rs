//! The client's measurements of neighbour resolution: request → reply latency with one request
//! in flight, and how many replies a responder sustains under a flood. Each runs on a thread
//! inside the client namespace, with its own raw socket.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::frames::{self, MacAddr, ETH_ARP, ETH_IPV6};
use crate::netns::{self, PacketSocket};

/// Who the client is.
#[derive(Debug, Clone, Copy)]
pub struct Client {
    /// Its eth0 MAC.
    pub mac: MacAddr,
    /// Its IPv4 address.
    pub v4: Ipv4Addr,
    /// Its IPv6 address.
    pub v6: Ipv6Addr,
}

impl Client {
    /// The request frame for `target` (ARP request, or NS to the solicited-node group).
    fn request(&self, target: IpAddr) -> Vec<u8> {
        match target {
            IpAddr::V4(t) => frames::arp_request(self.mac, self.v4, t),
            IpAddr::V6(t) => frames::neighbor_solicitation(self.mac, self.v6, t),
        }
    }

    /// Whether `frame` answers a request for `target` (to this client); the replier's MAC.
    fn answer(&self, target: IpAddr, frame: &[u8]) -> Option<MacAddr> {
        match target {
            IpAddr::V4(t) => frames::parse_arp(frame)
                .filter(|a| a.is_reply(t, self.v4))
                .map(|a| a.sender_mac),
            IpAddr::V6(t) => frames::parse_advertisement(frame)
                .filter(|a| a.target == t && a.destination == self.v6 && a.solicited)
                .map(|a| a.eth_source),
        }
    }
}

fn open(family: IpAddr, rcvbuf: usize) -> io::Result<PacketSocket> {
    let ethertype = if family.is_ipv4() { ETH_ARP } else { ETH_IPV6 };
    PacketSocket::open("eth0", ethertype, rcvbuf)
}

/// The latencies to one target.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Request sent → matching reply received, per answered request.
    pub samples: Vec<Duration>,
    /// Requests without an answer within the timeout.
    pub timeouts: usize,
    /// Requests not sent because the target never answered at the start.
    pub skipped: usize,
    /// The MACs that answered, with counts.
    pub repliers: Vec<(MacAddr, usize)>,
}

impl Series {
    fn replier(&mut self, mac: MacAddr) {
        match self.repliers.iter_mut().find(|(m, _)| *m == mac) {
            Some((_, n)) => *n += 1,
            None => self.repliers.push((mac, 1)),
        }
    }
}

/// How to run a latency series.
#[derive(Debug, Clone, Copy)]
pub struct LatencyRun {
    /// Requests per target.
    pub requests: usize,
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// Pause between requests: uniform in [0, gap).
    pub gap: Duration,
}

/// Sends `run.requests` requests to each of `targets` (one family), one in flight at a time,
/// interleaved (the order alternates every round, so neither target always goes first), and
/// times each from just before `send` to the return of the `recv` that brought its reply. A
/// target whose first three requests go unanswered is given up (the rest count as skipped).
pub fn latency(
    ns: &str,
    client: Client,
    targets: Vec<IpAddr>,
    run: LatencyRun,
) -> io::Result<(Vec<Series>, usize)> {
    netns::run_in(ns, move || {
        let sock = open(targets[0], 1 << 20)?;
        let mut series = vec![Series::default(); targets.len()];
        let mut dead = vec![false; targets.len()];
        let mut stray = 0usize;
        let mut buf = [0u8; 2048];
        let requests: Vec<Vec<u8>> = targets.iter().map(|t| client.request(*t)).collect();
        // Frames of other kinds (IPv6 multicast listener reports, …) are read and ignored.
        for round in 0..run.requests {
            for k in 0..targets.len() {
                let i = if round % 2 == 0 {
                    k
                } else {
                    targets.len() - 1 - k
                };
                if dead[i] {
                    series[i].skipped += 1;
                    continue;
                }
                if !run.gap.is_zero() {
                    std::thread::sleep(run.gap.mul_f64(fastrand::f64()));
                }
                // Anything still queued (a late reply) must not be taken for this one's.
                while let Some(n) = sock.recv_now(&mut buf)? {
                    if targets
                        .iter()
                        .any(|t| client.answer(*t, &buf[..n]).is_some())
                    {
                        stray += 1;
                    }
                }
                let t0 = Instant::now();
                sock.send(&requests[i])?;
                let deadline = t0 + run.timeout;
                loop {
                    let Some(n) = sock.recv_until(&mut buf, deadline)? else {
                        series[i].timeouts += 1;
                        if series[i].samples.is_empty() && series[i].timeouts >= 3 {
                            dead[i] = true;
                        }
                        break;
                    };
                    let t1 = Instant::now();
                    if let Some(mac) = client.answer(targets[i], &buf[..n]) {
                        series[i].samples.push(t1 - t0);
                        series[i].replier(mac);
                        break;
                    }
                    if targets
                        .iter()
                        .any(|t| client.answer(*t, &buf[..n]).is_some())
                    {
                        stray += 1;
                    }
                }
            }
        }
        Ok((series, stray))
    })
}

/// Whether `target` answers a request within `timeout` (tried every 100 ms); who answered.
pub fn answers(ns: &str, client: Client, target: IpAddr, timeout: Duration) -> Option<MacAddr> {
    netns::run_in(ns, move || {
        let sock = open(target, 1 << 16)?;
        let end = Instant::now() + timeout;
        let mut buf = [0u8; 2048];
        let req = client.request(target);
        while Instant::now() < end {
            sock.send(&req)?;
            let until = (Instant::now() + Duration::from_millis(100)).min(end);
            while let Some(n) = sock.recv_until(&mut buf, until)? {
                if let Some(mac) = client.answer(target, &buf[..n]) {
                    return Ok(Some(mac));
                }
            }
        }
        Ok(None)
    })
    .ok()
    .flatten()
}

/// What a flood achieved.
#[derive(Debug, Clone, Copy, Default)]
pub struct Flood {
    /// Requests sent.
    pub sent: u64,
    /// Matching replies received (also those that came in the drain after the end).
    pub received: u64,
    /// Sending time.
    pub elapsed: Duration,
    /// Window mode: times no reply came for 20 ms and the window was reopened.
    pub stalls: u64,
}

/// Floods `target` with requests for `duration` from one thread: with `window` = None as fast
/// as it can send (reading replies between sends without waiting), else keeping at most that
/// many unanswered. Replies still arriving within 200 ms after the end are counted.
pub fn flood(
    ns: &str,
    client: Client,
    target: IpAddr,
    duration: Duration,
    window: Option<usize>,
) -> io::Result<Flood> {
    netns::run_in(ns, move || {
        let sock = open(target, 8 << 20)?;
        let req = client.request(target);
        let mut buf = [0u8; 2048];
        let mut f = Flood::default();
        let t0 = Instant::now();
        let end = t0 + duration;
        match window {
            None => {
                while Instant::now() < end {
                    for _ in 0..16 {
                        // A full transmit path (ENOBUFS) is the client's limit: not a request.
                        if sock.send(&req).is_ok() {
                            f.sent += 1;
                        }
                    }
                    while let Some(n) = sock.recv_now(&mut buf)? {
                        if client.answer(target, &buf[..n]).is_some() {
                            f.received += 1;
                        }
                    }
                }
            }
            Some(w) => {
                let mut outstanding = 0usize;
                while Instant::now() < end {
                    while outstanding < w {
                        sock.send(&req)?;
                        f.sent += 1;
                        outstanding += 1;
                    }
                    match sock.recv_until(&mut buf, Instant::now() + Duration::from_millis(20))? {
                        Some(n) => {
                            if client.answer(target, &buf[..n]).is_some() {
                                f.received += 1;
                                outstanding = outstanding.saturating_sub(1);
                            }
                        }
                        None => {
                            f.stalls += 1;
                            outstanding = 0;
                        }
                    }
                }
            }
        }
        f.elapsed = t0.elapsed();
        let drain = Instant::now() + Duration::from_millis(200);
        while let Some(n) = sock.recv_until(&mut buf, drain)? {
            if client.answer(target, &buf[..n]).is_some() {
                f.received += 1;
            }
        }
        Ok(f)
    })
}
