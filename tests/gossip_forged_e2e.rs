//! End-to-end: forged gossip packets never change membership. The L2 lab with gossip (three
//! node namespaces running `ferrolb run`, encrypted gossip on port 7946); from the client
//! namespace, on the same LAN, an attacker
//! - runs a whole gossip member with a key of its own, joining every node (a rogue or
//!   misconfigured node),
//! - replays real gossip packets captured on the LAN bridge (to the node they were meant for,
//!   and to the others),
//! - sends them truncated, with one bit flipped, and random bytes of every size.
//!
//! Every daemon must drop all of it (logged at debug level with the reason: unknown key,
//! replayed, truncated, failed authentication…), no membership change may be logged, the
//! rogue must see nobody, and the address of a Service must stay where it was.
//!
//! A packet replayed to a node other than the one it was sealed for is fresh to that node's
//! replay window (windows are per receiver); it dies one step later, in foca, which ignores a
//! message addressed to another member (not counted as dropped; nothing changes either).
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6` and `tcpdump`.

mod common;

use std::fs::File;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

use common::gossip::*;
use common::l2::*;
use common::netlab::*;
use ferrolb::config::JoinAddress;
use ferrolb::membership::{Key, Keyring, Membership, Security, Settings, Timing};

/// Log lines that mean membership changed.
const MEMBERSHIP_CHANGES: [&str; 4] = [
    "gossip member",
    "refuted a suspicion",
    "declared down by the cluster",
    "no other gossip member is reachable",
];

fn changes(log: &str) -> usize {
    log.lines()
        .filter(|l| MEMBERSHIP_CHANGES.iter().any(|m| l.contains(m)))
        .count()
}

/// Runs `f` on a thread that entered network namespace `ns` (sockets it opens live there).
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).expect("namespace file");
        // SAFETY: setns on a valid namespace fd; it affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("namespace thread")
}

/// UDP payloads to port 7946 in a pcap file (Ethernet, IPv4), with their destination.
fn gossip_payloads(pcap: &Path) -> Vec<(SocketAddr, Vec<u8>)> {
    let data = std::fs::read(pcap).expect("read capture");
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = u32::from_le_bytes(data[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &data[at + 16..(at + 16 + len).min(data.len())];
        at += 16 + len;
        if frame.len() < 14 + 20 + 8 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ip[9] != 17 || ip.len() < ihl + 8 {
            continue;
        }
        let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let udp = &ip[ihl..];
        let port = u16::from_be_bytes([udp[2], udp[3]]);
        if port == 7946 {
            out.push((SocketAddr::from((dst, port)), udp[8..].to_vec()));
        }
    }
    out
}

#[test]
fn forged_gossip_packets_never_change_membership() {
    require_program("tcpdump");
    // The daemons inherit it: dropped packets are logged (with the reason) at debug level.
    // This file holds one test, so nothing else in the process reads the variable meanwhile.
    std::env::set_var("RUST_LOG", "info,ferrolb::membership=debug");
    let l = L2Lab::start_with("flfgd", 64, true);
    let nodes: Vec<SocketAddr> = l
        .nodes
        .iter()
        .map(|n| SocketAddr::from((n.host.ipv4, 7946)))
        .collect();
    let address = gossip_web(&l);
    let owner = l.wait_arp_answer(address, Duration::from_secs(20));
    // Let the daemons settle (the claim gossiped, the view steady) before counting.
    std::thread::sleep(Duration::from_secs(2));

    // Capture real gossip on the bridge, to replay it.
    let pcap = l.lab.path("gossip.pcap");
    let pcap_arg = pcap.to_string_lossy().into_owned();
    l.lab.exec(
        l.lab.lan(),
        "timeout",
        &[
            "3", "tcpdump", "-i", "br0", "-U", "-w", &pcap_arg, "udp", "port", "7946",
        ],
    );
    let captured = gossip_payloads(&pcap);
    assert!(
        captured.len() > 20,
        "captured {} gossip packets",
        captured.len()
    );

    let before: Vec<usize> = l
        .nodes
        .iter()
        .map(|n| changes(&n.daemon.log_text()))
        .collect();

    // The attack, from the client namespace.
    let client_ip = l.client.ipv4;
    let targets = nodes.clone();
    let (rogue_alone, sent) = in_netns(&l.client.ns, move || {
        let socket = UdpSocket::bind((client_ip, 0)).expect("bind");
        let mut sent = 0usize;
        let mut send = |to: SocketAddr, b: &[u8]| {
            if socket.send_to(b, to).is_ok() {
                sent += 1;
            }
        };
        for (to, p) in &captured {
            // Replays: to the node it was meant for, and to every other node.
            for t in &targets {
                send(*t, p);
            }
            // Truncated, and one bit flipped in the sealed part.
            send(*to, &p[..p.len() / 2]);
            let mut flipped = p.clone();
            let i = flipped.len() - 1 - (flipped.len() / 3);
            flipped[i] ^= 0x01;
            send(*to, &flipped);
        }
        for len in [0usize, 1, 7, 16, 40, 100, 500, 1400, 1500] {
            for t in &targets {
                send(*t, &(0..len).map(|_| fastrand::u8(..)).collect::<Vec<_>>());
            }
        }
        // A rogue member with a key of its own, joining everyone, for 3 seconds.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let alone = rt.block_on(async move {
            let rogue = Membership::start(Settings {
                node: "rogue".into(),
                bind: SocketAddr::from((client_ip, 7946)),
                advertise: None,
                security: Security::Keys(Keyring::new(vec![Key::new([0x5a; 32])]).unwrap()),
                timing: Timing::default(),
                join: targets
                    .iter()
                    .map(|a| JoinAddress {
                        host: a.ip().to_string(),
                        port: a.port(),
                    })
                    .collect(),
                fingerprint: [1; 8],
                pools: ["default".to_string()].into(),
            })
            .await
            .expect("rogue member");
            tokio::time::sleep(Duration::from_secs(3)).await;
            let v = rogue.view().borrow().clone();
            v.members.len() == 1 && !v.connected
        });
        (alone, sent)
    });
    assert!(sent > 100, "only {sent} forged packets sent");
    println!("{sent} forged packets sent, and a rogue member ran for 3 s");
    assert!(rogue_alone, "the rogue member saw a node");

    std::thread::sleep(Duration::from_secs(2));
    l.assert_daemons_running();
    for (n, b) in l.nodes.iter().zip(&before) {
        let log = n.daemon.log_text();
        assert_eq!(
            changes(&log),
            *b,
            "{}: membership changed under forged packets:\n{}",
            n.name,
            tail(&n.daemon.log, 30)
        );
        println!(
            "{}: {} forged packets dropped",
            n.name,
            log.matches("gossip packet dropped").count()
        );
        // Every kind of forgery reached the daemon and was dropped for its reason.
        for reason in [
            "replayed packet",
            "sealed with unknown key",
            "truncated packet",
            "failed authentication",
        ] {
            assert!(
                log.contains(reason),
                "{}: no packet dropped as {reason:?}:\n{}",
                n.name,
                tail(&n.daemon.log, 30)
            );
        }
    }
    assert_eq!(l.wait_arp_answer(address, Duration::from_secs(5)), owner);
}
