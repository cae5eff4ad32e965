//! End-to-end: one `ferrolb run` (in its own network namespace) allocating for Services that
//! the real kubectl creates in the API simulator (in another namespace on the same lab LAN).
//! Every outcome is read back through kubectl: `get svc` (the server-side table's EXTERNAL-IP),
//! `get -o json`, `describe` (Events).
//!
//! Needs root (network namespaces), `ip`, `curl` and `/usr/bin/kubectl`.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::e2e::*;
use common::netlab::*;

/// A lab with the simulator on `10.250.N.2` and one daemon `n1` on `10.250.N.11` (IPv6
/// `fd00:250:N::…/64` too when `ipv6`), configured with `pools`.
fn single_node(prefix: &str, n: u8, ipv6: bool, pools: Vec<PoolConfig>) -> (Lab, Api, Daemon) {
    let lab = Lab::new(prefix);
    let v6 = |h: u8| ipv6.then(|| format!("fd00:250:{n}::{h}/64"));
    let api_host = lab.host("api", &format!("10.250.{n}.2/24"), v6(2).as_deref());
    let n1 = lab.host("n1", &format!("10.250.{n}.11/24"), v6(11).as_deref());
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let mut config = NodeConfig::new("n1", &api.kubeconfig);
    config.pools = pools;
    let config = lab.ferrolb_config(&config);
    let daemon = lab.start_ferrolb(&n1, &config);
    wait_lease_holder(&api, Duration::from_secs(20), |h| h == "n1");
    (lab, api, daemon)
}

fn ip(s: &str) -> IpAddr {
    addr(s)
}

fn names(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i:02}")).collect()
}

/// Waits for a Warning `AllocationFailed` Event on `name` whose message contains `needle`.
fn wait_allocation_failed(api: &Api, name: &str, needle: &str) -> EventView {
    wait_for(
        &format!("AllocationFailed on {name} mentioning {needle:?}"),
        Duration::from_secs(20),
        || {
            let evs = events(api);
            evs.iter()
                .find(|e| e.object == name && e.reason == "AllocationFailed")
                .filter(|e| e.message.contains(needle))
                .cloned()
                .ok_or_else(|| {
                    format!(
                        "{:?}",
                        evs.iter().filter(|e| e.object == name).collect::<Vec<_>>()
                    )
                })
        },
    )
}

