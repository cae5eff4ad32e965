//! A LoadBalancer Service as IPAM sees it: only the fields allocation depends on, parsed once.
//!
//! The daemon keeps one [`ServiceSpec`] per LoadBalancer Service (10,000 of them on a big
//! cluster), so it holds parsed values, not the Kubernetes object. [`ServiceSpec::parse`] takes
//! the raw pieces ([`ServiceInput`]) and never fails: a malformed value is kept as an
//! [`InvalidService`] that the allocator reports as the Service's reason.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use super::annotations::{self, InvalidService};
use super::range::Family;

/// A Service's identity: `namespace/name`. Ordered by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    namespace: String,
    name: String,
}

impl ServiceKey {
    /// The key of Service `name` in `namespace`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ServiceKey {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// `spec.ipFamilyPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamilyPolicy {
    /// One address, of the first listed family (the Kubernetes default).
    #[default]
    SingleStack,
    /// One address per listed family if one pool can give both, else one address.
    PreferDualStack,
    /// One IPv4 and one IPv6 address from the same pool, or nothing.
    RequireDualStack,
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamilyPolicy::SingleStack => "SingleStack",
            IpFamilyPolicy::PreferDualStack => "PreferDualStack",
            IpFamilyPolicy::RequireDualStack => "RequireDualStack",
        })
    }
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        })
    }
}

/// One `(protocol, port)` a Service listens on. Displays as MetalLB does: `TCP/80`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Port {
    /// The protocol.
    pub protocol: Protocol,
    /// The port number (1–65535).
    pub port: u16,
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.protocol, self.port)
    }
}

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum TrafficPolicy {
    /// Every node forwards to every endpoint (the Kubernetes default).
    #[default]
    Cluster,
    /// Only nodes with a local endpoint serve the Service.
    Local,
}

impl fmt::Display for TrafficPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        })
    }
}

/// One entry of `spec.ports` as the API gives it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortInput<'a> {
    /// `protocol`; `None` or empty means TCP.
    pub protocol: Option<&'a str>,
    /// `port`.
    pub port: i32,
}

/// The raw pieces of a Service that IPAM reads, borrowed from the API object.
///
/// Every field defaults to "absent", so callers set only what they have:
/// `ServiceInput { namespace: "ns", name: "web", ..Default::default() }`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServiceInput<'a> {
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.annotations`.
    pub annotations: Option<&'a BTreeMap<String, String>>,
    /// `spec.loadBalancerIP` (deprecated by Kubernetes, still honoured); empty means unset.
    pub load_balancer_ip: Option<&'a str>,
    /// `status.loadBalancer.ingress[].ip`, in order. Entries that are not addresses are ignored.
    pub ingress_ips: &'a [&'a str],
    /// `spec.ipFamilies` (`"IPv4"`, `"IPv6"`).
    pub ip_families: &'a [&'a str],
    /// `spec.ipFamilyPolicy`; `None` means `SingleStack`.
    pub ip_family_policy: Option<&'a str>,
    /// `spec.ports`.
    pub ports: &'a [PortInput<'a>],
    /// `spec.externalTrafficPolicy`; `None` means `Cluster`.
    pub external_traffic_policy: Option<&'a str>,
    /// `spec.selector`.
    pub selector: Option<&'a BTreeMap<String, String>>,
}

/// A LoadBalancer Service as IPAM sees it, parsed. Build it with [`ServiceSpec::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    key: ServiceKey,
    current: Vec<IpAddr>,
    requested: Vec<IpAddr>,
    pool: Option<String>,
    sharing_key: Option<String>,
    policy: IpFamilyPolicy,
    families: Vec<Family>,
    ports: Vec<Port>,
    traffic_policy: TrafficPolicy,
    selector: BTreeMap<String, String>,
    invalid: Option<Box<InvalidService>>,
}

