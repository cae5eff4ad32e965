//! Property tests: random nodes (readiness, labels, exclusion, network), gossip sets, pools
//! with selectors, and Services with overlapping addresses, traffic policies and endpoints;
//! the plans of all nodes checked against an oracle written from the rules, plus the
//! rendezvous properties (removing or adding a node) and the spread of owners.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::FileFailurePersistence;

use super::tests::{l2_pool, node};
use super::*;

const NAMES: [&str; 8] = ["n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"];

/// The world a plan sees.
#[derive(Debug, Clone)]
struct World {
    pools: Vec<PlanPool>,
    nodes: Vec<PlanNode>,
    services: Vec<PlanService>,
    alive: Option<BTreeSet<String>>,
}

impl World {
    fn plan(&self, me: &str) -> Plan {
        plan(&PlanInput {
            node: me,
            pools: &self.pools,
            nodes: &self.nodes,
            services: &self.services,
            alive: self.alive.as_ref(),
        })
    }

    /// address → owner, from any node's plan (the owner does not depend on who asks).
    fn owners(&self) -> BTreeMap<IpAddr, Option<String>> {
        self.plan("n0")
            .entries
            .into_iter()
            .filter(|e| e.mode == Some(Mode::L2))
            .map(|e| (e.address, e.owner))
            .collect()
    }
}

/// l2 `a` = 10.0.0.0/29 (maybe selecting zone=a), l2 `b` = fd00::/125 on eth1, bgp `c` =
/// 10.1.0.0/29. Addresses also come from 10.2.0.0/29, in no pool.
fn pools() -> impl Strategy<Value = Vec<PlanPool>> {
    any::<bool>().prop_map(|select_a| {
        let mut a = l2_pool("a", &["10.0.0.0/29"]);
        if select_a {
            a.node_selector = BTreeMap::from([("zone".into(), "a".into())]);
        }
        let mut b = l2_pool("b", &["fd00::/125"]);
        b.mode = PlanMode::L2 {
            interfaces: vec!["eth1".into()],
        };
        let mut c = l2_pool("c", &["10.1.0.0/29"]);
        c.mode = PlanMode::Bgp;
        vec![a, b, c]
    })
}

fn address() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        4 => (0u8..6).prop_map(|i| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i))),
        3 => (0u16..6).prop_map(|i| IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i))),
        2 => (0u8..4).prop_map(|i| IpAddr::V4(Ipv4Addr::new(10, 1, 0, i))),
        1 => (0u8..2).prop_map(|i| IpAddr::V4(Ipv4Addr::new(10, 2, 0, i))),
    ]
}

fn a_node(name: &'static str) -> impl Strategy<Value = PlanNode> {
    (
        select(vec![Some(true), Some(true), Some(true), Some(false), None]),
        select(vec!["a", "b"]),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.1),
    )
        .prop_map(move |(ready, zone, excluded, unavailable)| {
            let mut n = node(name);
            n.ready = ready;
            n.labels.insert("zone".into(), zone.into());
            if excluded {
                n.labels.insert(EXCLUDE_LABEL.into(), "true".into());
            }
            n.network_unavailable = unavailable;
            n
        })
}

fn nodes() -> impl Strategy<Value = Vec<PlanNode>> {
    (1usize..=NAMES.len()).prop_flat_map(|n| {
        NAMES[..n]
            .iter()
            .map(|&name| a_node(name))
            .collect::<Vec<_>>()
    })
}

fn service(i: usize) -> impl Strategy<Value = PlanService> {
    let endpoint_names: Vec<&str> = NAMES.iter().copied().chain(["ghost"]).collect();
    (
        proptest::collection::vec(address(), 1..3),
        proptest::bool::weighted(0.4),
        subsequence(endpoint_names.clone(), 0..=endpoint_names.len()),
        proptest::bool::weighted(0.1),
    )
        .prop_map(move |(addresses, local, eps, none)| PlanService {
            key: format!("ns/s{i:02}"),
            addresses,
            local_traffic: local,
            endpoint_nodes: if none {
                BTreeSet::new()
            } else {
                eps.into_iter().map(String::from).collect()
            },
        })
}

fn world() -> impl Strategy<Value = World> {
    (
        pools(),
        nodes(),
        (0usize..16).prop_flat_map(|n| (0..n).map(service).collect::<Vec<_>>()),
        proptest::option::of(subsequence(
            NAMES.iter().copied().chain(["ghost"]).collect::<Vec<_>>(),
            0..=NAMES.len() + 1,
        )),
    )
        .prop_map(|(pools, nodes, services, alive)| World {
            pools,
            nodes,
            services,
            alive: alive.map(|a| a.into_iter().map(String::from).collect()),
        })
}

