//! Gossip cost and detection at cluster sizes beyond the lab's three nodes (issue 5): N
//! members in this one process, each with its own UDP socket on 127.0.0.1, at the default
//! timings, encrypted with one shared key.
//!
//! For each size: start the members (all joining the first, 20 ms apart), wait until every view holds all
//! of them with metadata, measure each member's UDP payload sent per second over a quiet
//! window, then stop one member (its task ends: no answer any more) and time until every
//! survivor sees it down. False downs during the quiet window are counted.
//!
//! `cargo bench --bench gossip` runs sizes 3, 10, 30 and 100 (10 s windows, 5 kills each);
//! `-- --sizes 3,100 --window-secs 10 --kills 5 --stagger-ms 20` resizes. Without `--bench` (as `cargo test
//! --benches` runs it): size 3 and 10, a 2 s window, one kill. Nothing is asserted.

#[allow(dead_code)]
#[path = "l2/stats.rs"]
mod stats;

use std::time::Duration;

use ferrolb::config::JoinAddress;
use ferrolb::membership::{
    Key, Keyring, MemberState, Membership, MembershipView, Security, Settings, Timing,
};
use tokio::time::Instant;

fn settings(name: &str, join: Option<std::net::SocketAddr>) -> Settings {
    Settings {
        node: name.to_string(),
        bind: "127.0.0.1:0".parse().expect("literal address"),
        advertise: None,
        security: Security::Keys(Keyring::new(vec![Key::new([7; 32])]).expect("one key")),
        timing: Timing::default(),
        join: join
            .iter()
            .map(|a| JoinAddress {
                host: a.ip().to_string(),
                port: a.port(),
            })
            .collect(),
        fingerprint: [1; 8],
        pools: ["default".to_string()].into(),
    }
}

fn converged(v: &MembershipView, n: usize) -> bool {
    v.members.len() == n
        && v.members
            .values()
            .all(|m| m.state == MemberState::Alive && m.meta_known)
}

async fn start(n: usize, stagger: Duration) -> Option<(Vec<Membership>, Duration)> {
    let t0 = Instant::now();
    let first = Membership::start(settings("m0", None)).await.ok()?;
    let seed = first.identity().addr;
    let mut ms = vec![first];
    for i in 1..n {
        tokio::time::sleep(stagger).await;
        ms.push(
            Membership::start(settings(&format!("m{i}"), Some(seed)))
                .await
                .ok()?,
        );
    }
    let deadline = t0 + Duration::from_secs(120);
    for (i, m) in ms.iter().enumerate() {
        let mut rx = m.view();
        loop {
            if converged(&rx.borrow_and_update(), n) {
                break;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let v = rx.borrow();
                let alive = v.count(MemberState::Alive);
                let meta = v.members.values().filter(|m| m.meta_known).count();
                let downs: u64 = ms.iter().map(|m| m.counters().snapshot().member_down).sum();
                println!(
                    "  {n} members: no convergence within 120 s ({i} views complete; m{i} \
                     knows {} members, {alive} alive, {meta} with metadata; {downs} downs declared in all)",
                    v.members.len()
                );
                return None;
            }
        }
    }
    Some((ms, t0.elapsed()))
}

/// Per-member payload rates over `window`, and members declared down meanwhile.
async fn bandwidth(ms: &[Membership], window: Duration) -> (Vec<f64>, Vec<f64>, u64) {
    let before: Vec<_> = ms.iter().map(|m| m.counters().snapshot()).collect();
    tokio::time::sleep(window).await;
    let secs = window.as_secs_f64();
    let mut bytes = Vec::new();
    let mut packets = Vec::new();
    let mut downs = 0;
    for (m, b) in ms.iter().zip(&before) {
        let c = m.counters().snapshot();
        bytes.push((c.bytes_out - b.bytes_out) as f64 / secs);
        packets.push((c.packets_out - b.packets_out) as f64 / secs);
        downs += c.member_down - b.member_down;
    }
    (bytes, packets, downs)
}

/// Stops the last member; time until every survivor sees it down.
async fn kill_one(ms: &mut Vec<Membership>) -> Option<Duration> {
    let victim = ms.pop()?;
    let name = victim.identity().node.clone();
    let mut views: Vec<_> = ms.iter().map(Membership::view).collect();
    let t0 = Instant::now();
    drop(victim);
    let deadline = t0 + Duration::from_secs(30);
    for rx in &mut views {
        loop {
            let down = rx
                .borrow_and_update()
                .members
                .get(&name)
                .is_none_or(|m| m.state == MemberState::Down);
            if down {
                break;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return None;
            }
        }
    }
    Some(t0.elapsed())
}

fn quantiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let rank = |q: f64| v[((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (rank(0.5), rank(0.99), v[v.len() - 1])
}

fn arg<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1).map(String::as_str)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench");
    let sizes: Vec<usize> = arg(&args, "--sizes")
        .map(|s| s.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or_else(|| {
            if full {
                vec![3, 10, 30, 100]
            } else {
                vec![3, 10]
            }
        });
    let window = Duration::from_secs(
        arg(&args, "--window-secs")
            .and_then(|s| s.parse().ok())
            .unwrap_or(if full { 10 } else { 2 }),
    );
    let kills: usize = arg(&args, "--kills")
        .and_then(|s| s.parse().ok())
        .unwrap_or(if full { 5 } else { 1 });
    let stagger = Duration::from_millis(
        arg(&args, "--stagger-ms")
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    println!("gossip bench: sizes {sizes:?}, {window:?} windows, {kills} kills per size");
    for n in sizes {
        let Some((mut ms, took)) = start(n, stagger).await else {
            continue;
        };
        println!("{n} members: converged in {took:?}");
        let (bytes, packets, downs) = bandwidth(&ms, window).await;
        let (b50, b99, bmax) = quantiles(bytes.clone());
        let (p50, _, pmax) = quantiles(packets);
        let total: f64 = bytes.iter().sum();
        println!(
            "  payload sent per member: p50 {b50:.0} B/s, p99 {b99:.0} B/s, max {bmax:.0} B/s; \
             packets p50 {p50:.1}/s max {pmax:.1}/s; cluster total {:.1} kB/s; \
             members declared down in the window: {downs}",
            total / 1000.0
        );
        let mut detect = Vec::new();
        for _ in 0..kills.min(n.saturating_sub(2)) {
            match kill_one(&mut ms).await {
                Some(d) => detect.push(d),
                None => println!("  a stopped member was not seen down by all within 30 s"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if !detect.is_empty() {
            let s = stats::summary(detect.clone());
            println!(
                "  stop → every survivor sees it down: n={} min {:?} p50 {:?} max {:?} ({:?})",
                s.n, s.min, s.p50, s.max, detect
            );
        }
    }
}
