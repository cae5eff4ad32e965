//! Unit tests for every allocation rule (see the module doc of `ipam`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::*;

/// A Service under construction, owning its raw pieces.
#[derive(Debug, Clone, Default)]
pub(crate) struct Svc {
    pub ns: String,
    pub name: String,
    pub ann: BTreeMap<String, String>,
    pub lb_ip: Option<String>,
    pub ingress: Vec<String>,
    pub families: Vec<String>,
    pub policy: Option<String>,
    pub ports: Vec<(String, i32)>,
    pub etp: Option<String>,
    pub selector: BTreeMap<String, String>,
}

impl Svc {
    pub fn new(name: &str) -> Svc {
        Svc {
            ns: "default".into(),
            name: name.into(),
            ports: vec![("TCP".into(), 80)],
            ..Svc::default()
        }
    }
    pub fn ann(mut self, k: &str, v: &str) -> Svc {
        self.ann.insert(k.into(), v.into());
        self
    }
    pub fn request(self, v: &str) -> Svc {
        self.ann("ferrolb.io/loadBalancerIPs", v)
    }
    pub fn lb_ip(mut self, v: &str) -> Svc {
        self.lb_ip = Some(v.into());
        self
    }
    pub fn pool(self, p: &str) -> Svc {
        self.ann("ferrolb.io/address-pool", p)
    }
    pub fn share(self, k: &str) -> Svc {
        self.ann("ferrolb.io/allow-shared-ip", k)
    }
    pub fn stack(mut self, policy: &str, families: &[&str]) -> Svc {
        self.policy = Some(policy.into());
        self.families = families.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn ports(mut self, ports: &[(&str, i32)]) -> Svc {
        self.ports = ports.iter().map(|(p, n)| (p.to_string(), *n)).collect();
        self
    }
    pub fn local(mut self, app: &str) -> Svc {
        self.etp = Some("Local".into());
        self.selector = [("app".to_string(), app.to_string())].into();
        self
    }
    pub fn current(mut self, ips: &[&str]) -> Svc {
        self.ingress = ips.iter().map(|s| s.to_string()).collect();
        self
    }
    pub fn key(&self) -> ServiceKey {
        ServiceKey::new(&self.ns, &self.name)
    }
    pub fn spec(&self) -> ServiceSpec {
        let ingress: Vec<&str> = self.ingress.iter().map(String::as_str).collect();
        let families: Vec<&str> = self.families.iter().map(String::as_str).collect();
        let ports: Vec<PortInput<'_>> = self
            .ports
            .iter()
            .map(|(p, n)| PortInput {
                protocol: Some(p),
                port: *n,
            })
            .collect();
        ServiceSpec::parse(&ServiceInput {
            namespace: &self.ns,
            name: &self.name,
            annotations: Some(&self.ann),
            load_balancer_ip: self.lb_ip.as_deref(),
            ingress_ips: &ingress,
            ip_families: &families,
            ip_family_policy: self.policy.as_deref(),
            ports: &ports,
            external_traffic_policy: self.etp.as_deref(),
            selector: Some(&self.selector),
        })
    }
}

pub(crate) fn pool(name: &str, ranges: &[&str]) -> Pool {
    Pool::new(name, ranges.iter().map(|r| r.parse().unwrap()).collect())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ips(a: &Result<Assignment, AllocError>) -> Vec<String> {
    match a {
        Ok(a) => a.addresses.iter().map(|i| i.to_string()).collect(),
        Err(e) => panic!("expected an assignment, got: {e}"),
    }
}

fn assign(a: &mut Allocator, s: &Svc) -> Result<Assignment, AllocError> {
    let r = a.assign(&s.spec());
    a.check_consistency();
    r
}

fn ok(a: &mut Allocator, s: &Svc) -> Vec<String> {
    ips(&assign(a, s))
}

fn err(a: &mut Allocator, s: &Svc) -> AllocError {
    match assign(a, s) {
        Ok(x) => panic!("expected a refusal, got {x:?}"),
        Err(e) => e,
    }
}

fn batch(pools: &[Pool], svcs: &[Svc]) -> BTreeMap<String, Result<Assignment, AllocError>> {
    let specs: Vec<ServiceSpec> = svcs.iter().map(Svc::spec).collect();
    allocate_all(pools, &specs)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

// --- auto-assignment and determinism ---

#[test]
fn lowest_free_address_of_the_first_pool() {
    let mut a = Allocator::new(&[
        pool("a", &["10.0.0.1-10.0.0.2"]),
        pool("b", &["10.1.0.0/24"]),
    ]);
    assert_eq!(ok(&mut a, &Svc::new("s1")), ["10.0.0.1"]);
    assert_eq!(ok(&mut a, &Svc::new("s2")), ["10.0.0.2"]);
    let r = assign(&mut a, &Svc::new("s3")).unwrap();
    assert_eq!((r.addresses[0], r.pool.as_str()), (ip("10.1.0.0"), "b"));
    a.release(&Svc::new("s1").key());
    assert_eq!(
        ok(&mut a, &Svc::new("s4")),
        ["10.0.0.1"],
        "freed addresses are reused lowest first"
    );
}

#[test]
fn same_input_same_output_whatever_the_input_order() {
    let pools = [pool("a", &["10.0.0.0/29"]), pool("b", &["fd00::/125"])];
    let svcs: Vec<Svc> = (0..12)
        .map(|i| {
            let s = Svc::new(&format!("s{i:02}"));
            match i % 3 {
                0 => s,
                1 => s.stack("PreferDualStack", &["IPv6", "IPv4"]),
                _ => s.share("k").ports(&[("TCP", i)]),
            }
        })
        .collect();
    let first = batch(&pools, &svcs);
    let mut reversed = svcs.clone();
    reversed.reverse();
    assert_eq!(batch(&pools, &reversed), first);
    assert_eq!(batch(&pools, &svcs), first);
}

// --- keeping current addresses ---

#[test]
fn a_service_keeps_its_current_addresses_while_valid() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    assert_eq!(
        ok(&mut a, &Svc::new("s").current(&["10.0.0.77"])),
        ["10.0.0.77"]
    );
    // Re-assigning (any change to the Service) keeps what the allocator gave it.
    assert_eq!(
        ok(&mut a, &Svc::new("s").ports(&[("UDP", 53)])),
        ["10.0.0.77"]
    );
    // A status address in no pool is not kept.
    assert_eq!(
        ok(&mut a, &Svc::new("t").current(&["192.168.0.1"])),
        ["10.0.0.0"]
    );
}

#[test]
fn a_restart_moves_nothing_even_for_requests_on_held_addresses() {
    let pools = [pool("a", &["10.0.0.0/30"])];
    // "a-req" sorts first and requests the address "z-holder" holds in its status.
    let out = batch(
        &pools,
        &[
            Svc::new("a-req").request("10.0.0.2"),
            Svc::new("z-holder").current(&["10.0.0.2"]),
            Svc::new("b-new"),
        ],
    );
    assert_eq!(ips(&out["default/z-holder"]), ["10.0.0.2"]);
    assert_eq!(ips(&out["default/b-new"]), ["10.0.0.0"]);
    let e = out["default/a-req"].clone().unwrap_err();
    assert_eq!(
        e,
        AllocError::InUse {
            ip: ip("10.0.0.2"),
            by: ServiceKey::new("default", "z-holder")
        }
    );
    assert!(e.to_string().contains("in use by default/z-holder"), "{e}");
}

#[test]
fn a_refused_request_reserves_nothing_in_a_batch() {
    // Found by the idempotence property: "z-req" holds the address it requests, but its
    // request is refused (RequireDualStack asking for one family). Had the first pass of the
    // batch reserved the address, "a-v6" would have taken another, and the batch would then
    // have freed it: a second run would differ.
    let pools = [pool("p", &["10.0.0.0/30", "fd00::/127"])];
    let svcs = [
        Svc::new("z-req")
            .stack("RequireDualStack", &["IPv4", "IPv6"])
            .request("fd00::")
            .current(&["fd00::"]),
        Svc::new("a-v6").stack("SingleStack", &["IPv6"]),
    ];
    let out = batch(&pools, &svcs);
    assert!(matches!(
        out["default/z-req"],
        Err(AllocError::MissingFamily { .. })
    ));
    assert_eq!(ips(&out["default/a-v6"]), ["fd00::"]);
    let fed = [
        svcs[0].clone().current(&[]),
        svcs[1].clone().current(&["fd00::"]),
    ];
    assert_eq!(batch(&pools, &fed), out);
}

#[test]
fn a_batch_states_refusals_against_its_final_state() {
    // Found by the idempotence property: "a-req" (RequireDualStack) is refused while the
    // IPv6 address is still free; "b-v6" takes it later in the batch. Run again, the IPv6
    // address is taken from the start. Both runs must give the same reason.
    let pools = [pool("p", &["10.0.0.1/32", "fd00::/128"])];
    let svcs = [
        Svc::new("a-req").stack("RequireDualStack", &["IPv4", "IPv6"]),
        Svc::new("a-v4").current(&["10.0.0.1"]),
        Svc::new("b-v6").stack("SingleStack", &["IPv6"]),
    ];
    let out = batch(&pools, &svcs);
    let e = out["default/a-req"].clone().unwrap_err();
    assert_eq!(
        e.to_string(),
        "no available IPs in pool \"p\": its only IPv4 address is in use; \
         its only IPv6 address is in use"
    );
    let fed = [
        svcs[0].clone(),
        svcs[1].clone(),
        svcs[2].clone().current(&["fd00::"]),
    ];
    assert_eq!(batch(&pools, &fed), out);
}

#[test]
fn conflicting_status_claims_are_settled_in_key_order() {
    let out = batch(
        &[pool("a", &["10.0.0.0/30"])],
        &[
            Svc::new("b").current(&["10.0.0.1"]),
            Svc::new("a").current(&["10.0.0.1"]),
        ],
    );
    assert_eq!(ips(&out["default/a"]), ["10.0.0.1"]);
    assert_eq!(ips(&out["default/b"]), ["10.0.0.0"]);
}

// --- requested addresses ---

#[test]
fn each_spelling_of_the_request_is_honoured() {
    for (i, key) in LOAD_BALANCER_IPS.iter().enumerate() {
        let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
        let want = format!("10.0.0.{}", 10 + i);
        assert_eq!(
            ok(&mut a, &Svc::new("s").ann(key, &want)),
            [want.as_str()],
            "{key}"
        );
    }
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    assert_eq!(ok(&mut a, &Svc::new("s").lb_ip("10.0.0.42")), ["10.0.0.42"]);
}

use super::annotations::LOAD_BALANCER_IPS;

#[test]
fn requests_are_refused_with_a_reason() {
    let mut a = Allocator::new(&[
        pool("a", &["10.0.0.0/24", "fd00::/120"]),
        pool("b", &["10.0.1.0/24"]),
    ]);
    let e = err(&mut a, &Svc::new("x").request("192.168.1.1"));
    assert_eq!(
        e,
        AllocError::NotInAnyPool {
            ip: ip("192.168.1.1")
        }
    );
    assert_eq!(
        e.to_string(),
        "\"192.168.1.1\" is not allowed in config: it lies in no address pool"
    );

    assert_eq!(
        ok(&mut a, &Svc::new("holder").request("10.0.0.9")),
        ["10.0.0.9"]
    );
    let e = err(&mut a, &Svc::new("y").request("10.0.0.9"));
    assert!(matches!(e, AllocError::InUse { .. }), "{e}");

    // A request in a pool is honoured even if the pool is not the first.
    assert_eq!(ok(&mut a, &Svc::new("z").request("10.0.1.3")), ["10.0.1.3"]);
    let e = err(
        &mut a,
        &Svc::new("w")
            .request("10.0.1.5,fd00::5")
            .stack("RequireDualStack", &["IPv4", "IPv6"]),
    );
    assert!(matches!(e, AllocError::DifferentPools { .. }), "{e}");
    assert!(e.to_string().contains("pool \"b\""), "{e}");
}

#[test]
fn a_changed_request_moves_only_that_service() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    assert_eq!(ok(&mut a, &Svc::new("s")), ["10.0.0.0"]);
    assert_eq!(ok(&mut a, &Svc::new("t")), ["10.0.0.1"]);
    assert_eq!(
        ok(&mut a, &Svc::new("s").request("10.0.0.50")),
        ["10.0.0.50"]
    );
    assert_eq!(
        a.holders(ip("10.0.0.0")).count(),
        0,
        "the old address is released"
    );
    assert_eq!(
        a.assignment(&Svc::new("t").key()).unwrap().addresses,
        [ip("10.0.0.1")]
    );
    // Dropping the request keeps the address: it is still valid for an unrequesting Service.
    assert_eq!(ok(&mut a, &Svc::new("s")), ["10.0.0.50"]);
}

#[test]
fn a_malformed_request_is_a_reason_and_releases() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    assert_eq!(ok(&mut a, &Svc::new("s")), ["10.0.0.0"]);
    let e = err(&mut a, &Svc::new("s").request("10.0.0.1,10.0.0.2"));
    assert!(
        matches!(e, AllocError::Invalid(InvalidService::SameFamily { .. })),
        "{e}"
    );
    assert!(a.assignment(&Svc::new("s").key()).is_none());
    let e = err(&mut a, &Svc::new("s").request("10.0.0.5").lb_ip("10.0.0.6"));
    assert!(
        e.to_string().contains("spec.loadBalancerIP 10.0.0.6"),
        "{e}"
    );
    let e = err(
        &mut a,
        &Svc::new("s")
            .ann("metallb.universe.tf/address-pool", "a")
            .ann("ferrolb.io/address-pool", "b"),
    );
    assert!(e.to_string().contains("disagree"), "{e}");
}