// === The oracle: the rules written out naively ===

fn pool_of(w: &World, a: IpAddr) -> Option<&PlanPool> {
    w.pools
        .iter()
        .find(|p| p.ranges.iter().any(|r| r.contains(a)))
}

/// This node's own standing for `pool`, in the documented order.
fn standing(w: &World, me: &str, pool: &PlanPool) -> Result<(), Reason> {
    let Some(n) = w.nodes.iter().find(|n| n.name == me) else {
        return Err(Reason::NodeUnknown);
    };
    match &w.alive {
        None if n.ready != Some(true) => return Err(Reason::NodeNotReady),
        Some(set) if !set.contains(me) => return Err(Reason::NodeNotAlive),
        Some(_) if n.ready == Some(false) => return Err(Reason::NodeNotReady),
        _ => {}
    }
    if n.labels.contains_key(EXCLUDE_LABEL) {
        return Err(Reason::NodeExcluded);
    }
    if n.network_unavailable {
        return Err(Reason::NodeNetworkUnavailable);
    }
    if pool
        .node_selector
        .iter()
        .any(|(k, v)| n.labels.get(k) != Some(v))
    {
        return Err(Reason::NodeNotSelected);
    }
    Ok(())
}

fn eligible(w: &World, me: &str, pool: &PlanPool, s: &PlanService) -> bool {
    standing(w, me, pool).is_ok()
        && !s.endpoint_nodes.is_empty()
        && (!s.local_traffic || s.endpoint_nodes.contains(me))
}

fn holders(w: &World, a: IpAddr) -> Vec<&PlanService> {
    let mut hs: Vec<&PlanService> = w
        .services
        .iter()
        .filter(|s| s.addresses.contains(&a))
        .collect();
    hs.sort_by(|x, y| x.key.cmp(&y.key));
    hs
}

/// The owner of l2 address `a` (`None` if it is not in an l2 pool or nobody is eligible).
fn oracle_owner(w: &World, a: IpAddr) -> Option<String> {
    let pool = pool_of(w, a)?;
    if pool.mode == PlanMode::Bgp {
        return None;
    }
    let hs = holders(w, a);
    let candidates: Vec<&str> = w
        .nodes
        .iter()
        .map(|n| n.name.as_str())
        .filter(|n| hs.iter().any(|s| eligible(w, n, pool, s)))
        .collect();
    rank::owner(candidates, hs.first()?.addresses[0]).map(String::from)
}

