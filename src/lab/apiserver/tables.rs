//! Server-side printing: `meta.k8s.io/v1` Table responses with the columns the real server's
//! printers give (`kubectl get` shows only NAME and AGE without them). Every column is sent
//! (kubectl hides those with `priority: 1` unless `-o wide`).

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::meta::{age, meta_str};
use super::resources::ResourceDef;

/// What each row carries in `object` (the `includeObject` parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

// === impl IncludeObject ===

impl IncludeObject {
    /// From the query parameter (`None`, `Metadata`, `Object`; absent → `Metadata`).
    pub fn parse(v: Option<&str>) -> Option<Self> {
        match v {
            None | Some("") | Some("Metadata") => Some(IncludeObject::Metadata),
            Some("None") => Some(IncludeObject::None),
            Some("Object") => Some(IncludeObject::Object),
            Some(_) => None,
        }
    }
}

fn col(name: &str, ty: &str, format: &str, priority: u8, description: &str) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

const NAME_DESC: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

fn name_col() -> Value {
    col("Name", "string", "name", 0, NAME_DESC)
}

fn age_col() -> Value {
    col("Age", "string", "", 0, AGE_DESC)
}

/// The column definitions for a resource.
pub fn columns(def: &ResourceDef) -> Vec<Value> {
    match def.storage {
        "services" => vec![
            name_col(),
            col("Type", "string", "", 0, "type determines how the Service is exposed."),
            col("Cluster-IP", "string", "", 0, "clusterIP is the IP address of the service and is usually assigned randomly."),
            col("External-IP", "string", "", 0, "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service."),
            col("Port(s)", "string", "", 0, "The list of ports that are exposed by this service."),
            age_col(),
            col("Selector", "string", "", 1, "Route service traffic to pods with label keys and values matching this selector."),
        ],
        "nodes" => vec![
            name_col(),
            col("Status", "string", "", 0, "The status of the node"),
            col("Roles", "string", "", 0, "The roles of the node"),
            age_col(),
            col("Version", "string", "", 0, "Kubelet Version reported by the node."),
            col("Internal-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("External-IP", "string", "", 1, "List of addresses reachable to the node. Queried from cloud provider, if available."),
            col("OS-Image", "string", "", 1, "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
            col("Kernel-Version", "string", "", 1, "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
            col("Container-Runtime", "string", "", 1, "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
        ],
        "leases" => vec![
            name_col(),
            col("Holder", "string", "", 0, "holderIdentity contains the identity of the holder of a current lease."),
            age_col(),
        ],
        "endpointslices" => vec![
            name_col(),
            col("AddressType", "string", "", 0, "addressType specifies the type of address carried by this EndpointSlice."),
            col("Ports", "string", "", 0, "ports specifies the list of network ports exposed by each endpoint in this slice."),
            col("Endpoints", "string", "", 0, "endpoints is a list of unique endpoints in this slice."),
            age_col(),
        ],
        "endpoints" => vec![
            name_col(),
            col("Endpoints", "string", "", 0, "Endpoints is the list of endpoints."),
            age_col(),
        ],
        "events" => vec![
            col("Last Seen", "string", "", 0, "The time at which the most recent occurrence of this event was recorded."),
            col("Type", "string", "", 0, "Type of this event (Normal, Warning), new types could be added in the future."),
            col("Reason", "string", "", 0, "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            col("Object", "string", "", 0, "The object that this event is about."),
            col("Subobject", "string", "", 1, "The subobject this event is about."),
            col("Source", "string", "", 1, "The component reporting this event. Should be a short machine understandable string."),
            col("Message", "string", "", 0, "A human-readable description of the status of this operation."),
            col("First Seen", "string", "", 1, "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
            col("Count", "integer", "", 1, "The number of times this event has occurred."),
            col("Name", "string", "name", 1, NAME_DESC),
        ],
        "namespaces" => vec![
            name_col(),
            col("Status", "string", "", 0, "The status of the namespace"),
            age_col(),
        ],
        "configmaps" => vec![
            name_col(),
            col("Data", "string", "", 0, "Data contains the configuration data."),
            age_col(),
        ],
        "secrets" => vec![
            name_col(),
            col("Type", "string", "", 0, "Used to facilitate programmatic handling of secret data."),
            col("Data", "string", "", 0, "Data contains the secret data."),
            age_col(),
        ],
        "serviceaccounts" => vec![
            name_col(),
            col("Secrets", "string", "", 0, "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
            age_col(),
        ],
        "deployments" => vec![
            name_col(),
            col("Ready", "string", "", 0, "Number of the pod with ready state"),
            col("Up-to-date", "string", "", 0, "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
            col("Available", "string", "", 0, "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
            age_col(),
            col("Containers", "string", "", 1, "Names of each container in the template."),
            col("Images", "string", "", 1, "Images referenced by each container in the template."),
            col("Selector", "string", "", 1, "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment."),
        ],
        "roles" | "clusterroles" => vec![
            name_col(),
            col("Created At", "date", "", 0, AGE_DESC),
        ],
        "rolebindings" | "clusterrolebindings" => vec![
            name_col(),
            col("Role", "string", "", 0, "RoleRef can only reference the current namespace or a ClusterRole in the global namespace."),
            age_col(),
            col("Users", "string", "", 1, "Users in the binding"),
            col("Groups", "string", "", 1, "Groups in the binding"),
            col("ServiceAccounts", "string", "", 1, "ServiceAccounts in the binding"),
        ],
        _ => vec![name_col(), age_col()],
    }
}

fn strs<'a>(v: &'a Value) -> impl Iterator<Item = &'a str> + 'a {
    v.as_array().into_iter().flatten().filter_map(Value::as_str)
}

fn count(v: &Value) -> i64 {
    match v {
        Value::Object(m) => m.len() as i64,
        Value::Array(a) => a.len() as i64,
        _ => 0,
    }
}

fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

fn format_labels(v: &Value) -> String {
    let pairs: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    or_none(pairs.join(","))
}

fn list_with_more(items: Vec<String>, total: usize, max: usize) -> String {
    let mut s = items.into_iter().take(max).collect::<Vec<_>>().join(",");
    if total > max {
        s.push_str(&format!(" + {} more...", total - max));
    }
    s
}

fn service_external_ip(obj: &Value) -> String {
    let spec = &obj["spec"];
    let external: Vec<&str> = strs(&spec["externalIPs"]).collect();
    match spec["type"].as_str().unwrap_or("ClusterIP") {
        "ClusterIP" | "NodePort" => or_none(external.join(",")),
        "LoadBalancer" => {
            let ingress: Vec<&str> = obj["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|i| i["ip"].as_str().or_else(|| i["hostname"].as_str()))
                .filter(|s| !s.is_empty())
                .collect();
            let mut all: Vec<&str> = ingress;
            all.extend(external);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => spec["externalName"].as_str().unwrap_or("").to_string(),
        _ => "<unknown>".into(),
    }
}

fn service_ports(obj: &Value) -> String {
    let ports: Vec<String> = obj["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p["port"].as_i64().unwrap_or(0);
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p["nodePort"].as_i64() {
                Some(np) if np > 0 => format!("{port}:{np}/{proto}"),
                _ => format!("{port}/{proto}"),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn node_status(obj: &Value) -> String {
    let mut status: Vec<String> = Vec::new();
    let ready = obj["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Ready");
    if let Some(c) = ready {
        status.push(if c["status"] == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    } else {
        status.push("Unknown".into());
    }
    if obj["spec"]["unschedulable"] == true {
        status.push("SchedulingDisabled".into());
    }
    status.join(",")
}

fn node_roles(obj: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in obj["metadata"]["labels"].as_object().into_iter().flatten() {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" {
            if let Some(r) = v.as_str().filter(|r| !r.is_empty()) {
                roles.insert(r.to_string());
            }
        }
    }
    or_none(roles.into_iter().collect::<Vec<_>>().join(","))
}

fn node_address(obj: &Value, ty: &str) -> String {
    obj["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == ty)
        .and_then(|a| a["address"].as_str())
        .map_or_else(|| "<none>".to_string(), str::to_string)
}

fn event_cells(obj: &Value) -> Vec<Value> {
    let first = if obj.get("firstTimestamp").is_some_and(|v| !v.is_null()) {
        age(obj.get("firstTimestamp"))
    } else {
        age(obj.get("eventTime"))
    };
    let mut last = if obj.get("lastTimestamp").is_some_and(|v| !v.is_null()) {
        age(obj.get("lastTimestamp"))
    } else {
        first.clone()
    };
    let mut n = obj["count"].as_i64().unwrap_or(0);
    if obj.get("series").is_some_and(Value::is_object) {
        last = age(obj["series"].get("lastObservedTime"));
        n = obj["series"]["count"].as_i64().unwrap_or(0);
    } else if n == 0 {
        n = 1;
    }
    let io = &obj["involvedObject"];
    let kind = io["kind"].as_str().unwrap_or("").to_lowercase();
    let target = match io["name"].as_str() {
        Some(name) if !name.is_empty() => format!("{kind}/{name}"),
        _ => kind,
    };
    let component = obj["source"]["component"].as_str().unwrap_or("");
    let source = if component.is_empty() {
        let rc = obj["reportingComponent"].as_str().unwrap_or("");
        match obj["reportingInstance"].as_str() {
            Some(ri) if !ri.is_empty() => format!("{rc}, {ri}"),
            _ => rc.to_string(),
        }
    } else {
        match obj["source"]["host"].as_str() {
            Some(h) if !h.is_empty() => format!("{component}, {h}"),
            _ => component.to_string(),
        }
    };
    vec![
        json!(last),
        json!(obj["type"].as_str().unwrap_or("")),
        json!(obj["reason"].as_str().unwrap_or("")),
        json!(target),
        json!(io["fieldPath"].as_str().unwrap_or("")),
        json!(source),
        json!(obj["message"].as_str().unwrap_or("").trim()),
        json!(first),
        json!(n),
        json!(meta_str(obj, "name")),
    ]
}

/// The cells of one row, from the stored form of an object.
pub fn cells(def: &ResourceDef, obj: &Value) -> Vec<Value> {
    let name = json!(meta_str(obj, "name"));
    let created = obj["metadata"].get("creationTimestamp");
    let ag = json!(age(created));
    match def.storage {
        "services" => vec![
            name,
            json!(obj["spec"]["type"].as_str().unwrap_or("ClusterIP")),
            json!(or_none(
                obj["spec"]["clusterIP"].as_str().unwrap_or("").to_string()
            )),
            json!(service_external_ip(obj)),
            json!(service_ports(obj)),
            ag,
            json!(format_labels(&obj["spec"]["selector"])),
        ],
        "nodes" => {
            let info = &obj["status"]["nodeInfo"];
            let s = |k: &str| {
                json!(info[k]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("<unknown>"))
            };
            vec![
                name,
                json!(node_status(obj)),
                json!(node_roles(obj)),
                ag,
                json!(info["kubeletVersion"].as_str().unwrap_or("")),
                json!(node_address(obj, "InternalIP")),
                json!(node_address(obj, "ExternalIP")),
                s("osImage"),
                s("kernelVersion"),
                s("containerRuntimeVersion"),
            ]
        }
        "leases" => vec![
            name,
            json!(obj["spec"]["holderIdentity"].as_str().unwrap_or("")),
            ag,
        ],
        "endpointslices" => {
            let ports: Vec<String> = obj["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                    (Some(n), _) => n.to_string(),
                    (None, Some(n)) => n.to_string(),
                    _ => "*".into(),
                })
                .collect();
            let total_ports = ports.len();
            let addrs: Vec<String> = obj["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|e| {
                    strs(&e["addresses"])
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect();
            let total_addrs = addrs.len();
            let ports = if total_ports == 0 {
                "<unset>".into()
            } else {
                list_with_more(ports, total_ports, 3)
            };
            let addrs = if total_addrs == 0 {
                "<unset>".into()
            } else {
                list_with_more(addrs, total_addrs, 3)
            };
            vec![
                name,
                json!(obj["addressType"].as_str().unwrap_or("")),
                json!(ports),
                json!(addrs),
                ag,
            ]
        }
        "endpoints" => {
            let mut list = Vec::new();
            for subset in obj["subsets"].as_array().into_iter().flatten() {
                let addrs: Vec<&str> = subset["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a["ip"].as_str())
                    .collect();
                let ports: Vec<i64> = subset["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["port"].as_i64())
                    .collect();
                for a in &addrs {
                    if ports.is_empty() {
                        list.push(a.to_string());
                    }
                    for p in &ports {
                        list.push(if a.contains(':') {
                            format!("[{a}]:{p}")
                        } else {
                            format!("{a}:{p}")
                        });
                    }
                }
            }
            let total = list.len();
            let s = if total == 0 {
                "<none>".into()
            } else {
                list_with_more(list, total, 3)
            };
            vec![name, json!(s), ag]
        }
        "events" => event_cells(obj),
        "namespaces" => vec![
            name,
            json!(obj["status"]["phase"].as_str().unwrap_or("")),
            ag,
        ],
        "configmaps" => vec![
            name,
            json!(count(&obj["data"]) + count(&obj["binaryData"])),
            ag,
        ],
        "secrets" => vec![
            name,
            json!(obj["type"].as_str().unwrap_or("")),
            json!(count(&obj["data"])),
            ag,
        ],
        "serviceaccounts" => vec![name, json!(count(&obj["secrets"])), ag],
        "deployments" => {
            let st = &obj["status"];
            let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(0);
            let containers = obj["spec"]["template"]["spec"]["containers"].as_array();
            let names: Vec<&str> = containers
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            let images: Vec<&str> = containers
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str())
                .collect();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    st["readyReplicas"].as_i64().unwrap_or(0),
                    replicas
                )),
                json!(st["updatedReplicas"].as_i64().unwrap_or(0)),
                json!(st["availableReplicas"].as_i64().unwrap_or(0)),
                ag,
                json!(names.join(",")),
                json!(images.join(",")),
                json!(format_labels(&obj["spec"]["selector"]["matchLabels"])),
            ]
        }
        "roles" | "clusterroles" => {
            vec![name, json!(created.and_then(Value::as_str).unwrap_or(""))]
        }
        "rolebindings" | "clusterrolebindings" => {
            let subjects = obj["subjects"].as_array();
            let of = |kind: &str| -> String {
                subjects
                    .into_iter()
                    .flatten()
                    .filter(|s| s["kind"] == kind)
                    .map(|s| {
                        let n = s["name"].as_str().unwrap_or("");
                        if kind == "ServiceAccount" {
                            format!("{}/{n}", s["namespace"].as_str().unwrap_or(""))
                        } else {
                            n.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let role = format!(
                "{}/{}",
                obj["roleRef"]["kind"].as_str().unwrap_or(""),
                obj["roleRef"]["name"].as_str().unwrap_or("")
            );
            vec![
                name,
                json!(role),
                ag,
                json!(of("User")),
                json!(of("Group")),
                json!(of("ServiceAccount")),
            ]
        }
        _ => vec![name, ag],
    }
}

/// `PartialObjectMetadata` of a (view) object.
pub fn partial_metadata(view: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": view.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// One row: cells from the stored form, `object` from the view.
pub fn row(def: &ResourceDef, stored: &Value, view: &Value, include: IncludeObject) -> Value {
    let mut row = json!({"cells": cells(def, stored)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => row["object"] = partial_metadata(view),
        IncludeObject::Object => row["object"] = view.clone(),
    }
    row
}

/// A Table of rows; `headers = false` leaves out `columnDefinitions` (watch events after the
/// first).
pub fn table(def: &ResourceDef, rows: Vec<Value>, headers: bool, list_meta: Value) -> Value {
    let mut t = json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "rows": rows,
    });
    t["columnDefinitions"] = if headers {
        json!(columns(def))
    } else {
        json!([])
    };
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab::apiserver::resources::find;

    #[test]
    fn service_rows_like_kubectl() {
        let svc = find("", "v1", "services").unwrap();
        let mut o = json!({"metadata": {"name": "web", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 31234, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {}}});
        let c = cells(svc, &o);
        assert_eq!(c[1], "LoadBalancer");
        assert_eq!(c[2], "10.96.0.10");
        assert_eq!(c[3], "<pending>");
        assert_eq!(c[4], "80:31234/TCP,53/UDP");
        assert_eq!(c[6], "app=web");
        o["status"]["loadBalancer"]["ingress"] =
            json!([{"ip": "192.0.2.1"}, {"ip": "2001:db8::1"}]);
        assert_eq!(cells(svc, &o)[3], "192.0.2.1,2001:db8::1");
        o["spec"]["type"] = json!("ClusterIP");
        assert_eq!(cells(svc, &o)[3], "<none>");
        assert_eq!(columns(svc).len(), cells(svc, &o).len());
    }

    #[test]
    fn node_rows() {
        let nodes = find("", "v1", "nodes").unwrap();
        let o = json!({"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "False"}], "nodeInfo": {"kubeletVersion": "v1.32.4"}}});
        let c = cells(nodes, &o);
        assert_eq!(c[1], "NotReady,SchedulingDisabled");
        assert_eq!(c[2], "control-plane");
        assert_eq!(c[4], "v1.32.4");
    }

    #[test]
    fn every_kind_has_as_many_cells_as_columns() {
        for def in crate::lab::apiserver::resources::RESOURCES {
            let o = json!({"metadata": {"name": "x"}});
            assert_eq!(columns(def).len(), cells(def, &o).len(), "{}", def.plural);
        }
    }
}