// --- pools: pinning, auto_assign, avoid_buggy_ips ---

#[test]
fn the_pool_annotation_pins_the_pool_in_every_spelling() {
    for key in ADDRESS_POOL {
        let mut a = Allocator::new(&[
            pool("a", &["10.0.0.0/24"]),
            pool("b", &["10.0.1.0/24"]).with_auto_assign(false),
        ]);
        let r = assign(&mut a, &Svc::new("s").ann(key, "b")).unwrap();
        assert_eq!(
            (r.pool.as_str(), r.addresses[0]),
            ("b", ip("10.0.1.0")),
            "{key}"
        );
    }
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"]), pool("b", &["10.0.1.0/24"])]);
    let e = err(&mut a, &Svc::new("s").pool("gold"));
    assert_eq!(
        e.to_string(),
        "unknown pool \"gold\"; configured pools: \"a\", \"b\""
    );
    let e = err(&mut a, &Svc::new("s").pool("b").request("10.0.0.7"));
    assert_eq!(
        e,
        AllocError::NotInPinnedPool {
            ip: ip("10.0.0.7"),
            pool: "b".into()
        }
    );
    // A kept address outside a newly pinned pool moves into it.
    assert_eq!(ok(&mut a, &Svc::new("t")), ["10.0.0.0"]);
    assert_eq!(ok(&mut a, &Svc::new("t").pool("b")), ["10.0.1.0"]);
}

