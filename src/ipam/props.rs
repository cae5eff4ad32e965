//! Property tests: small random pools and up to 40 random Services with requests, pins,
//! sharing keys, ports, traffic policies and families; the allocation rules checked against an
//! independent oracle written from the generated values.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::test_runner::FileFailurePersistence;

use super::tests::Svc;
use super::*;

type Results = BTreeMap<ServiceKey, Result<Assignment, AllocError>>;

/// Pools `p0..`: IPv4 ranges in `10.<i>.0.0/16` that may cross `.255`/`.0`, optional IPv6.
fn pools() -> impl Strategy<Value = Vec<Pool>> {
    proptest::collection::vec(
        (
            248u32..262,
            0u32..9,
            proptest::option::weighted(0.6, 0u32..5),
            any::<bool>(),
            proptest::bool::weighted(0.8),
        ),
        1..4,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (start, len, v6, avoid, auto))| {
                let base = u32::from(Ipv4Addr::new(10, i as u8, 0, 0));
                let mut ranges = vec![IpRange::new(
                    IpAddr::V4(Ipv4Addr::from(base + start)),
                    IpAddr::V4(Ipv4Addr::from(base + start + len)),
                )
                .unwrap()];
                if let Some(n) = v6 {
                    let b = u128::from(Ipv6Addr::new(0xfd00, i as u16, 0, 0, 0, 0, 0, 0));
                    ranges.push(
                        IpRange::new(
                            IpAddr::V6(Ipv6Addr::from(b)),
                            IpAddr::V6(Ipv6Addr::from(b + u128::from(n))),
                        )
                        .unwrap(),
                    );
                }
                Pool::new(format!("p{i}"), ranges)
                    .with_avoid_buggy_ips(avoid)
                    .with_auto_assign(auto)
            })
            .collect()
    })
}

/// An address that may or may not be in a pool.
fn address() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u8..3, 248u32..270).prop_map(|(i, off)| {
            Ipv4Addr::from(u32::from(Ipv4Addr::new(10, i, 0, 0)) + off).to_string()
        }),
        (0u16..3, 0u16..6)
            .prop_map(|(i, n)| Ipv6Addr::new(0xfd00, i, 0, 0, 0, 0, 0, n).to_string()),
    ]
}

fn service(idx: usize) -> impl Strategy<Value = Svc> {
    let stack = select(vec![
        (None, vec![]),
        (Some("SingleStack"), vec!["IPv4"]),
        (Some("SingleStack"), vec!["IPv6"]),
        (Some("PreferDualStack"), vec!["IPv4", "IPv6"]),
        (Some("PreferDualStack"), vec!["IPv6", "IPv4"]),
        (Some("RequireDualStack"), vec!["IPv4", "IPv6"]),
    ]);
    let request = proptest::option::weighted(0.2, proptest::collection::vec(address(), 1..3));
    let pin = proptest::option::weighted(0.15, select(vec!["p0", "p1", "p2", "nope"]));
    let key = proptest::option::weighted(0.5, select(vec!["k1", "k2"]));
    let ports = subsequence(
        vec![("TCP", 80), ("TCP", 81), ("UDP", 80), ("SCTP", 82)],
        1..3,
    );
    let local = proptest::option::weighted(0.3, select(vec!["x", "y"]));
    let current = proptest::collection::vec(address(), 0..3);
    let ns = select(vec!["a", "b"]);
    (stack, request, pin, key, ports, local, current, ns).prop_map(
        move |(stack, request, pin, key, ports, local, current, ns)| {
            let mut s = Svc::new(&format!("s{idx:02}")).ports(&ports);
            s.ns = ns.to_string();
            if let (Some(policy), fams) = stack {
                s = s.stack(policy, &fams);
            }
            if let Some(r) = request {
                s = s.request(&r.join(","));
            }
            if let Some(p) = pin {
                s = s.pool(p);
            }
            if let Some(k) = key {
                s = s.share(k);
            }
            if let Some(app) = local {
                s = s.local(app);
            }
            s.current(&current.iter().map(String::as_str).collect::<Vec<_>>())
        },
    )
}

