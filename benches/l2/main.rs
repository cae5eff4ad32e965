//! L2 benchmarks: the real `ferrolb run` daemon announcing Service addresses by ARP and NDP in
//! network namespaces, measured from a client namespace on the same LAN, against the in-process
//! API simulator. See BENCHMARKS.md for the figures.
//!
//! Topology (namespaces `flb-l2b-*`, removed at the end and at the start of the next run):
//! a bridge `flb-l2b-lan`, nodes `n1`–`n3` (10.250.77.11–13, fd00:250:77::11–13 on eth0,
//! `arp_ignore=1`), a client (.50), and `api` (.2) where the benchmark's own main thread and
//! the simulator live. The daemons' l2 pool: 10.250.77.100–199 and fd00:250:77::100–1ff.
//!
//! - `latency`: request → reply seen by the client, one request in flight, raw frames from an
//!   `AF_PACKET` socket timed with the monotonic clock: ARP for a Service address answered by
//!   ferrolb on `n1`, interleaved in the same run with ARP for `n1`'s own eth0 address answered
//!   by its kernel; then the same with Neighbor Solicitation → Advertisement.
//! - `rate`: one responder flooded for a few seconds (as fast as one client thread sends, and
//!   with a window of requests in flight): requests, replies, replies/s, the daemon's CPU time
//!   and its sockets' queue drops; runs repeated, ferrolb and kernel alternating.
//! - `takeover`: three daemons; one write to the simulator makes the owner ineligible (Node
//!   Ready=False, back to True; or the only endpoint of an `externalTrafficPolicy: Local`
//!   Service moved between two nodes) → first gratuitous ARP from the new owner captured in the
//!   client namespace, and the client kernel's neighbour entry following it.
//!
//! `cargo bench --bench l2` runs the full sizes (a few minutes); append `-- latency`,
//! `-- rate` or `-- takeover` to run some. Without `--bench` (as `cargo test --benches` runs it)
//! or with `--quick` it does a smoke run of a few seconds. Nothing about timings is asserted.
//! Needs root (network namespaces). The daemon binary is the one cargo built alongside
//! (`CARGO_BIN_EXE_ferrolb`).

mod cluster;
mod frames;
// The end-to-end tests' namespace lab (its guard removes everything, also on a panic); the
// benchmark uses part of it.
#[allow(dead_code)]
#[path = "../../tests/common/netlab.rs"]
mod netlab;
mod netns;
mod probe;
mod stats;
mod takeover;
mod watch;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use cluster::Cluster;
use probe::{Client, LatencyRun};
use stats::human;

struct Sizes {
    latency: LatencyRun,
    flood: Duration,
    flood_runs: usize,
    window: usize,
    takeover: usize,
    pause: (Duration, Duration),
}

const FULL: Sizes = Sizes {
    latency: LatencyRun {
        requests: 10_000,
        timeout: Duration::from_millis(500),
        gap: Duration::from_millis(1),
    },
    flood: Duration::from_secs(3),
    flood_runs: 3,
    window: 16,
    takeover: 20,
    pause: (Duration::from_millis(1500), Duration::from_millis(2500)),
};

const QUICK: Sizes = Sizes {
    latency: LatencyRun {
        requests: 100,
        timeout: Duration::from_millis(200),
        gap: Duration::from_millis(1),
    },
    flood: Duration::from_millis(300),
    flood_runs: 1,
    window: 16,
    takeover: 1,
    pause: (Duration::from_millis(300), Duration::from_millis(500)),
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench")
        && !args.iter().any(|a| a == "--test" || a == "--quick");
    let parts: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["latency", "rate", "takeover"].contains(a))
        .collect();
    let want = |p: &str| parts.is_empty() || parts.contains(&p);
    let sizes = if full { FULL } else { QUICK };
    println!(
        "l2 benchmarks ({} mode), daemon binary {}",
        if full { "full" } else { "quick" },
        netlab::FERROLB
    );

    let mut c = Cluster::new();
    c.start_daemon("n1");
    c.create_service("web", true, false, "n1");
    let ips = c.wait_addresses("web");
    let vip4 = ips.iter().find(|i| i.is_ipv4()).copied();
    let vip6 = ips.iter().find(|i| i.is_ipv6()).copied();
    println!("Service default/web: {ips:?}; Node n1 Ready, its endpoint on n1; daemon on n1");
    let client = Client {
        mac: c.macs["client"],
        v4: c.client_v4(),
        v6: c.client_v6(),
    };
    let n1 = &c.nodes["n1"];
    let (n1_v4, n1_v6) = (IpAddr::V4(n1.ipv4), n1.ipv6.map(IpAddr::V6));
    let ns = c.client.ns.clone();
    for vip in [vip4, vip6].into_iter().flatten() {
        match probe::answers(&ns, client, vip, Duration::from_secs(10)) {
            Some(mac) => println!(
                "{vip} answered by {mac} ({})",
                c.node_of(mac).unwrap_or("not a node")
            ),
            None => println!(
                "{vip} is NOT answered within 10 s (does the daemon announce l2 addresses?)"
            ),
        }
    }

    if want("latency") {
        for (label, vip, kernel) in [("ARP", vip4, Some(n1_v4)), ("NDP", vip6, n1_v6)] {
            let (Some(vip), Some(kernel)) = (vip, kernel) else {
                continue;
            };
            latency(&ns, client, label, vip, kernel, sizes.latency);
        }
    }
    if want("rate") {
        for (label, vip, kernel) in [("ARP", vip4, Some(n1_v4)), ("NDP", vip6, n1_v6)] {
            let (Some(vip), Some(kernel)) = (vip, kernel) else {
                continue;
            };
            rate(&c, &ns, client, label, vip, kernel, &sizes);
        }
    }
    if want("takeover") {
        takeovers(&mut c, vip4, &sizes);
    }
    drop(c);
    println!("\ndone; namespaces removed");
}