use super::annotations::ADDRESS_POOL;

#[test]
fn auto_assign_false_pools_are_used_only_when_asked_for() {
    let pools = [
        pool("manual", &["10.9.0.0/24"]).with_auto_assign(false),
        pool("auto", &["10.0.0.0/31"]),
    ];
    let mut a = Allocator::new(&pools);
    assert_eq!(ok(&mut a, &Svc::new("s1")), ["10.0.0.0"]);
    assert_eq!(ok(&mut a, &Svc::new("s2")), ["10.0.0.1"]);
    let e = err(&mut a, &Svc::new("s3"));
    assert!(
        e.to_string().contains("no available IPs in pool \"auto\""),
        "{e}"
    );
    assert_eq!(ok(&mut a, &Svc::new("r").request("10.9.0.5")), ["10.9.0.5"]);
    assert_eq!(ok(&mut a, &Svc::new("p").pool("manual")), ["10.9.0.0"]);
    // A status address in a manual pool is not kept by a Service that does not ask for it.
    let mut b = Allocator::new(&[
        pool("manual", &["10.9.0.0/24"]).with_auto_assign(false),
        pool("auto", &["10.0.0.0/24"]),
    ]);
    assert_eq!(
        ok(&mut b, &Svc::new("s").current(&["10.9.0.9"])),
        ["10.0.0.0"]
    );
    // Only manual pools: a reason that says so.
    let mut c = Allocator::new(&[pool("manual", &["10.9.0.0/24"]).with_auto_assign(false)]);
    let e = err(&mut c, &Svc::new("s"));
    assert_eq!(
        e,
        AllocError::NoPoolForFamily {
            family: Family::V4,
            pool: None
        }
    );
    assert!(e.to_string().contains("auto_assign = false"), "{e}");
}

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.254-10.0.1.2"]).with_avoid_buggy_ips(true)]);
    assert_eq!(ok(&mut a, &Svc::new("s1")), ["10.0.0.254"]);
    assert_eq!(ok(&mut a, &Svc::new("s2")), ["10.0.1.1"]);
    let e = err(&mut a, &Svc::new("s3").request("10.0.0.255"));
    assert!(matches!(e, AllocError::BuggyAddress { .. }), "{e}");
    assert!(e.to_string().contains("avoid_buggy_ips"), "{e}");
    assert_eq!(a.pool_usage("a").unwrap().size, 3);
    // Without the switch, .0 and .255 are ordinary addresses.
    let mut b = Allocator::new(&[pool("b", &["10.0.0.255-10.0.1.0"])]);
    assert_eq!(ok(&mut b, &Svc::new("s1")), ["10.0.0.255"]);
    assert_eq!(
        ok(&mut b, &Svc::new("s2").request("10.0.1.0")),
        ["10.0.1.0"]
    );
}

