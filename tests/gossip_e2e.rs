//! End-to-end: L2 mode with gossip membership. The L2 lab of `l2_e2e.rs` (three node
//! namespaces running `ferrolb run`, the API simulator, a client, `ferrolb lab responder` on
//! every node answering TCP with its node name) with `[cluster] enabled = true`: encrypted
//! gossip on each node's address, port 7946. A probe in the client namespace opens a TCP
//! connection to the Service address every 10 ms and records which node answered.
//!
//! One lab, three acts: (a) the owner's daemon is killed (-9) and its cable pulled: another
//! node takes over (the gap is printed); (c) the killed node comes back and does not take its
//! address back (sticky failback); (b) the new owner gets SIGTERM: it withdraws, hands over,
//! leaves and stops; requests lost are printed; (d) the next owner gets SIGUSR1 (drain): the
//! last node takes over while the drained daemon keeps running.
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6`, `tcpdump` and `python3`.

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::e2e::*;
use common::l2::*;
use common::netlab::*;

/// An HTTP request over a new TCP connection every 10 ms (200 ms to connect, 300 ms to read
/// the answer), one line per attempt: `<unix time> <node name, or - and the error>`. (HTTP, because the
/// responder answers a silent connection only after 200 ms.)
const PROBE: &str = r#"
import socket, sys, time
address, out = sys.argv[1], open(sys.argv[2], "a", buffering=1)
while True:
    t = time.time()
    try:
        s = socket.create_connection((address, 80), timeout=0.2)
        s.settimeout(0.3)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        lines = data.decode().strip().splitlines()
        who = lines[-1].strip() if data.startswith(b"HTTP/1") and lines else "-"
    except Exception as e:
        who = "-" + type(e).__name__
    out.write(f"{t:.3f} {who}\n")
    time.sleep(max(0.0, 0.01 - (time.time() - t)))
"#;

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// The client's probe loop and its record.
struct Probe {
    file: PathBuf,
    proc: Proc,
}

impl Probe {
    fn start(l: &L2Lab, address: IpAddr) -> Probe {
        let file = l.lab.path("probe.txt");
        let log = l.lab.path("probe.log");
        let args = ["-c", PROBE, &address.to_string(), &file.to_string_lossy()];
        let proc = l.lab.spawn(&l.client.ns, "python3", &args, &log);
        Probe { file, proc }
    }

    /// The samples (time, answering node or `None`) taken at or after `since`.
    fn samples(&self, since: f64) -> Vec<(f64, Option<String>)> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (t, who) = line.split_once(' ')?;
                let t: f64 = t.parse().ok()?;
                (t >= since).then(|| (t, (!who.starts_with('-')).then(|| who.to_string())))
            })
            .collect()
    }

    /// Waits until a sample after `since` is answered by a node other than `not`; its name.
    fn wait_answer(&self, since: f64, not: Option<&str>, timeout: Duration) -> String {
        wait_for(
            &format!("an answer from a node other than {not:?}"),
            timeout,
            || {
                let s = self.samples(since);
                s.iter()
                    .filter_map(|(_, who)| who.clone())
                    .find(|who| Some(who.as_str()) != not)
                    .ok_or_else(|| format!("{} samples, last {:?}", s.len(), s.last()))
            },
        )
    }

    /// Why the attempts after `since` failed (`-ConnectionResetError`, …).
    fn errors(&self, since: f64) -> Vec<String> {
        std::fs::read_to_string(&self.file)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let (t, who) = line.split_once(' ')?;
                (t.parse::<f64>().ok()? >= since && who.starts_with('-')).then(|| who.to_string())
            })
            .collect()
    }

    /// The longest time without an answer after `since` (counting from `since`), and how
    /// many attempts failed.
    fn gap(&self, since: f64) -> (Duration, usize) {
        let s = self.samples(since);
        let mut last = since;
        let mut gap: f64 = 0.0;
        let mut lost = 0;
        for (t, who) in &s {
            if who.is_some() {
                gap = gap.max(t - last);
                last = *t;
            } else {
                lost += 1;
            }
        }
        (Duration::from_secs_f64(gap), lost)
    }
}

fn node_of<'a>(l: &'a L2Lab, name: &str) -> &'a L2Node {
    l.node(name)
}

#[test]
fn gossip_failover_sticky_restart_and_planned_stop() {
    let mut l = L2Lab::start_with("flgos", 61, true);
    for n in &l.nodes {
        let daemon = &n.daemon;
        wait_for(
            &format!("{} to see both other members", n.name),
            Duration::from_secs(15),
            || {
                let up = daemon.log_text().matches("gossip member up").count();
                if up >= 2 {
                    Ok(())
                } else {
                    Err(format!("{up} members up"))
                }
            },
        );
    }
    let endpoints: Vec<Ep<'_>> = NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: true,
        })
        .collect();
    apply_objects(
        &l.api,
        &[
            l2_service("web", false, &[]),
            endpoint_slice("web", false, &endpoints),
        ],
    );
    let address = wait_allocated(&l.api, &["web"], Duration::from_secs(30))["web"].ingress[0];
    // Nobody claims it yet: the ranking decides.
    let first = hash_owner(&NODES, address).to_string();
    let probe = Probe::start(&l, address);
    let who = probe.wait_answer(0.0, None, Duration::from_secs(20));
    assert_eq!(who, first, "the first owner is the best-ranked node");

    // (a) kill -9 the owner's daemon and pull its cable.
    let t0 = now();
    l.lab.kill(node_of(&l, &first).daemon.proc);
    l.lab.cable(&node_of(&l, &first).host, false);
    let second = probe.wait_answer(t0, Some(&first), Duration::from_secs(10));
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != first).collect();
    assert_eq!(
        second,
        hash_owner(&others, address),
        "the next-ranked node takes over"
    );
    std::thread::sleep(Duration::from_millis(500));
    let (gap, lost) = probe.gap(t0);
    println!(
        "(a) kill -9 + cable pulled: {first} -> {second}; no answer for {} ms ({lost} failed attempts {:?})",
        gap.as_millis(),
        probe.errors(t0)
    );
    assert!(gap < Duration::from_secs(5), "gap {gap:?}");

    // (c) the killed node returns; sticky failback: it does not take the address back,
    // though it ranks first.
    l.lab.cable(&node_of(&l, &first).host, true);
    let t_restart = now();
    let host = node_of(&l, &first).host.clone();
    let config = node_of(&l, &first).config.clone();
    let daemon = l.lab.start_ferrolb(&host, &config);
    l.lab.wait_for_log(
        &daemon,
        "joined the gossip cluster",
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<Option<String>> = probe
        .samples(t_restart)
        .into_iter()
        .map(|(_, w)| w)
        .collect();
    assert!(!after.is_empty());
    assert!(
        after.iter().all(|w| w.as_deref() == Some(second.as_str())),
        "after {first} returned, every answer comes from {second}: {:?}",
        after
            .iter()
            .filter(|w| w.as_deref() != Some(second.as_str()))
            .take(5)
            .collect::<Vec<_>>()
    );
    println!(
        "(c) {first} restarted: {} attempts in the next 3 s, all answered by {second}",
        after.len()
    );
    let restarted = l
        .nodes
        .iter_mut()
        .find(|n| n.name == first)
        .expect("the restarted node");
    restarted.daemon = daemon;

    // (b) SIGTERM the owner: it leaves, keeps answering until another member claims the
    // address, then stops.
    let t1 = now();
    let owner = node_of(&l, &second).daemon.proc;
    l.lab.signal(owner, "TERM");
    wait_for(
        "the stopped daemon to exit",
        Duration::from_secs(15),
        || {
            if l.lab.running(owner) {
                Err("running".into())
            } else {
                Ok(())
            }
        },
    );
    let third = probe.wait_answer(t1, Some(&second), Duration::from_secs(10));
    // Long enough for the client's requests to reach past the stopped daemon's last answer.
    std::thread::sleep(Duration::from_secs(2));
    let (gap, lost) = probe.gap(t1);
    let attempts = probe.samples(t1).len();
    let log = node_of(&l, &second).daemon.log_text();
    let handover = log
        .lines()
        .find(|line| line.contains("handed the addresses over"))
        .unwrap_or("(no handover line)")
        .to_string();
    println!(
        "(b) SIGTERM to {second}: {third} took over; {lost} of {attempts} attempts lost {:?}, longest gap {} ms; {handover}",
        probe.errors(t1),
        gap.as_millis()
    );
    assert!(handover.contains("not_taken_over=0"), "{handover}");
    // Not always 0: a connection whose handshake went to the old owner and whose request
    // reaches the new one after the client's neighbour entry moved is reset by the new
    // owner (it has no such connection). The address itself is never dark.
    assert!(lost <= 2, "{lost} requests lost during a planned stop");
    assert!(
        gap < Duration::from_secs(1),
        "gap {gap:?} during a planned stop"
    );

    // (d) SIGUSR1 drains the owner: the last other node takes over; the drained daemon keeps
    // running (it stops answering only after the 30 s grace, not waited for here).
    let last = NODES
        .iter()
        .copied()
        .find(|n| *n != second && *n != third)
        .expect("a third node");
    let t2 = now();
    let drained = node_of(&l, &third).daemon.proc;
    l.lab.signal(drained, "USR1");
    let fourth = probe.wait_answer(t2, Some(&third), Duration::from_secs(10));
    assert_eq!(fourth, last);
    let (gap, lost) = probe.gap(t2);
    println!(
        "(d) SIGUSR1 to {third}: {fourth} took over; {lost} attempts lost {:?}, longest gap {} ms",
        probe.errors(t2),
        gap.as_millis()
    );
    assert!(l.lab.running(drained), "a drained daemon keeps running");
    assert!(node_of(&l, &third)
        .daemon
        .log_text()
        .contains("SIGUSR1: draining"));
    l.lab.kill(probe.proc);
}
