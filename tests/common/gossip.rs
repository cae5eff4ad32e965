//! The set-up shared by the gossip end-to-end tests and the failover benchmark: wait until
//! every daemon of an [`L2Lab`] sees the other members up in gossip, then create the Service
//! `web` with a ready endpoint on every node; and who answers ARP for it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::e2e::wait_allocated;
use super::l2::{apply_objects, endpoint_slice, l2_service, senders, Ep, L2Lab, NODES};
use super::netlab::{wait_for, Daemon};

/// How long a daemon may take to see the others after it started.
const MEMBERS_UP: Duration = Duration::from_secs(20);

/// Waits until `daemon` (node `name`) logged every other node of the lab up in gossip.
pub fn wait_members_up(daemon: &Daemon, name: &str) {
    let others = NODES.len() - 1;
    wait_for(
        &format!("{name} to see the {others} other members"),
        MEMBERS_UP,
        || {
            let up = daemon.log_text().matches("gossip member up").count();
            if up >= others {
                Ok(())
            } else {
                Err(format!("{up} members up"))
            }
        },
    );
}

/// Waits until every daemon of the lab sees all the others up.
pub fn wait_all_members_up(l: &L2Lab) {
    for n in &l.nodes {
        wait_members_up(&n.daemon, &n.name);
    }
}

/// Creates (or re-applies) the Service `web` with a ready endpoint on every node; its
/// allocated address.
pub fn apply_web(l: &L2Lab) -> IpAddr {
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
    wait_allocated(&l.api, &["web"], Duration::from_secs(30))["web"].ingress[0]
}

/// Both steps: the members see each other, then `web` exists; its address.
pub fn gossip_web(l: &L2Lab) -> IpAddr {
    wait_all_members_up(l);
    apply_web(l)
}

/// Captures on the LAN while the client sends `requests` ARP requests for `address`; the MACs
/// that replied to the client (every reply addressed to it).
pub fn replies(l: &L2Lab, name: &str, address: IpAddr, requests: u32) -> BTreeSet<String> {
    let capture = l.capture_arp(name);
    for _ in 0..requests {
        l.arping(address, 1, Duration::from_millis(400));
    }
    let frames = capture.stop();
    let client = l.client_mac.clone();
    senders(&frames, |f| f.is_reply_for(address) && f.dst == client)
}

/// The MACs named after their nodes.
pub fn names(l: &L2Lab, macs: &BTreeSet<String>) -> Vec<String> {
    macs.iter().map(|m| l.who(m)).collect()
}

/// Polls arping until `stable` consecutive requests in a row are each answered by exactly one
/// MAC, the same one; returns it and how long after `since` the first of them was sent.
pub fn converge(l: &L2Lab, address: IpAddr, since: Instant, stable: usize) -> (String, Duration) {
    let mut run: Vec<(Instant, String)> = Vec::new();
    wait_for(
        "exactly one MAC answering, several times in a row",
        Duration::from_secs(20),
        || {
            let t = Instant::now();
            let macs: BTreeSet<String> = l
                .arping(address, 1, Duration::from_millis(400))
                .into_iter()
                .collect();
            match macs.iter().next() {
                Some(mac) if macs.len() == 1 => {
                    if run.last().is_some_and(|(_, m)| m != mac) {
                        run.clear();
                    }
                    run.push((t, mac.clone()));
                }
                _ => run.clear(),
            }
            match run.first() {
                Some((t0, mac)) if run.len() >= stable => Ok((mac.clone(), *t0 - since)),
                _ => Err(format!("{} in a row; last {macs:?}", run.len())),
            }
        },
    )
}