// --- families and dual-stack ---

#[test]
fn single_stack_follows_the_first_family() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24", "fd00::/120"])]);
    assert_eq!(
        ok(&mut a, &Svc::new("v6").stack("SingleStack", &["IPv6"])),
        ["fd00::"]
    );
    let e = err(&mut a, &Svc::new("m").request("fd00::9"));
    assert!(matches!(e, AllocError::FamilyMismatch { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        "requested address fd00::9 is IPv6 but the Service's IP families are [IPv4]"
    );
    let mut b = Allocator::new(&[pool("v4only", &["10.0.0.0/24"])]);
    let e = err(&mut b, &Svc::new("v6").stack("SingleStack", &["IPv6"]));
    assert!(
        matches!(
            e,
            AllocError::NoPoolForFamily {
                family: Family::V6,
                ..
            }
        ),
        "{e}"
    );
    let e = err(
        &mut b,
        &Svc::new("v6")
            .stack("SingleStack", &["IPv6"])
            .pool("v4only"),
    );
    assert_eq!(e.to_string(), "pool \"v4only\" has no IPv6 addresses");
}

#[test]
fn require_dual_stack_takes_both_families_from_one_pool() {
    let pools = [
        pool("v4", &["10.0.0.0/24"]),
        pool("v6", &["fd00:1::/120"]),
        pool("dual", &["10.1.0.0/24", "fd00:2::/120"]),
    ];
    let mut a = Allocator::new(&pools);
    let r = assign(
        &mut a,
        &Svc::new("d").stack("RequireDualStack", &["IPv6", "IPv4"]),
    )
    .unwrap();
    assert_eq!(r.pool, "dual");
    assert_eq!(
        r.addresses,
        [ip("fd00:2::"), ip("10.1.0.0")],
        "ipFamilies order"
    );
    let mut b = Allocator::new(&pools[..2]);
    let e = err(
        &mut b,
        &Svc::new("d").stack("RequireDualStack", &["IPv4", "IPv6"]),
    );
    assert_eq!(e, AllocError::NoDualStackPool { pool: None });
    let e = err(
        &mut a,
        &Svc::new("r")
            .stack("RequireDualStack", &["IPv4", "IPv6"])
            .request("10.1.0.9"),
    );
    assert_eq!(
        e,
        AllocError::MissingFamily {
            missing: Family::V6
        }
    );
    let r = assign(
        &mut a,
        &Svc::new("r")
            .stack("RequireDualStack", &["IPv4", "IPv6"])
            .request("fd00:2::9, 10.1.0.9"),
    )
    .unwrap();
    assert_eq!(r.addresses, [ip("10.1.0.9"), ip("fd00:2::9")]);
}

#[test]
fn require_dual_stack_fails_when_one_family_is_full() {
    let mut a = Allocator::new(&[pool("dual", &["10.1.0.0/24", "fd00:2::/127"])]);
    for n in ["a", "b"] {
        ok(
            &mut a,
            &Svc::new(n).stack("RequireDualStack", &["IPv4", "IPv6"]),
        );
    }
    let e = err(
        &mut a,
        &Svc::new("c").stack("RequireDualStack", &["IPv4", "IPv6"]),
    );
    assert_eq!(
        e.to_string(),
        "no available IPs in pool \"dual\": all 2 IPv6 addresses are in use"
    );
}

#[test]
fn prefer_dual_stack_falls_back_only_if_no_pool_gives_both() {
    let pools = [
        pool("v4", &["10.0.0.0/24"]),
        pool("dual", &["10.1.0.0/24", "fd00:2::/128"]),
    ];
    let mut a = Allocator::new(&pools);
    let pref = |n: &str| Svc::new(n).stack("PreferDualStack", &["IPv4", "IPv6"]);
    let r = assign(&mut a, &pref("p1")).unwrap();
    assert_eq!(
        r.pool, "dual",
        "the first pool that gives both, not the first pool"
    );
    assert_eq!(r.addresses, [ip("10.1.0.0"), ip("fd00:2::")]);
    // The only IPv6 address is taken: fall back to the first family, first eligible pool.
    let r = assign(&mut a, &pref("p2")).unwrap();
    assert_eq!(
        (r.pool.as_str(), r.addresses.clone()),
        ("v4", vec![ip("10.0.0.0")])
    );
    // With one listed family, PreferDualStack is single-stack.
    let r = assign(&mut a, &Svc::new("p3").stack("PreferDualStack", &["IPv4"])).unwrap();
    assert_eq!(r.addresses, [ip("10.0.0.1")]);
    // No pool has the first family at all: the second one will do.
    let mut b = Allocator::new(&[pool("v6", &["fd00::/120"])]);
    assert_eq!(ok(&mut b, &pref("p")), ["fd00::"]);
}

#[test]
fn prefer_dual_stack_gains_its_second_family_without_moving_the_first() {
    let mut a = Allocator::new(&[pool("dual", &["10.1.0.0/24", "fd00:2::/128"])]);
    let pref = |n: &str| Svc::new(n).stack("PreferDualStack", &["IPv4", "IPv6"]);
    assert_eq!(ok(&mut a, &pref("a")), ["10.1.0.0", "fd00:2::"]);
    assert_eq!(ok(&mut a, &pref("b")), ["10.1.0.1"]);
    a.release(&pref("a").key());
    assert_eq!(ok(&mut a, &pref("b")), ["10.1.0.1", "fd00:2::"]);
    // A SingleStack Service turned PreferDualStack keeps its address and gains the other.
    let mut c = Allocator::new(&[pool("dual", &["10.1.0.0/24", "fd00:2::/120"])]);
    assert_eq!(
        ok(&mut c, &Svc::new("s").current(&["10.1.0.9"])),
        ["10.1.0.9"]
    );
    assert_eq!(ok(&mut c, &pref("s")), ["10.1.0.9", "fd00:2::"]);
    // And back to SingleStack: the IPv4 address stays, the IPv6 one is released.
    assert_eq!(ok(&mut c, &Svc::new("s")), ["10.1.0.9"]);
    assert_eq!(c.holders(ip("fd00:2::")).count(), 0);
}

#[test]
fn require_dual_stack_completes_a_held_address_from_its_pool() {
    let mut a = Allocator::new(&[
        pool("v4", &["10.0.0.0/24"]),
        pool("dual", &["10.1.0.0/24", "fd00:2::/120"]),
    ]);
    assert_eq!(
        ok(&mut a, &Svc::new("s").current(&["10.1.0.7"])),
        ["10.1.0.7"]
    );
    let req = Svc::new("s").stack("RequireDualStack", &["IPv4", "IPv6"]);
    assert_eq!(ok(&mut a, &req), ["10.1.0.7", "fd00:2::"]);
    // Held in a pool without IPv6: it must move to one that gives both.
    assert_eq!(
        ok(&mut a, &Svc::new("t").current(&["10.0.0.7"])),
        ["10.0.0.7"]
    );
    let req = Svc::new("t").stack("RequireDualStack", &["IPv4", "IPv6"]);
    assert_eq!(ok(&mut a, &req), ["10.1.0.0", "fd00:2::1"]);
}

// --- sharing ---

#[test]
fn compatible_services_share_an_address() {
    for key in ALLOW_SHARED_IP {
        let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
        let web = Svc::new("web").ann(key, "k").ports(&[("TCP", 80)]);
        let dns = Svc::new("dns")
            .ann(key, "k")
            .ports(&[("UDP", 53), ("TCP", 53)]);
        assert_eq!(ok(&mut a, &web), ["10.0.0.0"]);
        assert_eq!(ok(&mut a, &dns), ["10.0.0.0"], "{key}");
        assert_eq!(a.holders(ip("10.0.0.0")).count(), 2);
        assert_eq!(
            a.pool_usage("a").unwrap().used,
            1,
            "a shared address counts once"
        );
        // The other holder keeps it when one leaves.
        a.release(&web.key());
        assert_eq!(a.holders(ip("10.0.0.0")).collect::<Vec<_>>(), [&dns.key()]);
        assert_eq!(ok(&mut a, &Svc::new("other")), ["10.0.0.1"]);
    }
}

use super::annotations::ALLOW_SHARED_IP;

#[test]
fn sharing_requires_same_key_free_ports_and_same_backends() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    assert_eq!(ok(&mut a, &Svc::new("first").share("k")), ["10.0.0.0"]);
    // Same port: a new address.
    assert_eq!(ok(&mut a, &Svc::new("same-port").share("k")), ["10.0.0.1"]);
    // Different key: a new address.
    assert_eq!(
        ok(
            &mut a,
            &Svc::new("other-key").share("j").ports(&[("TCP", 81)])
        ),
        ["10.0.0.2"]
    );
    // No key: never shares.
    assert_eq!(
        ok(&mut a, &Svc::new("no-key").ports(&[("TCP", 82)])),
        ["10.0.0.3"]
    );
    // Same key and free port: joins the lowest address shared under the key it fits on.
    assert_eq!(
        ok(&mut a, &Svc::new("joins").share("k").ports(&[("TCP", 443)])),
        ["10.0.0.0"]
    );
    // Local vs Cluster: no.
    assert_eq!(
        ok(
            &mut a,
            &Svc::new("local")
                .share("k")
                .local("x")
                .ports(&[("TCP", 8080)])
        ),
        ["10.0.0.4"]
    );
    // Local with the same selector: yes; with another selector: no.
    assert_eq!(
        ok(
            &mut a,
            &Svc::new("local-same")
                .share("k")
                .local("x")
                .ports(&[("TCP", 8081)])
        ),
        ["10.0.0.4"]
    );
    assert_eq!(
        ok(
            &mut a,
            &Svc::new("local-other")
                .share("k")
                .local("y")
                .ports(&[("TCP", 8082)])
        ),
        ["10.0.0.5"]
    );
}

