//! Owner change → first gratuitous ARP from the new owner on the wire, and → the client's
//! neighbour entry pointing at the new owner. The change is one in-process write to the
//! simulator (so its time is known exactly): a Node's Ready condition, or the EndpointSlice of
//! an `externalTrafficPolicy: Local` Service.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::frames::MacAddr;
use crate::netns;
use crate::stats::{self, human};
use crate::watch::{self, Garp, NeighChange, Observer};

/// One measured owner change.
#[derive(Debug, Clone)]
pub struct Step {
    /// The owner before.
    pub from: String,
    /// The node whose gratuitous ARP came first (None: none within the deadline).
    pub to: Option<String>,
    /// How long the write itself took (in-process call, returns after the watchers were fed).
    pub write: Duration,
    /// Write started → first gratuitous ARP from another node received by the client.
    pub garp: Option<Duration>,
    /// Write started → the client kernel's neighbour entry names the new owner's MAC.
    pub neigh: Option<Duration>,
    /// Gratuitous ARPs from the old owner more than 50 ms after the write (until the next step).
    pub old_late: usize,
}

/// Everything the client observed, pulled from the observers as needed.
pub struct Timeline {
    garps: Observer<Garp>,
    neigh: Observer<NeighChange>,
    seen_garps: Vec<Garp>,
    seen_neigh: Vec<NeighChange>,
}

impl Timeline {
    /// Starts capturing in the client namespace.
    pub fn start(cluster: &Cluster) -> Timeline {
        Timeline {
            garps: watch::gratuitous_arps(&cluster.client.ns, "eth0"),
            neigh: watch::neighbours(&cluster.client.ns),
            seen_garps: Vec::new(),
            seen_neigh: Vec::new(),
        }
    }

    fn pull(&mut self, until: Instant) {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self
                .garps
                .events
                .recv_timeout(left.min(Duration::from_millis(5)))
            {
                Ok(g) => self.seen_garps.push(g),
                Err(RecvTimeoutError::Timeout) if left.is_zero() => break,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(n) = self.neigh.events.try_recv() {
                self.seen_neigh.push(n);
            }
            if left.is_zero() {
                break;
            }
        }
    }

