//! End-to-end: a gossip partition while the service LAN stays up. The L2 lab of
//! `gossip_e2e.rs` (three node namespaces running `ferrolb run` with gossip, a client on the
//! LAN), but gossip runs on a separate cluster network (a second bridge, each node's `eth1`),
//! so cutting one node's cluster link isolates it from gossip while the client still reaches
//! every node over the LAN. The client resolves the Service address with arping; ARP captures
//! on the LAN bridge show who answers.
//!
//! Defined behaviour:
//! - Without `l2.require_quorum` (the default), L2 has no referee: during the partition both
//!   sides consider themselves in charge. The isolated owner keeps answering and the majority
//!   side elects another owner, so ARP requests draw replies from two MACs; a client follows
//!   whichever gratuitous ARP or reply it saw last. Once gossip heals, the claims meet and
//!   exactly one owner remains within seconds.
//! - With `l2.require_quorum = true`, a node that sees no strict majority of the known members
//!   stops announcing (log "no quorum"): an isolated owner goes quiet and only the majority
//!   side's new owner answers; after healing, still exactly one owner.
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6`, `tcpdump` and `python3`.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::gossip::{converge, names, replies};
use common::l2::*;
use common::netlab::*;

/// Starts the partitionable lab, waits until every node sees both others in gossip, creates
/// the Service `web` and returns its address and the node that answers for it (the
/// best-ranked one).
fn setup(prefix: &str, n: u8, l2: &str) -> (L2Lab, IpAddr, String) {
    let l = L2Lab::start_opts(
        prefix,
        n,
        &L2Options {
            gossip: true,
            cluster_net: true,
            l2: l2.to_string(),
            ..L2Options::default()
        },
    );
    let address = common::gossip::gossip_web(&l);
    let owner = hash_owner(&NODES, address).to_string();
    let mac = l.wait_arp_answer(address, Duration::from_secs(20));
    assert_eq!(l.who(&mac), l.who(&l.node(&owner).mac), "the first owner");
    (l, address, owner)
}

#[test]
fn partition_without_quorum_two_owners_then_one() {
    let (l, address, owner) = setup("fgpa", 71, "");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = hash_owner(&others, address).to_string();
    let (owner_mac, successor_mac) = (l.node(&owner).mac.clone(), l.node(&successor).mac.clone());

    // Cut the owner's gossip; the LAN stays up.
    let t_cut = Instant::now();
    l.cut_gossip(&owner, true);
    wait_for(
        &format!("{successor} to answer for {address} too"),
        Duration::from_secs(10),
        || {
            let macs = l.arping(address, 1, Duration::from_millis(400));
            if macs.contains(&successor_mac) {
                Ok(())
            } else {
                Err(format!("answered by {macs:?}"))
            }
        },
    );
    let elected = t_cut.elapsed();
    let during = replies(&l, "split", address, 5);
    println!(
        "(a) gossip of {owner} cut: {successor} answers too after {} ms; replies during the split from {:?}",
        elected.as_millis(),
        names(&l, &during)
    );
    let both: BTreeSet<String> = [owner_mac.clone(), successor_mac.clone()].into();
    assert_eq!(
        during,
        both,
        "without quorum fencing both sides answer: {:?}",
        names(&l, &during)
    );

    // Heal: exactly one owner must remain, quickly.
    let t_heal = Instant::now();
    let heal_capture = l.capture_arp("heal");
    l.cut_gossip(&owner, false);
    let (winner, took) = converge(&l, address, t_heal, 3);
    let heal_frames = heal_capture.stop();
    let after = replies(&l, "healed", address, 5);
    let gratuitous = senders(&heal_frames, |f| {
        f.is_reply_for(address) && f.dst == "ff:ff:ff:ff:ff:ff" || f.is_gratuitous_request(address)
    });
    println!(
        "(a) gossip healed: one owner ({}) after {} ms; gratuitous ARP since the heal from {:?}; replies afterwards from {:?}",
        l.who(&winner),
        took.as_millis(),
        names(&l, &gratuitous),
        names(&l, &after)
    );
    assert_eq!(
        after,
        BTreeSet::from([winner.clone()]),
        "after healing exactly one node answers: {:?}",
        names(&l, &after)
    );
    assert!(
        took < Duration::from_secs(10),
        "one owner only after {took:?}"
    );
    assert!(both.contains(&winner), "{}", l.who(&winner));
    l.assert_daemons_running();
}

#[test]
fn partition_with_quorum_fences_the_isolated_owner() {
    let (l, address, owner) = setup("fgpq", 72, "require_quorum = true");
    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let successor = hash_owner(&others, address).to_string();
    let successor_mac = l.node(&successor).mac.clone();

    let t_cut = Instant::now();
    l.cut_gossip(&owner, true);
    let isolated = &l.node(&owner).daemon;
    l.lab
        .wait_for_log(isolated, "no quorum", Duration::from_secs(10));
    let fenced = t_cut.elapsed();
    let new = l.wait_arp_answer(address, Duration::from_secs(10));
    let mac = wait_for(
        &format!("{successor} to answer for {address}"),
        Duration::from_secs(10),
        || {
            let macs = l.arping(address, 1, Duration::from_millis(400));
            match macs.as_slice() {
                [mac] if *mac == successor_mac => Ok(mac.clone()),
                _ => Err(format!("answered by {macs:?} (first {new})")),
            }
        },
    );
    let elected = t_cut.elapsed();
    let during = replies(&l, "split", address, 5);
    println!(
        "(b) gossip of {owner} cut: it logged \"no quorum\" after {} ms; {successor} answers alone after {} ms; replies during the split from {:?}",
        fenced.as_millis(),
        elected.as_millis(),
        names(&l, &during)
    );
    assert_eq!(
        during,
        BTreeSet::from([mac]),
        "with quorum fencing only the majority side answers: {:?}",
        names(&l, &during)
    );
    let line = isolated
        .log_text()
        .lines()
        .find(|l| l.contains("no quorum"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.contains("alive=1") && line.contains("known=3"),
        "{line}"
    );

    // Heal. The fenced node regains its majority but must not take the address back: it
    // waits for the others' claims (they rejoin with new boot ids, claims unknown at first),
    // and sticky failback leaves the address with the majority side's owner.
    let t_heal = Instant::now();
    let heal_capture = l.capture_arp("heal");
    l.cut_gossip(&owner, false);
    l.lab
        .wait_for_log(isolated, "quorum regained", Duration::from_secs(10));
    let regained = t_heal.elapsed();
    let (winner, took) = converge(&l, address, t_heal, 3);
    // Long enough for a wrong takeover to show.
    std::thread::sleep(Duration::from_secs(1));
    let heal_frames = heal_capture.stop();
    let healing = senders(&heal_frames, |f| f.is_reply_for(address));
    let after = replies(&l, "healed", address, 5);
    // Whether the fenced node had to wait for the others' claims (it depends on the order in
    // which the members rejoin).
    let hold = isolated
        .log_text()
        .lines()
        .find(|l| l.contains("majority regained"))
        .map_or("no hold: the view had settled".to_string(), |l| {
            l.split_once("INFO ").map_or(l, |(_, r)| r).to_string()
        });
    println!(
        "(b) gossip healed: quorum regained after {} ms ({hold}); one owner ({}) {} ms after the heal; ARP replies while healing from {:?}, afterwards from {:?}",
        regained.as_millis(),
        l.who(&winner),
        took.as_millis(),
        names(&l, &healing),
        names(&l, &after)
    );
    assert_eq!(
        healing,
        BTreeSet::from([successor_mac.clone()]),
        "while healing only the majority side's owner answers: {:?}",
        names(&l, &healing)
    );
    assert_eq!(
        after,
        BTreeSet::from([winner.clone()]),
        "after healing exactly one node answers: {:?}",
        names(&l, &after)
    );
    assert_eq!(
        winner, successor_mac,
        "sticky failback: the majority side's owner keeps the address"
    );
    l.assert_daemons_running();
}