#[test]
fn requesting_a_shared_address_names_the_conflict() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    ok(&mut a, &Svc::new("web").share("k").request("10.0.0.1"));
    let e = err(&mut a, &Svc::new("web2").share("k").request("10.0.0.1"));
    assert_eq!(
        e.to_string(),
        "port TCP/80 is already in use on 10.0.0.1 by default/web"
    );
    let e = err(
        &mut a,
        &Svc::new("x")
            .share("j")
            .ports(&[("TCP", 1)])
            .request("10.0.0.1"),
    );
    assert!(matches!(e, AllocError::SharingKeyMismatch { .. }), "{e}");
    let e = err(
        &mut a,
        &Svc::new("x")
            .share("k")
            .local("a")
            .ports(&[("TCP", 1)])
            .request("10.0.0.1"),
    );
    assert!(matches!(e, AllocError::TrafficPolicyMismatch { .. }), "{e}");
    assert_eq!(
        ok(
            &mut a,
            &Svc::new("x")
                .share("k")
                .ports(&[("TCP", 1)])
                .request("10.0.0.1")
        ),
        ["10.0.0.1"]
    );
}

#[test]
fn a_holder_that_becomes_incompatible_moves_alone() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    ok(&mut a, &Svc::new("a").share("k").ports(&[("TCP", 80)]));
    ok(&mut a, &Svc::new("b").share("k").ports(&[("TCP", 81)]));
    // b now collides with a on port 80: b moves, a stays.
    assert_eq!(
        ok(&mut a, &Svc::new("b").share("k").ports(&[("TCP", 80)])),
        ["10.0.0.1"]
    );
    assert_eq!(
        a.assignment(&Svc::new("a").key()).unwrap().addresses,
        [ip("10.0.0.0")]
    );
    // a changes its key: it stays (it is alone on its address now).
    assert_eq!(ok(&mut a, &Svc::new("a").share("other")), ["10.0.0.0"]);
}

