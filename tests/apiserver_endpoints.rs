//! The simulator's lab endpoint controller (`ApiServerConfig::lab_endpoints`, `ferrolb lab
//! apiserver --lab-endpoints`): every Service with a selector gets an EndpointSlice per family
//! with one endpoint per Node, kept up to date when Services and Nodes change, deleted with
//! the Service; off by default. Driven in-process and through the real `kubectl` with
//! MetalLB's classic nginx example.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig};
use serde_json::{json, Value};

const SLICES: &str = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices";
const SVC: &str = "/api/v1/namespaces/default/services";
const NODES: &str = "/api/v1/nodes";
const KUBECTL: &str = "/usr/bin/kubectl";

async fn sim(lab_endpoints: bool) -> ApiServer {
    ApiServer::start(ApiServerConfig {
        http: vec!["127.0.0.1:0".parse().unwrap()],
        lab_endpoints,
        ..ApiServerConfig::default()
    })
    .await
    .unwrap()
}

fn node(name: &str, ips: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "addresses": ips.iter().map(|ip| json!({"type": "InternalIP", "address": ip})).collect::<Vec<_>>(),
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    })
}

fn service(name: &str, selector: Value, families: &[&str]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "type": "LoadBalancer",
            "selector": selector,
            "ipFamilyPolicy": if families.len() > 1 { "RequireDualStack" } else { "SingleStack" },
            "ipFamilies": families,
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    })
}

fn slices_of<'a>(slices: &'a [Value], svc: &str) -> Vec<&'a Value> {
    slices
        .iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == svc)
        .collect()
}

