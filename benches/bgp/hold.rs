//! `hold`: three `ferrolb run` daemons peering with FRR (the end-to-end tests' BGP lab,
//! `tests/common/bgp_lab.rs`); every node's cable is pulled at once (its bridge port set down,
//! so neither FIN nor NOTIFICATION reaches the router) → per node, the time until FRR no longer
//! holds its path for a Service address (polled through `vtysh` every ~50 ms). Cables back,
//! sessions back, next round. At `hold_time = "3s"` and at the default 90 s (FRR proposes 180 s,
//! so 90 s is what is negotiated), the pull at a random moment of the keepalive period. This
//! is the figure BFD will improve.

use std::time::{Duration, Instant};

use crate::common::bgp_lab::*;
use crate::common::l2::NODES;
use crate::common::netlab::wait_for;
use crate::stats;

/// Runs `rounds_3` rounds at 3 s and `rounds_90` at 90 s and prints their summaries.
pub fn run(rounds_3: usize, rounds_90: usize) {
    for (hold, rounds) in [("3s", rounds_3), ("90s", rounds_90)] {
        if rounds == 0 {
            continue;
        }
        let samples = rounds_at(hold, rounds);
        println!(
            "bgp hold: cable pulled → FRR drops the path, hold_time = {hold}: {}",
            stats::summary(samples).line()
        );
    }
}

/// `rounds` rounds of pulling every node's cable; one sample per node and round.
fn rounds_at(hold: &str, rounds: usize) -> Vec<Duration> {
    let b = BgpLab::start(
        "flb-bgph",
        71,
        "",
        &format!("hold_time = \"{hold}\"\n"),
        ROUTER_ASN,
    );
    b.wait_established();
    let address = service(&b, "web", false, &NODES, false);
    let prefix = format!("{address}/32");
    let ips = b.node_ips();
    let keepalive = humantime::parse_duration(hold).unwrap_or(Duration::from_secs(3)) / 3;
    let mut samples = Vec::new();
    for round in 0..rounds {
        b.wait_paths(&prefix, &ips);
        // The router's hold timer restarts with every message from the node: pull at a random
        // moment of the keepalive period (a third of the hold time), not right after the
        // session came back, or every sample would be the full hold time.
        std::thread::sleep(keepalive.mul_f64(fastrand::f64()));
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
