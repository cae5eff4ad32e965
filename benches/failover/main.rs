//! Failover benchmark (issue 5): three `ferrolb run` daemons with gossip at the default
//! timings, in network namespaces against the API simulator (the L2 lab of the end-to-end
//! tests), and a client probing the Service address with a new TCP request every 10 ms.
//!
//! - `ferrolb`: alternately an unplanned failover (kill -9 the owner's daemon and pull its
//!   cable) and a planned one (SIGTERM the owner); the stopped node is restarted (cable back)
//!   between runs, and sticky failback leaves the address where it went.
//! - `keepalived`: the same namespaces with the daemons stopped and keepalived (VRRP,
//!   `advert_int 1`, priorities 150/100/50) moving a virtual address on eth0; kill -9 the
//!   master and pull its cable; it is restarted and takes the address back (preemption).
//! - `load`: three idle daemons with gossip while busy loops keep every CPU busy; counts
//!   gossip members declared down/suspected and ownership moves.
//!
//! `cargo bench --features lab --bench failover` runs the full sizes (20 + 20 ferrolb runs,
//! 10 keepalived runs, 5 minutes of load); append `-- ferrolb`, `-- keepalived` or `-- load`
//! to run some, `--runs N`, `--ka-runs N`, `--load-secs N` to resize. Without `--bench` (as
//! `cargo test --benches` runs it) or with `--quick` it runs one of each and 10 s of load.
//! Needs root, `python3`, `keepalived` (for that part). Nothing about timings is asserted.

#[path = "../../tests/common/mod.rs"]
mod common;
mod keepalived;
mod load;
#[allow(dead_code)]
#[path = "../l2/stats.rs"]
mod stats;

use std::time::Duration;

use common::gossip::{apply_web, wait_all_members_up, wait_members_up};
use common::l2::*;
use common::probe::{now, Probe, Timeouts, Window};

/// Sizes from the command line.
struct Sizes {
    runs: usize,
    ka_runs: usize,
    load: Duration,
}

fn arg_value(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let sizes = Sizes {
        runs: arg_value(&args, "--runs").unwrap_or(if full { 20 } else { 1 }),
        ka_runs: arg_value(&args, "--ka-runs").unwrap_or(if full { 10 } else { 1 }),
        load: Duration::from_secs(arg_value(&args, "--load-secs").unwrap_or(if full {
            300
        } else {
            10
        }) as u64),
    };
    let parts = ["ferrolb", "keepalived", "load"];
    let chosen: Vec<&str> = parts
        .iter()
        .copied()
        .filter(|p| args.iter().any(|a| a == p))
        .collect();
    let run = |p: &str| chosen.is_empty() || chosen.contains(&p);
    println!(
        "failover bench: {} ferrolb runs each, {} keepalived runs, {} s of load",
        sizes.runs,
        sizes.ka_runs,
        sizes.load.as_secs()
    );
    let mut l = L2Lab::start_with("flfob", 62, true);
    wait_all_members_up(&l);
    if run("ferrolb") {
        ferrolb(&mut l, sizes.runs);
    }
    if run("load") {
        load::false_failovers(&l, sizes.load);
    }
    if run("keepalived") {
        keepalived::run(&mut l, sizes.ka_runs);
    }
}

/// Restarts `name`'s daemon (cable back in first) and waits until it sees both others.
fn restart(l: &mut L2Lab, name: &str) {
    let node = l.node(name);
    l.lab.cable(&node.host, true);
    let daemon = l.lab.start_ferrolb(&node.host, &node.config);
    wait_members_up(&daemon, name);
    if let Some(n) = l.nodes.iter_mut().find(|n| n.name == name) {
        n.daemon = daemon;
    }
    // The others mark it alive again within a few probe rounds.
    std::thread::sleep(Duration::from_secs(2));
}

fn ferrolb(l: &mut L2Lab, runs: usize) {
    let address = apply_web(l);
    let probe = Probe::start(l, address, "probe-ferrolb", Timeouts::SHORT);
    probe.wait_answer(0.0, None, Duration::from_secs(20));
    std::thread::sleep(Duration::from_secs(1));
    let mut unplanned = Vec::new();
    let mut planned = Vec::new();
    for i in 0..runs {
        for kind in ["unplanned", "planned"] {
            let owner = probe
                .last_answer(now() - 1.0)
                .unwrap_or_else(|| panic!("no answer in the last second before run {i}"));
            let daemon = l.node(&owner).daemon.proc;
            let t0 = now();
            if kind == "unplanned" {
                l.lab.kill(daemon);
                l.lab.cable(&l.node(&owner).host, false);
            } else {
                l.lab.signal(daemon, "TERM");
            }
            let next = probe.wait_answer(t0, Some(&owner), Duration::from_secs(30));
            if kind == "planned" {
                l.lab.wait_exit(daemon, Duration::from_secs(20));
            }
            // Long enough for every attempt in flight around the move to have ended.
            std::thread::sleep(Duration::from_secs(2));
            let w = probe.window(t0, now() - 0.5, &owner);
            println!(
                "{kind} {i}: {owner} -> {next}: outage {} ms, longest interval between answers {} ms, {} of {} attempts lost",
                w.outage.as_millis(),
                w.longest.as_millis(),
                w.lost,
                w.attempts
            );
            if kind == "planned" && w.lost > 0 {
                println!("  lost attempts (planned): {:?}", w.errors);
            }
            if kind == "unplanned" {
                unplanned.push(w);
            } else {
                planned.push(w);
            }
            restart(l, &owner);
        }
    }
    l.lab.kill(probe.proc);
    report("ferrolb unplanned (kill -9 + cable)", &unplanned);
    report("ferrolb planned (SIGTERM)", &planned);
}

/// Prints the percentiles of a set of windows.
pub fn report(what: &str, w: &[Window]) {
    let outage = stats::summary(w.iter().map(|w| w.outage).collect());
    let longest = stats::summary(w.iter().map(|w| w.longest).collect());
    let lost: Vec<usize> = w.iter().map(|w| w.lost).collect();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "RESULT {what}: n={} outage p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; longest interval p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; lost attempts total {} (max {} per run, runs with loss {})",
        outage.n,
        ms(outage.p50),
        ms(outage.p99),
        ms(outage.max),
        ms(longest.p50),
        ms(longest.p99),
        ms(longest.max),
        lost.iter().sum::<usize>(),
        lost.iter().max().copied().unwrap_or(0),
        lost.iter().filter(|l| **l > 0).count()
    );
}
