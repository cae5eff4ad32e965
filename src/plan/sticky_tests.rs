//! Unit tests for the gossip inputs: sticky claims and per-node announceable pools. For
//! node1..node3 the ranking of 10.0.0.1 is node2, node1, node3; of 10.0.0.4 node1, node3,
//! node2 (pinned in `rank.rs`).

use std::collections::{BTreeMap, BTreeSet};

use super::tests::{ip, l2_pool, node, svc};
use super::*;
use crate::config::Failback;

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|n| n.to_string()).collect()
}

fn nodes() -> Vec<PlanNode> {
    vec![node("node1"), node("node2"), node("node3")]
}

fn pools() -> Vec<PlanPool> {
    vec![l2_pool("v4", &["10.0.0.0/24"])]
}

/// The owner of the first entry as `me` sees it, and `me`'s decision.
fn owner_seen_by(
    me: &str,
    alive: &BTreeSet<String>,
    claims: &BTreeMap<IpAddr, BTreeSet<String>>,
    failback: Failback,
) -> (Option<String>, Decision) {
    let services = [svc("default/a", &["10.0.0.1"])];
    let p = plan(&PlanInput {
        node: me,
        pools: &pools(),
        nodes: &nodes(),
        services: &services,
        alive: Some(alive),
        claims: Some(claims),
        announceable: None,
        failback,
    });
    (p.entries[0].owner.clone(), p.entries[0].decision.clone())
}

fn claims(address: &str, by: &[&str]) -> BTreeMap<IpAddr, BTreeSet<String>> {
    BTreeMap::from([(ip(address), names(by))])
}

#[test]
fn sticky_keeps_a_healthy_claimant_when_the_better_ranked_node_returns() {
    // node2 ranks first but node1 took the address over while node2 was away.
    let alive = names(&["node1", "node2", "node3"]);
    let c = claims("10.0.0.1", &["node1"]);
    for me in ["node1", "node2", "node3"] {
        let (owner, decision) = owner_seen_by(me, &alive, &c, Failback::Sticky);
        assert_eq!(owner.as_deref(), Some("node1"), "seen by {me}");
        assert_eq!(decision.is_announce(), me == "node1", "{me}: {decision:?}");
    }
    let (_, decision) = owner_seen_by("node2", &alive, &c, Failback::Sticky);
    assert_eq!(decision, Decision::Skip(Reason::NotOwner));
}

#[test]
fn immediate_ignores_claims() {
    let alive = names(&["node1", "node2", "node3"]);
    let c = claims("10.0.0.1", &["node1"]);
    let (owner, _) = owner_seen_by("node3", &alive, &c, Failback::Immediate);
    assert_eq!(owner.as_deref(), Some("node2"));
}

#[test]
fn a_dead_claimant_is_replaced_by_the_ranking() {
    // node3 claims but is gone from gossip: the ranking (node2 first) decides.
    let alive = names(&["node1", "node2"]);
    let c = claims("10.0.0.1", &["node3"]);
    for me in ["node1", "node2", "node3"] {
        let (owner, _) = owner_seen_by(me, &alive, &c, Failback::Sticky);
        assert_eq!(owner.as_deref(), Some("node2"), "seen by {me}");
    }
    let (_, decision) = owner_seen_by("node3", &alive, &c, Failback::Sticky);
    assert_eq!(decision, Decision::Skip(Reason::NodeNotAlive));
    // An unknown node's claim counts for nothing either.
    let c = claims("10.0.0.1", &["ghost"]);
    let (owner, _) = owner_seen_by("node1", &alive, &c, Failback::Sticky);
    assert_eq!(owner.as_deref(), Some("node2"));
}

#[test]
fn of_several_claimants_the_best_ranked_keeps_the_address() {
    // A handover in flight: node1 and node3 both claim; node1 ranks before node3.
    let alive = names(&["node1", "node2", "node3"]);
    let c = claims("10.0.0.1", &["node3", "node1"]);
    let mut announcers = Vec::new();
    for me in ["node1", "node2", "node3"] {
        let (owner, decision) = owner_seen_by(me, &alive, &c, Failback::Sticky);
        assert_eq!(owner.as_deref(), Some("node1"));
        if decision.is_announce() {
            announcers.push(me);
        }
    }
    assert_eq!(announcers, ["node1"]);
}

#[test]
fn a_node_without_a_usable_interface_is_not_a_candidate_for_l2_pools() {
    let mut bgp = l2_pool("b", &["10.1.0.0/24"]);
    bgp.mode = PlanMode::Bgp;
    let pools = vec![l2_pool("v4", &["10.0.0.0/24"]), bgp];
    let services = [svc("default/a", &["10.0.0.1", "10.1.0.1"])];
    // node2 (first for 10.0.0.1) can announce no pool; node3's metadata is unknown.
    let announceable = BTreeMap::from([
        ("node1".to_string(), names(&["v4"])),
        ("node2".to_string(), BTreeSet::new()),
    ]);
    let alive = names(&["node1", "node2", "node3"]);
    let nodes = nodes();
    let run = |me: &str| {
        plan(&PlanInput {
            node: me,
            pools: &pools,
            nodes: &nodes,
            services: &services,
            alive: Some(&alive),
            claims: None,
            announceable: Some(&announceable),
            failback: Failback::Sticky,
        })
    };
    let p = run("node2");
    let l2 = &p.entries[0];
    assert_eq!(l2.decision, Decision::Skip(Reason::NoUsableInterface));
    assert_eq!(l2.owner.as_deref(), Some("node1"));
    assert_eq!(Reason::NoUsableInterface.as_str(), "noUsableInterface");
    // bgp needs no interface: node2 still advertises it.
    assert!(p.entries[1].decision.is_announce());
    assert!(run("node1").entries[0].decision.is_announce());
    assert_eq!(
        run("node3").entries[0].decision,
        Decision::Skip(Reason::NotOwner)
    );
}

#[test]
fn a_planner_with_claims_plans_like_plan() {
    let alive = names(&["node1", "node2", "node3"]);
    let services = [
        svc("default/a", &["10.0.0.1"]),
        svc("default/b", &["10.0.0.4"]),
    ];
    let pools = pools();
    let nodes = nodes();
    let mut planner = Planner::new();
    for c in [
        BTreeMap::new(),
        claims("10.0.0.1", &["node3"]),
        claims("10.0.0.4", &["node2"]),
        BTreeMap::new(),
    ] {
        let input = PlanInput {
            node: "node1",
            pools: &pools,
            nodes: &nodes,
            services: &services,
            alive: Some(&alive),
            claims: Some(&c),
            announceable: None,
            failback: Failback::Sticky,
        };
        assert_eq!(planner.plan(&input), plan(&input));
    }
}