fn oracle_decision(w: &World, me: &str, s: &PlanService, a: IpAddr) -> Decision {
    let Some(pool) = pool_of(w, a) else {
        return Decision::Skip(Reason::NoPool);
    };
    let owner = oracle_owner(w, a);
    let announce = match &pool.mode {
        PlanMode::L2 { interfaces } if owner.as_deref() == Some(me) => Some(interfaces.clone()),
        PlanMode::Bgp if eligible(w, me, pool, s) => Some(Vec::new()),
        _ => None,
    };
    if let Some(interfaces) = announce {
        return Decision::Announce { interfaces };
    }
    let l2 = pool.mode != PlanMode::Bgp;
    Decision::Skip(if let Err(r) = standing(w, me, pool) {
        r
    } else if s.endpoint_nodes.is_empty() {
        Reason::NoEndpoints
    } else if l2 && owner.is_none() {
        Reason::NoEligibleNode
    } else if s.local_traffic && !s.endpoint_nodes.contains(me) {
        Reason::NoLocalEndpoints
    } else {
        Reason::NotOwner
    })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 512,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// Every node's plan matches the oracle entry by entry, and each l2 address is announced by
    /// exactly one node when any node is eligible for it (by none otherwise), with every plan
    /// and every holder naming the same owner.
    #[test]
    fn exactly_one_owner_whenever_any_node_is_eligible(w in world()) {
        let mut announcers: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
        let mes: Vec<&str> = NAMES.iter().copied().chain(["ghost"]).collect();
        for me in mes {
            let p = w.plan(me);
            let mut want: Vec<(IpAddr, &str)> = w
                .services
                .iter()
                .flat_map(|s| s.addresses.iter().map(move |&a| (a, s.key.as_str())))
                .collect();
            want.sort();
            want.dedup();
            let got: Vec<(IpAddr, &str)> =
                p.entries.iter().map(|e| (e.address, e.service.as_str())).collect();
            prop_assert_eq!(got, want, "one entry per (address, Service), sorted");
            for e in &p.entries {
                let s = w.services.iter().find(|s| s.key == e.service).unwrap();
                prop_assert_eq!(&e.decision, &oracle_decision(&w, me, s, e.address), "{} {} on {}", e.service, e.address, me);
                prop_assert_eq!(&e.owner, &oracle_owner(&w, e.address));
                prop_assert_eq!(e.pool.as_deref(), pool_of(&w, e.address).map(|p| p.name.as_str()));
            }
            for a in p.l2().into_keys() {
                announcers.entry(a).or_default().insert(me.to_string());
            }
        }
        for (a, owner) in w.owners() {
            let pool = pool_of(&w, a).unwrap();
            let anyone = w.nodes.iter().any(|n| holders(&w, a).iter().any(|s| eligible(&w, &n.name, pool, s)));
            let who = announcers.remove(&a).unwrap_or_default();
            if anyone {
                prop_assert_eq!(who.len(), 1, "{} announced by {:?}", a, who);
                prop_assert_eq!(who.first().cloned(), owner);
            } else {
                prop_assert!(who.is_empty() && owner.is_none());
            }
        }
        prop_assert!(announcers.is_empty(), "announced outside l2 pools: {:?}", announcers);
    }

    /// Removing a node moves only the addresses it owned.
    #[test]
    fn removing_a_node_moves_only_its_addresses(w in world(), k in select(NAMES.to_vec())) {
        let before = w.owners();
        let mut after_w = w.clone();
        after_w.nodes.retain(|n| n.name != k);
        if let Some(alive) = &mut after_w.alive {
            alive.remove(k);
        }
        let after = after_w.owners();
        for (a, was) in &before {
            let now = &after[a];
            if was.as_deref() == Some(k) {
                prop_assert_ne!(now.as_deref(), Some(k));
            } else {
                prop_assert_eq!(now, was, "{} moved though {} did not own it", a, k);
            }
        }
    }

    /// Adding a node (maybe with some Services' endpoints) moves only what it now wins.
    #[test]
    fn adding_a_node_moves_only_what_it_wins(
        w in world(),
        new in a_node("new"),
        gets_endpoints in proptest::collection::vec(any::<bool>(), 16),
    ) {
        let before = w.owners();
        let mut after_w = w.clone();
        after_w.nodes.push(new);
        if let Some(alive) = &mut after_w.alive {
            alive.insert("new".into());
        }
        for (s, yes) in after_w.services.iter_mut().zip(gets_endpoints) {
            if yes && !s.endpoint_nodes.is_empty() {
                s.endpoint_nodes.insert("new".into());
            }
        }
        let after = after_w.owners();
        for (a, was) in &before {
            let now = &after[a];
            if now != was {
                prop_assert_eq!(now.as_deref(), Some("new"), "{} moved from {:?} to {:?}", a, was, now);
            }
        }
    }
}

/// 10,000 addresses over 10 nodes: every node owns close to a tenth.
#[test]
fn owners_spread_evenly() {
    let nodes: Vec<PlanNode> = (0..10).map(|i| node(&format!("worker-{i}"))).collect();
    let pools = vec![l2_pool("big", &["10.0.0.0/16"])];
    let endpoints: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let services: Vec<PlanService> = (0..10_000u32)
        .map(|i| PlanService {
            key: format!("ns/s{i:05}"),
            addresses: vec![IpAddr::V4(Ipv4Addr::from(
                u32::from(Ipv4Addr::new(10, 0, 0, 0)) + i,
            ))],
            local_traffic: false,
            endpoint_nodes: endpoints.clone(),
        })
        .collect();
    let p = plan(&PlanInput {
        node: "worker-0",
        pools: &pools,
        nodes: &nodes,
        services: &services,
        alive: None,
    });
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for e in &p.entries {
        *counts.entry(e.owner.clone().unwrap()).or_default() += 1;
    }
    assert_eq!(counts.len(), 10);
    let mean = 10_000.0 / 10.0;
    let max = *counts.values().max().unwrap() as f64 / mean;
    let min = *counts.values().min().unwrap() as f64 / mean;
    println!("spread over 10,000 addresses x 10 nodes: max/mean {max:.3}, min/mean {min:.3}, counts {counts:?}");
    assert!(max < 1.1, "max/mean {max}");
    assert!(min > 0.9, "min/mean {min}");
}
