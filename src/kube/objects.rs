//! The slim views of Kubernetes objects the daemon keeps in memory: only the fields it decides
//! with, so a node caching 10,000 Services stays small. Converted from `k8s-openapi` types as
//! they arrive; the full objects are dropped at once.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// `namespace/name` of a namespaced object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Annotations the daemon reads; every other annotation is dropped on arrival.
pub fn is_relevant_annotation(key: &str) -> bool {
    key.starts_with("ferrolb.io/")
        || key.starts_with("metallb.universe.tf/")
        || key.starts_with("metallb.io/")
}

/// A Service port as the allocator and planner need it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
    /// The port.
    pub port: u16,
}

/// What the daemon keeps of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceInfo {
    /// `namespace/name`.
    pub key: ObjectKey,
    /// `metadata.uid` (Events refer to it).
    pub uid: String,
    /// `metadata.resourceVersion` (precondition for status writes).
    pub resource_version: String,
    /// `spec.type` (`ClusterIP` when unset).
    pub service_type: String,
    /// `spec.loadBalancerClass`.
    pub load_balancer_class: Option<String>,
    /// The annotations for which [`is_relevant_annotation`] holds.
    pub annotations: BTreeMap<String, String>,
    /// `spec.loadBalancerIP` (deprecated upstream, still honoured).
    pub load_balancer_ip: Option<String>,
    /// `spec.ipFamilies`.
    pub ip_families: Vec<String>,
    /// `spec.ipFamilyPolicy`.
    pub ip_family_policy: Option<String>,
    /// `spec.ports`.
    pub ports: Vec<ServicePort>,
    /// `spec.externalTrafficPolicy` (`Cluster` when unset).
    pub external_traffic_policy: String,
    /// `spec.selector`.
    pub selector: BTreeMap<String, String>,
    /// `status.loadBalancer.ingress[].ip` that parse (hostnames are ignored).
    pub ingress: Vec<IpAddr>,
}

impl ServiceInfo {
    /// Whether this is a `type: LoadBalancer` Service.
    pub fn is_load_balancer(&self) -> bool {
        self.service_type == "LoadBalancer"
    }
}

impl From<Service> for ServiceInfo {
    fn from(svc: Service) -> ServiceInfo {
        let meta = svc.metadata;
        let spec = svc.spec.unwrap_or_default();
        let ingress = svc
            .status
            .and_then(|s| s.load_balancer)
            .and_then(|lb| lb.ingress)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|i| i.ip.and_then(|ip| ip.parse().ok()))
            .collect();
        ServiceInfo {
            key: ObjectKey {
                namespace: meta.namespace.unwrap_or_default(),
                name: meta.name.unwrap_or_default(),
            },
            uid: meta.uid.unwrap_or_default(),
            resource_version: meta.resource_version.unwrap_or_default(),
            service_type: spec.type_.unwrap_or_else(|| "ClusterIP".to_string()),
            load_balancer_class: spec.load_balancer_class,
            annotations: meta
                .annotations
                .unwrap_or_default()
                .into_iter()
                .filter(|(k, _)| is_relevant_annotation(k))
                .collect(),
            load_balancer_ip: spec.load_balancer_ip.filter(|s| !s.is_empty()),
            ip_families: spec.ip_families.unwrap_or_default(),
            ip_family_policy: spec.ip_family_policy,
            ports: spec
                .ports
                .unwrap_or_default()
                .into_iter()
                .filter_map(|p| {
                    Some(ServicePort {
                        protocol: p.protocol.unwrap_or_else(|| "TCP".to_string()),
                        port: u16::try_from(p.port).ok()?,
                    })
                })
                .collect(),
            external_traffic_policy: spec
                .external_traffic_policy
                .unwrap_or_else(|| "Cluster".to_string()),
            selector: spec.selector.unwrap_or_default(),
            ingress,
        }
    }
}

/// What the daemon keeps of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node name.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// The `Ready` condition: `Some(true)`/`Some(false)`, `None` when Unknown or absent.
    pub ready: Option<bool>,
    /// `NetworkUnavailable=True`.
    pub network_unavailable: bool,
    /// `status.addresses` of type `InternalIP`.
    pub internal_ips: Vec<IpAddr>,
}

