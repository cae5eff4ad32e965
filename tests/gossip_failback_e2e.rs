//! End-to-end: `l2.failback` when the best-ranked node comes back. The partitionable lab of
//! `gossip_partition_e2e.rs` (gossip on a separate cluster network, the client on the LAN,
//! ARP captures on the LAN bridge), with `cluster.sync_timeout = "60s"` so a node that cannot
//! reach the others stays unsynced for the whole test.
//!
//! The owner's daemon is killed (-9) and its cluster link cut; the next-ranked node takes
//! over. The daemon restarts while its link is still cut: it knows the Service from the API
//! and, with `immediate`, would rank first, but it has not synced its gossip state, so it
//! must not answer ARP (the startup gate). Then its link is restored: it syncs and
//! - with `immediate`, takes the address back (only after the log says it synced);
//! - with `sticky` (the default), leaves it with the node that took over.
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6` and `tcpdump`.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::gossip::{converge, gossip_web, names};
use common::l2::*;

/// Starts the lab with `[l2] failback = FAILBACK` and creates `web`; its address and the
/// first owner (the best-ranked node).
fn setup(prefix: &str, n: u8, failback: &str) -> (L2Lab, IpAddr, String) {
    let l = L2Lab::start_opts(
        prefix,
        n,
        &L2Options {
            gossip: true,
            cluster_net: true,
            l2: format!("failback = \"{failback}\""),
            cluster: "sync_timeout = \"60s\"".into(),
            ..L2Options::default()
        },
    );
    let address = gossip_web(&l);
    let owner = hash_owner(&NODES, address).to_string();
    let (mac, _) = converge(&l, address, Instant::now(), 3);
    assert_eq!(l.who(&mac), l.who(&l.node(&owner).mac), "the first owner");
    (l, address, owner)
}

/// Kills `owner`'s daemon and cuts its gossip; waits until the next-ranked node alone
/// answers; returns that node.
fn fail_owner(l: &L2Lab, address: IpAddr, owner: &str) -> String {
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = hash_owner(&others, address).to_string();
    l.lab.kill(l.node(owner).daemon.proc);
    l.cut_gossip(owner, true);
    let (mac, took) = converge(l, address, Instant::now(), 3);
    assert_eq!(l.who(&mac), l.who(&l.node(&successor).mac), "the successor");
    println!(
        "{owner} killed and cut off: {successor} answers alone after {} ms",
        took.as_millis()
    );
    successor
}

/// Restarts `owner`'s daemon with its gossip still cut (it syncs with the API, not with the
/// cluster) and returns the MACs that sent ARP for `address` on the LAN while the client
/// asked for it five times.
fn restart_unsynced(l: &mut L2Lab, address: IpAddr, owner: &str) -> BTreeSet<String> {
    let node = l.node(owner);
    let daemon = l.lab.start_ferrolb(&node.host, &node.config);
    let capture = l.capture_arp("unsynced");
    for _ in 0..5 {
        l.arping(address, 1, Duration::from_millis(400));
    }
    let frames = capture.stop();
    let log = daemon.log_text();
    assert!(
        !log.contains("gossip state synced") && !log.contains("gossip sync timed out"),
        "{owner} cannot have synced with its gossip cut:\n{log}"
    );
    if let Some(n) = l.nodes.iter_mut().find(|n| n.name == owner) {
        n.daemon = daemon;
    }
    senders(&frames, |f| {
        f.is_reply_for(address) || f.is_gratuitous_request(address)
    })
}

/// When `daemon` first logged a line containing `needle`, in microseconds since the Unix
/// epoch (the log's RFC 3339 timestamps; the same host's clock as the capture's).
fn logged_at_us(daemon: &common::netlab::Daemon, needle: &str) -> u64 {
    let log = daemon.log_text();
    let line = log
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle:?} in the log"));
    let stamp = line.split_whitespace().next().unwrap_or_default();
    let t = humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z'))
        .unwrap_or_else(|e| panic!("log timestamp {stamp:?}: {e}"));
    let since = t
        .duration_since(std::time::UNIX_EPOCH)
        .expect("a time after 1970");
    u64::try_from(since.as_micros()).expect("microseconds fit")
}

/// The owner fails and restarts unsynced, which it must not answer while; returns the node
/// that took over.
fn fail_and_restart(l: &mut L2Lab, address: IpAddr, owner: &str) -> String {
    let successor = fail_owner(l, address, owner);
    let unsynced = restart_unsynced(l, address, owner);
    println!(
        "{owner} restarted, gossip still cut: ARP for {address} from {:?}",
        names(l, &unsynced)
    );
    assert_eq!(
        unsynced,
        BTreeSet::from([l.node(&successor).mac.clone()]),
        "an unsynced node does not answer: {:?}",
        names(l, &unsynced)
    );
    successor
}

/// Restores `owner`'s gossip and waits until it logged its sync; the ARP capture started
/// just before.
fn restore<'a>(l: &'a L2Lab, owner: &str) -> Capture<'a> {
    let capture = l.capture_arp("return");
    l.cut_gossip(owner, false);
    l.lab.wait_for_log(
        &l.node(owner).daemon,
        "gossip state synced",
        Duration::from_secs(15),
    );
    capture
}

#[test]
fn immediate_failback_returns_the_address_only_after_the_sync() {
    let (mut l, address, owner) = setup("fgfi", 73, "immediate");
    let successor = fail_and_restart(&mut l, address, &owner);
    let capture = restore(&l, &owner);
    let (winner, took) = converge(&l, address, Instant::now(), 3);
    let frames = capture.stop();
    let synced = logged_at_us(&l.node(&owner).daemon, "gossip state synced");
    let mac = l.node(&owner).mac.clone();
    // Every ARP frame the returning node sent for the address (replies, gratuitous ARP),
    // in microseconds after its sync (negative: before).
    let after_sync: Vec<i64> = frames
        .iter()
        .filter(|f| f.src == mac && (f.is_reply_for(address) || f.is_gratuitous_request(address)))
        .map(|f| f.unix_us.expect("tcpdump -tt times") as i64 - synced as i64)
        .collect();
    println!(
        "link restored: {owner} synced; {} answers {} ms later; {owner}'s first ARP for {address} {:?} µs after its sync ({} frames)",
        l.who(&winner),
        took.as_millis(),
        after_sync.first(),
        after_sync.len()
    );
    assert_eq!(
        winner, mac,
        "immediate: the best-ranked node takes its address back from {successor}"
    );
    assert!(!after_sync.is_empty(), "{owner} announced its address");
    assert!(
        after_sync.iter().all(|d| *d >= 0),
        "{owner} sent ARP for {address} before its sync: {after_sync:?} µs"
    );
    l.assert_daemons_running();
}

#[test]
fn sticky_failback_leaves_the_address_with_the_node_that_took_over() {
    let (mut l, address, owner) = setup("fgfs", 74, "sticky");
    let successor = fail_and_restart(&mut l, address, &owner);
    drop(restore(&l, &owner).stop());
    // Long enough for a wrong takeover to show.
    std::thread::sleep(Duration::from_secs(2));
    let (winner, _) = converge(&l, address, Instant::now(), 3);
    println!("link restored and synced: {} answers", l.who(&winner));
    assert_eq!(
        winner,
        l.node(&successor).mac,
        "sticky: the address stays with {successor}"
    );
    l.assert_daemons_running();
}

#[test]
fn tcpdump_tt_times_parse() {
    let line = "1732640000.2029 ee:2e:2a:6a:7b:87 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), \
                length 58: Request who-has 10.99.0.2 tell 10.99.0.1, length 44";
    let f = parse_arp_line(line).expect("a request");
    assert_eq!(f.unix_us, Some(1_732_640_000_202_900));
    let time_of_day = line.replacen("1732640000.2029", "13:41:14.202915", 1);
    assert_eq!(
        parse_arp_line(&time_of_day).expect("a request").unix_us,
        None
    );
}