fn services() -> impl Strategy<Value = Vec<Svc>> {
    (0usize..=40).prop_flat_map(|n| (0..n).map(service).collect::<Vec<_>>())
}

/// A deterministic shuffle (xorshift) from `seed`.
fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for i in (1..items.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        items.swap(i, (state % (i as u64 + 1)) as usize);
    }
}

fn specs(svcs: &[Svc]) -> Vec<ServiceSpec> {
    svcs.iter().map(Svc::spec).collect()
}

/// Every spec with its result written back as its status.
fn fed_back(specs: &[ServiceSpec], results: &Results) -> Vec<ServiceSpec> {
    specs
        .iter()
        .map(|s| {
            let now = match results.get(s.key()) {
                Some(Ok(a)) => a.addresses.clone(),
                _ => Vec::new(),
            };
            s.clone().with_current(now)
        })
        .collect()
}

/// The oracle for sharing, from the generated values.
fn may_share(a: &Svc, b: &Svc) -> bool {
    let key = |s: &Svc| s.ann.get("ferrolb.io/allow-shared-ip").cloned();
    let ports = |s: &Svc| s.ports.iter().cloned().collect::<BTreeSet<_>>();
    key(a).is_some()
        && key(a) == key(b)
        && a.etp == b.etp
        && (a.etp.is_none() || a.selector == b.selector)
        && ports(a).is_disjoint(&ports(b))
}

/// The first pool whose ranges hold `ip`.
fn owner(pools: &[Pool], ip: IpAddr) -> Option<&Pool> {
    pools
        .iter()
        .find(|p| p.ranges.iter().any(|r| r.contains(ip)))
}

fn check_rules(pools: &[Pool], svcs: &[Svc], results: &Results) -> Result<(), TestCaseError> {
    let by_key: BTreeMap<ServiceKey, &Svc> = svcs.iter().map(|s| (s.key(), s)).collect();
    let mut holders: BTreeMap<IpAddr, Vec<&Svc>> = BTreeMap::new();
    for (key, result) in results {
        let Ok(a) = result else { continue };
        let svc = by_key[key];
        let spec = svc.spec();
        prop_assert!(spec.invalid().is_none());
        prop_assert!(!a.addresses.is_empty() && a.addresses.len() <= 2);
        let fams: BTreeSet<Family> = a.addresses.iter().map(|ip| Family::of(*ip)).collect();
        prop_assert_eq!(fams.len(), a.addresses.len(), "one address per family");
        if spec.ip_family_policy() == IpFamilyPolicy::RequireDualStack {
            prop_assert_eq!(a.addresses.len(), 2);
        }
        if !spec.requested().is_empty() {
            let want: BTreeSet<IpAddr> = spec.requested().iter().copied().collect();
            let got: BTreeSet<IpAddr> = a.addresses.iter().copied().collect();
            prop_assert_eq!(want, got, "requests are honoured exactly");
        }
        for &ip in &a.addresses {
            prop_assert!(spec.families().contains(&Family::of(ip)));
            let pool = owner(pools, ip);
            prop_assert!(pool.is_some(), "{} in no pool", ip);
            let pool = pool.unwrap();
            prop_assert_eq!(&pool.name, &a.pool, "all addresses from the named pool");
            match spec.pool() {
                Some(pin) => prop_assert_eq!(pin, pool.name.as_str()),
                None => prop_assert!(pool.auto_assign || !spec.requested().is_empty()),
            }
            prop_assert!(
                !(pool.avoid_buggy_ips && is_buggy_ip(ip)),
                "{} is avoided",
                ip
            );
            holders.entry(ip).or_default().push(svc);
        }
    }
    for (ip, hs) in &holders {
        for (i, a) in hs.iter().enumerate() {
            for b in &hs[i + 1..] {
                prop_assert!(
                    may_share(a, b),
                    "{} held by {} and {}",
                    ip,
                    a.key(),
                    b.key()
                );
            }
        }
    }
    // No over-allocation: distinct addresses per pool and family within its usable size.
    for pool in pools {
        for family in [Family::V4, Family::V6] {
            let usable: u128 = pool
                .ranges
                .iter()
                .filter(|r| r.family() == family)
                .map(|r| {
                    (0..r.size())
                        .filter_map(|n| r.nth(n))
                        .filter(|ip| !(pool.avoid_buggy_ips && is_buggy_ip(*ip)))
                        .count() as u128
                })
                .sum();
            let used = holders
                .keys()
                .filter(|ip| Family::of(**ip) == family && owner(pools, **ip) == Some(pool))
                .count() as u128;
            prop_assert!(
                used <= usable,
                "{} {}: {} > {}",
                pool.name,
                family,
                used,
                usable
            );
        }
    }
    Ok(())
}

