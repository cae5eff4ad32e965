//! False failovers under CPU load: three idle daemons with gossip while busy loops in the
//! host keep every core busy. Counted from the daemons' logs (members declared down, refuted
//! suspicions, rejoins) and from a client probing the Service address (changes of the
//! answering node, failed attempts).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::gossip::apply_web;
use crate::common::l2::L2Lab;
use crate::common::probe::{now, Probe, Timeouts};

/// What the daemons log when membership changes (the needles counted).
const EVENTS: [&str; 5] = [
    "gossip member down",
    "gossip member restarted",
    "refuted a suspicion about this node",
    "declared down by the cluster",
    "no other gossip member is reachable",
];

/// Busy loops, killed (by their own pids) on drop.
struct Busy(Vec<Child>);

impl Drop for Busy {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the load for `length` and prints the counts.
pub fn false_failovers(l: &L2Lab, length: Duration) {
    let address = apply_web(l);
    let probe = Probe::start(l, address, "probe-load", Timeouts::SHORT);
    probe.wait_answer(0.0, None, Duration::from_secs(20));
    let offsets: Vec<usize> = l.nodes.iter().map(|n| n.daemon.log_text().len()).collect();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let loops = 2 * cores;
    let t0 = now();
    let busy = Busy(
        (0..loops)
            .filter_map(|_| {
                Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .stdout(Stdio::null())
                    .spawn()
                    .ok()
            })
            .collect(),
    );
    println!(
        "load: {} busy loops on {cores} cores for {} s",
        busy.0.len(),
        length.as_secs()
    );
    std::thread::sleep(length);
    drop(busy);
    let t1 = now();
    let samples = probe.samples(t0, t1);
    l.lab.kill(probe.proc);
    let mut changes = 0;
    let mut prev: Option<&str> = None;
    for who in samples.iter().filter_map(|(_, w)| w.as_deref()) {
        if prev.is_some_and(|p| p != who) {
            changes += 1;
        }
        prev = Some(who);
    }
    let failed = samples.iter().filter(|(_, w)| w.is_none()).count();
    let mut counts = [0usize; EVENTS.len()];
    for (n, offset) in l.nodes.iter().zip(offsets) {
        let text = n.daemon.log_text();
        let new = text.get(offset..).unwrap_or_default();
        for (i, needle) in EVENTS.iter().enumerate() {
            counts[i] += new.matches(needle).count();
        }
    }
    let events: Vec<String> = EVENTS
        .iter()
        .zip(counts)
        .map(|(e, c)| format!("{e:?}: {c}"))
        .collect();
    println!(
        "RESULT load {} s, {} busy loops: answering node changed {changes} times, {failed} of {} attempts failed; daemon log events (all three): {}",
        length.as_secs(),
        loops,
        samples.len(),
        events.join(", ")
    );
}