#[test]
fn fifty_services_get_distinct_addresses_from_the_pool() {
    let (lab, api, daemon) = single_node(
        "flb-a50",
        1,
        false,
        vec![PoolConfig::new("default", &["10.250.1.100-10.250.1.159"])],
    );
    let watch = SvcWatch::start(&lab, &api);
    let names = names("web", 50);
    let specs: Vec<SvcSpec> = names.iter().map(|n| lb(n)).collect();
    let applied = Instant::now();
    apply(&api, &specs);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = wait_allocated(&api, &refs, Duration::from_secs(60));
    eprintln!(
        "50 services created by kubectl apply all had addresses {:?} after it started",
        applied.elapsed()
    );
    assert_distinct_in(&all, &refs, (ip("10.250.1.100"), ip("10.250.1.159")));
    for name in &refs {
        assert_eq!(all[*name].pool(), Some("default"), "{name}");
    }

    // kubectl's own table: EXTERNAL-IP is the address.
    let column = external_ip_column(&api);
    for name in &refs {
        assert_eq!(
            column[*name],
            all[*name].ingress[0].to_string(),
            "kubectl get svc, EXTERNAL-IP of {name}"
        );
    }
    // kubectl describe: the ingress, and an IPAllocated Event naming the address.
    let described = describe_all(&api);
    for name in &refs {
        let text = &described[*name];
        let ip = all[*name].ingress[0];
        assert!(
            text.contains("IPAllocated") && text.contains(&format!("Assigned IP [\"{ip}\"]")),
            "kubectl describe svc {name}:\n{text}"
        );
        assert!(
            text.lines()
                .any(|l| l.starts_with("LoadBalancer Ingress:") && l.contains(&ip.to_string())),
            "kubectl describe svc {name}:\n{text}"
        );
    }
    let requests = api.requests();
    let mut per_kind: std::collections::BTreeMap<String, usize> = Default::default();
    for r in requests.iter().filter(|r| r.is_ferrolb()) {
        let what = format!(
            "{} {}{}",
            r.verb,
            r.resource,
            if r.subresource.is_empty() {
                String::new()
            } else {
                format!("/{}", r.subresource)
            }
        );
        *per_kind.entry(what).or_default() += 1;
    }
    eprintln!("requests ferrolb sent for 50 services: {per_kind:?}");
    let evs = events(&api);
    assert!(
        evs.iter()
            .filter(|e| e.reason == "IPAllocated")
            .all(|e| e.host == "n1" && e.kind == "Normal" && e.count == 1),
        "{evs:?}"
    );
    // Each Service's status was written once: kubectl get -w never saw it change afterwards.
    watch.assert_no_flaps(&lab, &names);
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn deletes_type_changes_and_foreign_classes() {
    let (lab, api, daemon) = single_node(
        "flb-del",
        2,
        false,
        vec![PoolConfig::new("small", &["10.250.2.100-10.250.2.103"])],
    );
    let pool = (ip("10.250.2.100"), ip("10.250.2.103"));
    apply(&api, &[lb("a"), lb("b"), lb("c"), lb("d")]);
    let all = wait_allocated(&api, &["a", "b", "c", "d"], Duration::from_secs(20));
    assert_distinct_in(&all, &["a", "b", "c", "d"], pool);

    // The pool is full: e waits.
    apply(&api, &[lb("e")]);
    wait_allocation_failed(&api, "e", "\"small\"");
    assert_eq!(external_ip_column(&api)["e"], "<pending>");

    // Delete b: its address is freed and goes to e.
    let b_ip = all["b"].ingress[0];
    let deleted = Instant::now();
    api.kubectl_ok(&["delete", "svc", "b"]);
    let e = wait_service(
        &api,
        "e",
        "gets b's address",
        Duration::from_secs(20),
        |s| s.allocated(),
    );
    eprintln!(
        "the pending service got the freed address {:?} after the delete",
        deleted.elapsed()
    );
    assert_eq!(e.ingress, vec![b_ip]);
    assert_eq!(e.pool(), Some("small"));

    // a stops being a LoadBalancer: its status and our annotation are cleared.
    let a_ip = all["a"].ingress[0];
    api.kubectl_ok(&[
        "patch",
        "svc",
        "a",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    let a = wait_service(
        &api,
        "a",
        "status and pool annotation cleared",
        Duration::from_secs(20),
        |s| s.ingress.is_empty() && s.pool().is_none(),
    );
    assert_eq!(a.service_type, "ClusterIP");
    assert_eq!(external_ip_column(&api)["a"], "<none>");

    // A Service of another class, with a status some other controller wrote: never touched.
    apply(&api, &[lb("x").class("other.example/lb")]);
    api.kubectl_ok(&[
        "patch",
        "svc",
        "x",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"loadBalancer":{"ingress":[{"ip":"192.0.2.10"}]}}}"#,
    ]);
    let x_before = services(&api)["x"].clone();
    // f comes after x in the daemon's event stream: once f has a's freed address, the daemon
    // has decided about x too.
    apply(&api, &[lb("f")]);
    let f = wait_service(
        &api,
        "f",
        "gets a's address",
        Duration::from_secs(20),
        |s| s.allocated(),
    );
    assert_eq!(f.ingress, vec![a_ip]);
    let x = services(&api)["x"].clone();
    assert_eq!(x, x_before, "the foreign-class service was changed");
    assert_eq!(x.ingress, vec![ip("192.0.2.10")]);
    assert!(x.pool().is_none());
    let touching_x: Vec<Request> = api
        .requests()
        .into_iter()
        .filter(|r| r.is_ferrolb() && r.resource == "services" && r.name == "x")
        .collect();
    assert!(
        touching_x.is_empty(),
        "ferrolb sent requests about x: {touching_x:?}"
    );
    assert!(
        !events(&api).iter().any(|e| e.object == "x"),
        "events about x: {:?}",
        events(&api)
    );
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn requested_addresses_pool_annotations_and_auto_assign() {
    let (lab, api, daemon) = single_node(
        "flb-req",
        3,
        false,
        vec![
            PoolConfig::new("default", &["10.250.3.100-10.250.3.119"]),
            PoolConfig::new("reserved", &["10.250.3.200-10.250.3.209"]).manual(),
        ],
    );
    let wanted = [
        (
            "by-spec",
            lb("by-spec").lb_ip("10.250.3.110"),
            "10.250.3.110",
        ),
        (
            "by-ferrolb",
            lb("by-ferrolb").annotate("ferrolb.io/loadBalancerIPs", "10.250.3.111"),
            "10.250.3.111",
        ),
        (
            "by-metallb-io",
            lb("by-metallb-io").annotate("metallb.io/loadBalancerIPs", "10.250.3.112"),
            "10.250.3.112",
        ),
        (
            "by-metallb-tf",
            lb("by-metallb-tf").annotate("metallb.universe.tf/loadBalancerIPs", "10.250.3.113"),
            "10.250.3.113",
        ),
        (
            "reserved-by-ip",
            lb("reserved-by-ip").annotate("ferrolb.io/loadBalancerIPs", "10.250.3.205"),
            "10.250.3.205",
        ),
    ];
    let mut specs: Vec<SvcSpec> = wanted.iter().map(|(_, s, _)| s.clone()).collect();
    specs.extend([
        lb("reserved-by-pool").annotate("ferrolb.io/address-pool", "reserved"),
        lb("reserved-by-metallb-pool").annotate("metallb.universe.tf/address-pool", "reserved"),
        lb("plain-1"),
        lb("plain-2"),
        lb("outside").annotate("ferrolb.io/loadBalancerIPs", "10.250.9.9"),
        lb("unknown-pool").annotate("ferrolb.io/address-pool", "nope"),
    ]);
    apply(&api, &specs);
    let ok = [
        "by-spec",
        "by-ferrolb",
        "by-metallb-io",
        "by-metallb-tf",
        "reserved-by-ip",
        "reserved-by-pool",
        "reserved-by-metallb-pool",
        "plain-1",
        "plain-2",
    ];
    let all = wait_allocated(&api, &ok, Duration::from_secs(30));
    for (name, _, want) in &wanted {
        assert_eq!(all[*name].ingress, vec![ip(want)], "{name}");
    }
    assert_eq!(all["reserved-by-ip"].pool(), Some("reserved"));
    assert_eq!(all["by-metallb-tf"].pool(), Some("default"));
    for name in ["reserved-by-pool", "reserved-by-metallb-pool"] {
        let got = all[name].ingress[0];
        assert!(
            got >= ip("10.250.3.200") && got <= ip("10.250.3.209"),
            "{name}: {got}"
        );
        assert_eq!(all[name].pool(), Some("reserved"), "{name}");
    }
    // Services that ask for nothing never get addresses of the auto_assign = false pool.
    for name in ["plain-1", "plain-2"] {
        let got = all[name].ingress[0];
        assert!(
            got >= ip("10.250.3.100") && got <= ip("10.250.3.119"),
            "{name}: {got}"
        );
        assert_eq!(all[name].pool(), Some("default"), "{name}");
    }
    let distinct: BTreeSet<IpAddr> = ok.iter().map(|n| all[*n].ingress[0]).collect();
    assert_eq!(distinct.len(), ok.len(), "{all:?}");

    // Requests that cannot be met are refused, with the reason, and stay pending.
    wait_allocation_failed(&api, "outside", "\"10.250.9.9\" is not allowed in config");
    wait_allocation_failed(&api, "unknown-pool", "unknown pool \"nope\"");
    let column = external_ip_column(&api);
    assert_eq!(column["outside"], "<pending>");
    assert_eq!(column["unknown-pool"], "<pending>");
    for (name, _, want) in &wanted {
        assert_eq!(column[*name], *want, "{name}");
    }

    // A changed request moves that Service, and only it.
    let before = services(&api);
    api.kubectl_ok(&[
        "annotate",
        "--overwrite",
        "svc",
        "by-ferrolb",
        "ferrolb.io/loadBalancerIPs=10.250.3.115",
    ]);
    wait_service(
        &api,
        "by-ferrolb",
        "moves to .115",
        Duration::from_secs(20),
        |s| s.ingress == vec![ip("10.250.3.115")] && s.pool() == Some("default"),
    );
    let mut others = before.clone();
    others.retain(|n, _| n != "by-ferrolb" && ok.contains(&n.as_str()));
    assert_untouched(
        &others,
        &services(&api),
        "after by-ferrolb's request changed",
    );
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn a_configured_load_balancer_class_selects_the_services() {
    let lab = Lab::new("flb-cls");
    let api_host = lab.host("api", "10.250.10.2/24", None);
    let n1 = lab.host("n1", "10.250.10.11/24", None);
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let mut config = NodeConfig::new("n1", &api.kubeconfig)
        .pool(PoolConfig::new("default", &["10.250.10.100-10.250.10.109"]));
    config.kubernetes_extra = "load_balancer_class = \"ferrolb.io/lb\"\n".into();
    let config = lab.ferrolb_config(&config);
    let daemon = lab.start_ferrolb(&n1, &config);
    wait_lease_holder(&api, Duration::from_secs(20), |h| h == "n1");
    apply(
        &api,
        &[
            lb("no-class"),
            lb("other-class").class("other.example/lb"),
            lb("ours").class("ferrolb.io/lb"),
        ],
    );
    let all = wait_allocated(&api, &["ours"], Duration::from_secs(20));
    // ours was created last: the daemon has decided about the other two by now.
    for name in ["no-class", "other-class"] {
        assert!(
            all[name].ingress.is_empty() && all[name].pool().is_none(),
            "{:?}",
            all[name]
        );
        let touched: Vec<Request> = api
            .requests()
            .into_iter()
            .filter(|r| r.is_ferrolb() && r.resource == "services" && r.name == name)
            .collect();
        assert!(
            touched.is_empty(),
            "ferrolb sent requests about {name}: {touched:?}"
        );
    }
    let column = external_ip_column(&api);
    assert_eq!(column["no-class"], "<pending>");
    assert_eq!(column["ours"], all["ours"].ingress[0].to_string());
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn sharing_with_and_without_a_compatible_key() {
    let (lab, api, daemon) = single_node(
        "flb-shr",
        4,
        false,
        vec![PoolConfig::new("default", &["10.250.4.100-10.250.4.119"])],
    );
    let shared = "10.250.4.110";
    apply(
        &api,
        &[lb("share-a")
            .annotate("ferrolb.io/allow-shared-ip", "k1")
            .annotate("ferrolb.io/loadBalancerIPs", shared)
            .ports(&[("TCP", 80)])],
    );
    wait_allocated(&api, &["share-a"], Duration::from_secs(20));
    apply(
        &api,
        &[
            // Same key, other ports: the same address (MetalLB's spelling of the key).
            lb("share-b")
                .annotate("metallb.universe.tf/allow-shared-ip", "k1")
                .annotate("ferrolb.io/loadBalancerIPs", shared)
                .ports(&[("TCP", 443)]),
            // Same key, nothing requested: joins the address shared under that key.
            lb("share-c")
                .annotate("ferrolb.io/allow-shared-ip", "k1")
                .ports(&[("UDP", 53), ("TCP", 53)]),
            // Another key, nothing requested: an address of its own.
            lb("other-key-free")
                .annotate("ferrolb.io/allow-shared-ip", "k2")
                .ports(&[("TCP", 8080)]),
            // Asking for the shared address with another key, without a key, or with a port
            // already used there: refused.
            lb("other-key")
                .annotate("ferrolb.io/allow-shared-ip", "k2")
                .annotate("ferrolb.io/loadBalancerIPs", shared)
                .ports(&[("TCP", 9000)]),
            lb("no-key")
                .annotate("ferrolb.io/loadBalancerIPs", shared)
                .ports(&[("TCP", 9001)]),
            lb("port-clash")
                .annotate("ferrolb.io/allow-shared-ip", "k1")
                .annotate("ferrolb.io/loadBalancerIPs", shared)
                .ports(&[("TCP", 80)]),
        ],
    );
    let all = wait_allocated(
        &api,
        &["share-a", "share-b", "share-c", "other-key-free"],
        Duration::from_secs(20),
    );
    for name in ["share-a", "share-b", "share-c"] {
        assert_eq!(all[name].ingress, vec![ip(shared)], "{name}");
    }
    assert_eq!(all["other-key-free"].ingress.len(), 1);
    assert_ne!(all["other-key-free"].ingress[0], ip(shared));
    wait_allocation_failed(&api, "other-key", "sharing key \"k2\" does not match");
    wait_allocation_failed(&api, "no-key", "already in use");
    wait_allocation_failed(&api, "port-clash", "port TCP/80 is already in use");
    let column = external_ip_column(&api);
    for name in ["other-key", "no-key", "port-clash"] {
        assert_eq!(column[name], "<pending>", "{name}");
    }
    assert_eq!(column["share-b"], shared);

    // One holder leaves: the others keep the address, untouched.
    let before = services(&api);
    api.kubectl_ok(&["delete", "svc", "share-a"]);
    // port-clash collided with share-a's TCP/80 only: now it fits, on the shared address.
    let clash = wait_service(
        &api,
        "port-clash",
        "gets the shared address",
        Duration::from_secs(20),
        |s| s.allocated(),
    );
    assert_eq!(clash.ingress, vec![ip(shared)]);
    let after = services(&api);
    let mut kept = before.clone();
    kept.retain(|n, _| ["share-b", "share-c", "other-key-free"].contains(&n.as_str()));
    assert_untouched(&kept, &after, "after share-a left");
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn dual_stack_services_get_one_address_per_family() {
    let (lab, api, daemon) = single_node(
        "flb-ds",
        5,
        true,
        vec![
            PoolConfig::new("ds", &["10.250.5.100-10.250.5.109", "fd00:250:5::100/124"]),
            PoolConfig::new("v4only", &["10.250.5.200-10.250.5.209"]).manual(),
        ],
    );
    let v4 = (ip("10.250.5.100"), ip("10.250.5.109"));
    let v6 = (ip("fd00:250:5::100"), ip("fd00:250:5::10f"));
    let within = |a: IpAddr, r: (IpAddr, IpAddr)| a >= r.0 && a <= r.1;
    apply(
        &api,
        &[
            lb("require").families("RequireDualStack", &["IPv4", "IPv6"]),
            lb("require-v6-first").families("RequireDualStack", &["IPv6", "IPv4"]),
            lb("prefer").families("PreferDualStack", &["IPv4", "IPv6"]),
            lb("v6-only").families("SingleStack", &["IPv6"]),
            lb("v4-only"),
            lb("requested")
                .families("RequireDualStack", &["IPv4", "IPv6"])
                .annotate("ferrolb.io/loadBalancerIPs", "10.250.5.105,fd00:250:5::105"),
            lb("no-v6-pool")
                .families("RequireDualStack", &["IPv4", "IPv6"])
                .annotate("ferrolb.io/address-pool", "v4only"),
        ],
    );
    let ok = [
        "require",
        "require-v6-first",
        "prefer",
        "v6-only",
        "v4-only",
        "requested",
    ];
    let all = wait_allocated(&api, &ok, Duration::from_secs(30));
    // The simulator gave the dual-stack Services cluster IPs of both families, as a real
    // server does.
    let spec = api.kubectl_json(&["get", "svc", "require"]);
    assert_eq!(
        spec["spec"]["clusterIPs"].as_array().map(Vec::len),
        Some(2),
        "{spec}"
    );

    for name in ["require", "prefer", "requested"] {
        let got = &all[name].ingress;
        assert_eq!(got.len(), 2, "{name}: {got:?}");
        assert!(within(got[0], v4) && within(got[1], v6), "{name}: {got:?}");
    }
    let got = &all["require-v6-first"].ingress;
    assert!(
        got.len() == 2 && within(got[0], v6) && within(got[1], v4),
        "addresses in the Service's family order: {got:?}"
    );
    assert!(
        all["v6-only"].ingress.len() == 1 && within(all["v6-only"].ingress[0], v6),
        "{:?}",
        all["v6-only"]
    );
    assert!(
        all["v4-only"].ingress.len() == 1 && within(all["v4-only"].ingress[0], v4),
        "{:?}",
        all["v4-only"]
    );
    assert_eq!(
        all["requested"].ingress,
        vec![ip("10.250.5.105"), ip("fd00:250:5::105")]
    );
    let every: Vec<IpAddr> = ok.iter().flat_map(|n| all[*n].ingress.clone()).collect();
    let distinct: BTreeSet<IpAddr> = every.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        every.len(),
        "an address given twice: {every:?}"
    );
    // A pool without IPv6 cannot serve RequireDualStack.
    wait_allocation_failed(&api, "no-v6-pool", "v4only");
    let column = external_ip_column(&api);
    assert_eq!(column["no-v6-pool"], "<pending>");
    let want = format!(
        "{},{}",
        all["require"].ingress[0], all["require"].ingress[1]
    );
    assert_eq!(column["require"], want, "kubectl shows both addresses");
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn exhausted_pool_reports_keeps_pending_and_serves_the_first_freed_address() {
    let (lab, api, daemon) = single_node(
        "flb-exh",
        6,
        false,
        vec![PoolConfig::new("tiny", &["10.250.6.100-10.250.6.101"])],
    );
    apply(&api, &[lb("t1"), lb("t2")]);
    let all = wait_allocated(&api, &["t1", "t2"], Duration::from_secs(20));
    apply(&api, &[lb("t3")]);
    let ev = wait_allocation_failed(&api, "t3", "pool \"tiny\"");
    assert_eq!(ev.kind, "Warning");
    assert!(ev.message.contains("\"default/t3\""), "{ev:?}");
    let text = describe(&api, "t3");
    assert!(
        text.contains("AllocationFailed") && text.contains("no available IPs in pool \"tiny\""),
        "kubectl describe svc t3:\n{text}"
    );
    assert_eq!(external_ip_column(&api)["t3"], "<pending>");
    assert!(services(&api)["t3"].ingress.is_empty());

    // t1 goes: t3 gets its address at once.
    let t1_ip = all["t1"].ingress[0];
    let deleted = Instant::now();
    api.kubectl_ok(&["delete", "svc", "t1"]);
    let t3 = wait_service(
        &api,
        "t3",
        "gets t1's address",
        Duration::from_secs(20),
        |s| s.allocated(),
    );
    eprintln!(
        "t3 got the freed address {:?} after kubectl delete returned",
        deleted.elapsed()
    );
    assert_eq!(t3.ingress, vec![t1_ip]);
    assert_eq!(external_ip_column(&api)["t3"], t1_ip.to_string());
    let text = describe(&api, "t3");
    assert!(
        text.contains("IPAllocated") && text.contains(&format!("Assigned IP [\"{t1_ip}\"]")),
        "kubectl describe svc t3:\n{text}"
    );
    // The failure was reported once, not on every retry.
    let failed: Vec<EventView> = events(&api)
        .into_iter()
        .filter(|e| e.object == "t3" && e.reason == "AllocationFailed")
        .collect();
    assert!(failed.len() == 1 && failed[0].count == 1, "{failed:?}");
    assert!(lab.running(daemon.proc));
    assert_rbac(&api);
}

#[test]
fn a_world_readable_kubeconfig_is_a_warning_not_a_refusal() {
    use std::os::unix::fs::PermissionsExt;
    let lab = Lab::new("flb-perm");
    let api_host = lab.host("api", "10.250.9.2/24", None);
    let n1 = lab.host("n1", "10.250.9.11/24", None);
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let mode = std::fs::metadata(&api.kubeconfig)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the simulator writes its kubeconfig 0600");
    let open = lab.write_file(
        "kubeconfig-0644",
        &std::fs::read_to_string(&api.kubeconfig).unwrap(),
        0o644,
    );
    let text = NodeConfig::new("n1", &open)
        .pool(PoolConfig::new("default", &["10.250.9.100-10.250.9.109"]))
        .render();
    let config = lab.write_file("n1.toml", &text, 0o600);
    let mut check = std::process::Command::new(FERROLB);
    check.arg("check-config").arg("--config").arg(&config);
    let out = run_with_timeout(check, None, Duration::from_secs(20));
    assert!(out.ok, "check-config refused it:\n{}", out.stderr);
    assert!(
        out.stderr.contains("can be read or written by others"),
        "check-config does not warn:\n{}",
        out.stderr
    );
    // ferrolb run warns too, and runs.
    let daemon = lab.start_ferrolb(&n1, &config);
    assert!(daemon
        .log_text()
        .contains("can be read or written by others"));
    wait_lease_holder(&api, Duration::from_secs(20), |h| h == "n1");
    apply(&api, &[lb("web")]);
    wait_allocated(&api, &["web"], Duration::from_secs(20));
    assert_rbac(&api);
}