proptest! {
    // Failures are saved beside this file (src/ipam/props.proptest-regressions); the case
    // count follows PROPTEST_CASES (default 256).
    #![proptest_config(ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::SourceParallel(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    /// No address is held by two Services that may not share it; every address lies in a pool
    /// that permits it (pin, auto_assign, family, avoided addresses); requests are honoured
    /// exactly; no pool gives out more addresses than it has.
    #[test]
    fn allocations_obey_the_rules(pools in pools(), svcs in services()) {
        let results = allocate_all(&pools, &specs(&svcs));
        prop_assert_eq!(results.len(), svcs.iter().map(Svc::key).collect::<BTreeSet<_>>().len());
        check_rules(&pools, &svcs, &results)?;
    }

    /// Feeding the result back as every Service's status and allocating again changes nothing.
    #[test]
    fn allocation_is_idempotent(pools in pools(), svcs in services()) {
        let specs = specs(&svcs);
        let first = allocate_all(&pools, &specs);
        let second = allocate_all(&pools, &fed_back(&specs, &first));
        prop_assert_eq!(&first, &second);
    }

    /// Removing a Service moves no other Service's addresses: each keeps all it held (a
    /// PreferDualStack Service holding one family may gain the other), and only Services that
    /// had nothing may newly get something.
    #[test]
    fn removing_a_service_moves_no_other(
        pools in pools(),
        svcs in services(),
        pick in any::<proptest::sample::Index>(),
    ) {
        if svcs.is_empty() {
            return Ok(());
        }
        let specs = specs(&svcs);
        let first = allocate_all(&pools, &specs);
        let mut rest = fed_back(&specs, &first);
        let gone = rest.remove(pick.index(rest.len()));
        let second = allocate_all(&pools, &rest);
        for spec in &rest {
            let key = spec.key();
            if key == gone.key() {
                continue;
            }
            if let Some(Ok(before)) = first.get(key) {
                let after = second[key].as_ref().map_err(|e| TestCaseError::fail(format!("{key} lost its addresses: {e}")))?;
                prop_assert_eq!(&before.pool, &after.pool);
                for ip in &before.addresses {
                    prop_assert!(after.addresses.contains(ip), "{} lost {}", key, ip);
                }
                if after.addresses.len() > before.addresses.len() {
                    prop_assert_eq!(spec.ip_family_policy(), IpFamilyPolicy::PreferDualStack);
                }
            }
        }
    }

    /// Assigning Services one by one in key order (then asking the refused ones again, as the
    /// batch does to state its reasons) gives what the batch gives.
    #[test]
    fn incremental_in_key_order_agrees_with_the_batch(pools in pools(), svcs in services()) {
        let specs: Vec<ServiceSpec> = specs(&svcs).into_iter().map(|s| s.with_current(vec![])).collect();
        let batch = allocate_all(&pools, &specs);
        let mut by_key: BTreeMap<ServiceKey, ServiceSpec> = BTreeMap::new();
        for s in &specs {
            by_key.insert(s.key().clone(), s.clone());
        }
        let mut a = Allocator::new(&pools);
        let mut one_by_one: Results = by_key.iter().map(|(k, s)| (k.clone(), a.assign(s))).collect();
        // The batch states its refusals against its final state: do the same.
        for (k, r) in one_by_one.iter_mut() {
            if r.is_err() {
                *r = a.assign(&by_key[k]);
            }
        }
        a.check_consistency();
        prop_assert_eq!(one_by_one, batch);
    }

    /// After a batch, restarting from the statuses (the Services given in any order) keeps every
    /// assignment, and so do later `assign` calls for the unchanged Services in any order.
    #[test]
    fn restarting_keeps_everything(
        pools in pools(),
        svcs in services(),
        seed in any::<u64>(),
    ) {
        let specs = specs(&svcs);
        let first = allocate_all(&pools, &specs);
        let mut fed = fed_back(&specs, &first);
        shuffle(&mut fed, seed);
        let mut a = Allocator::new(&pools);
        prop_assert_eq!(&a.assign_all(&fed), &first);
        shuffle(&mut fed, seed.rotate_left(17));
        for s in &fed {
            let got = a.assign(s);
            match first.get(s.key()) {
                Some(Ok(want)) => prop_assert_eq!(got.as_ref(), Ok(want)),
                _ => prop_assert!(got.is_err(), "{} was refused by the batch", s.key()),
            }
        }
        a.check_consistency();
    }

    /// Learning the Services one by one from their statuses, in any order, also keeps every
    /// complete assignment. (A PreferDualStack Service holding one family is left out: seen
    /// early, it may complete its second family with an address whose holder has not been
    /// seen yet — which is why the allocator loads statuses with `assign_all`, holders first.)
    #[test]
    fn incremental_restart_keeps_complete_assignments(
        pools in pools(),
        svcs in services(),
        seed in any::<u64>(),
    ) {
        let specs = specs(&svcs);
        let first = allocate_all(&pools, &specs);
        let mut fed: Vec<ServiceSpec> = fed_back(&specs, &first)
            .into_iter()
            .filter(|s| !s.current().is_empty() && s.current().len() == s.families().len())
            .collect();
        shuffle(&mut fed, seed);
        let mut a = Allocator::new(&pools);
        for s in &fed {
            let got = a.assign(s);
            prop_assert_eq!(got.as_ref().ok(), first.get(s.key()).and_then(|r| r.as_ref().ok()));
        }
        a.check_consistency();
    }

    /// Random assign / release / set_pools sequences keep the allocator's indexes consistent
    /// and its allocations within the rules.
    #[test]
    fn random_operations_keep_the_state_consistent(
        pools_a in pools(),
        pools_b in pools(),
        svcs in services(),
        ops in proptest::collection::vec((0u8..10, any::<proptest::sample::Index>()), 0..80),
    ) {
        if svcs.is_empty() {
            return Ok(());
        }
        let mut a = Allocator::new(&pools_a);
        let mut current = &pools_a;
        for (op, which) in ops {
            let svc = &svcs[which.index(svcs.len())];
            match op {
                0..=6 => {
                    let _ = a.assign(&svc.spec());
                }
                7 | 8 => {
                    a.release(&svc.key());
                }
                _ => {
                    current = if std::ptr::eq(current, &pools_a) { &pools_b } else { &pools_a };
                    let change = a.set_pools(current);
                    for key in change.invalidated {
                        if let Some(s) = svcs.iter().rev().find(|s| s.key() == key) {
                            let _ = a.assign(&s.spec());
                        }
                    }
                }
            }
            a.check_consistency();
        }
        let held: Results = a.assignments().map(|(k, v)| (k.clone(), Ok(v))).collect();
        // Only Services last assigned (not the set_pools leftovers) are checked against specs:
        // re-assign everything held to settle it, then check.
        let mut settled = Results::new();
        for key in held.keys() {
            if let Some(s) = svcs.iter().rev().find(|s| &s.key() == key) {
                settled.insert(key.clone(), a.assign(&s.spec()));
            }
        }
        a.check_consistency();
        let last: Vec<Svc> = {
            let mut m: BTreeMap<ServiceKey, Svc> = BTreeMap::new();
            for s in &svcs { m.insert(s.key(), s.clone()); }
            m.into_values().collect()
        };
        check_rules(current, &last, &settled)?;
    }
}
