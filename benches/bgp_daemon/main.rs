//! BGP benchmarks of the real daemon (issue 6): three `ferrolb run` daemons peering with FRR in
//! network namespaces (the BGP lab of the end-to-end tests, `tests/common/bgp_lab.rs`).
//!
//! - `hold`: a node's cable is pulled (its bridge port set down, so no FIN, no NOTIFICATION
//!   reaches the router) → time until FRR no longer holds that node's path for a Service
//!   address, polled through `vtysh` every ~50 ms. All three cables are pulled together (three
//!   samples per round), then restored, and the round repeats once every session is back. At
//!   the default hold time (90 s, which FRR accepts: it proposes 180 s) and at `hold_time =
//!   "3s"`. This is the figure BFD will improve; L2 mode's gossip-driven failover is in the
//!   `failover` bench.
//!
//! `cargo bench --features lab --bench bgp_daemon` runs the full sizes (2 rounds at 90 s, 10
//! at 3 s); `-- hold` selects the part, `--rounds-90 N` / `--rounds-3 N` resize. Without
//! `--bench` (as `cargo test --benches` runs it) or with `--quick` it does one round at 3 s.
//! Needs root, FRR. Nothing about timings is asserted.

#[path = "../../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../l2/stats.rs"]
mod stats;

use std::time::{Duration, Instant};

use common::bgp_lab::*;
use common::l2::NODES;
use common::netlab::wait_for;

fn arg_value(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let rounds_90 = arg_value(&args, "--rounds-90").unwrap_or(if full { 2 } else { 0 });
    let rounds_3 = arg_value(&args, "--rounds-3").unwrap_or(if full { 10 } else { 1 });
    let filter: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    if !filter.is_empty() && !filter.iter().any(|f| f.as_str() == "hold") {
        return;
    }
    for (hold, rounds) in [("3s", rounds_3), ("90s", rounds_90)] {
        if rounds == 0 {
            continue;
        }
        let samples = hold_rounds(hold, rounds);
        println!(
            "hold: cable pulled → FRR drops the path, hold_time = {hold}: {}",
            stats::summary(samples).line()
        );
    }
}

/// `rounds` rounds of pulling every node's cable; one sample per node and round.
fn hold_rounds(hold: &str, rounds: usize) -> Vec<Duration> {
    let b = BgpLab::start(
        "flb-bgpd",
        71,
        "",
        &format!("hold_time = \"{hold}\"\n"),
        ROUTER_ASN,
    );
    b.wait_established();
    let address = service(&b, "web", false, &NODES, false);
    let prefix = format!("{address}/32");
    let ips = b.node_ips();
    let mut samples = Vec::new();
    for round in 0..rounds {
        b.wait_paths(&prefix, &ips);
        let pulled = Instant::now();
        for node in &b.l.nodes {
            b.l.lab.cable(&node.host, false);
        }
        let mut left: Vec<String> = ips.clone();
        let deadline = pulled + Duration::from_secs(300);
        while !left.is_empty() && Instant::now() < deadline {
            let paths = b.frr.paths(&b.l.lab, &prefix);
            let now = pulled.elapsed();
            left.retain(|ip| {
                if paths.contains(ip) {
                    true
                } else {
                    samples.push(now);
                    false
                }
            });
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(left.is_empty(), "FRR still holds {left:?} after 300 s");
        eprintln!(
            "hold {hold} round {}: {:?}",
            round + 1,
            &samples[samples.len() - ips.len()..]
        );
        for node in &b.l.nodes {
            b.l.lab.cable(&node.host, true);
        }
        // Sessions come back (connect retry 1 s on both sides).
        wait_for("sessions back", Duration::from_secs(120), || {
            let paths = b.frr.paths(&b.l.lab, &prefix);
            if paths == ips {
                Ok(())
            } else {
                Err(format!("{paths:?}"))
            }
        });
    }
    samples
}