fn latency(ns: &str, client: Client, label: &str, vip: IpAddr, kernel: IpAddr, run: LatencyRun) {
    println!(
        "\n## latency/{label}: request → reply at the client, {} requests per target, one in flight, interleaved, pause uniform 0–{}",
        run.requests,
        human(run.gap)
    );
    let t = std::time::Instant::now();
    let (series, stray) = match probe::latency(ns, client, vec![vip, kernel], run) {
        Ok(r) => r,
        Err(e) => {
            println!("failed: {e}");
            return;
        }
    };
    for (who, s) in ["ferrolb (Service address)", "kernel (node's eth0 address)"]
        .iter()
        .zip(series)
    {
        let repliers: Vec<String> = s.repliers.iter().map(|(m, n)| format!("{m}×{n}")).collect();
        println!(
            "{who:<30} {}  timeouts={} skipped={} repliers=[{}]",
            stats::summary(s.samples).line(),
            s.timeouts,
            s.skipped,
            repliers.join(", ")
        );
    }
    println!(
        "stray replies (late or duplicate): {stray}; series took {:.1} s",
        t.elapsed().as_secs_f64()
    );
}

/// Frames the kernel dropped at its per-CPU input queues, all CPUs (the second column of
/// `/proc/net/softnet_stat`, hexadecimal; global, not per namespace).
fn softnet_drops() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/net/softnet_stat").ok()?;
    text.lines()
        .map(|l| {
            let f = l.split_whitespace().nth(1)?;
            u64::from_str_radix(f, 16).ok()
        })
        .sum()
}

fn rate(
    c: &Cluster,
    ns: &str,
    client: Client,
    label: &str,
    vip: IpAddr,
    kernel: IpAddr,
    sizes: &Sizes,
) {
    println!(
        "\n## rate/{label}: one client thread flooding one responder for {}, {} runs each, alternating",
        human(sizes.flood),
        sizes.flood_runs
    );
    let pid = c.daemons["n1"].proc.pid;
    for window in [None, Some(sizes.window)] {
        let mode = window.map_or("as fast as possible".to_string(), |w| format!("window {w}"));
        let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..sizes.flood_runs {
            for (k, (who, target)) in [("ferrolb", vip), ("kernel", kernel)]
                .into_iter()
                .enumerate()
            {
                let cpu0 = netns::cpu_time(pid);
                let drops0 = c.socket_drops("n1", pid);
                let soft0 = softnet_drops();
                let r = probe::flood(ns, client, target, sizes.flood, window);
                let cpu1 = netns::cpu_time(pid);
                let drops1 = c.socket_drops("n1", pid);
                let soft1 = softnet_drops();
                let f = match r {
                    Ok(f) => f,
                    Err(e) => {
                        println!("{who} {mode}: failed: {e}");
                        continue;
                    }
                };
                let secs = f.elapsed.as_secs_f64();
                rates[k].push(f.received as f64 / secs);
                let mut notes = Vec::new();
                if window.is_some() {
                    notes.push(format!("{} stalls", f.stalls));
                }
                // The daemon's sockets take every request on the LAN (its filter selects by
                // kind, not by address), so it works during the kernel's floods too.
                if let (Some(a), Some(b)) = (cpu0, cpu1) {
                    let cpu = (b - a).as_secs_f64();
                    notes.push(format!(
                        "daemon CPU {cpu:.2} s ({:.0} % of one vCPU, {:.1} µs per request)",
                        100.0 * cpu / secs,
                        1e6 * cpu / f.sent.max(1) as f64
                    ));
                }
                if let (Some(a), Some(b)) = (drops0, drops1) {
                    notes.push(format!("daemon socket queue drops {}", b.saturating_sub(a)));
                }
                if let (Some(a), Some(b)) = (soft0, soft1) {
                    notes.push(format!("softnet drops {}", b.saturating_sub(a)));
                }
                println!(
                    "{who:<8} {mode:<20} sent {} ({:.0}/s) received {} ({:.0}/s, {:.1} %); {}",
                    f.sent,
                    f.sent as f64 / secs,
                    f.received,
                    f.received as f64 / secs,
                    100.0 * f.received as f64 / f.sent.max(1) as f64,
                    notes.join("; ")
                );
                // Let queues drain and the responder settle before the next flood.
                std::thread::sleep(Duration::from_millis(300));
            }
        }
        for (who, mut r) in ["ferrolb", "kernel"].into_iter().zip(rates) {
            r.sort_by(f64::total_cmp);
            if let (Some(lo), Some(hi)) = (r.first(), r.last()) {
                println!(
                    "  {who} {mode}: replies/s median {:.0} (min {lo:.0}, max {hi:.0}, {} runs)",
                    r[r.len() / 2],
                    r.len()
                );
            }
        }
    }
}