    /// Waits until `deadline` for a gratuitous ARP matching `f` at or after `since`.
    fn wait_garp(
        &mut self,
        since: Instant,
        deadline: Instant,
        f: impl Fn(&Garp) -> bool,
    ) -> Option<Garp> {
        loop {
            if let Some(g) = self.seen_garps.iter().find(|g| g.at >= since && f(g)) {
                return Some(*g);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.pull((Instant::now() + Duration::from_millis(20)).min(deadline));
        }
    }

    /// Waits until `deadline` for a neighbour change matching `f` at or after `since`.
    fn wait_neigh(
        &mut self,
        since: Instant,
        deadline: Instant,
        f: impl Fn(&NeighChange) -> bool,
    ) -> Option<NeighChange> {
        loop {
            if let Some(n) = self.seen_neigh.iter().find(|n| n.at >= since && f(n)) {
                return Some(*n);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.pull((Instant::now() + Duration::from_millis(20)).min(deadline));
        }
    }

    fn count_garps(&self, from: Instant, to: Instant, f: impl Fn(&Garp) -> bool) -> usize {
        self.seen_garps
            .iter()
            .filter(|g| g.at > from && g.at <= to && f(g))
            .count()
    }
}

/// Makes sure the client kernel has a neighbour entry for `vip` (a gratuitous ARP only
/// updates an existing one): a UDP datagram to it makes the kernel resolve it. Returns the MAC
/// the entry names.
pub fn ensure_neighbour(cluster: &Cluster, vip: Ipv4Addr) -> Option<MacAddr> {
    let ns = &cluster.client.ns;
    let _ = netns::run_in(ns, move || {
        std::net::UdpSocket::bind("0.0.0.0:0")?.send_to(b"resolve", (vip, 9))
    });
    let ip = vip.to_string();
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        let out = cluster.lab.exec(ns, "ip", &["-j", "neigh", "show", &ip]);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_default();
        if let Some(mac) = v[0]["lladdr"].as_str().and_then(|m| m.parse().ok()) {
            return Some(mac);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// Runs `reps` owner changes. `change(cluster, current_owner)` makes one write that moves the
/// address away from the current owner and returns nothing; the new owner is whoever announces.
pub fn measure(
    cluster: &Cluster,
    timeline: &mut Timeline,
    vip: Ipv4Addr,
    reps: usize,
    pause: (Duration, Duration),
    mut change: impl FnMut(&Cluster, &str, usize),
) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let Some(mac) = ensure_neighbour(cluster, vip) else {
        println!("  (the client could not resolve {vip}: nobody announces it)");
        return steps;
    };
    let Some(mut owner) = cluster.node_of(mac).map(str::to_string) else {
        println!("  ({vip} resolves to {mac}, which is no node)");
        return steps;
    };
    for rep in 0..reps {
        let old_mac = cluster.macs[&owner];
        let t0 = Instant::now();
        change(cluster, &owner, rep);
        let write = t0.elapsed();
        let deadline = t0 + Duration::from_secs(5);
        let first = timeline.wait_garp(t0, deadline, |g| g.ip == vip && g.mac != old_mac);
        let mut step = Step {
            from: owner.clone(),
            to: None,
            write,
            garp: None,
            neigh: None,
            old_late: 0,
        };
        if let Some(g) = first {
            step.garp = Some(g.at - t0);
            step.to = cluster.node_of(g.mac).map(str::to_string);
            let n = timeline.wait_neigh(t0, g.at + Duration::from_secs(2), |n| {
                n.ip == IpAddr::V4(vip) && n.mac == Some(g.mac)
            });
            step.neigh = n.map(|n| n.at - t0);
        }
        // A pause with a random length, so the next change falls at a random phase of the
        // new owner's announcement burst (1.1 s spacing).
        let (lo, hi) = pause;
        let until = Instant::now() + lo + (hi - lo).mul_f64(fastrand::f64());
        timeline.pull(until);
        step.old_late = timeline.count_garps(t0 + Duration::from_millis(50), until, |g| {
            g.ip == vip && g.mac == old_mac
        });
        println!(
            "  {:>2}: {} → {}: write {}, first gratuitous ARP {}, neighbour entry {}{}",
            rep + 1,
            step.from,
            step.to.as_deref().unwrap_or("?"),
            human(step.write),
            step.garp.map_or("none in 5 s".into(), human),
            step.neigh.map_or("unchanged".into(), human),
            if step.old_late > 0 {
                format!(
                    ", {} late gratuitous ARPs from the old owner",
                    step.old_late
                )
            } else {
                String::new()
            }
        );
        if let Some(to) = &step.to {
            owner = to.clone();
        }
        let lost = step.to.is_none();
        steps.push(step);
        if lost {
            println!("  (no new owner announced; stopping this series)");
            break;
        }
    }
    steps
}

/// Prints the summary of some steps.
pub fn report(label: &str, steps: &[Step]) {
    let garp: Vec<Duration> = steps.iter().filter_map(|s| s.garp).collect();
    let neigh: Vec<Duration> = steps.iter().filter_map(|s| s.neigh).collect();
    let write: Vec<Duration> = steps.iter().map(|s| s.write).collect();
    let late: usize = steps.iter().map(|s| s.old_late).sum();
    println!("{label}:");
    println!(
        "  write → first gratuitous ARP of the new owner: {}",
        stats::summary(garp).line()
    );
    println!(
        "  write → client neighbour entry updated:       {}",
        stats::summary(neigh).line()
    );
    println!(
        "  the write call itself:                          {}",
        stats::summary(write).line()
    );
    println!("  late gratuitous ARPs from old owners: {late}");
}
