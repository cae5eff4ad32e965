//! End-to-end: every request ferrolb sends during a representative run — two daemons, Lease
//! creation, renewal, release on SIGTERM and takeover; allocations, a type change there and
//! back (an aggregated Event), an exhausted pool, deletions — is checked against the verbs and
//! resources `packaging/kubernetes/rbac.yaml` grants the `ferrolb` ServiceAccount (ClusterRole
//! rules anywhere, Role rules in the Role's namespace). Each request is classified from its
//! method, path and query as the API server's authorizer would (and cross-checked with the
//! simulator's own classification). The other end-to-end tests run the same check at their end.
//!
//! Needs root (network namespaces), `ip`, `curl` and `/usr/bin/kubectl`.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::e2e::*;
use common::netlab::*;

fn request(method: &str, path: &str, query: &str) -> Request {
    let info = RequestInfo::of(method, path, query);
    Request {
        seq: 1,
        method: method.into(),
        path: path.into(),
        query: query.into(),
        user_agent: "ferrolb/0.1.0".into(),
        status: 200,
        verb: info.verb,
        api_group: info.api_group,
        resource: info.resource,
        subresource: info.subresource,
        namespace: info.namespace,
        name: info.name,
    }
}

/// The checker itself: what the ClusterRole and Role grant passes, anything else is refused.
#[test]
fn the_rbac_check_refuses_what_rbac_yaml_does_not_grant() {
    let rbac = Rbac::load();
    let allowed = [
        ("GET", "/api/v1/services", "limit=500"),
        ("GET", "/api/v1/services", "watch=true&resourceVersion=5"),
        ("PATCH", "/api/v1/namespaces/a/services/s/status", ""),
        ("PATCH", "/api/v1/namespaces/a/services/s", ""),
        ("GET", "/api/v1/namespaces/a/services/s", ""),
        ("GET", "/api/v1/nodes", "watch=1"),
        ("GET", "/apis/discovery.k8s.io/v1/endpointslices", ""),
        ("POST", "/api/v1/namespaces/a/events", ""),
        ("PATCH", "/api/v1/namespaces/a/events/e", ""),
        (
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l",
            "",
        ),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l",
            "",
        ),
        (
            "POST",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
            "",
        ),
    ];
    let refused = [
        ("PUT", "/api/v1/namespaces/a/services/s/status", ""),
        ("PUT", "/api/v1/namespaces/a/services/s", ""),
        ("DELETE", "/api/v1/namespaces/a/services/s", ""),
        ("POST", "/api/v1/namespaces/a/services", ""),
        ("GET", "/api/v1/nodes/n1", ""),
        ("PATCH", "/api/v1/nodes/n1/status", ""),
        ("GET", "/api/v1/namespaces/a/secrets", ""),
        ("GET", "/api/v1/namespaces/a/endpoints", ""),
        ("GET", "/apis/events.k8s.io/v1/namespaces/a/events", ""),
        (
            "PUT",
            "/apis/coordination.k8s.io/v1/namespaces/default/leases/l",
            "",
        ),
        ("GET", "/apis/coordination.k8s.io/v1/leases", ""),
        (
            "DELETE",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l",
            "",
        ),
        ("GET", "/version", ""),
        ("GET", "/api", ""),
    ];
    for (m, p, q) in allowed {
        let (bad, _) = rbac.check(&[request(m, p, q)]);
        assert!(bad.is_empty(), "{m} {p}?{q} should be allowed: {bad:?}");
    }
    for (m, p, q) in refused {
        let (bad, _) = rbac.check(&[request(m, p, q)]);
        assert_eq!(bad.len(), 1, "{m} {p}?{q} should be refused");
    }
}

