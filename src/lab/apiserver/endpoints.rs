//! The lab's endpoint controller (`ApiServerConfig::lab_endpoints`): the lab runs no pods, so
//! every Service with a non-empty `spec.selector` gets an EndpointSlice per IP family with one
//! endpoint per Node (the Node's InternalIP of that family, `nodeName`), standing in for one pod
//! per node behind kube-proxy. The slices look like the real `endpointslice-controller.k8s.io`'s
//! (name `<service>-<suffix>`, the `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by` labels, an owner reference to the Service) and are
//! rewritten after every write to Services, Nodes, EndpointSlices or Namespaces. The simulator
//! has no garbage collector, so a Service's slices are deleted explicitly with it.
//!
//! An endpoint is `ready` unless its Node's `Ready` condition is `False` (a real cluster marks
//! the pods of such a node not ready too, only later). Named `targetPort`s cannot be resolved
//! without pods: such a port carries the Service's `port`.

use serde_json::{json, Value};

use super::meta::{meta_str, name_suffix, new_uid, now_rfc3339};
use super::server::Shared;
use super::store::Txn;

/// The label naming a slice's Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming a slice's controller.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// The real endpoint slice controller's name, which the lab's slices carry.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

const STORAGE: &str = "endpointslices";

/// Runs after a committed write to `storage` when the lab's endpoint controller is on.
pub(crate) fn after_write(shared: &Shared, storage: &str) {
    if !shared.config.lab_endpoints
        || !matches!(
            storage,
            "services" | "nodes" | "endpointslices" | "namespaces"
        )
    {
        return;
    }
    if let Err(error) = shared.store.transact(|txn| {
        reconcile(txn);
        Ok(())
    }) {
        tracing::debug!(%error, "lab endpoint controller");
    }
}

/// A Node as an endpoint: its name, readiness and InternalIPs.
struct NodeEndpoint {
    name: String,
    ready: bool,
    addresses: Vec<std::net::IpAddr>,
}

fn nodes(txn: &Txn<'_>) -> Vec<NodeEndpoint> {
    txn.iter("nodes", None)
        .map(|n| NodeEndpoint {
            name: meta_str(n, "name").to_string(),
            ready: !n["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "False"),
            addresses: n["status"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|a| a["type"] == "InternalIP")
                .filter_map(|a| a["address"].as_str()?.parse().ok())
                .collect(),
        })
        .collect()
}

/// The address types (`IPv4`, `IPv6`) a Service's slices have.
fn families(svc: &Value) -> Vec<&'static str> {
    let from_spec: Vec<&'static str> = svc["spec"]["ipFamilies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| match f.as_str() {
            Some("IPv4") => Some("IPv4"),
            Some("IPv6") => Some("IPv6"),
            _ => None,
        })
        .collect();
    if !from_spec.is_empty() {
        return from_spec;
    }
    match svc["spec"]["clusterIP"].as_str() {
        Some(ip) if ip.contains(':') => vec!["IPv6"],
        _ => vec!["IPv4"],
    }
}

fn selects_pods(svc: &Value) -> bool {
    svc["spec"]["type"] != "ExternalName"
        && svc["spec"]["selector"]
            .as_object()
            .is_some_and(|m| !m.is_empty())
}

/// The slice ports of a Service: `targetPort` when a number, else `port`.
fn ports(svc: &Value) -> Vec<Value> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p["targetPort"]
                .as_u64()
                .or_else(|| p["targetPort"].as_str().and_then(|s| s.parse().ok()))
                .or_else(|| p["port"].as_u64())
                .unwrap_or(0);
            let mut out = json!({
                "name": p["name"].as_str().unwrap_or(""),
                "port": port,
                "protocol": p["protocol"].as_str().unwrap_or("TCP"),
            });
            if let Some(app) = p["appProtocol"].as_str() {
                out["appProtocol"] = json!(app);
            }
            out
        })
        .collect()
}

fn endpoints(nodes: &[NodeEndpoint], family: &str) -> Vec<Value> {
    nodes
        .iter()
        .filter_map(|n| {
            let ip = n
                .addresses
                .iter()
                .find(|a| a.is_ipv6() == (family == "IPv6"))?;
            Some(json!({
                "addresses": [ip.to_string()],
                "conditions": {"ready": n.ready, "serving": n.ready, "terminating": false},
                "nodeName": n.name,
            }))
        })
        .collect()
}

fn managed_by_us(slice: &Value) -> bool {
    slice["metadata"]["labels"][MANAGED_BY_LABEL] == CONTROLLER_NAME
}

/// Brings every managed slice in line with the Services and Nodes.
fn reconcile(txn: &mut Txn<'_>) {
    let nodes = nodes(txn);
    let services: Vec<Value> = txn
        .iter("services", None)
        .filter(|s| selects_pods(s))
        .map(|s| (**s).clone())
        .collect();
    let existing: Vec<Value> = txn
        .iter(STORAGE, None)
        .filter(|s| managed_by_us(s))
        .map(|s| (**s).clone())
        .collect();
    let mut keep: Vec<(String, String)> = Vec::new();
    for svc in &services {
        let (ns, name) = (meta_str(svc, "namespace"), meta_str(svc, "name"));
        for family in families(svc) {
            let current = existing.iter().find(|s| {
                meta_str(s, "namespace") == ns
                    && s["metadata"]["labels"][SERVICE_NAME_LABEL] == name
                    && s["addressType"] == family
            });
            let slice = desired(svc, family, &nodes, current);
            let slice_name = meta_str(&slice, "name").to_string();
            txn.put(STORAGE, ns, &slice_name, slice);
            keep.push((ns.to_string(), slice_name));
        }
    }
    for slice in &existing {
        let key = (
            meta_str(slice, "namespace").to_string(),
            meta_str(slice, "name").to_string(),
        );
        if !keep.contains(&key) {
            txn.delete(STORAGE, &key.0, &key.1);
        }
    }
}