// --- exhaustion ---

#[test]
fn an_exhausted_pool_is_named_with_its_size() {
    let mut a = Allocator::new(&[pool("small", &["10.0.0.1-10.0.0.3"])]);
    for n in ["a", "b", "c"] {
        ok(&mut a, &Svc::new(n));
    }
    let e = err(&mut a, &Svc::new("d"));
    assert_eq!(
        e,
        AllocError::PoolExhausted {
            pools: vec![Exhausted {
                pool: "small".into(),
                family: Family::V4,
                size: 3
            }]
        }
    );
    assert_eq!(
        e.to_string(),
        "no available IPs in pool \"small\": all 3 IPv4 addresses are in use"
    );
    let mut b = Allocator::new(&[pool("p", &["10.0.0.1/32"]), pool("q", &["10.0.1.1/32"])]);
    ok(&mut b, &Svc::new("a"));
    ok(&mut b, &Svc::new("b"));
    let e = err(&mut b, &Svc::new("c"));
    assert_eq!(
        e.to_string(),
        "no available IPs: pool \"p\": its only IPv4 address is in use; \
         pool \"q\": its only IPv4 address is in use"
    );
    // A freed address goes to the next Service.
    b.release(&Svc::new("a").key());
    assert_eq!(ok(&mut b, &Svc::new("c")), ["10.0.0.1"]);
}