#[test]
fn every_request_ferrolb_sends_is_allowed_by_rbac_yaml() {
    let lab = Lab::new("flb-rbac");
    let api_host = lab.host("api", "10.250.30.2/24", None);
    let hosts = [
        lab.host("n1", "10.250.30.11/24", None),
        lab.host("n2", "10.250.30.12/24", None),
    ];
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    // The manifest applies (the simulator stores RBAC objects; it does not enforce them).
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/kubernetes/rbac.yaml"
    );
    api.kubectl_ok(&["apply", "-f", manifest]);
    api.kubectl_ok(&["get", "clusterrole", "ferrolb"]);
    let configs: Vec<_> = hosts
        .iter()
        .map(|h| {
            lab.ferrolb_config(
                &NodeConfig::new(&h.name, &api.kubeconfig)
                    .pool(PoolConfig::new("small", &["10.250.30.100-10.250.30.102"])),
            )
        })
        .collect();
    let n1 = lab.start_ferrolb(&hosts[0], &configs[0]);
    wait_lease_holder(&api, Duration::from_secs(20), |h| h == "n1");
    let n2 = lab.start_ferrolb(&hosts[1], &configs[1]);

    let t = Duration::from_secs(20);
    apply(&api, &[lb("a"), lb("b"), lb("c")]);
    let all = wait_allocated(&api, &["a", "b", "c"], t);
    // There and back: the same address again, the same Event again (aggregated: a patch).
    api.kubectl_ok(&[
        "patch",
        "svc",
        "a",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    wait_service(&api, "a", "cleared", t, |s| {
        s.ingress.is_empty() && s.pool().is_none()
    });
    api.kubectl_ok(&[
        "patch",
        "svc",
        "a",
        "-p",
        r#"{"spec":{"type":"LoadBalancer"}}"#,
    ]);
    let a = wait_service(&api, "a", "allocated again", t, Svc::allocated);
    assert_eq!(a.ingress, all["a"].ingress);
    wait_for("the IPAllocated Event of a counted twice", t, || {
        let evs = events(&api);
        evs.iter()
            .find(|e| e.object == "a" && e.reason == "IPAllocated" && e.count == 2)
            .map(drop)
            .ok_or_else(|| format!("{evs:?}"))
    });
    // Exhausted, then served.
    apply(&api, &[lb("d")]);
    wait_for("AllocationFailed on d", t, || {
        events(&api)
            .iter()
            .find(|e| e.object == "d" && e.reason == "AllocationFailed")
            .map(drop)
            .ok_or_else(String::new)
    });
    api.kubectl_ok(&["delete", "svc", "b"]);
    wait_service(&api, "d", "gets b's address", t, Svc::allocated);
    // Release on SIGTERM, takeover by n2, which allocates next.
    let status = lab.terminate(n1.proc, Duration::from_secs(15));
    assert!(status.success(), "n1 stopped with {status}");
    wait_lease_holder(&api, t, |h| h == "n2");
    api.kubectl_ok(&["delete", "svc", "c"]);
    apply(&api, &[lb("e")]);
    wait_allocated(&api, &["e"], t);
    assert!(lab.running(n2.proc));

    let requests = api.requests();
    let (refused, seen) = Rbac::load().check(&requests);
    let sent = requests.iter().filter(|r| r.is_ferrolb()).count();
    for r in requests
        .iter()
        .filter(|r| r.is_ferrolb() && r.status >= 300)
    {
        eprintln!("answered {}: {} {}", r.status, r.method, r.path);
    }
    eprintln!("{sent} requests from ferrolb; verbs and resources used: {seen:?}");
    assert!(
        refused.is_empty(),
        "ferrolb sent requests packaging/kubernetes/rbac.yaml does not permit:\n{}",
        refused.join("\n")
    );
    // The run was representative: it used what the daemon needs.
    let needed: BTreeSet<(String, String)> = [
        ("list", "services"),
        ("watch", "services"),
        ("patch", "services"),
        ("patch", "services/status"),
        ("list", "nodes"),
        ("watch", "nodes"),
        ("list", "endpointslices"),
        ("watch", "endpointslices"),
        ("create", "events"),
        ("patch", "events"),
        ("get", "leases"),
        ("create", "leases"),
        ("update", "leases"),
    ]
    .iter()
    .map(|(v, r)| (v.to_string(), r.to_string()))
    .collect();
    let missing: Vec<_> = needed.difference(&seen).collect();
    assert!(missing.is_empty(), "the run did not exercise {missing:?}");
}
