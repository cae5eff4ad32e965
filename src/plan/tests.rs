//! Unit tests for every rule and reason of the plan (see the module doc of `plan`). Owners
//! come from the ranking vectors pinned in `rank.rs` (computed outside Rust): for node1..node3,
//! 10.0.0.1 → node2, node1, node3; 10.0.0.4 → node1, node3, node2; fd00:10::1 → node3, node1,
//! node2; 10.1.0.1 is in the bgp pool.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::*;

pub(crate) fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(crate) fn node(name: &str) -> PlanNode {
    PlanNode {
        name: name.into(),
        labels: BTreeMap::new(),
        ready: Some(true),
        network_unavailable: false,
    }
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> PlanNode {
    let mut n = node(name);
    n.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    n
}

fn three() -> Vec<PlanNode> {
    vec![node("node1"), node("node2"), node("node3")]
}

pub(crate) fn l2_pool(name: &str, ranges: &[&str]) -> PlanPool {
    PlanPool {
        name: name.into(),
        ranges: ranges.iter().map(|r| r.parse().unwrap()).collect(),
        mode: PlanMode::L2 {
            interfaces: Vec::new(),
        },
        node_selector: BTreeMap::new(),
    }
}

/// An l2 pool `v4` (10.0.0.0/24), an l2 pool `v6` (fd00:10::/120), a bgp pool `b`
/// (10.1.0.0/24).
fn pools() -> Vec<PlanPool> {
    let mut bgp = l2_pool("b", &["10.1.0.0/24"]);
    bgp.mode = PlanMode::Bgp;
    vec![
        l2_pool("v4", &["10.0.0.0/24"]),
        l2_pool("v6", &["fd00:10::/120"]),
        bgp,
    ]
}

/// A Cluster-policy Service with endpoints on every one of node1..node3.
pub(crate) fn svc(key: &str, addresses: &[&str]) -> PlanService {
    PlanService {
        key: key.into(),
        addresses: addresses.iter().map(|a| ip(a)).collect(),
        local_traffic: false,
        endpoint_nodes: ["node1", "node2", "node3"]
            .into_iter()
            .map(String::from)
            .collect(),
    }
}

fn endpoints(mut s: PlanService, nodes: &[&str]) -> PlanService {
    s.endpoint_nodes = nodes.iter().map(|n| n.to_string()).collect();
    s
}

fn local(s: PlanService, nodes: &[&str]) -> PlanService {
    let mut s = endpoints(s, nodes);
    s.local_traffic = true;
    s
}

fn run(
    me: &str,
    pools: &[PlanPool],
    nodes: &[PlanNode],
    services: &[PlanService],
    alive: Option<&BTreeSet<String>>,
) -> Plan {
    plan(&PlanInput {
        node: me,
        pools,
        nodes,
        services,
        alive,
        claims: None,
        announceable: None,
        failback: crate::config::Failback::Sticky,
    })
}

/// The decision of each of `nodes` for the single entry of (`service`, `address`).
fn decisions(
    pools: &[PlanPool],
    nodes: &[PlanNode],
    services: &[PlanService],
    alive: Option<&BTreeSet<String>>,
    address: &str,
) -> Vec<(String, Decision, Option<String>)> {
    nodes
        .iter()
        .map(|n| {
            let p = run(&n.name, pools, nodes, services, alive);
            let e = p
                .entries
                .iter()
                .find(|e| e.address == ip(address))
                .unwrap()
                .clone();
            (n.name.clone(), e.decision, e.owner)
        })
        .collect()
}

fn announce() -> Decision {
    Decision::Announce {
        interfaces: Vec::new(),
    }
}

fn skip(r: Reason) -> Decision {
    Decision::Skip(r)
}

fn owner_of(p: &Plan, address: &str) -> Option<String> {
    p.entries
        .iter()
        .find(|e| e.address == ip(address))
        .and_then(|e| e.owner.clone())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn the_first_ranked_eligible_node_owns_an_l2_address() {
    let services = [svc("default/a", &["10.0.0.1"])];
    let got = decisions(&pools(), &three(), &services, None, "10.0.0.1");
    let owner = Some("node2".to_string());
    assert_eq!(
        got,
        vec![
            ("node1".into(), skip(Reason::NotOwner), owner.clone()),
            ("node2".into(), announce(), owner.clone()),
            ("node3".into(), skip(Reason::NotOwner), owner),
        ]
    );
    let p = run("node2", &pools(), &three(), &services, None);
    assert_eq!(
        p.entries,
        vec![Entry {
            service: "default/a".into(),
            address: ip("10.0.0.1"),
            pool: Some("v4".into()),
            mode: Some(Mode::L2),
            owner: Some("node2".into()),
            decision: announce(),
        }]
    );
    assert_eq!(p.l2(), BTreeMap::from([(ip("10.0.0.1"), vec![])]));
    assert!(p.bgp().is_empty());
}

#[test]
fn both_families_of_a_dual_stack_service_rank_by_the_first_address() {
    // fd00:10::1 alone ranks node3 first; with 10.0.0.4 first, node1 owns both.
    let services = [svc("default/a", &["10.0.0.4", "fd00:10::1"])];
    let p = run("node1", &pools(), &three(), &services, None);
    assert_eq!(owner_of(&p, "10.0.0.4").as_deref(), Some("node1"));
    assert_eq!(owner_of(&p, "fd00:10::1").as_deref(), Some("node1"));
    assert_eq!(
        p.l2().into_keys().collect::<Vec<_>>(),
        vec![ip("10.0.0.4"), ip("fd00:10::1")]
    );
    // Status order decides: IPv6 first, node3 owns both.
    let services = [svc("default/a", &["fd00:10::1", "10.0.0.4"])];
    let p = run("node3", &pools(), &three(), &services, None);
    assert_eq!(p.l2().len(), 2);
    assert_eq!(owner_of(&p, "10.0.0.4").as_deref(), Some("node3"));
}

#[test]
fn an_address_in_no_pool_is_announced_by_nobody() {
    let services = [svc("default/a", &["192.168.1.1", "10.0.0.1"])];
    let p = run("node2", &pools(), &three(), &services, None);
    assert_eq!(
        p.entries[0],
        Entry {
            service: "default/a".into(),
            address: ip("10.0.0.1"),
            pool: Some("v4".into()),
            mode: Some(Mode::L2),
            // Ranked by the first address, 192.168.1.1, though that one is in no pool.
            owner: rank::owner(["node1", "node2", "node3"], ip("192.168.1.1")).map(String::from),
            decision: if rank::owner(["node1", "node2", "node3"], ip("192.168.1.1"))
                == Some("node2")
            {
                announce()
            } else {
                skip(Reason::NotOwner)
            },
        }
    );
    assert_eq!(
        p.entries[1],
        Entry {
            service: "default/a".into(),
            address: ip("192.168.1.1"),
            pool: None,
            mode: None,
            owner: None,
            decision: skip(Reason::NoPool),
        }
    );
}

#[test]
fn pool_ranges_are_matched_exactly_and_per_family() {
    let pools = vec![
        l2_pool("edges", &["0.0.0.10-0.0.0.20", "10.0.0.0/30"]),
        l2_pool("other", &["10.0.0.8/30"]),
    ];
    let services: Vec<PlanService> = [
        "0.0.0.9",
        "0.0.0.10",
        "0.0.0.20",
        "0.0.0.21",
        "::a",
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.8",
        "10.0.0.11",
        "10.0.0.12",
    ]
    .iter()
    .enumerate()
    .map(|(i, a)| svc(&format!("default/s{i}"), &[a]))
    .collect();
    let p = run("node1", &pools, &three(), &services, None);
    let got: Vec<(String, Option<String>)> = p
        .entries
        .iter()
        .map(|e| (e.address.to_string(), e.pool.clone()))
        .collect();
    let want: Vec<(String, Option<String>)> = [
        ("0.0.0.9", None),
        ("0.0.0.10", Some("edges")),
        ("0.0.0.20", Some("edges")),
        ("0.0.0.21", None),
        ("10.0.0.3", Some("edges")),
        ("10.0.0.4", None),
        ("10.0.0.8", Some("other")),
        ("10.0.0.11", Some("other")),
        ("10.0.0.12", None),
        ("::a", None),
    ]
    .iter()
    .map(|(a, p)| (a.to_string(), p.map(String::from)))
    .collect();
    assert_eq!(got, want);
}

#[test]
fn without_gossip_only_ready_true_nodes_are_eligible() {
    let services = [svc("default/a", &["10.0.0.1"])];
    for ready in [Some(false), None] {
        let mut nodes = three();
        nodes[1].ready = ready; // node2, the first-ranked
        let got = decisions(&pools(), &nodes, &services, None, "10.0.0.1");
        let owner = Some("node1".to_string());
        assert_eq!(
            got,
            vec![
                ("node1".into(), announce(), owner.clone()),
                ("node2".into(), skip(Reason::NodeNotReady), owner.clone()),
                ("node3".into(), skip(Reason::NotOwner), owner),
            ],
            "ready {ready:?}"
        );
    }
}

#[test]
fn with_gossip_alive_members_are_eligible_unless_ready_is_false() {
    let services = [svc("default/a", &["10.0.0.1"])];
    // node2 Ready unknown but alive: eligible, owns.
    let mut nodes = three();
    nodes[1].ready = None;
    let alive = set(&["node1", "node2", "node3"]);
    let p = run("node2", &pools(), &nodes, &services, Some(&alive));
    assert_eq!(p.entries[0].decision, announce());
    // node2 alive but Ready=False: not eligible.
    nodes[1].ready = Some(false);
    let p = run("node2", &pools(), &nodes, &services, Some(&alive));
    assert_eq!(p.entries[0].decision, skip(Reason::NodeNotReady));
    assert_eq!(p.entries[0].owner.as_deref(), Some("node1"));
    // node2 Ready but not alive.
    let alive = set(&["node1", "node3"]);
    let got = decisions(&pools(), &three(), &services, Some(&alive), "10.0.0.1");
    assert_eq!(got[1].1, skip(Reason::NodeNotAlive));
    assert_eq!(got[0].1, announce());
    assert_eq!(got[0].2.as_deref(), Some("node1"));
}

#[test]
fn an_alive_member_without_a_node_object_is_not_eligible() {
    // ghost would rank... whatever it ranks: it is unknown to the API, so it never owns.
    let services = [svc("default/a", &["10.0.0.1"])];
    let alive = set(&["node1", "node3", "ghost"]);
    let nodes = vec![node("node1"), node("node3")];
    for me in ["node1", "node3"] {
        let p = run(me, &pools(), &nodes, &services, Some(&alive));
        assert_eq!(p.entries[0].owner.as_deref(), Some("node1"));
    }
    let p = run("ghost", &pools(), &nodes, &services, Some(&alive));
    assert_eq!(p.entries[0].decision, skip(Reason::NodeUnknown));
}

#[test]
fn this_node_unknown_to_the_api_announces_nothing() {
    let services = [
        svc("default/a", &["10.0.0.1"]),
        svc("default/b", &["10.1.0.1"]),
    ];
    let p = run("node9", &pools(), &three(), &services, None);
    assert!(p
        .entries
        .iter()
        .all(|e| e.decision == skip(Reason::NodeUnknown)));
    assert_eq!(p.entries[0].owner.as_deref(), Some("node2"));
}

#[test]
fn the_exclude_label_excludes_whatever_its_value() {
    let services = [svc("default/a", &["10.0.0.1"])];
    for value in ["", "true", "false"] {
        let nodes = vec![
            node("node1"),
            labelled("node2", &[(EXCLUDE_LABEL, value)]),
            node("node3"),
        ];
        let got = decisions(&pools(), &nodes, &services, None, "10.0.0.1");
        assert_eq!(got[1].1, skip(Reason::NodeExcluded), "value {value:?}");
        assert_eq!(got[0].1, announce());
    }
}

#[test]
fn network_unavailable_nodes_are_not_eligible() {
    let services = [svc("default/a", &["10.0.0.1"])];
    let mut nodes = three();
    nodes[1].network_unavailable = true;
    let got = decisions(&pools(), &nodes, &services, None, "10.0.0.1");
    assert_eq!(got[1].1, skip(Reason::NodeNetworkUnavailable));
    assert_eq!(got[0].1, announce());
}

#[test]
fn the_pools_node_selector_needs_every_pair() {
    let mut pool = l2_pool("sel", &["10.0.0.0/24"]);
    pool.node_selector = [("zone", "a"), ("rack", "1")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let nodes = vec![
        labelled("node1", &[("zone", "a"), ("rack", "1"), ("extra", "x")]),
        labelled("node2", &[("zone", "a")]),
        labelled("node3", &[("zone", "a"), ("rack", "2")]),
    ];
    let services = [svc("default/a", &["10.0.0.1"])];
    let got = decisions(&[pool], &nodes, &services, None, "10.0.0.1");
    let owner = Some("node1".to_string());
    assert_eq!(
        got,
        vec![
            ("node1".into(), announce(), owner.clone()),
            ("node2".into(), skip(Reason::NodeNotSelected), owner.clone()),
            ("node3".into(), skip(Reason::NodeNotSelected), owner),
        ]
    );
}

#[test]
fn an_empty_selector_selects_every_node() {
    assert!(selects(&BTreeMap::new(), &BTreeMap::new()));
    let labels = BTreeMap::from([("a".to_string(), "1".to_string())]);
    assert!(selects(&BTreeMap::new(), &labels));
    assert!(selects(&labels, &labels));
    let other = BTreeMap::from([("a".to_string(), "2".to_string())]);
    assert!(!selects(&other, &labels));
}

#[test]
fn a_service_without_endpoints_is_announced_by_nobody() {
    for policy_local in [false, true] {
        let mut s = endpoints(svc("default/a", &["10.0.0.1", "10.1.0.1"]), &[]);
        s.local_traffic = policy_local;
        for n in three() {
            let p = run(&n.name, &pools(), &three(), std::slice::from_ref(&s), None);
            for e in &p.entries {
                assert_eq!(e.decision, skip(Reason::NoEndpoints), "{}", n.name);
                assert_eq!(e.owner, None);
            }
        }
    }
}

#[test]
fn local_traffic_is_announced_only_by_nodes_with_an_endpoint() {
    // 10.0.0.1 ranks node2 first, but only node3 holds an endpoint.
    let services = [local(svc("default/a", &["10.0.0.1"]), &["node3"])];
    let got = decisions(&pools(), &three(), &services, None, "10.0.0.1");
    let owner = Some("node3".to_string());
    assert_eq!(
        got,
        vec![
            (
                "node1".into(),
                skip(Reason::NoLocalEndpoints),
                owner.clone()
            ),
            (
                "node2".into(),
                skip(Reason::NoLocalEndpoints),
                owner.clone()
            ),
            ("node3".into(), announce(), owner),
        ]
    );
    // Endpoints on node1 and node3: the better ranked of the two.
    let services = [local(svc("default/a", &["10.0.0.1"]), &["node1", "node3"])];
    let got = decisions(&pools(), &three(), &services, None, "10.0.0.1");
    assert_eq!(got[0].1, announce());
    assert_eq!(got[1].1, skip(Reason::NoLocalEndpoints));
    assert_eq!(got[2].1, skip(Reason::NotOwner));
}

#[test]
fn local_endpoints_only_on_ineligible_nodes_leave_the_address_dark() {
    let mut nodes = three();
    nodes[2].ready = Some(false);
    // The endpoint is on node3 (not ready) and on an unknown node.
    let services = [local(svc("default/a", &["10.0.0.1"]), &["node3", "ghost"])];
    let got = decisions(&pools(), &nodes, &services, None, "10.0.0.1");
    assert_eq!(
        got,
        vec![
            ("node1".into(), skip(Reason::NoEligibleNode), None),
            ("node2".into(), skip(Reason::NoEligibleNode), None),
            // Its own standing first.
            ("node3".into(), skip(Reason::NodeNotReady), None),
        ]
    );
}

#[test]
fn nobody_eligible_reports_each_nodes_own_standing() {
    let mut nodes = three();
    nodes[0].ready = Some(false);
    nodes[1].labels.insert(EXCLUDE_LABEL.into(), String::new());
    nodes[2].network_unavailable = true;
    let services = [svc("default/a", &["10.0.0.1"])];
    let got = decisions(&pools(), &nodes, &services, None, "10.0.0.1");
    assert_eq!(
        got,
        vec![
            ("node1".into(), skip(Reason::NodeNotReady), None),
            ("node2".into(), skip(Reason::NodeExcluded), None),
            ("node3".into(), skip(Reason::NodeNetworkUnavailable), None),
        ]
    );
}

#[test]
fn reasons_come_in_their_documented_order() {
    let mut pool = l2_pool("sel", &["10.0.0.0/24"]);
    pool.node_selector = BTreeMap::from([("zone".into(), "a".into())]);
    let pools = [pool];
    let me = |f: &dyn Fn(&mut PlanNode)| {
        let mut n = node("node1");
        f(&mut n);
        vec![n, labelled("node2", &[("zone", "a")])]
    };
    // No endpoints anywhere, Local: every node-level reason beats the Service's.
    let s = [local(endpoints(svc("default/a", &["10.0.0.1"]), &[]), &[])];
    let cases: Vec<(Vec<PlanNode>, Reason)> = vec![
        (
            me(&|n| {
                n.ready = Some(false);
                n.labels.insert(EXCLUDE_LABEL.into(), String::new());
                n.network_unavailable = true;
            }),
            Reason::NodeNotReady,
        ),
        (
            me(&|n| {
                n.labels.insert(EXCLUDE_LABEL.into(), String::new());
                n.network_unavailable = true;
            }),
            Reason::NodeExcluded,
        ),
        (
            me(&|n| n.network_unavailable = true),
            Reason::NodeNetworkUnavailable,
        ),
        (me(&|_| {}), Reason::NodeNotSelected),
        (
            me(&|n| {
                n.labels.insert("zone".into(), "a".into());
            }),
            Reason::NoEndpoints,
        ),
    ];
    for (nodes, want) in cases {
        let p = run("node1", &pools, &nodes, &s, None);
        assert_eq!(p.entries[0].decision, skip(want));
    }
    // Unknown beats everything, NoPool beats unknown.
    let s = [svc("default/a", &["10.0.0.1", "10.9.9.9"])];
    let p = run("node9", &pools, &three(), &s, None);
    assert_eq!(p.entries[0].decision, skip(Reason::NodeUnknown));
    assert_eq!(p.entries[1].decision, skip(Reason::NoPool));
}

#[test]
fn a_shared_address_has_one_owner_and_one_announcer() {
    // default/b ranks by 10.0.0.4 (node1), default/a by 10.0.0.1 (node2); they share
    // 10.0.0.4. The holder with the smaller key (default/a) decides the ranking address.
    let services = [
        svc("default/b", &["10.0.0.4"]),
        svc("default/a", &["10.0.0.1", "10.0.0.4"]),
    ];
    let mut announcers = BTreeMap::<IpAddr, Vec<String>>::new();
    for n in three() {
        let p = run(&n.name, &pools(), &three(), &services, None);
        let shared: Vec<&Entry> = p
            .entries
            .iter()
            .filter(|e| e.address == ip("10.0.0.4"))
            .collect();
        assert_eq!(shared.len(), 2);
        assert_eq!(shared[0].service, "default/a");
        assert_eq!(shared[0].owner.as_deref(), Some("node2"));
        assert_eq!(shared[1].owner.as_deref(), Some("node2"));
        for a in p.l2().into_keys() {
            announcers.entry(a).or_default().push(n.name.clone());
        }
    }
    assert_eq!(
        announcers,
        BTreeMap::from([
            (ip("10.0.0.1"), vec!["node2".to_string()]),
            (ip("10.0.0.4"), vec!["node2".to_string()]),
        ])
    );
}

#[test]
fn a_shared_address_is_announced_if_any_holder_has_endpoints() {
    // The lead holder (default/a) has no endpoints; default/b's keep the address up, ranked
    // by default/a's first address.
    let services = [
        endpoints(svc("default/a", &["10.0.0.1"]), &[]),
        svc("default/b", &["10.0.0.1"]),
    ];
    let p = run("node2", &pools(), &three(), &services, None);
    assert_eq!(p.entries.len(), 2);
    assert_eq!(p.entries[0].service, "default/a");
    assert_eq!(p.entries[0].decision, announce());
    assert_eq!(p.entries[1].decision, announce());
    assert_eq!(p.l2(), BTreeMap::from([(ip("10.0.0.1"), vec![])]));
    let p = run("node1", &pools(), &three(), &services, None);
    assert_eq!(p.entries[0].decision, skip(Reason::NoEndpoints));
    assert_eq!(p.entries[1].decision, skip(Reason::NotOwner));
}

#[test]
fn local_holders_of_a_shared_address_pool_their_endpoint_nodes() {
    let services = [
        local(svc("default/a", &["10.0.0.1"]), &["node3"]),
        local(svc("default/b", &["10.0.0.1"]), &["node1"]),
    ];
    // Candidates {node1, node3}: node1 ranks first for 10.0.0.1.
    let got = decisions(&pools(), &three(), &services, None, "10.0.0.1");
    assert_eq!(got[0].1, announce());
    assert_eq!(got[0].2.as_deref(), Some("node1"));
    let p = run("node3", &pools(), &three(), &services, None);
    assert_eq!(p.entries[0].decision, skip(Reason::NotOwner));
    assert_eq!(p.entries[1].decision, skip(Reason::NoLocalEndpoints));
}

#[test]
fn every_eligible_node_advertises_a_bgp_address() {
    let services = [
        svc("default/a", &["10.1.0.1"]),
        local(svc("default/l", &["10.1.0.2"]), &["node3"]),
    ];
    let mut nodes = three();
    nodes[1].ready = Some(false);
    let expect = [
        ("node1", vec![announce(), skip(Reason::NoLocalEndpoints)]),
        (
            "node2",
            vec![skip(Reason::NodeNotReady), skip(Reason::NodeNotReady)],
        ),
        ("node3", vec![announce(), announce()]),
    ];
    for (me, want) in expect {
        let p = run(me, &pools(), &nodes, &services, None);
        let got: Vec<Decision> = p.entries.iter().map(|e| e.decision.clone()).collect();
        assert_eq!(got, want, "{me}");
        assert!(p.entries.iter().all(|e| e.owner.is_none()));
        assert!(p.entries.iter().all(|e| e.mode == Some(Mode::Bgp)));
        assert!(p.l2().is_empty());
        let announced: BTreeSet<IpAddr> = p
            .entries
            .iter()
            .filter(|e| e.decision.is_announce())
            .map(|e| e.address)
            .collect();
        assert_eq!(p.bgp(), announced);
    }
}

#[test]
fn an_l2_pools_interfaces_come_with_the_announcement() {
    let mut pool = l2_pool("v4", &["10.0.0.0/24"]);
    pool.mode = PlanMode::L2 {
        interfaces: vec!["eth1".into(), "bond0".into()],
    };
    let services = [
        svc("default/a", &["10.0.0.1"]),
        svc("default/b", &["10.0.0.1"]),
    ];
    let p = run("node2", &[pool], &three(), &services, None);
    assert_eq!(
        p.entries[0].decision,
        Decision::Announce {
            interfaces: vec!["eth1".into(), "bond0".into()]
        }
    );
    assert_eq!(
        p.l2(),
        BTreeMap::from([(ip("10.0.0.1"), vec!["eth1".into(), "bond0".into()])])
    );
}

#[test]
fn entries_are_sorted_by_address_then_service_one_per_pair() {
    let services = [
        svc("ns/z", &["fd00:10::1", "10.0.0.2"]),
        svc("ns/b", &["10.0.0.2", "10.0.0.2"]),
        svc("ns/a", &["10.0.0.3"]),
        svc("ns/empty", &[]),
    ];
    let p = run("node1", &pools(), &three(), &services, None);
    let got: Vec<(String, &str)> = p
        .entries
        .iter()
        .map(|e| (e.address.to_string(), e.service.as_str()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("10.0.0.2".to_string(), "ns/b"),
            ("10.0.0.2".to_string(), "ns/z"),
            ("10.0.0.3".to_string(), "ns/a"),
            ("fd00:10::1".to_string(), "ns/z"),
        ]
    );
}

#[test]
fn a_repeated_node_object_counts_once_first_wins() {
    let mut stale = node("node2");
    stale.ready = Some(false);
    let nodes = vec![node("node1"), node("node2"), stale, node("node3")];
    let services = [svc("default/a", &["10.0.0.1"])];
    let p = run("node2", &pools(), &nodes, &services, None);
    assert_eq!(p.entries[0].decision, announce());
}

#[test]
fn nothing_in_nothing_out() {
    let p = run("node1", &[], &[], &[], None);
    assert_eq!(p, Plan::default());
    assert!(p.l2().is_empty() && p.bgp().is_empty());
}

#[test]
fn reason_names_are_stable_camel_case() {
    let names = [
        (Reason::NoPool, "noPool"),
        (Reason::NodeUnknown, "nodeUnknown"),
        (Reason::NodeNotAlive, "nodeNotAlive"),
        (Reason::NodeNotReady, "nodeNotReady"),
        (Reason::NodeExcluded, "nodeExcluded"),
        (Reason::NodeNetworkUnavailable, "nodeNetworkUnavailable"),
        (Reason::NodeNotSelected, "nodeNotSelected"),
        (Reason::NoEndpoints, "noEndpoints"),
        (Reason::NoEligibleNode, "noEligibleNode"),
        (Reason::NoLocalEndpoints, "noLocalEndpoints"),
        (Reason::NotOwner, "notOwner"),
        (Reason::NoQuorum, "noQuorum"),
    ];
    for (r, s) in names {
        assert_eq!(r.to_string(), s);
        assert_eq!(r.as_str(), s);
    }
}

#[test]
fn node_blocker_follows_liveness_rules() {
    let mut n = node("n");
    assert_eq!(node_blocker(&n, None), None);
    n.ready = None;
    assert_eq!(node_blocker(&n, None), Some(Reason::NodeNotReady));
    assert_eq!(node_blocker(&n, Some(&set(&["n"]))), None);
    assert_eq!(
        node_blocker(&n, Some(&set(&[]))),
        Some(Reason::NodeNotAlive)
    );
    n.ready = Some(false);
    assert_eq!(
        node_blocker(&n, Some(&set(&["n"]))),
        Some(Reason::NodeNotReady)
    );
}

/// Plans of one `Planner` across changes: readiness flips (rankings reused), a node leaves
/// and one joins (rankings recomputed), Services come and go — each equal to `plan`'s.
#[test]
fn a_planner_follows_changes_like_plan() {
    let names = ["a1", "b2", "c3", "d4", "e5", "f6", "g7"];
    let world = |present: &[&str], not_ready: &[&str]| -> Vec<PlanNode> {
        present
            .iter()
            .map(|n| {
                let mut n = node(n);
                n.ready = Some(!not_ready.contains(&n.name.as_str()));
                n
            })
            .collect()
    };
    let services: Vec<PlanService> = (0..64u8)
        .map(|i| {
            let mut s = svc(&format!("ns/s{i:02}"), &[&format!("10.0.0.{i}")]);
            s.endpoint_nodes = names.iter().map(|n| n.to_string()).collect();
            s
        })
        .collect();
    // Rankings are remembered for Services with more than `memo::TOP` candidates.
    let steps: Vec<(Vec<PlanNode>, &[PlanService])> = vec![
        (world(&names[..6], &[]), &services[..]),
        (world(&names[..6], &["a1"]), &services[..]),
        (world(&names[1..], &[]), &services[..]),
        (world(&names[1..], &["d4"]), &services[..40]),
        (world(&names, &[]), &services[20..]),
        (world(&names, &["a1", "b2"]), &services[..]),
        // Few candidates: ranked directly, the remembered rankings are kept for later.
        (world(&names, &["a1", "b2", "c3", "d4"]), &services[..]),
        (world(&names, &["e5"]), &services[..]),
    ];
    let mut planner = Planner::new();
    for (i, (nodes, services)) in steps.iter().enumerate() {
        let input = PlanInput {
            node: "c3",
            pools: &pools(),
            nodes,
            services,
            alive: None,
            claims: None,
            announceable: None,
            failback: crate::config::Failback::Sticky,
        };
        assert_eq!(planner.plan(&input), plan(&input), "step {i}");
    }
}