impl ServiceSpec {
    /// Parses the raw pieces. Never fails: the first malformed value found (an address that
    /// does not parse, conflicting requests, an unknown family, policy, protocol or port) is kept
    /// and reported by [`ServiceSpec::invalid`], and the allocator refuses the Service with it.
    pub fn parse(input: &ServiceInput<'_>) -> ServiceSpec {
        let mut invalid: Option<InvalidService> = None;
        let mut note = |e: InvalidService| {
            invalid.get_or_insert(e);
        };

        let empty = BTreeMap::new();
        let requests = annotations::Requests::parse(
            input.annotations.unwrap_or(&empty),
            input.load_balancer_ip,
        )
        .unwrap_or_else(|e| {
            note(e);
            annotations::Requests::default()
        });

        let policy = annotations::parse_family_policy(input.ip_family_policy).unwrap_or_else(|e| {
            note(e);
            IpFamilyPolicy::SingleStack
        });
        let mut listed: Vec<Family> = Vec::with_capacity(2);
        for raw in input.ip_families {
            match annotations::parse_family(raw) {
                Ok(f) if !listed.contains(&f) => listed.push(f),
                Ok(_) => {}
                Err(e) => note(e),
            }
        }
        let families = effective_families(policy, &listed);

        let mut ports = Vec::with_capacity(input.ports.len());
        for p in input.ports {
            match annotations::parse_port(p) {
                Ok(port) => ports.push(port),
                Err(e) => note(e),
            }
        }
        ports.sort_unstable();
        ports.dedup();

        let traffic_policy = annotations::parse_traffic_policy(input.external_traffic_policy)
            .unwrap_or_else(|e| {
                note(e);
                TrafficPolicy::Cluster
            });

        let mut current: Vec<IpAddr> = Vec::with_capacity(input.ingress_ips.len());
        for ip in input
            .ingress_ips
            .iter()
            .filter_map(|s| s.trim().parse().ok())
        {
            if !current.contains(&ip) {
                current.push(ip);
            }
        }

        ServiceSpec {
            key: ServiceKey::new(input.namespace, input.name),
            current,
            requested: requests.addresses,
            pool: requests.pool,
            sharing_key: requests.sharing_key,
            policy,
            families,
            ports,
            traffic_policy,
            selector: input.selector.cloned().unwrap_or_default(),
            invalid: invalid.map(Box::new),
        }
    }

    /// The same Service with `addresses` as its current status (as if the allocator's last
    /// decision had been written back).
    pub fn with_current(mut self, addresses: Vec<IpAddr>) -> ServiceSpec {
        self.current = addresses;
        self
    }

    /// `namespace/name`.
    pub fn key(&self) -> &ServiceKey {
        &self.key
    }

    /// Addresses the Service holds now (its status), in status order, without duplicates.
    pub fn current(&self) -> &[IpAddr] {
        &self.current
    }

    /// Addresses the Service asks for (annotation or `spec.loadBalancerIP`): empty, or one per
    /// family at most.
    pub fn requested(&self) -> &[IpAddr] {
        &self.requested
    }

    /// The pool named by the address-pool annotation.
    pub fn pool(&self) -> Option<&str> {
        self.pool.as_deref()
    }

    /// The allow-shared-ip key; never empty.
    pub fn sharing_key(&self) -> Option<&str> {
        self.sharing_key.as_deref()
    }

    /// `spec.ipFamilyPolicy`.
    pub fn ip_family_policy(&self) -> IpFamilyPolicy {
        self.policy
    }

    /// The families the Service wants addresses of, in preference order: one for `SingleStack`
    /// (the first listed, IPv4 if none), the listed ones for `PreferDualStack`, both for
    /// `RequireDualStack` (the listed one first).
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// The Service's ports, sorted, without duplicates.
    pub fn ports(&self) -> &[Port] {
        &self.ports
    }

    /// `spec.externalTrafficPolicy`.
    pub fn traffic_policy(&self) -> TrafficPolicy {
        self.traffic_policy
    }

    /// `spec.selector`.
    pub fn selector(&self) -> &BTreeMap<String, String> {
        &self.selector
    }

    /// The first malformed value found while parsing, if any.
    pub fn invalid(&self) -> Option<&InvalidService> {
        self.invalid.as_deref()
    }
}

