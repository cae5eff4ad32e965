//! End-to-end: candidacy follows the interfaces. Gossip runs on a cluster network of its own
//! (the partitionable lab of `gossip_partition_e2e.rs`), so when the owner's LAN interface
//! goes down it stays a live member: it must stop being a candidate for the LAN pools (it
//! publishes that it can announce none of them) and the next-ranked node must take the
//! address, without any other change in the cluster to set a re-plan off. When the interface
//! comes back the node is a candidate again (sticky failback keeps the address where it went).
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6` and `tcpdump`.

mod common;

use std::time::{Duration, Instant};

use common::gossip::*;
use common::l2::*;

#[test]
fn an_owner_that_loses_its_lan_interface_hands_its_address_over() {
    let l = L2Lab::start_opts(
        "flifc",
        67,
        &L2Options {
            gossip: true,
            cluster_net: true,
            ..L2Options::default()
        },
    );
    let address = gossip_web(&l);
    let (mac, _) = converge(&l, address, Instant::now(), 3);
    let owner = l.node_by_mac(&mac).expect("owner is a node");
    let owner_name = owner.name.clone();
    let ns = owner.host.ns.clone();

    let t0 = Instant::now();
    l.lab
        .exec(&ns, "ip", &["link", "set", "eth0", "down"])
        .expect_ok("eth0 down on the owner");
    let (new_mac, took) = converge(&l, address, t0, 3);
    let new_owner = l.node_by_mac(&new_mac).expect("new owner is a node");
    assert_ne!(new_owner.name, owner_name);
    println!(
        "{owner_name} lost eth0; {} answers after {took:?}",
        new_owner.name
    );
    let log = l.node(&owner_name).daemon.log_text();
    assert!(
        !log.contains("gossip member down"),
        "the owner must stay a live member (gossip runs on eth1)"
    );

    // Back up: a candidate again; sticky failback leaves the address where it went.
    l.lab
        .exec(&ns, "ip", &["link", "set", "eth0", "up"])
        .expect_ok("eth0 up on the owner");
    std::thread::sleep(Duration::from_secs(2));
    let (after, _) = converge(&l, address, Instant::now(), 3);
    assert_eq!(
        after, new_mac,
        "sticky: the address stays with the node that took it"
    );
    l.assert_daemons_running();
}