impl From<Node> for NodeInfo {
    fn from(node: Node) -> NodeInfo {
        let status = node.status.unwrap_or_default();
        let conditions = status.conditions.unwrap_or_default();
        let condition = |kind: &str| {
            conditions
                .iter()
                .find(|c| c.type_ == kind)
                .map(|c| c.status.as_str())
        };
        NodeInfo {
            name: node.metadata.name.unwrap_or_default(),
            labels: node.metadata.labels.unwrap_or_default(),
            ready: match condition("Ready") {
                Some("True") => Some(true),
                Some("False") => Some(false),
                _ => None,
            },
            network_unavailable: condition("NetworkUnavailable") == Some("True"),
            internal_ips: status
                .addresses
                .unwrap_or_default()
                .into_iter()
                .filter(|a| a.type_ == "InternalIP")
                .filter_map(|a| a.address.parse().ok())
                .collect(),
        }
    }
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The node the endpoint runs on.
    pub node_name: Option<String>,
    /// `conditions.ready` (unset means ready, per the API).
    pub ready: bool,
    /// `conditions.serving` (unset means the same as ready).
    pub serving: bool,
}

/// What the daemon keeps of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointSliceInfo {
    /// `namespace/name` of the slice.
    pub key: ObjectKey,
    /// The Service it belongs to (label `kubernetes.io/service-name`).
    pub service: Option<String>,
    /// Its endpoints.
    pub endpoints: Vec<EndpointInfo>,
}

impl From<EndpointSlice> for EndpointSliceInfo {
    fn from(slice: EndpointSlice) -> EndpointSliceInfo {
        let meta = slice.metadata;
        EndpointSliceInfo {
            key: ObjectKey {
                namespace: meta.namespace.unwrap_or_default(),
                name: meta.name.unwrap_or_default(),
            },
            service: meta
                .labels
                .and_then(|mut l| l.remove("kubernetes.io/service-name")),
            endpoints: slice
                .endpoints
                .into_iter()
                .map(|e| {
                    let c = e.conditions.unwrap_or_default();
                    let ready = c.ready.unwrap_or(true);
                    EndpointInfo {
                        node_name: e.node_name,
                        ready,
                        serving: c.serving.unwrap_or(ready),
                    }
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_keeps_only_what_matters() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "web", "name": "nginx", "uid": "u1", "resourceVersion": "42",
                "annotations": {"ferrolb.io/address-pool": "blue", "kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}],
                "selector": {"app": "nginx"}, "externalTrafficPolicy": "Local", "ipFamilies": ["IPv4"]},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.168.10.10"}, {"hostname": "x.example"}]}}
        }))
        .unwrap();
        let info = ServiceInfo::from(svc);
        assert_eq!(info.key.to_string(), "web/nginx");
        assert!(info.is_load_balancer());
        assert_eq!(info.annotations.len(), 1);
        assert_eq!(
            info.ports[0],
            ServicePort {
                protocol: "TCP".into(),
                port: 80
            }
        );
        assert_eq!(
            info.ingress,
            vec!["192.168.10.10".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(info.external_traffic_policy, "Local");
    }

    #[test]
    fn node_conditions_and_addresses() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n1", "labels": {"a": "b"}},
            "status": {"conditions": [
                {"type": "Ready", "status": "False"},
                {"type": "NetworkUnavailable", "status": "True"}],
              "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n1"}]}
        }))
        .unwrap();
        let info = NodeInfo::from(node);
        assert_eq!(info.ready, Some(false));
        assert!(info.network_unavailable);
        assert_eq!(info.internal_ips.len(), 1);
    }

    #[test]
    fn endpoint_conditions_default_to_ready() {
        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"namespace": "web", "name": "nginx-abc", "labels": {"kubernetes.io/service-name": "nginx"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.0.1"], "nodeName": "n1"},
                          {"addresses": ["10.1.0.2"], "nodeName": "n2", "conditions": {"ready": false, "serving": true}}]
        }))
        .unwrap();
        let info = EndpointSliceInfo::from(slice);
        assert_eq!(info.service.as_deref(), Some("nginx"));
        assert!(info.endpoints[0].ready && info.endpoints[0].serving);
        assert!(!info.endpoints[1].ready && info.endpoints[1].serving);
    }
}