// --- pool changes ---

#[test]
fn shrinking_a_pool_moves_only_the_services_outside_it() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/29"])]);
    for i in 0..6 {
        ok(&mut a, &Svc::new(&format!("s{i}")));
    }
    let change = a.set_pools(&[pool("a", &["10.0.0.2-10.0.0.9"])]);
    assert_eq!(
        change.invalidated,
        [Svc::new("s0").key(), Svc::new("s1").key()]
    );
    assert!(change.repooled.is_empty());
    for i in 2..6 {
        let key = Svc::new(&format!("s{i}")).key();
        assert_eq!(
            a.assignment(&key).unwrap().addresses,
            [ip(&format!("10.0.0.{i}"))]
        );
    }
    assert!(a.assignment(&Svc::new("s0").key()).is_none());
    assert_eq!(ok(&mut a, &Svc::new("s0")), ["10.0.0.6"]);
    assert_eq!(ok(&mut a, &Svc::new("s1")), ["10.0.0.7"]);
    a.check_consistency();
}

#[test]
fn pool_changes_in_a_batch_move_only_invalid_addresses() {
    let before = [pool("a", &["10.0.0.0/29"]), pool("b", &["10.0.1.0/29"])];
    let svcs: Vec<Svc> = (0..10).map(|i| Svc::new(&format!("s{i}"))).collect();
    let first = batch(&before, &svcs);
    let fed: Vec<Svc> = svcs
        .iter()
        .map(|s| {
            let got = ips(&first[&s.key().to_string()]);
            s.clone()
                .current(&got.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .collect();
    // Pool "a" loses its first half; pool "b" is removed and "c" added.
    let after = [
        pool("a", &["10.0.0.4-10.0.0.7"]),
        pool("c", &["10.0.2.0/24"]),
    ];
    let second = batch(&after, &fed);
    for s in &svcs {
        let k = s.key().to_string();
        let old = ips(&first[&k]);
        let new = ips(&second[&k]);
        let still_valid =
            old[0].starts_with("10.0.0.") && old[0]["10.0.0.".len()..].parse::<u8>().unwrap() >= 4;
        assert_eq!(still_valid, old == new, "{k}: {old:?} -> {new:?}");
    }
}

#[test]
fn set_pools_reports_renamed_pools_and_newly_avoided_addresses() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    ok(&mut a, &Svc::new("zero"));
    ok(&mut a, &Svc::new("one"));
    ok(&mut a, &Svc::new("pinned").pool("a"));
    let change = a.set_pools(&[pool("renamed", &["10.0.0.0/24"]).with_avoid_buggy_ips(true)]);
    assert_eq!(
        change.invalidated,
        [Svc::new("pinned").key(), Svc::new("zero").key()]
    );
    assert_eq!(change.repooled, [Svc::new("one").key()]);
    assert_eq!(
        a.assignment(&Svc::new("one").key()).unwrap().pool,
        "renamed"
    );
    a.check_consistency();
}

#[test]
fn set_pools_keeps_the_valid_half_of_a_dual_stack_service() {
    let mut a = Allocator::new(&[pool("d", &["10.0.0.0/24", "fd00::/120"])]);
    let s = Svc::new("s").stack("RequireDualStack", &["IPv4", "IPv6"]);
    assert_eq!(ok(&mut a, &s), ["10.0.0.0", "fd00::"]);
    let change = a.set_pools(&[pool("d", &["10.0.0.0/24", "fd00:1::/120"])]);
    assert_eq!(change.invalidated, [s.key()]);
    assert_eq!(a.assignment(&s.key()).unwrap().addresses, [ip("10.0.0.0")]);
    assert_eq!(ok(&mut a, &s), ["10.0.0.0", "fd00:1::"]);
}

// --- usage, big pools ---

#[test]
fn usage_per_pool() {
    let mut a = Allocator::new(&[
        pool("a", &["10.0.0.0/30", "fd00::/126"]),
        pool("b", &["10.0.1.0/24"]),
    ]);
    ok(
        &mut a,
        &Svc::new("x").stack("RequireDualStack", &["IPv4", "IPv6"]),
    );
    ok(&mut a, &Svc::new("y"));
    let u = a.pool_usage("a").unwrap();
    assert_eq!((u.size, u.used, u.ipv4.used, u.ipv6.used), (8, 3, 2, 1));
    assert_eq!(
        a.usage()
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(a.pool_of(ip("10.0.1.9")), Some("b"));
    assert!(a.pool_usage("zzz").is_none());
}

#[test]
fn huge_ipv6_pools_work_without_materialising() {
    let mut a = Allocator::new(&[pool("big", &["fd00::/64"])]);
    let v6 = |n: &str| Svc::new(n).stack("SingleStack", &["IPv6"]);
    assert_eq!(ok(&mut a, &v6("a")), ["fd00::"]);
    assert_eq!(ok(&mut a, &v6("b")), ["fd00::1"]);
    assert_eq!(
        ok(&mut a, &v6("c").request("fd00::ffff:ffff:ffff:ffff")),
        ["fd00::ffff:ffff:ffff:ffff"]
    );
    assert_eq!(a.pool_usage("big").unwrap().size, 1 << 64);
}

#[test]
fn shared_addresses_survive_a_restart() {
    let pools = [pool("a", &["10.0.0.0/24"])];
    let svcs = [
        Svc::new("web")
            .share("k")
            .ports(&[("TCP", 80)])
            .current(&["10.0.0.9"]),
        Svc::new("dns")
            .share("k")
            .ports(&[("UDP", 53)])
            .current(&["10.0.0.9"]),
        Svc::new("new").share("k").ports(&[("TCP", 443)]),
    ];
    let out = batch(&pools, &svcs);
    for n in ["web", "dns", "new"] {
        assert_eq!(ips(&out[&format!("default/{n}")]), ["10.0.0.9"], "{n}");
    }
}

#[test]
fn joining_a_shared_address_comes_before_a_free_one_in_an_earlier_pool() {
    let mut a = Allocator::new(&[
        pool("first", &["10.0.0.0/24"]),
        pool("second", &["10.1.0.0/24"]),
    ]);
    ok(&mut a, &Svc::new("holder").share("k").request("10.1.0.7"));
    let r = assign(
        &mut a,
        &Svc::new("joiner").share("k").ports(&[("TCP", 443)]),
    )
    .unwrap();
    assert_eq!(
        (r.pool.as_str(), r.addresses.clone()),
        ("second", vec![ip("10.1.0.7")])
    );
    // Pinned elsewhere: no join outside the pinned pool.
    let r = assign(
        &mut a,
        &Svc::new("pinned")
            .share("k")
            .pool("first")
            .ports(&[("TCP", 8)]),
    )
    .unwrap();
    assert_eq!(
        (r.pool.as_str(), r.addresses.clone()),
        ("first", vec![ip("10.0.0.0")])
    );
}

#[test]
fn a_batch_naming_a_key_twice_uses_the_last() {
    let out = batch(
        &[pool("a", &["10.0.0.0/24"])],
        &[
            Svc::new("s").request("10.0.0.5"),
            Svc::new("s").request("10.0.0.6"),
        ],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(ips(&out["default/s"]), ["10.0.0.6"]);
}

#[test]
fn a_pool_with_no_assignable_address_says_so() {
    let mut a = Allocator::new(&[pool("tiny", &["10.0.0.255/32"]).with_avoid_buggy_ips(true)]);
    let e = err(&mut a, &Svc::new("s"));
    assert_eq!(
        e.to_string(),
        "no available IPs in pool \"tiny\": it has no assignable IPv4 address"
    );
}

#[test]
fn a_malformed_spec_field_is_a_reason() {
    let mut a = Allocator::new(&[pool("a", &["10.0.0.0/24"])]);
    let e = err(&mut a, &Svc::new("s").ports(&[("HTTP", 80)]));
    assert_eq!(
        e.to_string(),
        "spec.ports: protocol \"HTTP\" is not supported; expected \"TCP\", \"UDP\" or \"SCTP\""
    );
    let e = err(&mut a, &Svc::new("s").stack("DualStack", &["IPv4"]));
    assert!(
        matches!(
            e,
            AllocError::Invalid(InvalidService::IpFamilyPolicy { .. })
        ),
        "{e}"
    );
}