/// The slice `svc` should have for `family`, keeping the identity of `current`.
fn desired(svc: &Value, family: &str, nodes: &[NodeEndpoint], current: Option<&Value>) -> Value {
    let (ns, name) = (meta_str(svc, "namespace"), meta_str(svc, "name"));
    let mut metadata = match current {
        Some(c) => c["metadata"].clone(),
        None => {
            // generateName keeps the whole name within 63 characters.
            let prefix: String = name.chars().take(57).collect();
            json!({
                "name": format!("{prefix}-{}", name_suffix()),
                "generateName": format!("{prefix}-"),
                "namespace": ns,
                "uid": new_uid(),
                "creationTimestamp": now_rfc3339(),
                "generation": 1,
            })
        }
    };
    let mut labels = svc["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    labels[SERVICE_NAME_LABEL] = json!(name);
    labels[MANAGED_BY_LABEL] = json!(CONTROLLER_NAME);
    metadata["labels"] = labels;
    metadata["ownerReferences"] = json!([{
        "apiVersion": "v1",
        "kind": "Service",
        "name": name,
        "uid": meta_str(svc, "uid"),
        "controller": true,
        "blockOwnerDeletion": true,
    }]);
    let endpoints = endpoints(nodes, family);
    let ports = ports(svc);
    if let Some(c) = current {
        let changed = c["endpoints"] != json!(endpoints)
            || c["ports"] != json!(ports)
            || c["metadata"]["labels"] != metadata["labels"]
            || c["metadata"]["ownerReferences"] != metadata["ownerReferences"];
        if changed {
            let generation = c["metadata"]["generation"].as_u64().unwrap_or(1);
            metadata["generation"] = json!(generation + 1);
        }
    }
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": metadata,
        "addressType": family,
        "endpoints": endpoints,
        "ports": ports,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ips: &[&str], ready: &str) -> NodeEndpoint {
        let n = json!({
            "metadata": {"name": name},
            "status": {
                "addresses": ips.iter().map(|ip| json!({"type": "InternalIP", "address": ip}))
                    .chain([json!({"type": "Hostname", "address": name})]).collect::<Vec<_>>(),
                "conditions": [{"type": "Ready", "status": ready}],
            }
        });
        let store = super::super::store::Store::new(10);
        store
            .transact(|t| {
                t.put("nodes", "", name, n);
                Ok(nodes(t).remove(0))
            })
            .unwrap()
    }

    #[test]
    fn one_endpoint_per_node_of_the_family() {
        let svc = json!({
            "metadata": {"name": "nginx", "namespace": "default", "uid": "u1"},
            "spec": {"selector": {"app": "nginx"}, "ipFamilies": ["IPv4", "IPv6"],
                     "ports": [{"name": "http", "port": 80, "targetPort": 8080},
                               {"port": 53, "protocol": "UDP", "targetPort": "dns"}]},
        });
        let nodes = [
            node("n1", &["100.127.0.11", "fd00::11"], "True"),
            node("n2", &["100.127.0.12"], "False"),
        ];
        assert_eq!(families(&svc), ["IPv4", "IPv6"]);
        let v4 = desired(&svc, "IPv4", &nodes, None);
        assert!(meta_str(&v4, "name").starts_with("nginx-"));
        assert_eq!(meta_str(&v4, "name").len(), "nginx-".len() + 5);
        assert_eq!(v4["metadata"]["labels"][SERVICE_NAME_LABEL], "nginx");
        assert_eq!(v4["metadata"]["labels"][MANAGED_BY_LABEL], CONTROLLER_NAME);
        assert_eq!(v4["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(v4["endpoints"].as_array().unwrap().len(), 2);
        assert_eq!(v4["endpoints"][0]["addresses"][0], "100.127.0.11");
        assert_eq!(v4["endpoints"][0]["nodeName"], "n1");
        assert_eq!(v4["endpoints"][0]["conditions"]["ready"], true);
        assert_eq!(v4["endpoints"][1]["conditions"]["ready"], false);
        assert_eq!(
            v4["ports"],
            json!([{"name": "http", "port": 8080, "protocol": "TCP"},
                   {"name": "", "port": 53, "protocol": "UDP"}])
        );
        let v6 = desired(&svc, "IPv6", &nodes, None);
        assert_eq!(
            v6["endpoints"],
            json!([{"addresses": ["fd00::11"],
            "conditions": {"ready": true, "serving": true, "terminating": false}, "nodeName": "n1"}])
        );
        // An update keeps the name and uid and bumps the generation.
        let again = desired(&svc, "IPv4", &nodes[..1], Some(&v4));
        assert_eq!(meta_str(&again, "name"), meta_str(&v4, "name"));
        assert_eq!(meta_str(&again, "uid"), meta_str(&v4, "uid"));
        assert_eq!(again["metadata"]["generation"], 2);
        let same = desired(&svc, "IPv4", &nodes, Some(&v4));
        assert_eq!(same["metadata"]["generation"], 1);
    }

    #[test]
    fn only_services_with_a_selector() {
        assert!(!selects_pods(&json!({"spec": {"selector": {}}})));
        assert!(!selects_pods(&json!({"spec": {}})));
        assert!(!selects_pods(
            &json!({"spec": {"type": "ExternalName", "selector": {"a": "b"}}})
        ));
        assert!(selects_pods(&json!({"spec": {"selector": {"a": "b"}}})));
        assert_eq!(
            families(&json!({"spec": {"clusterIP": "fd00::5"}})),
            ["IPv6"]
        );
    }
}