/// The families a Service wants, from its policy and its listed families.
fn effective_families(policy: IpFamilyPolicy, listed: &[Family]) -> Vec<Family> {
    let first = listed.first().copied().unwrap_or(Family::V4);
    let other = match first {
        Family::V4 => Family::V6,
        Family::V6 => Family::V4,
    };
    match policy {
        IpFamilyPolicy::SingleStack => vec![first],
        IpFamilyPolicy::PreferDualStack if listed.len() >= 2 => vec![first, other],
        IpFamilyPolicy::PreferDualStack => vec![first],
        IpFamilyPolicy::RequireDualStack => vec![first, other],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn key_orders_by_namespace_then_name_and_displays() {
        let a = ServiceKey::new("a", "z");
        let b = ServiceKey::new("a-b", "a");
        assert!(a < b, "namespace \"a\" sorts before \"a-b\"");
        assert_eq!(a.to_string(), "a/z");
    }

    #[test]
    fn defaults_are_single_stack_ipv4_cluster() {
        let s = ServiceSpec::parse(&ServiceInput {
            namespace: "ns",
            name: "web",
            ..Default::default()
        });
        assert_eq!(s.families(), &[Family::V4]);
        assert_eq!(s.ip_family_policy(), IpFamilyPolicy::SingleStack);
        assert_eq!(s.traffic_policy(), TrafficPolicy::Cluster);
        assert!(s.invalid().is_none());
        assert!(s.requested().is_empty());
    }

    #[test]
    fn families_follow_policy() {
        let parse = |policy: Option<&str>, fams: &[&str]| {
            ServiceSpec::parse(&ServiceInput {
                ip_family_policy: policy,
                ip_families: fams,
                ..Default::default()
            })
            .families()
            .to_vec()
        };
        use Family::*;
        assert_eq!(parse(None, &["IPv6", "IPv4"]), [V6]);
        assert_eq!(parse(Some("PreferDualStack"), &["IPv6", "IPv4"]), [V6, V4]);
        assert_eq!(parse(Some("PreferDualStack"), &["IPv4"]), [V4]);
        assert_eq!(parse(Some("RequireDualStack"), &["IPv6"]), [V6, V4]);
        assert_eq!(parse(Some("RequireDualStack"), &[]), [V4, V6]);
    }

    #[test]
    fn status_ports_and_selector_are_kept_parsed() {
        let sel = ann(&[("app", "web")]);
        let ports = [
            PortInput {
                protocol: Some("UDP"),
                port: 53,
            },
            PortInput {
                protocol: None,
                port: 80,
            },
            PortInput {
                protocol: Some("TCP"),
                port: 80,
            },
        ];
        let s = ServiceSpec::parse(&ServiceInput {
            namespace: "ns",
            name: "web",
            ingress_ips: &["10.0.0.1", "not-an-ip", "10.0.0.1", "fd00::1"],
            ports: &ports,
            external_traffic_policy: Some("Local"),
            selector: Some(&sel),
            ..Default::default()
        });
        assert_eq!(
            s.current(),
            &[
                "10.0.0.1".parse::<IpAddr>().unwrap(),
                "fd00::1".parse().unwrap()
            ]
        );
        assert_eq!(
            s.ports().iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["TCP/80", "UDP/53"]
        );
        assert_eq!(s.traffic_policy(), TrafficPolicy::Local);
        assert_eq!(s.selector(), &sel);
    }

    #[test]
    fn malformed_values_become_a_reason() {
        let bad = |input: ServiceInput<'_>| {
            ServiceSpec::parse(&input)
                .invalid()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let port = [PortInput {
            protocol: Some("tcp"),
            port: 80,
        }];
        assert!(bad(ServiceInput {
            ports: &port,
            ..Default::default()
        })
        .contains("\"tcp\""));
        let port = [PortInput {
            protocol: None,
            port: 0,
        }];
        assert!(bad(ServiceInput {
            ports: &port,
            ..Default::default()
        })
        .contains("port 0"));
        assert!(bad(ServiceInput {
            ip_families: &["IPv5"],
            ..Default::default()
        })
        .contains("IPv5"));
        assert!(bad(ServiceInput {
            ip_family_policy: Some("DualStack"),
            ..Default::default()
        })
        .contains("DualStack"));
        assert!(bad(ServiceInput {
            external_traffic_policy: Some("Global"),
            ..Default::default()
        })
        .contains("Global"));
        assert!(bad(ServiceInput {
            load_balancer_ip: Some("10.0.0.300"),
            ..Default::default()
        })
        .contains("spec.loadBalancerIP"));
    }
}