fn addresses(slice: &Value) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = slice["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["nodeName"].as_str().unwrap().to_string(),
                e["addresses"][0].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

async fn wait_slices(
    api: &ApiServer,
    what: &str,
    done: impl FnMut(&[Value]) -> bool,
) -> Vec<Value> {
    api.wait_for(SLICES, Duration::from_secs(5), done)
        .await
        .unwrap_or_else(|last| panic!("{what}; slices now: {last:#?}"))
}

#[tokio::test]
async fn a_service_with_a_selector_gets_a_slice_with_every_node() {
    let api = sim(true).await;
    api.create(&node("n1", &["100.127.0.11", "fdfe::11"]))
        .await
        .unwrap();
    api.create(&node("n2", &["100.127.0.12"])).await.unwrap();
    let svc = api
        .create(&service("web", json!({"app": "web"}), &["IPv4"]))
        .await
        .unwrap();
    let slices = wait_slices(&api, "one slice for web", |s| {
        slices_of(s, "web").len() == 1
    })
    .await;
    let slice = slices_of(&slices, "web")[0];
    let name = slice["metadata"]["name"].as_str().unwrap();
    assert!(
        name.starts_with("web-") && name.len() == "web-".len() + 5,
        "{name}"
    );
    assert_eq!(slice["apiVersion"], "discovery.k8s.io/v1");
    assert_eq!(slice["kind"], "EndpointSlice");
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(
        slice["metadata"]["ownerReferences"][0]["uid"],
        svc["metadata"]["uid"]
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(
        addresses(slice),
        [
            ("n1".to_string(), "100.127.0.11".to_string()),
            ("n2".to_string(), "100.127.0.12".to_string())
        ]
    );
    assert_eq!(slice["endpoints"][0]["conditions"]["ready"], true);
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
    );

    // Served like any object: the label selector kube-proxy and ferrolb use finds it.
    let (code, list) = api
        .request(
            "GET",
            &format!("{SLICES}?labelSelector=kubernetes.io%2Fservice-name%3Dweb"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // A new Node joins every slice; a changed address follows; the slice keeps its name.
    api.create(&node("n3", &["100.127.0.13"])).await.unwrap();
    let (code, _) = api
        .request(
            "PATCH",
            &format!("{NODES}/n2/status"),
            Some(&json!({"status": {"addresses": [{"type": "InternalIP", "address": "100.127.0.22"}]}})),
        )
        .await;
    assert_eq!(code, 200);
    let slices = wait_slices(&api, "n3 added and n2 moved", |s| {
        slices_of(s, "web")
            .first()
            .is_some_and(|s| addresses(s).len() == 3 && addresses(s)[1].1 == "100.127.0.22")
    })
    .await;
    assert_eq!(slices_of(&slices, "web")[0]["metadata"]["name"], name);

    // A Node that is not Ready has a not-ready endpoint; a deleted Node leaves.
    let (code, _) = api
        .request(
            "PATCH",
            &format!("{NODES}/n3/status"),
            Some(&json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}})),
        )
        .await;
    assert_eq!(code, 200);
    wait_slices(&api, "n3 not ready", |s| {
        slices_of(s, "web").first().is_some_and(|s| {
            s["endpoints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["nodeName"] == "n3" && e["conditions"]["ready"] == false)
        })
    })
    .await;
    let (code, _) = api.request("DELETE", &format!("{NODES}/n1"), None).await;
    assert_eq!(code, 200);
    wait_slices(&api, "n1 gone", |s| {
        slices_of(s, "web")
            .first()
            .is_some_and(|s| addresses(s).iter().all(|(n, _)| n != "n1"))
    })
    .await;

    // A port change follows; deleting a managed slice gets it back.
    let (code, _) = api
        .request(
            "PATCH",
            &format!("{SVC}/web"),
            Some(&json!({"spec": {"ports": [{"name": "http", "port": 80, "targetPort": 9090}]}})),
        )
        .await;
    assert_eq!(code, 200);
    let slices = wait_slices(&api, "port 9090", |s| {
        slices_of(s, "web")
            .first()
            .is_some_and(|s| s["ports"][0]["port"] == 9090)
    })
    .await;
    let current = slices_of(&slices, "web")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = api
        .request("DELETE", &format!("{SLICES}/{current}"), None)
        .await;
    assert_eq!(code, 200);
    wait_slices(&api, "the slice recreated", |s| {
        slices_of(s, "web").len() == 1
    })
    .await;

    // Deleting the Service deletes its slice (the simulator has no garbage collector).
    let (code, _) = api.request("DELETE", &format!("{SVC}/web"), None).await;
    assert_eq!(code, 200);
    wait_slices(&api, "no slice left", |s| s.is_empty()).await;
}

#[tokio::test]
async fn families_selectors_and_the_default() {
    let api = sim(true).await;
    api.create(&node("n1", &["100.127.0.11", "fdfe::11"]))
        .await
        .unwrap();
    api.create(&service("dual", json!({"app": "d"}), &["IPv4", "IPv6"]))
        .await
        .unwrap();
    api.create(&service("v6", json!({"app": "v"}), &["IPv6"]))
        .await
        .unwrap();
    api.create(&service("none", json!({}), &["IPv4"]))
        .await
        .unwrap();
    let slices = wait_slices(&api, "dual and v6 slices", |s| {
        slices_of(s, "dual").len() == 2 && slices_of(s, "v6").len() == 1
    })
    .await;
    let mut types: Vec<&str> = slices_of(&slices, "dual")
        .iter()
        .map(|s| s["addressType"].as_str().unwrap())
        .collect();
    types.sort();
    assert_eq!(types, ["IPv4", "IPv6"]);
    assert_eq!(
        slices_of(&slices, "v6")[0]["endpoints"][0]["addresses"][0],
        "fdfe::11"
    );
    assert!(
        slices_of(&slices, "none").is_empty(),
        "a Service without a selector gets none"
    );
    // Dropping the selector deletes the slices, as the real controller does.
    let (code, _) = api
        .request(
            "PATCH",
            &format!("{SVC}/dual"),
            Some(&json!({"spec": {"selector": null}})),
        )
        .await;
    assert_eq!(code, 200);
    wait_slices(&api, "dual's slices gone", |s| {
        slices_of(s, "dual").is_empty()
    })
    .await;

    // Off by default: no controller, no slices.
    let plain = sim(false).await;
    plain.create(&node("n1", &["100.127.0.11"])).await.unwrap();
    plain
        .create(&service("web", json!({"app": "web"}), &["IPv4"]))
        .await
        .unwrap();
    assert!(plain.objects(SLICES).is_empty());
    assert!(plain.object(&format!("{SVC}/web")).is_some());
}

#[test]
fn kubectl_apply_of_metallbs_nginx_example_gets_a_slice() {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is needed (apt-get install kubectl)"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = rt.block_on(sim(true));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, false).unwrap();
    let kubectl = |args: &[&str]| -> String {
        let out = Command::new(KUBECTL)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(dir.path().join("cache"))
            .args(args)
            .env("HOME", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let nodes = json!({"apiVersion": "v1", "kind": "List", "items": [
        node("node1", &["100.127.0.11"]), node("node2", &["100.127.0.12"])]});
    let nodes_file = dir.path().join("nodes.json");
    std::fs::write(&nodes_file, nodes.to_string()).unwrap();
    kubectl(&["apply", "-f", &nodes_file.to_string_lossy()]);
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/metallb-nginx.yaml");
    let applied = kubectl(&["apply", "-f", manifest]);
    assert!(
        applied.contains("deployment.apps/nginx created")
            && applied.contains("service/nginx created"),
        "{applied}"
    );
    let list: Value = serde_json::from_str(&kubectl(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=nginx",
        "-o",
        "json",
    ]))
    .unwrap();
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list:#}");
    assert_eq!(
        addresses(&items[0]),
        [
            ("node1".to_string(), "100.127.0.11".to_string()),
            ("node2".to_string(), "100.127.0.12".to_string())
        ]
    );
    assert_eq!(
        items[0]["ports"],
        json!([{"name": "http", "port": 80, "protocol": "TCP"}])
    );
    // The table kubectl prints.
    let table = kubectl(&["get", "endpointslices"]);
    assert!(table.contains("100.127.0.11,100.127.0.12"), "{table}");
    // The Deployment is stored as applied.
    let deploy: Value =
        serde_json::from_str(&kubectl(&["get", "deployment", "nginx", "-o", "json"])).unwrap();
    assert_eq!(deploy["spec"]["selector"]["matchLabels"]["app"], "nginx");
    kubectl(&["delete", "-f", manifest]);
    let left = kubectl(&["get", "endpointslices", "-o", "name"]);
    assert!(left.trim().is_empty(), "{left}");
    api.shutdown();
}