fn takeovers(c: &mut Cluster, vip4: Option<IpAddr>, sizes: &Sizes) {
    let Some(IpAddr::V4(vip)) = vip4 else {
        return;
    };
    println!("\n## takeover: three daemons; owner made ineligible by one write to the simulator");
    for n in ["n2", "n3"] {
        c.create_node(n);
    }
    c.start_daemons(&["n2", "n3"]);
    let mut timeline = takeover::Timeline::start(c);
    println!("ranking for {vip}: {}", ranking(IpAddr::V4(vip)).join(", "));
    // A new node may outrank n1 for this address: wait until the first in rank answers.
    wait_owner(c, vip, &ranking(IpAddr::V4(vip))[0]);

    println!(
        "\n### Node Ready → False (failover), then back → True (failback), {} times",
        sizes.takeover
    );
    let mut failover = Vec::new();
    let mut failback = Vec::new();
    let mut down: Option<String> = None;
    let steps = takeover::measure(
        c,
        &mut timeline,
        vip,
        2 * sizes.takeover,
        sizes.pause,
        |c, owner, _| {
            match down.take() {
                // The owner is the node that came back: its failback was this change.
                Some(d) => c.set_ready(&d, true),
                None => {
                    c.set_ready(owner, false);
                    down = Some(owner.to_string());
                }
            }
        },
    );
    if let Some(d) = down {
        c.set_ready(&d, true);
    }
    for (i, s) in steps.into_iter().enumerate() {
        if i % 2 == 0 {
            failover.push(s);
        } else {
            failback.push(s);
        }
    }
    takeover::report(
        "Node Ready=False → another node announces (failover)",
        &failover,
    );
    takeover::report(
        "Node Ready=True again → it announces again (failback)",
        &failback,
    );

    println!(
        "\n### externalTrafficPolicy: Local, the only endpoint moved between n1 and n2, {} times",
        sizes.takeover
    );
    c.create_service("local", false, true, "n1");
    let local = c.wait_addresses("local").into_iter().find_map(|i| match i {
        IpAddr::V4(v) => Some(v),
        IpAddr::V6(_) => None,
    });
    let Some(local) = local else {
        return;
    };
    println!(
        "Service default/local: {local} (ranking {})",
        ranking(IpAddr::V4(local)).join(", ")
    );
    wait_owner(c, local, "n1");
    let steps = takeover::measure(
        c,
        &mut timeline,
        local,
        sizes.takeover,
        sizes.pause,
        |c, owner, _| {
            let to = if owner == "n1" { "n2" } else { "n1" };
            c.move_endpoint("local", to);
        },
    );
    takeover::report("endpoint moved → the node with it announces", &steps);
}

/// The nodes in the order of ferrolb's owner ranking for `address` (first = owner when
/// eligible).
fn ranking(address: IpAddr) -> Vec<String> {
    let mut left: Vec<&str> = cluster::NODES.to_vec();
    let mut order = Vec::new();
    while let Some(first) = ferrolb::plan::owner(left.iter().copied(), address) {
        order.push(first.to_string());
        left.retain(|n| *n != first);
    }
    order
}

/// Waits (10 s at most) until `node` answers ARP for `vip`.
fn wait_owner(c: &Cluster, vip: Ipv4Addr, node: &str) {
    let client = Client {
        mac: c.macs["client"],
        v4: c.client_v4(),
        v6: c.client_v6(),
    };
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < end {
        if probe::answers(
            &c.client.ns,
            client,
            IpAddr::V4(vip),
            Duration::from_millis(500),
        )
        .is_some_and(|m| c.node_of(m) == Some(node))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("({vip} not answered by {node} within 10 s)");
}
