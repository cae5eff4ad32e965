//! The API simulator's semantics over plain HTTP: resourceVersions, list + watch, bookmarks,
//! 410 Gone, 409 Conflict, status subresources, selectors, pagination, Service allocation,
//! errors, faults and restarts.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig, Failure};
use serde_json::{json, Value};

const SVC: &str = "/api/v1/namespaces/default/services";
const CM: &str = "/api/v1/namespaces/default/configmaps";

async fn sim_with(f: impl FnOnce(&mut ApiServerConfig)) -> (ApiServer, SocketAddr) {
    let mut c = ApiServerConfig {
        http: vec!["127.0.0.1:0".parse().unwrap()],
        bookmark_interval: Duration::from_millis(200),
        ..ApiServerConfig::default()
    };
    f(&mut c);
    let sim = ApiServer::start(c).await.unwrap();
    let addr = sim.http_addrs()[0];
    (sim, addr)
}

async fn sim() -> (ApiServer, SocketAddr) {
    sim_with(|_| {}).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resource_versions_are_global_and_monotonic() {
    let (_sim, a) = sim().await;
    let mut last = 0;
    for i in 0..5 {
        let r = post(a, CM, configmap(&format!("c{i}"), json!({}))).await;
        assert_eq!(r.status, 201, "{}", r.text);
        let s = post(a, SVC, service(&format!("s{i}"), "ClusterIP")).await;
        assert_eq!(s.status, 201, "{}", s.text);
        assert!(rv(&r.json) > last);
        assert_eq!(rv(&s.json), rv(&r.json) + 1, "one counter for every kind");
        last = rv(&s.json);
        assert!(!r.json["metadata"]["uid"].as_str().unwrap().is_empty());
        assert!(r.json["metadata"]["creationTimestamp"].is_string());
    }
    let list = get(a, CM).await;
    assert_eq!(list.json["kind"], "ConfigMapList");
    assert_eq!(rv(&list.json), last);
    assert_eq!(list.json["items"].as_array().unwrap().len(), 5);
    // Typed lists leave apiVersion and kind out of their items, like the real server.
    assert!(list.json["items"][0].get("kind").is_none());
    assert_eq!(list.json["apiVersion"], "v1");
    // Update bumps; an update that changes nothing does not.
    let mut c0 = get(a, &format!("{CM}/c0")).await.json;
    c0["data"]["k"] = json!("w");
    let u = put(a, &format!("{CM}/c0"), c0.clone()).await;
    assert_eq!(u.status, 200);
    assert_eq!(rv(&u.json), last + 1);
    let same = put(a, &format!("{CM}/c0"), u.json.clone()).await;
    assert_eq!(rv(&same.json), last + 1);
    // Delete bumps too, and the deleted object is gone.
    assert_eq!(delete(a, &format!("{CM}/c0")).await.status, 200);
    assert_eq!(get(a, &format!("{CM}/c0")).await.status, 404);
    assert_eq!(rv(&get(a, CM).await.json), last + 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_a_list_sees_exactly_the_later_changes() {
    let (_sim, a) = sim().await;
    for i in 0..3 {
        post(a, CM, configmap(&format!("c{i}"), json!({}))).await;
    }
    let list = get(a, CM).await;
    let from = rv(&list.json);
    // Changes after the list, before the watch starts: the watch must still see them.
    let created = post(a, CM, configmap("c3", json!({}))).await.json;
    let mut c1 = get(a, &format!("{CM}/c1")).await.json;
    c1["data"]["k"] = json!("changed");
    let modified = put(a, &format!("{CM}/c1"), c1).await.json;
    post(a, SVC, service("other-kind", "ClusterIP")).await;
    let mut w = watch(a, &format!("{CM}?watch=1&resourceVersion={from}")).await;
    assert_eq!(w.status, 200);
    let e1 = w.event().await;
    assert_eq!(
        (
            e1["type"].as_str(),
            e1["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("c3"))
    );
    assert_eq!(rv(&e1["object"]), rv(&created));
    assert_eq!(e1["object"]["kind"], "ConfigMap");
    let e2 = w.event().await;
    assert_eq!(
        (e2["type"].as_str(), e2["object"]["data"]["k"].as_str()),
        (Some("MODIFIED"), Some("changed"))
    );
    assert_eq!(rv(&e2["object"]), rv(&modified));
    // Live changes.
    let del = delete(a, &format!("{CM}/c2")).await;
    assert_eq!(del.status, 200);
    let e3 = w.event().await;
    assert_eq!(
        (
            e3["type"].as_str(),
            e3["object"]["metadata"]["name"].as_str()
        ),
        (Some("DELETED"), Some("c2"))
    );
    assert!(rv(&e3["object"]) > rv(&modified));
    w.quiet(Duration::from_millis(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_without_version_starts_with_the_current_objects() {
    let (_sim, a) = sim().await;
    post(a, CM, configmap("a", json!({}))).await;
    post(a, CM, configmap("b", json!({}))).await;
    let mut w = watch(a, &format!("{CM}?watch=true")).await;
    let names: Vec<Value> = vec![w.event().await, w.event().await];
    assert!(names.iter().all(|e| e["type"] == "ADDED"));
    w.quiet(Duration::from_millis(200)).await;
    // All namespaces.
    let mut all = watch(a, "/api/v1/namespaces?watch=1").await;
    let first = all.event().await;
    assert_eq!(first["object"]["kind"], "Namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks_carry_the_current_version() {
    let (_sim, a) = sim_with(|c| c.bookmark_interval = Duration::from_millis(100)).await;
    let rv0 = rv(&get(a, CM).await.json);
    let mut w = watch(
        a,
        &format!("{CM}?watch=1&allowWatchBookmarks=true&resourceVersion={rv0}"),
    )
    .await;
    // A change to another kind moves the version the bookmarks report.
    let s = post(a, SVC, service("s", "ClusterIP")).await.json;
    let mut seen = 0;
    let start = Instant::now();
    while seen < 2 {
        match w.next(Duration::from_secs(2)).await {
            Next::Event(e) => {
                assert_eq!(e["type"], "BOOKMARK", "{e}");
                assert_eq!(e["object"]["kind"], "ConfigMap");
                assert_eq!(rv(&e["object"]), rv(&s));
                seen += 1;
            }
            other => panic!("expected a bookmark, got {other:?}"),
        }
    }
    assert!(start.elapsed() < Duration::from_secs(2));
    // No bookmarks unless asked.
    let mut plain = watch(a, &format!("{CM}?watch=1&resourceVersion={rv0}")).await;
    plain.quiet(Duration::from_millis(350)).await;
    // A streaming list: the objects, then the initial-events-end bookmark, then changes.
    post(a, CM, configmap("c1", json!({}))).await;
    let mut wl = watch(a, &format!("{CM}?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=")).await;
    let e = wl.event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("c1"))
    );
    match wl.next(Duration::from_secs(2)).await {
        Next::Event(b) => {
            assert_eq!(b["type"], "BOOKMARK");
            assert_eq!(
                b["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
                "true"
            );
            assert_eq!(rv(&b["object"]), rv(&e["object"]));
        }
        other => panic!("{other:?}"),
    }
    let bad = get(a, &format!("{CM}?watch=1&sendInitialEvents=true")).await;
    assert_eq!(bad.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_are_gone() {
    let (_sim, a) = sim_with(|c| c.history = 5).await;
    post(a, CM, configmap("b", json!({}))).await;
    let start = rv(&post(a, CM, configmap("c", json!({}))).await.json);
    let page = get(a, &format!("{CM}?limit=1")).await.json;
    for i in 0..10 {
        post(a, CM, configmap(&format!("x{i}"), json!({}))).await;
    }
    // A watch from a version out of the window: HTTP 200, one ERROR event, end.
    let mut w = watch(a, &format!("{CM}?watch=1&resourceVersion={start}")).await;
    assert_eq!(w.status, 200);
    match w.next(Duration::from_secs(2)).await {
        Next::Event(e) => {
            assert_eq!(e["type"], "ERROR");
            assert_eq!(e["object"]["kind"], "Status");
            assert_eq!(e["object"]["code"], 410);
            assert_eq!(e["object"]["reason"], "Expired");
            assert!(e["object"]["message"]
                .as_str()
                .unwrap()
                .starts_with("too old resource version"));
        }
        other => panic!("expected an ERROR event, got {other:?}"),
    }
    assert!(matches!(w.next(Duration::from_secs(2)).await, Next::End));
    // An exact list of a version out of the window: HTTP 410.
    let l = get(
        a,
        &format!("{CM}?resourceVersion={start}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(
        (l.status, l.json["reason"].as_str()),
        (410, Some("Expired"))
    );
    // So is a continue token from then.
    let token = page["metadata"]["continue"].as_str().unwrap();
    let l = get(a, &format!("{CM}?limit=1&continue={token}")).await;
    assert_eq!(l.status, 410);
    // A recent version is fine, for both.
    let recent = rv(&get(a, CM).await.json) - 2;
    let l = get(
        a,
        &format!("{CM}?resourceVersion={recent}&resourceVersionMatch=Exact"),
    )
    .await;
    assert_eq!(l.status, 200);
    assert_eq!(l.json["items"].as_array().unwrap().len(), 10);
    assert_eq!(rv(&l.json), recent);
    let mut w = watch(a, &format!("{CM}?watch=1&resourceVersion={recent}")).await;
    assert_eq!(w.event().await["type"], "ADDED");
    assert_eq!(w.event().await["type"], "ADDED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts() {
    let (_sim, a) = sim().await;
    let created = post(a, SVC, service("web", "ClusterIP")).await.json;
    let dup = post(a, SVC, service("web", "ClusterIP")).await;
    assert_eq!(
        (dup.status, dup.json["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    assert_eq!(dup.json["message"], "services \"web\" already exists");
    assert_eq!(dup.json["kind"], "Status");
    assert_eq!(dup.json["status"], "Failure");
    let mut fresh = created.clone();
    fresh["metadata"]["labels"]["v"] = json!("1");
    assert_eq!(put(a, &format!("{SVC}/web"), fresh).await.status, 200);
    // The original version is stale now.
    let mut stale = created.clone();
    stale["metadata"]["labels"]["v"] = json!("2");
    let r = put(a, &format!("{SVC}/web"), stale).await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (409, Some("Conflict"))
    );
    assert!(r.json["message"]
        .as_str()
        .unwrap()
        .contains("the object has been modified"));
    // A patch carrying a stale resourceVersion too.
    let r = patch(a, &format!("{SVC}/web"), "application/merge-patch+json",
        json!({"metadata": {"resourceVersion": created["metadata"]["resourceVersion"], "labels": {"v": "3"}}})).await;
    assert_eq!(r.status, 409);
    // A status write too.
    let r = put(a, &format!("{SVC}/web/status"), created.clone()).await;
    assert_eq!(r.status, 409);
    // Delete with a stale precondition.
    let r = call(a, "DELETE", &format!("{SVC}/web"), Some(("application/json",
        json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"resourceVersion": created["metadata"]["resourceVersion"]}}))), &[]).await;
    assert_eq!(r.status, 409);
    // Unconditional updates are allowed.
    let mut unconditional = created;
    unconditional["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    assert_eq!(
        put(a, &format!("{SVC}/web"), unconditional).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_a_separate_subresource() {
    let (_sim, a) = sim().await;
    let created = post(a, SVC, service("web", "LoadBalancer")).await.json;
    assert_eq!(created["status"], json!({"loadBalancer": {}}));
    // PUT on the main resource: spec changes, status changes are ignored.
    let mut obj = created.clone();
    obj["spec"]["ports"][0]["targetPort"] = json!(8080);
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
    let r = put(a, &format!("{SVC}/web"), obj).await.json;
    assert_eq!(r["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(r["status"], json!({"loadBalancer": {}}));
    // PUT on /status: status changes, spec changes are ignored.
    let mut obj = r.clone();
    obj["spec"]["ports"][0]["targetPort"] = json!(9090);
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
    let s = put(a, &format!("{SVC}/web/status"), obj).await;
    assert_eq!(s.status, 200, "{}", s.text);
    assert_eq!(s.json["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(
        s.json["status"]["loadBalancer"]["ingress"][0]["ip"],
        "192.0.2.1"
    );
    assert_eq!(
        s.json["status"]["loadBalancer"]["ingress"][0]["ipMode"],
        "VIP"
    );
    // PATCH on /status likewise.
    let p = patch(a, &format!("{SVC}/web/status"), "application/merge-patch+json",
        json!({"spec": {"type": "ClusterIP"}, "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}})).await.json;
    assert_eq!(p["spec"]["type"], "LoadBalancer");
    assert_eq!(p["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.2");
    // PATCH on the main resource ignores status.
    let p = patch(
        a,
        &format!("{SVC}/web"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"x": "y"}}, "status": {"loadBalancer": null}}),
    )
    .await
    .json;
    assert_eq!(p["metadata"]["labels"]["x"], "y");
    assert_eq!(p["status"]["loadBalancer"]["ingress"][0]["ip"], "192.0.2.2");
    // GET /status.
    assert_eq!(
        get(a, &format!("{SVC}/web/status")).await.json["metadata"]["name"],
        "web"
    );
    // Nodes too (created with status, as the kubelet does).
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "spec": {"podCIDR": "10.244.0.0/24"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let n = post(a, "/api/v1/nodes", node).await;
    assert_eq!(n.status, 201, "{}", n.text);
    assert_eq!(n.json["status"]["conditions"][0]["status"], "True");
    let mut n2 = n.json.clone();
    n2["status"]["conditions"][0]["status"] = json!("False");
    n2["spec"]["unschedulable"] = json!(true);
    let r = put(a, "/api/v1/nodes/n1", n2.clone()).await.json;
    assert_eq!(
        (
            r["spec"]["unschedulable"].as_bool(),
            r["status"]["conditions"][0]["status"].as_str()
        ),
        (Some(true), Some("True"))
    );
    n2["metadata"]["resourceVersion"] = r["metadata"]["resourceVersion"].clone();
    n2["spec"]["unschedulable"] = json!(false);
    let r = put(a, "/api/v1/nodes/n1/status", n2).await.json;
    assert_eq!(
        (
            r["spec"]["unschedulable"].as_bool(),
            r["status"]["conditions"][0]["status"].as_str()
        ),
        (Some(true), Some("False"))
    );
    // Kinds without a status subresource have no /status path.
    assert_eq!(get(a, &format!("{CM}/x/status")).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_on_list_and_watch() {
    let (_sim, a) = sim().await;
    post(
        a,
        CM,
        configmap("a", json!({"app": "web", "tier": "front"})),
    )
    .await;
    post(a, CM, configmap("b", json!({"app": "db"}))).await;
    post(a, CM, configmap("c", json!({"app": "web", "tier": "back"}))).await;
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_string())
            .collect()
    };
    let q = |s: &str| {
        format!(
            "{CM}?labelSelector={}",
            s.replace(' ', "%20")
                .replace('!', "%21")
                .replace('(', "%28")
                .replace(')', "%29")
                .replace(',', "%2C")
                .replace('=', "%3D")
        )
    };
    assert_eq!(names(&get(a, &q("app=web")).await.json), ["a", "c"]);
    assert_eq!(names(&get(a, &q("app==web,tier!=back")).await.json), ["a"]);
    assert_eq!(names(&get(a, &q("app in (db,cache)")).await.json), ["b"]);
    assert_eq!(names(&get(a, &q("app notin (web)")).await.json), ["b"]);
    assert_eq!(names(&get(a, &q("tier")).await.json), ["a", "c"]);
    assert_eq!(names(&get(a, &q("!tier")).await.json), ["b"]);
    assert_eq!(get(a, &q("app in (web")).await.status, 400);
    assert_eq!(
        names(
            &get(a, &format!("{CM}?fieldSelector=metadata.name%3Db"))
                .await
                .json
        ),
        ["b"]
    );
    assert_eq!(
        names(
            &get(a, &format!("{CM}?fieldSelector=metadata.name%21%3Db"))
                .await
                .json
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            &get(
                a,
                "/api/v1/configmaps?fieldSelector=metadata.namespace%3Ddefault"
            )
            .await
            .json
        ),
        ["a", "b", "c"]
    );
    let bad = get(a, &format!("{CM}?fieldSelector=data.k%3Dv")).await;
    assert_eq!(
        (bad.status, bad.json["message"].as_str()),
        (400, Some("field label not supported: data.k"))
    );

    // Watch with a label selector: entering the selection is ADDED, leaving it DELETED.
    let from = rv(&get(a, CM).await.json);
    let mut w = watch(
        a,
        &format!("{CM}?watch=1&resourceVersion={from}&labelSelector=app%3Dweb"),
    )
    .await;
    let mut wf = watch(
        a,
        &format!("{CM}?watch=1&resourceVersion={from}&fieldSelector=metadata.name%3Db"),
    )
    .await;
    patch(
        a,
        &format!("{CM}/b"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"app": "web"}}}),
    )
    .await;
    let e = w.event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    patch(
        a,
        &format!("{CM}/a"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"app": "gone"}}}),
    )
    .await;
    let e = w.event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("DELETED"), Some("a"))
    );
    patch(
        a,
        &format!("{CM}/d-missing"),
        "application/merge-patch+json",
        json!({}),
    )
    .await;
    post(a, CM, configmap("d", json!({"app": "db"}))).await;
    w.quiet(Duration::from_millis(200)).await;
    let e = wf.event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("MODIFIED"), Some("b"))
    );
    wf.quiet(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_is_consistent() {
    let (_sim, a) = sim().await;
    for i in 0..7 {
        post(a, CM, configmap(&format!("c{i}"), json!({}))).await;
    }
    let p1 = get(a, &format!("{CM}?limit=3")).await.json;
    assert_eq!(p1["items"].as_array().unwrap().len(), 3);
    assert_eq!(p1["metadata"]["remainingItemCount"], 4);
    let token = p1["metadata"]["continue"].as_str().unwrap().to_string();
    // Changes between pages do not show: the pages are of the first page's version.
    delete(a, &format!("{CM}/c5")).await;
    post(a, CM, configmap("c7", json!({}))).await;
    let p2 = get(a, &format!("{CM}?limit=3&continue={token}")).await.json;
    assert_eq!(rv(&p2), rv(&p1));
    let token = p2["metadata"]["continue"].as_str().unwrap().to_string();
    let p3 = get(a, &format!("{CM}?limit=3&continue={token}")).await.json;
    assert!(p3["metadata"].get("continue").is_none());
    let all: Vec<&str> = [&p1, &p2, &p3]
        .iter()
        .flat_map(|p| {
            p["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["metadata"]["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(all, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    assert_eq!(
        get(a, &format!("{CM}?limit=3&continue=garbage"))
            .await
            .status,
        400
    );
    // `resourceVersion=0` (the watch cache) ignores the limit.
    let l = get(a, &format!("{CM}?limit=3&resourceVersion=0"))
        .await
        .json;
    assert_eq!(l["items"].as_array().unwrap().len(), 7);
    assert!(l["metadata"].get("continue").is_none());
    // No limit: everything, no token.
    let l = get(a, CM).await.json;
    assert_eq!(l["items"].as_array().unwrap().len(), 7);
    assert!(l["metadata"].get("continue").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_addresses_and_ports() {
    let (_sim, a) = sim().await;
    let s = post(a, SVC, service("lb", "LoadBalancer")).await.json;
    let np = s["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&np));
    assert!(s["spec"]["clusterIP"]
        .as_str()
        .unwrap()
        .starts_with("10.96."));
    assert_eq!(s["spec"]["externalTrafficPolicy"], "Cluster");
    assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
    // A second service gets another port and IP.
    let t = post(a, SVC, service("lb2", "LoadBalancer")).await.json;
    assert_ne!(
        t["spec"]["ports"][0]["nodePort"],
        s["spec"]["ports"][0]["nodePort"]
    );
    assert_ne!(t["spec"]["clusterIP"], s["spec"]["clusterIP"]);
    // Requesting a taken node port is invalid.
    let mut u = service("lb3", "NodePort");
    u["spec"]["ports"][0]["nodePort"] = json!(np);
    let r = post(a, SVC, u).await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (422, Some("Invalid"))
    );
    // Dual stack.
    let mut d = service("dual", "LoadBalancer");
    d["spec"]["ipFamilyPolicy"] = json!("RequireDualStack");
    let d = post(a, SVC, d).await.json;
    assert_eq!(d["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
    assert!(d["spec"]["clusterIPs"][1].as_str().unwrap().contains(':'));
    patch(
        a,
        &format!("{SVC}/lb/status"),
        "application/merge-patch+json",
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.9"}]}}}),
    )
    .await;
    // LoadBalancer → ClusterIP drops the node ports and the load-balancer status (the real
    // server's dropTypeDependentFields); the cluster IP stays.
    let c = patch(
        a,
        &format!("{SVC}/lb"),
        "application/merge-patch+json",
        json!({"spec": {"type": "ClusterIP"}}),
    )
    .await;
    assert_eq!(c.status, 200, "{}", c.text);
    assert!(c.json["spec"]["ports"][0].get("nodePort").is_none());
    assert_eq!(c.json["spec"]["clusterIP"], s["spec"]["clusterIP"]);
    assert_eq!(c.json["status"], json!({"loadBalancer": {}}));
    // The freed port can be taken now.
    let mut u = service("lb3", "NodePort");
    u["spec"]["ports"][0]["nodePort"] = json!(np);
    assert_eq!(post(a, SVC, u).await.status, 201);
    // PUT creates a missing Service (AllowCreateOnUpdate).
    let r = put(a, &format!("{SVC}/by-put"), service("by-put", "ClusterIP")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Invalid services.
    let mut bad = service("bad", "ClusterIP");
    bad["spec"]["ports"] = json!([]);
    let r = post(a, SVC, bad).await;
    assert_eq!(r.status, 422);
    assert_eq!(r.json["details"]["causes"][0]["field"], "spec.ports");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patches_and_generation() {
    let (_sim, a) = sim().await;
    let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {"metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "busybox:1"}]}}}});
    let d = post(a, "/apis/apps/v1/namespaces/default/deployments", dep).await;
    assert_eq!(d.status, 201, "{}", d.text);
    assert_eq!(d.json["metadata"]["generation"], 1);
    assert_eq!(d.json["spec"]["replicas"], 1);
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    // Strategic merge: containers merge by name; directives are honoured and never stored.
    let p = patch(
        a,
        path,
        "application/strategic-merge-patch+json",
        json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "nginx:2"}]}}}}),
    )
    .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let cs = &p.json["spec"]["template"]["spec"]["containers"];
    assert_eq!(cs[0]["name"], "side");
    assert_eq!(cs[1]["image"], "nginx:2");
    assert!(!p.text.contains('$'), "{}", p.text);
    assert_eq!(p.json["metadata"]["generation"], 2);
    // Metadata changes do not bump the generation.
    let p = patch(
        a,
        path,
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"a": "b"}}}),
    )
    .await;
    assert_eq!(p.json["metadata"]["generation"], 2);
    // JSON patch.
    let p = patch(
        a,
        path,
        "application/json-patch+json",
        json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
    )
    .await;
    assert_eq!(
        (
            p.json["spec"]["replicas"].as_i64(),
            p.json["metadata"]["generation"].as_i64()
        ),
        (Some(3), Some(3))
    );
    let p = patch(
        a,
        path,
        "application/json-patch+json",
        json!([{"op": "test", "path": "/spec/replicas", "value": 4}]),
    )
    .await;
    assert!(p.status >= 400);
    let p = patch(a, path, "text/plain", json!({})).await;
    assert_eq!(p.status, 415);
    // `$patch: delete` and `$retainKeys` in a strategic merge patch.
    let p = patch(
        a,
        path,
        "application/strategic-merge-patch+json",
        json!({"spec": {"template": {"spec": {
        "containers": [{"name": "side", "$patch": "delete"}]}}}}),
    )
    .await
    .json;
    assert_eq!(
        p["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let stored = get(a, path).await.text;
    assert!(!stored.contains('$'));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_status_objects() {
    let (_sim, a) = sim().await;
    let r = post(
        a,
        "/api/v1/namespaces/nope/configmaps",
        configmap("c", json!({})),
    )
    .await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (404, Some("NotFound"))
    );
    assert_eq!(r.json["message"], "namespaces \"nope\" not found");
    let r = get(a, &format!("{SVC}/missing")).await;
    assert_eq!(r.json["message"], "services \"missing\" not found");
    assert_eq!(r.json["details"]["kind"], "services");
    let r = call_raw(a, "POST", CM, "application/json", b"{not json").await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    let r = call_raw(a, "POST", CM, "application/json", &[0xff, 0xfe, 0x00]).await;
    assert_eq!(r.status, 400);
    let r = call_raw(
        a,
        "POST",
        CM,
        "application/vnd.kubernetes.protobuf",
        b"k8s\x00",
    )
    .await;
    assert_eq!(r.status, 415);
    let r = post(
        a,
        CM,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(
        a,
        CM,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}),
    )
    .await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (422, Some("Invalid"))
    );
    let r = post(
        a,
        CM,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}}),
    )
    .await;
    assert_eq!(r.status, 201);
    assert!(r.json["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("gen-"));
    assert_eq!(get(a, "/api/v1/pods").await.status, 404);
    assert_eq!(get(a, "/apis/nope/v1/things").await.status, 404);
    assert_eq!(call(a, "PUT", CM, None, &[]).await.status, 405);
    let r = call(a, "DELETE", "/api/v1/namespaces/default", None, &[]).await;
    assert_eq!(r.status, 403);
    let r = put(a, &format!("{CM}/other"), configmap("c", json!({}))).await;
    assert_eq!(r.status, 400);
    let r = get(a, &format!("{CM}?limit=abc")).await;
    assert_eq!(r.status, 400);
    let r = get(a, &format!("{CM}?watch=1&resourceVersion=abc")).await;
    assert_eq!(r.status, 400);
    // Namespaces: create, use, delete with their content.
    assert_eq!(
        post(
            a,
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team"}})
        )
        .await
        .status,
        201
    );
    assert_eq!(
        post(
            a,
            "/api/v1/namespaces/team/configmaps",
            configmap("c", json!({}))
        )
        .await
        .status,
        201
    );
    assert_eq!(delete(a, "/api/v1/namespaces/team").await.status, 200);
    assert_eq!(
        get(a, "/api/v1/namespaces/team/configmaps/c").await.status,
        404
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_checked() {
    let (_sim, a) = sim_with(|c| c.token = Some("s3cret".into())).await;
    // Plain HTTP without a token is let in (kubectl sends tokens only over HTTPS) ...
    assert_eq!(get(a, CM).await.status, 200);
    // ... a wrong token never is.
    let r = call(a, "GET", CM, None, &[("authorization", "Bearer nope")]).await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
    let r = call(a, "GET", CM, None, &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(r.status, 200);
    let (_strict, b) = sim_with(|c| {
        c.token = Some("s3cret".into());
        c.http_requires_token = true;
    })
    .await;
    assert_eq!(get(b, CM).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_and_tables() {
    let (_sim, a) = sim().await;
    assert_eq!(get(a, "/version").await.json["gitVersion"], "v1.32.4");
    assert_eq!(get(a, "/api").await.json["versions"], json!(["v1"]));
    let groups = get(a, "/apis").await.json;
    assert!(groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["name"] == "coordination.k8s.io"));
    let core = get(a, "/api/v1").await.json;
    assert!(core["resources"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == "services/status"));
    for gv in [
        "/apis/discovery.k8s.io/v1",
        "/apis/coordination.k8s.io/v1",
        "/apis/events.k8s.io/v1",
        "/apis/rbac.authorization.k8s.io/v1",
        "/apis/apps/v1",
    ] {
        assert_eq!(get(a, gv).await.json["kind"], "APIResourceList", "{gv}");
    }
    assert_eq!(get(a, "/openapi/v3").await.status, 200);
    // Aggregated discovery, as kubectl asks for it first.
    let agg = [(
        "accept",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
    )];
    let r = call(a, "GET", "/apis", None, &agg).await;
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    assert_eq!(r.json["kind"], "APIGroupDiscoveryList");
    let r = call(a, "GET", "/api", None, &agg).await;
    assert_eq!(r.json["items"][0]["versions"][0]["version"], "v1");
    post(a, SVC, service("web", "LoadBalancer")).await;
    let accept = [(
        "accept",
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
    )];
    let t = call(a, "GET", SVC, None, &accept).await.json;
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(t["rows"][0]["cells"][3], "<pending>");
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    let t = call(
        a,
        "GET",
        &format!("{SVC}?includeObject=Object"),
        None,
        &accept,
    )
    .await
    .json;
    assert_eq!(t["rows"][0]["object"]["kind"], "Service");
    // Table rows in watch events; column definitions in the first only.
    let from = rv(&t);
    let mut w = watch_with(a, &format!("{SVC}?watch=1&resourceVersion={from}"), &accept).await;
    patch(
        a,
        &format!("{SVC}/web/status"),
        "application/merge-patch+json",
        json!({"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}}),
    )
    .await;
    let e = w.event().await;
    assert_eq!(e["object"]["kind"], "Table");
    assert_eq!(e["object"]["rows"][0]["cells"][3], "192.0.2.7");
    assert!(!e["object"]["columnDefinitions"]
        .as_array()
        .unwrap()
        .is_empty());
    patch(
        a,
        &format!("{SVC}/web"),
        "application/merge-patch+json",
        json!({"metadata": {"labels": {"b": "c"}}}),
    )
    .await;
    let e = w.event().await;
    assert!(e["object"]["columnDefinitions"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_in_both_groups() {
    let (_sim, a) = sim().await;
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "web.1"},
        "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "ferrolb.io/controller",
        "reportingInstance": "node-1", "action": "Allocate", "reason": "IPAllocated", "type": "Normal",
        "note": "Assigned IP", "regarding": {"kind": "Service", "name": "web", "namespace": "default", "uid": "u1"}});
    let r = post(a, "/apis/events.k8s.io/v1/namespaces/default/events", ev).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["regarding"]["name"], "web");
    // The same event through core/v1, found by kubectl describe's field selector.
    let sel = "involvedObject.name%3Dweb,involvedObject.namespace%3Ddefault,involvedObject.kind%3DService,involvedObject.uid%3Du1";
    let l = get(
        a,
        &format!("/api/v1/namespaces/default/events?fieldSelector={sel}"),
    )
    .await
    .json;
    assert_eq!(l["items"][0]["message"], "Assigned IP");
    assert_eq!(l["items"][0]["reportingComponent"], "ferrolb.io/controller");
    let l = get(
        a,
        "/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dother",
    )
    .await
    .json;
    assert!(l["items"].as_array().unwrap().is_empty());
    let l = get(
        a,
        "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=regarding.name%3Dweb",
    )
    .await
    .json;
    assert_eq!(l["items"][0]["note"], "Assigned IP");
    assert_eq!(l["kind"], "EventList");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_failures_and_stalls() {
    let (sim, a) = sim().await;
    sim.faults().fail_next(2, Failure::Internal);
    let r = get(a, CM).await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (500, Some("InternalError"))
    );
    assert_eq!(get(a, CM).await.status, 500);
    assert_eq!(get(a, CM).await.status, 200);
    sim.faults()
        .fail_next(1, Failure::TooManyRequests { retry_after: 7 });
    let r = get(a, CM).await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (429, Some("TooManyRequests"))
    );
    assert_eq!(r.headers.get("retry-after").unwrap(), "7");
    assert_eq!(sim.counters().injected_failures, 3);
    // Stall.
    sim.faults().stall_for(Duration::from_millis(400));
    let t = Instant::now();
    assert_eq!(get(a, CM).await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    // The same through /_sim.
    assert_eq!(
        post(
            a,
            "/_sim/faults/fail?count=1&code=429&retryAfter=2",
            json!({})
        )
        .await
        .status,
        200
    );
    let r = get(a, CM).await;
    assert_eq!(
        (
            r.status,
            r.headers
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string())
        ),
        (429, Some("2".to_string()))
    );
    post(a, "/_sim/faults/stall?seconds=0.3", json!({})).await;
    let t = Instant::now();
    get(a, CM).await;
    assert!(t.elapsed() >= Duration::from_millis(200));
    post(a, "/_sim/faults/fail?count=5", json!({})).await;
    post(a, "/_sim/faults/clear", json!({})).await;
    assert_eq!(get(a, CM).await.status, 200);
    assert_eq!(
        post(a, "/_sim/faults/fail?count=x", json!({})).await.status,
        400
    );
    // The request log.
    let log = get(a, "/_sim/requests").await.json;
    let last = log
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["path"] == CM)
        .unwrap();
    assert_eq!(
        (
            last["verb"].as_str(),
            last["resource"].as_str(),
            last["namespace"].as_str(),
            last["status"].as_u64()
        ),
        (Some("list"), Some("configmaps"), Some("default"), Some(200))
    );
    assert_eq!(last["userAgent"], "ferrolb-tests");
    let rec = sim.requests();
    assert!(rec.iter().all(|r| !r.path.starts_with("/_sim")));
    get(a, "/version").await;
    let rec = sim.requests();
    assert!(rec
        .iter()
        .any(|r| r.path == "/version" && r.verb == "get" && r.resource.is_empty()));
    assert!(rec.iter().any(|r| r.status == 429 && r.verb == "list"));
    assert!(
        get(a, "/_sim/counters").await.json["requests"]
            .as_u64()
            .unwrap()
            > 5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_watches_dropped_and_expired() {
    let (sim, a) = sim().await;
    let from = rv(&get(a, CM).await.json);
    let mut w1 = watch(a, &format!("{CM}?watch=1&resourceVersion={from}")).await;
    let mut w2 = watch(
        a,
        &format!("/api/v1/services?watch=1&resourceVersion={from}"),
    )
    .await;
    let t = Instant::now();
    while sim.counters().watches_active != 2 {
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", sim.counters());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.faults().drop_watches();
    assert!(matches!(w1.next(Duration::from_secs(2)).await, Next::End));
    assert!(matches!(w2.next(Duration::from_secs(2)).await, Next::End));
    // New watches work again.
    let mut w3 = watch(a, &format!("{CM}?watch=1&resourceVersion={from}")).await;
    post(a, CM, configmap("a", json!({}))).await;
    assert_eq!(w3.event().await["type"], "ADDED");
    // Forced 410 for the next watch only.
    sim.faults().expire_next_watches(1);
    let mut w4 = watch(a, &format!("{CM}?watch=1&resourceVersion={from}")).await;
    match w4.next(Duration::from_secs(2)).await {
        Next::Event(e) => assert_eq!(
            (e["type"].as_str(), e["object"]["code"].as_u64()),
            (Some("ERROR"), Some(410))
        ),
        other => panic!("{other:?}"),
    }
    let mut w5 = watch(a, &format!("{CM}?watch=1&resourceVersion={from}")).await;
    assert_eq!(w5.event().await["type"], "ADDED");
    // Through /_sim.
    post(a, "/_sim/faults/expire-watches?count=1", json!({})).await;
    let mut w6 = watch(a, &format!("{CM}?watch=1")).await;
    assert_eq!(w6.event().await["type"], "ERROR");
    post(a, "/_sim/faults/drop-watches", json!({})).await;
    assert!(matches!(w5.next(Duration::from_secs(2)).await, Next::End));
    // A watch from a future version starts after it.
    let now = rv(&get(a, CM).await.json);
    let mut future = watch(a, &format!("{CM}?watch=1&resourceVersion={}", now + 1)).await;
    post(a, CM, configmap("f1", json!({}))).await;
    post(a, CM, configmap("f2", json!({}))).await;
    let e = future.event().await;
    assert_eq!(e["object"]["metadata"]["name"], "f2");
    // A watch on an item path watches that object only.
    post(a, CM, configmap("b", json!({}))).await;
    let mut one = watch(a, &format!("{CM}/b?watch=1&resourceVersion={from}")).await;
    let e = one.event().await;
    assert_eq!(
        (e["type"].as_str(), e["object"]["metadata"]["name"].as_str()),
        (Some("ADDED"), Some("b"))
    );
    one.quiet(Duration::from_millis(200)).await;
    // timeoutSeconds ends a watch.
    let mut w7 = watch(
        a,
        &format!("{CM}?watch=1&resourceVersion={from}&timeoutSeconds=1"),
    )
    .await;
    let t = Instant::now();
    loop {
        match w7.next(Duration::from_secs(3)).await {
            Next::Event(e) => assert_eq!(e["type"], "ADDED"),
            Next::End => break,
            Next::Timeout => panic!("timeoutSeconds=1 did not end the watch"),
        }
    }
    assert!(t.elapsed() >= Duration::from_millis(900));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_and_versions() {
    let (sim, a) = sim().await;
    let c = post(a, CM, configmap("keep", json!({}))).await.json;
    let mut w = watch(a, &format!("{CM}?watch=1&resourceVersion={}", rv(&c))).await;
    let restart = tokio::spawn(async move {
        sim.restart(Duration::from_millis(1500)).await.unwrap();
        sim
    });
    // The watch was cut, and nobody can connect while the server is down.
    assert!(matches!(w.next(Duration::from_secs(2)).await, Next::End));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(try_call(a, "GET", CM, None, &[]).await.is_err());
    let sim = restart.await.unwrap();
    let r = get(a, &format!("{CM}/keep")).await;
    assert_eq!(r.status, 200);
    assert_eq!(rv(&r.json), rv(&c));
    let d = post(a, CM, configmap("after", json!({}))).await.json;
    assert_eq!(rv(&d), rv(&c) + 1);
    // A watch resumes from the version before the restart.
    let mut w = watch(a, &format!("{CM}?watch=1&resourceVersion={}", rv(&c))).await;
    assert_eq!(w.event().await["object"]["metadata"]["name"], "after");
    assert_eq!(sim.counters().restarts, 1);
    // Through /_sim (answers first, then restarts).
    let mut w = watch(a, &format!("{CM}?watch=1&resourceVersion={}", rv(&d))).await;
    assert_eq!(
        post(a, "/_sim/faults/restart?downSeconds=1.5", json!({}))
            .await
            .status,
        200
    );
    assert!(matches!(w.next(Duration::from_secs(2)).await, Next::End));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(try_call(a, "GET", CM, None, &[]).await.is_err());
    let back = Instant::now();
    loop {
        match try_call(a, "GET", &format!("{CM}/keep"), None, &[]).await {
            Ok(r) => {
                assert_eq!(r.status, 200);
                break;
            }
            Err(_) if back.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("the simulator did not come back: {e}"),
        }
    }
    sim.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(try_call(a, "GET", CM, None, &[]).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400s_and_break_nothing() {
    let (_sim, a) = sim().await;
    let bodies = [
        json!({"metadata": {"name": "x", "labels": "nope"}}),
        json!({"metadata": {"name": "x", "annotations": {"a": 1}}}),
        json!({"metadata": ["x"]}),
        json!({"metadata": {"name": 5}}),
        json!({"metadata": {"name": "x"}, "spec": "nope"}),
        json!({"metadata": {"name": "x"}, "spec": {"ports": "nope"}}),
        json!({"metadata": {"name": "x"}, "spec": {"ports": [1, null]}}),
        json!({"metadata": {"name": "x"}, "spec": {"type": 5, "ports": [{"port": "80"}]}}),
        json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}], "ipFamilies": [4], "clusterIP": "bogus"}}),
        json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80, "nodePort": -1}], "type": "NodePort"}}),
        json!({"metadata": {"name": "x"}, "spec": {"ports": [{"port": 99999}]}}),
        json!([1, 2, 3]),
        json!("string"),
    ];
    for b in &bodies {
        for path in [
            SVC,
            CM,
            "/api/v1/namespaces",
            "/api/v1/nodes",
            "/apis/apps/v1/namespaces/default/deployments",
        ] {
            let r = post(a, path, b.clone()).await;
            assert!(
                r.status == 400 || r.status == 422 || r.status == 201,
                "{path} {b}: {} {}",
                r.status,
                r.text
            );
            assert!(
                r.status != 201 || b["metadata"]["name"] == "x",
                "{path} {b}: {}",
                r.text
            );
            if r.status != 201 {
                assert_eq!(r.json["kind"], "Status", "{}", r.text);
            } else {
                delete(a, &format!("{path}/x")).await;
            }
        }
    }
    post(a, SVC, service("web", "LoadBalancer")).await;
    let weird_patches = [
        (
            "application/merge-patch+json",
            json!({"metadata": {"labels": {"a": {"b": 1}}}}),
        ),
        ("application/merge-patch+json", json!({"metadata": null})),
        (
            "application/merge-patch+json",
            json!({"spec": {"ports": null}}),
        ),
        ("application/merge-patch+json", json!([1])),
        (
            "application/strategic-merge-patch+json",
            json!({"spec": {"ports": [{"name": "no-key"}]}}),
        ),
        (
            "application/strategic-merge-patch+json",
            json!({"spec": {"$patch": "explode"}}),
        ),
        (
            "application/strategic-merge-patch+json",
            json!({"$patch": "delete"}),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "remove", "path": "/metadata"}]),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "replace", "path": "/metadata/name", "value": "other"}]),
        ),
        (
            "application/json-patch+json",
            json!([{"op": "add", "path": "/status", "value": "x"}]),
        ),
        ("application/apply-patch+yaml", json!({})),
    ];
    for (ct, p) in &weird_patches {
        for path in [format!("{SVC}/web"), format!("{SVC}/web/status")] {
            let r = patch(a, &path, ct, p.clone()).await;
            assert!(r.status < 500, "{path} {ct} {p}: {} {}", r.status, r.text);
        }
    }
    let r = call_raw(
        a,
        "PATCH",
        &format!("{SVC}/web"),
        "application/merge-patch+json",
        b"{",
    )
    .await;
    assert_eq!(r.status, 400);
    // Still serving, and the Service is whole.
    let s = get(a, &format!("{SVC}/web")).await;
    assert_eq!(s.status, 200);
    let accept = [("accept", "application/json;as=Table;v=v1;g=meta.k8s.io")];
    assert_eq!(call(a, "GET", SVC, None, &accept).await.status, 200);
    assert_eq!(
        call(a, "GET", "/api/v1/nodes", None, &accept).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rustls_clients_verify_the_certificate() {
    use std::sync::Arc;

    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};

    let sim = ApiServer::start(ApiServerConfig {
        https: vec!["127.0.0.1:0".parse().unwrap(), "[::1]:0".parse().unwrap()],
        token: Some("s3cret".into()),
        ..ApiServerConfig::default()
    })
    .await
    .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(sim.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let get = |addr: SocketAddr, name: ServerName<'static>, token: &'static str| {
        let connector = connector.clone();
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let tls = connector
                .connect(name, tcp)
                .await
                .expect("the certificate verifies");
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = hyper::Request::get("/api/v1/namespaces")
                .header("host", "x")
                .header("authorization", format!("Bearer {token}"))
                .body(Full::new(bytes::Bytes::new()))
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            status
        }
    };
    for addr in sim.https_addrs().to_vec() {
        assert_eq!(
            get(addr, ServerName::IpAddress(addr.ip().into()), "s3cret").await,
            200
        );
        assert_eq!(
            get(addr, ServerName::try_from("localhost").unwrap(), "s3cret").await,
            200
        );
        assert_eq!(
            get(addr, ServerName::IpAddress(addr.ip().into()), "wrong").await,
            401
        );
    }
    assert!(sim.https_url().unwrap().starts_with("https://127.0.0.1:"));
    let kc = sim.kubeconfig(true).unwrap();
    assert!(
        kc.contains("certificate-authority-data:") && kc.contains("token: \"s3cret\""),
        "{kc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_follow_field_validation() {
    let (_sim, a) = sim().await;
    let typo = |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "lables": {"a": "b"}}, "dta": {"k": "v"}});
    // Default (Warn): dropped, with a warning.
    let r = post(a, CM, typo("warn")).await;
    assert_eq!(r.status, 201);
    let warnings: Vec<&str> = r
        .headers
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        warnings,
        [
            r#"299 - "unknown field \"dta\"""#,
            r#"299 - "unknown field \"metadata.lables\"""#
        ]
    );
    assert!(r.json.get("dta").is_none() && r.json["metadata"].get("lables").is_none());
    // Ignore: dropped silently.
    let r = post(a, &format!("{CM}?fieldValidation=Ignore"), typo("ignore")).await;
    assert_eq!(r.status, 201);
    assert!(r.headers.get("warning").is_none());
    // Strict: refused.
    let r = post(a, &format!("{CM}?fieldValidation=Strict"), typo("strict")).await;
    assert_eq!(
        (r.status, r.json["reason"].as_str()),
        (400, Some("BadRequest"))
    );
    assert!(
        r.json["message"]
            .as_str()
            .unwrap()
            .contains("strict decoding error: unknown field \"dta\""),
        "{}",
        r.text
    );
    assert_eq!(get(a, &format!("{CM}/strict")).await.status, 404);
    let r = patch(
        a,
        &format!("{CM}/warn?fieldValidation=Strict"),
        "application/merge-patch+json",
        json!({"spec": {"x": 1}}),
    )
    .await;
    assert_eq!(r.status, 400);
    let r = post(a, &format!("{CM}?fieldValidation=Bogus"), typo("bogus")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_requests() {
    let (sim, a) = sim_with(|c| c.token = Some("t".into())).await;
    let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let created = sim.create(&node).await.unwrap();
    assert_eq!(created["metadata"]["name"], "n1");
    let dup = sim.create(&node).await.unwrap_err();
    assert_eq!(dup["reason"], "AlreadyExists");
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l", "namespace": "kube-system"}, "spec": {"holderIdentity": "n1"}});
    assert!(sim.create(&lease).await.is_ok());
    assert!(sim
        .create(&json!({"apiVersion": "v9", "kind": "Pod"}))
        .await
        .is_err());
    let (code, got) = sim
        .request(
            "GET",
            "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/l",
            None,
        )
        .await;
    assert_eq!(
        (code, got["spec"]["holderIdentity"].as_str()),
        (200, Some("n1"))
    );
    let (code, patched) = sim
        .request(
            "PATCH",
            "/api/v1/nodes/n1/status",
            Some(&json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})),
        )
        .await;
    assert_eq!(
        (code, patched["status"]["conditions"][0]["status"].as_str()),
        (200, Some("False"))
    );
    // The same objects over HTTP.
    assert_eq!(
        get(a, "/api/v1/nodes/n1").await.json["status"]["conditions"][0]["status"],
        "False"
    );
    assert!(sim
        .requests()
        .iter()
        .any(|r| r.user_agent == "ferrolb-lab/in-process"
            && r.verb == "patch"
            && r.subresource == "status"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writers_with_the_same_version_one_wins() {
    let (_sim, a) = sim().await;
    let svc = post(a, SVC, service("web", "LoadBalancer")).await.json;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let mut obj = svc.clone();
        obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": format!("192.0.2.{i}")}]}});
        tasks.push(tokio::spawn(async move {
            put(a, &format!("{SVC}/web/status"), obj).await.status
        }));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 409).count(), 19, "{codes:?}");
    assert_eq!(rv(&get(a, &format!("{SVC}/web")).await.json), rv(&svc) + 1);
}
