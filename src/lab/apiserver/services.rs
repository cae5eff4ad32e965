//! Service defaulting and allocation, as the real server's Service REST storage does it:
//! `type: ClusterIP`, `sessionAffinity: None`, port `protocol: TCP` and `targetPort = port`;
//! `ipFamilies`/`ipFamilyPolicy` (SingleStack IPv4 unless asked); `clusterIP`/`clusterIPs` from
//! the service ranges; `nodePort`s (and `healthCheckNodePort` for `externalTrafficPolicy:
//! Local`) from 30000–32767 for NodePort and LoadBalancer Services; allocated values kept on
//! update; type-dependent fields dropped when the type changes to ClusterIP.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde_json::{json, Map, Value};

use super::meta::random_u64;
use super::status::{ApiError, ApiResult, Cause};

/// The ranges Services get addresses and ports from.
#[derive(Debug, Clone)]
pub struct ServiceRanges {
    /// IPv4 cluster IPs (default `10.96.0.0/16`).
    pub v4: Ipv4Net,
    /// IPv6 cluster IPs (default `fd00:10:96::/112`).
    pub v6: Ipv6Net,
    /// The node port range, inclusive (default 30000–32767).
    pub node_ports: (u16, u16),
}

impl Default for ServiceRanges {
    fn default() -> Self {
        ServiceRanges {
            v4: Ipv4Net::new(Ipv4Addr::new(10, 96, 0, 0), 16).unwrap_or_default(),
            v6: Ipv6Net::new(Ipv6Addr::new(0xfd00, 0x10, 0x96, 0, 0, 0, 0, 0), 112)
                .unwrap_or_default(),
            node_ports: (30000, 32767),
        }
    }
}

/// Every cluster IP and node port the stored Services hold (kept by the store as Services are
/// written, so allocation does not scan every Service).
#[derive(Debug, Default, Clone)]
pub struct ServiceIndex {
    ips: HashMap<IpAddr, u32>,
    ports: HashMap<u16, u32>,
}

fn allocations(svc: &Value) -> (Vec<IpAddr>, Vec<u16>) {
    let spec = &svc["spec"];
    let mut ips: Vec<IpAddr> = spec["clusterIPs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.as_str()?.parse().ok())
        .collect();
    if let Some(ip) = spec["clusterIP"].as_str().and_then(|s| s.parse().ok()) {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut ports: Vec<u16> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| u16::try_from(p["nodePort"].as_u64()?).ok())
        .collect();
    if let Some(n) = spec["healthCheckNodePort"]
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
    {
        ports.push(n);
    }
    (ips, ports)
}

// === impl ServiceIndex ===

impl ServiceIndex {
    /// Counts what a stored Service holds.
    pub fn add(&mut self, svc: &Value) {
        let (ips, ports) = allocations(svc);
        for ip in ips {
            *self.ips.entry(ip).or_default() += 1;
        }
        for p in ports {
            *self.ports.entry(p).or_default() += 1;
        }
    }

    /// Forgets what a Service held.
    pub fn remove(&mut self, svc: &Value) {
        let (ips, ports) = allocations(svc);
        for ip in ips {
            if let Some(n) = self.ips.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.ips.remove(&ip);
                }
            }
        }
        for p in ports {
            if let Some(n) = self.ports.get_mut(&p) {
                *n -= 1;
                if *n == 0 {
                    self.ports.remove(&p);
                }
            }
        }
    }
}

/// What is taken while one Service is written: what the stored Services hold (the one being
/// updated included: its own values are recognised through the old object) plus what this
/// write allocated so far.
#[derive(Debug, Default)]
pub struct Used<'a> {
    base: Option<&'a ServiceIndex>,
    ips: HashSet<IpAddr>,
    ports: HashSet<u16>,
}

// === impl Used ===

impl<'a> Used<'a> {
    /// Over the store's index.
    pub fn new(base: &'a ServiceIndex) -> Self {
        Used {
            base: Some(base),
            ..Used::default()
        }
    }

    /// Collects what `services` hold (tests; the store keeps an index instead).
    pub fn from_services<'b>(services: impl Iterator<Item = &'b Value>) -> Used<'static> {
        let mut used = Used::default();
        for svc in services {
            let (ips, ports) = allocations(svc);
            used.ips.extend(ips);
            used.ports.extend(ports);
        }
        used
    }

    fn has_ip(&self, ip: &IpAddr) -> bool {
        self.ips.contains(ip) || self.base.is_some_and(|b| b.ips.contains_key(ip))
    }

    fn has_port(&self, p: u16) -> bool {
        self.ports.contains(&p) || self.base.is_some_and(|b| b.ports.contains_key(&p))
    }
}

struct Ctx<'a> {
    name: &'a str,
    causes: Vec<Cause>,
}

impl Ctx<'_> {
    fn invalid(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.causes.push(Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: message.into(),
        });
    }
    fn required(&mut self, field: impl Into<String>) {
        self.causes.push(Cause {
            reason: "FieldValueRequired",
            field: field.into(),
            message: "Required value".into(),
        });
    }
    fn finish(self) -> ApiResult<()> {
        if self.causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid("", "Service", self.name, self.causes))
        }
    }
}

fn needs_node_ports(ty: &str) -> bool {
    ty == "NodePort" || ty == "LoadBalancer"
}

/// Defaults, validates and allocates a Service being created (`old = None`) or updated
/// (`old` = the stored Service). The load-balancer status is reset on create and whenever the
/// Service is not (or no longer) of type LoadBalancer.
pub fn prepare(
    obj: &mut Value,
    old: Option<&Value>,
    used: &mut Used,
    ranges: &ServiceRanges,
) -> ApiResult<()> {
    prepare_spec(obj, old, used, ranges)?;
    let ty = obj["spec"]["type"].as_str().unwrap_or("ClusterIP");
    if old.is_none() || ty != "LoadBalancer" {
        if !obj.get("status").is_some_and(Value::is_object) {
            obj["status"] = json!({});
        }
        obj["status"]["loadBalancer"] = json!({});
    }
    Ok(())
}

fn prepare_spec(
    obj: &mut Value,
    old: Option<&Value>,
    used: &mut Used,
    ranges: &ServiceRanges,
) -> ApiResult<()> {
    let name = super::meta::meta_str(obj, "name").to_string();
    let mut ctx = Ctx {
        name: &name,
        causes: Vec::new(),
    };
    if !obj.get("spec").is_some_and(Value::is_object) {
        obj["spec"] = json!({});
    }
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(ApiError::bad_request("spec must be an object"));
    };
    let old_spec = old.and_then(|o| o.get("spec")).and_then(Value::as_object);
    let old_type = old_spec
        .and_then(|s| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();

    let ty = spec
        .entry("type")
        .or_insert_with(|| json!("ClusterIP"))
        .as_str()
        .unwrap_or("")
        .to_string();
    if !["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"].contains(&ty.as_str()) {
        ctx.causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.type".into(),
            message: format!("Unsupported value: \"{ty}\": supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\""),
        });
        return ctx.finish();
    }
    spec.entry("sessionAffinity")
        .or_insert_with(|| json!("None"));

    // The type changed: drop what only the old type carries, unless the writer changed it
    // too (the real strategy's dropTypeDependentFields).
    if let Some(os) = old_spec {
        let unchanged = |spec: &Map<String, Value>, k: &str| spec.get(k) == os.get(k);
        let old_external_ips = os
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        let new_external_ips = spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if old_type != "ExternalName" && ty == "ExternalName" {
            for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                if unchanged(spec, k) {
                    spec.remove(k);
                }
            }
        }
        if needs_node_ports(&old_type) && !needs_node_ports(&ty) {
            let node_ports = |ports: Option<&Value>| -> HashSet<u64> {
                ports
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|p| p["nodePort"].as_u64().filter(|n| *n != 0))
                    .collect()
            };
            // No net-new node ports: they were allocated, not asked for; wipe them all.
            if node_ports(spec.get("ports")).is_subset(&node_ports(os.get("ports"))) {
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                        p.remove("nodePort");
                    }
                }
            }
        }
        let needs_hc = |t: &str, s: &Map<String, Value>| {
            t == "LoadBalancer"
                && s.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local")
        };
        if needs_hc(&old_type, os) && !needs_hc(&ty, spec) && unchanged(spec, "healthCheckNodePort")
        {
            spec.remove("healthCheckNodePort");
        }
        if old_type == "LoadBalancer" && ty != "LoadBalancer" {
            for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
                if unchanged(spec, k) {
                    spec.remove(k);
                }
            }
        }
        let accessible = |t: &str, ext: bool| {
            t == "LoadBalancer" || t == "NodePort" || (t == "ClusterIP" && ext)
        };
        if accessible(&old_type, old_external_ips)
            && !accessible(&ty, new_external_ips)
            && unchanged(spec, "externalTrafficPolicy")
        {
            spec.remove("externalTrafficPolicy");
        }
    }

    // Ports.
    let mut seen: HashSet<(i64, String)> = HashSet::new();
    let ports_len = spec
        .get("ports")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(pm) = p.as_object_mut() else {
                ctx.invalid(format!("spec.ports[{i}]"), "must be an object");
                continue;
            };
            let port = pm.get("port").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&port) {
                ctx.invalid(
                    format!("spec.ports[{i}].port"),
                    format!("Invalid value: {port}: must be between 1 and 65535, inclusive"),
                );
            }
            let proto = pm
                .entry("protocol")
                .or_insert_with(|| json!("TCP"))
                .as_str()
                .unwrap_or("")
                .to_string();
            if !["TCP", "UDP", "SCTP"].contains(&proto.as_str()) {
                ctx.causes.push(Cause {
                    reason: "FieldValueNotSupported",
                    field: format!("spec.ports[{i}].protocol"),
                    message: format!("Unsupported value: \"{proto}\": supported values: \"SCTP\", \"TCP\", \"UDP\""),
                });
            }
            if ty != "ExternalName" {
                let unset = match pm.get("targetPort") {
                    None | Some(Value::Null) => true,
                    Some(Value::Number(n)) => n.as_i64() == Some(0),
                    Some(Value::String(s)) => s.is_empty(),
                    Some(_) => false,
                };
                if unset {
                    pm.insert("targetPort".into(), json!(port));
                }
            }
            if ports_len > 1
                && pm
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
            {
                ctx.required(format!("spec.ports[{i}].name"));
            }
            if !seen.insert((port, proto.clone())) {
                ctx.causes.push(Cause {
                    reason: "FieldValueDuplicate",
                    field: format!("spec.ports[{i}]"),
                    message: format!(
                        "Duplicate value: core.ServicePort{{Port: {port}, Protocol: \"{proto}\"}}"
                    ),
                });
            }
            if let Some(np) = pm.get("nodePort").and_then(Value::as_i64) {
                if np == 0 {
                    pm.remove("nodePort");
                } else if ty == "ClusterIP" {
                    ctx.causes.push(Cause {
                        reason: "FieldValueForbidden",
                        field: format!("spec.ports[{i}].nodePort"),
                        message: "Forbidden: may not be used when `type` is 'ClusterIP'".into(),
                    });
                }
            }
        }
    }

    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    if ty == "ExternalName" {
        if spec
            .get("externalName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            ctx.required("spec.externalName");
        }
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
        return ctx.finish();
    }
    if ports_len == 0 && !headless {
        ctx.required("spec.ports");
    }
    if !ctx.causes.is_empty() {
        return ctx.finish();
    }
    spec.entry("internalTrafficPolicy")
        .or_insert_with(|| json!("Cluster"));

    // Keep what was allocated before, unless the writer changed it (which is invalid).
    if let Some(os) = old_spec {
        let old_ip = os.get("clusterIP").and_then(Value::as_str).unwrap_or("");
        if old_type != "ExternalName" && !old_ip.is_empty() {
            let new_ip = spec.get("clusterIP").and_then(Value::as_str).unwrap_or("");
            if new_ip.is_empty() {
                for k in ["clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"] {
                    if let Some(v) = os.get(k) {
                        spec.entry(k).or_insert_with(|| v.clone());
                    }
                }
            } else if new_ip != old_ip {
                ctx.invalid(
                    "spec.clusterIPs[0]",
                    format!("Invalid value: []string{{\"{new_ip}\"}}: may not change once set"),
                );
                return ctx.finish();
            }
        }
        for k in ["ipFamilies", "ipFamilyPolicy"] {
            if let Some(v) = os.get(k) {
                spec.entry(k).or_insert_with(|| v.clone());
            }
        }
        if needs_node_ports(&ty) {
            let old_ports = os.get("ports").and_then(Value::as_array);
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports.iter_mut() {
                    if p.get("nodePort").is_some() {
                        continue;
                    }
                    let found = old_ports.and_then(|ops| {
                        ops.iter()
                            .find(|op| op["port"] == p["port"] && op["protocol"] == p["protocol"])
                    });
                    if let (Some(np), Some(pm)) =
                        (found.and_then(|op| op.get("nodePort")), p.as_object_mut())
                    {
                        pm.insert("nodePort".into(), np.clone());
                    }
                }
            }
            if let Some(h) = os.get("healthCheckNodePort") {
                spec.entry("healthCheckNodePort")
                    .or_insert_with(|| h.clone());
            }
        }
    }

    // IP families.
    let mut families = string_list(spec, "ipFamilies");
    let mut given_ips = string_list(spec, "clusterIPs");
    if let Some(ip) = spec
        .get("clusterIP")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if given_ips.is_empty() {
            given_ips.push(ip.to_string());
        } else if given_ips[0] != ip {
            ctx.invalid(
                "spec.clusterIPs",
                format!(
                    "Invalid value: []string{{\"{}\"}}: must be consistent with spec.clusterIP",
                    given_ips[0]
                ),
            );
            return ctx.finish();
        }
    }
    let policy = spec
        .get("ipFamilyPolicy")
        .and_then(Value::as_str)
        .unwrap_or("SingleStack")
        .to_string();
    if !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&policy.as_str()) {
        ctx.causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.ipFamilyPolicy".into(),
            message: format!("Unsupported value: \"{policy}\": supported values: \"PreferDualStack\", \"RequireDualStack\", \"SingleStack\""),
        });
        return ctx.finish();
    }
    if families.is_empty() {
        for ip in &given_ips {
            match ip.parse::<IpAddr>() {
                Ok(IpAddr::V4(_)) => families.push("IPv4".into()),
                Ok(IpAddr::V6(_)) => families.push("IPv6".into()),
                Err(_) => {}
            }
        }
        if families.is_empty() {
            families.push("IPv4".into());
        }
        if policy != "SingleStack" && families.len() == 1 {
            let other = if families[0] == "IPv4" {
                "IPv6"
            } else {
                "IPv4"
            };
            families.push(other.into());
        }
    }
    for (i, f) in families.iter().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            ctx.causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: format!("spec.ipFamilies[{i}]"),
                message: format!(
                    "Unsupported value: \"{f}\": supported values: \"IPv4\", \"IPv6\""
                ),
            });
        }
    }
    if families.len() > 2 || (families.len() == 2 && families[0] == families[1]) {
        ctx.invalid(
            "spec.ipFamilies",
            "Invalid value: must contain at most one of each family",
        );
    }
    if families.len() > 1 && policy == "SingleStack" {
        ctx.invalid(
            "spec.ipFamilyPolicy",
            "Invalid value: \"SingleStack\": must be RequireDualStack or PreferDualStack when multiple 'ipFamilies' are specified",
        );
    }
    if !ctx.causes.is_empty() {
        return ctx.finish();
    }
    spec.insert("ipFamilies".into(), json!(families));
    spec.insert("ipFamilyPolicy".into(), json!(policy));

    // Cluster IPs.
    if headless {
        spec.insert("clusterIPs".into(), json!(["None"]));
    } else {
        let mut ips = Vec::new();
        for (i, fam) in families.iter().enumerate() {
            match given_ips.get(i) {
                Some(s) => match s.parse::<IpAddr>() {
                    Ok(ip) => {
                        let fam_ok = matches!((fam.as_str(), ip), ("IPv4", IpAddr::V4(_)) | ("IPv6", IpAddr::V6(_)));
                        let own = old_spec.is_some_and(|os| {
                            os.get("clusterIPs").and_then(Value::as_array).is_some_and(|a| a.iter().any(|x| x.as_str() == Some(s)))
                        });
                        let in_range = match ip {
                            IpAddr::V4(v4) => ranges.v4.contains(&v4),
                            IpAddr::V6(v6) => ranges.v6.contains(&v6),
                        };
                        if !fam_ok {
                            ctx.invalid(format!("spec.clusterIPs[{i}]"), format!("Invalid value: \"{s}\": expected an {fam} value as indicated by `ipFamilies[{i}]`"));
                        } else if !in_range && !own {
                            ctx.invalid(format!("spec.clusterIPs[{i}]"), format!("Invalid value: \"{s}\": failed to allocate IP {s}: the provided IP ({s}) is not in the valid range. The range of valid IPs is {}", if fam == "IPv4" { ranges.v4.to_string() } else { ranges.v6.to_string() }));
                        } else if !own && used.has_ip(&ip) {
                            ctx.invalid(format!("spec.clusterIPs[{i}]"), format!("Invalid value: \"{s}\": failed to allocate IP {s}: provided IP is already allocated"));
                        } else {
                            used.ips.insert(ip);
                            ips.push(s.clone());
                        }
                    }
                    Err(_) => ctx.invalid(format!("spec.clusterIPs[{i}]"), format!("Invalid value: \"{s}\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")),
                },
                None => match allocate_ip(fam == "IPv6", used, ranges) {
                    Some(ip) => {
                        used.ips.insert(ip);
                        ips.push(ip.to_string());
                    }
                    None => return Err(ApiError::internal(format!("failed to allocate a serviceIP: range is full ({fam})"))),
                },
            }
        }
        if !ctx.causes.is_empty() {
            return ctx.finish();
        }
        if let Some(first) = ips.first() {
            spec.insert("clusterIP".into(), json!(first));
        }
        spec.insert("clusterIPs".into(), json!(ips));
    }

    // Node ports.
    if needs_node_ports(&ty) {
        spec.entry("externalTrafficPolicy")
            .or_insert_with(|| json!("Cluster"));
        if ty == "LoadBalancer" {
            spec.entry("allocateLoadBalancerNodePorts")
                .or_insert_with(|| json!(true));
        }
        let allocate =
            ty == "NodePort" || spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false));
        let old_ports: HashSet<u64> = old_spec
            .and_then(|os| os.get("ports"))
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|p| p["nodePort"].as_u64()).collect())
            .unwrap_or_default();
        let mut mine: HashSet<u16> = HashSet::new();
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for (i, p) in ports.iter_mut().enumerate() {
                let Some(pm) = p.as_object_mut() else {
                    continue;
                };
                match pm.get("nodePort").and_then(Value::as_u64) {
                    Some(np) => {
                        let ok_range = (u64::from(ranges.node_ports.0)
                            ..=u64::from(ranges.node_ports.1))
                            .contains(&np);
                        if !ok_range {
                            ctx.invalid(format!("spec.ports[{i}].nodePort"), format!("Invalid value: {np}: provided port is not in the valid range. The range of valid ports is {}-{}", ranges.node_ports.0, ranges.node_ports.1));
                        } else if !old_ports.contains(&np)
                            && !mine.contains(&(np as u16))
                            && used.has_port(np as u16)
                        {
                            ctx.invalid(
                                format!("spec.ports[{i}].nodePort"),
                                format!("Invalid value: {np}: provided port is already allocated"),
                            );
                        } else {
                            used.ports.insert(np as u16);
                            mine.insert(np as u16);
                        }
                    }
                    None if allocate => match allocate_port(used, ranges) {
                        Some(np) => {
                            used.ports.insert(np);
                            mine.insert(np);
                            pm.insert("nodePort".into(), json!(np));
                        }
                        None => {
                            return Err(ApiError::internal(
                                "failed to allocate a nodePort: range is full",
                            ))
                        }
                    },
                    None => {}
                }
            }
        }
        let local = spec.get("externalTrafficPolicy").and_then(Value::as_str) == Some("Local");
        if ty == "LoadBalancer" && local {
            if spec
                .get("healthCheckNodePort")
                .and_then(Value::as_u64)
                .is_none()
            {
                match allocate_port(used, ranges) {
                    Some(np) => {
                        used.ports.insert(np);
                        spec.insert("healthCheckNodePort".into(), json!(np));
                    }
                    None => {
                        return Err(ApiError::internal(
                            "failed to allocate a nodePort: range is full",
                        ))
                    }
                }
            }
        } else {
            spec.remove("healthCheckNodePort");
        }
    }
    ctx.finish()
}

fn allocate_ip(v6: bool, used: &Used, ranges: &ServiceRanges) -> Option<IpAddr> {
    let (base, size): (u128, u128) = if v6 {
        (
            u128::from(ranges.v6.network()),
            1u128 << (128 - u32::from(ranges.v6.prefix_len())).min(64),
        )
    } else {
        (
            u128::from(u32::from(ranges.v4.network())),
            1u128 << (32 - u32::from(ranges.v4.prefix_len())),
        )
    };
    // Skip the network address, the first host (the `kubernetes` Service) and, for IPv4, the
    // broadcast address.
    if size < 4 {
        return None;
    }
    let first = 2u128;
    let count = size - first - 1;
    let to_ip = |off: u128| -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(base + off))
        } else {
            IpAddr::V4(Ipv4Addr::from((base + off) as u32))
        }
    };
    for _ in 0..32 {
        let ip = to_ip(first + u128::from(random_u64()) % count);
        if !used.has_ip(&ip) {
            return Some(ip);
        }
    }
    (first..first + count.min(1 << 20))
        .map(to_ip)
        .find(|ip| !used.has_ip(ip))
}

fn allocate_port(used: &Used, ranges: &ServiceRanges) -> Option<u16> {
    let (lo, hi) = ranges.node_ports;
    let span = u64::from(hi.checked_sub(lo)?) + 1;
    for _ in 0..32 {
        let p = lo + (random_u64() % span) as u16;
        if !used.has_port(p) {
            return Some(p);
        }
    }
    (lo..=hi).find(|p| !used.has_port(*p))
}

/// The strings of the array `spec[key]` (non-strings skipped; missing: empty).
fn string_list(spec: &Map<String, Value>, key: &str) -> Vec<String> {
    spec.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(obj: Value) -> ApiResult<Value> {
        let mut obj = obj;
        prepare(
            &mut obj,
            None,
            &mut Used::default(),
            &ServiceRanges::default(),
        )?;
        Ok(obj)
    }

    #[test]
    fn load_balancer_defaults() {
        let s = create(json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})).unwrap();
        let spec = &s["spec"];
        assert_eq!(spec["sessionAffinity"], "None");
        assert_eq!(spec["externalTrafficPolicy"], "Cluster");
        assert_eq!(spec["internalTrafficPolicy"], "Cluster");
        assert_eq!(spec["allocateLoadBalancerNodePorts"], true);
        assert_eq!(spec["ipFamilies"], json!(["IPv4"]));
        assert_eq!(spec["ipFamilyPolicy"], "SingleStack");
        assert_eq!(spec["ports"][0]["protocol"], "TCP");
        assert_eq!(spec["ports"][0]["targetPort"], 80);
        let np = spec["ports"][0]["nodePort"].as_u64().unwrap();
        assert!((30000..=32767).contains(&np));
        let ip: Ipv4Addr = spec["clusterIP"].as_str().unwrap().parse().unwrap();
        assert!(ServiceRanges::default().v4.contains(&ip));
        assert_eq!(spec["clusterIPs"], json!([spec["clusterIP"]]));
        assert_eq!(s["status"], json!({"loadBalancer": {}}));
    }

    #[test]
    fn cluster_ip_default_and_dual_stack() {
        let s = create(json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 53, "protocol": "UDP"}]}})).unwrap();
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert!(s["spec"]["ports"][0].get("nodePort").is_none());
        assert!(s["spec"].get("externalTrafficPolicy").is_none());
        let s = create(json!({"metadata": {"name": "b"}, "spec": {"ipFamilyPolicy": "PreferDualStack", "ports": [{"port": 53}]}})).unwrap();
        assert_eq!(s["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let v6: Ipv6Addr = s["spec"]["clusterIPs"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(ServiceRanges::default().v6.contains(&v6));
        let err = create(json!({"metadata": {"name": "c"}, "spec": {"ipFamilies": ["IPv4", "IPv6"], "ports": [{"port": 53}]}})).unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn validation_errors() {
        let err = create(json!({"metadata": {"name": "a"}, "spec": {}})).unwrap_err();
        assert_eq!(
            err.message,
            "Service \"a\" is invalid: spec.ports: Required value"
        );
        let err = create(
            json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80}, {"port": 81}]}}),
        )
        .unwrap_err();
        assert_eq!(err.reason, "Invalid");
        let err = create(
            json!({"metadata": {"name": "a"}, "spec": {"type": "Foo", "ports": [{"port": 80}]}}),
        )
        .unwrap_err();
        assert!(err.message.contains("Unsupported value"));
        let err = create(json!({"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80, "nodePort": 30001}]}})).unwrap_err();
        assert!(err.message.contains("nodePort"));
    }

    #[test]
    fn update_keeps_allocations_and_type_change_drops_node_ports() {
        let old = create(json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})).unwrap();
        // An apply without the allocated fields keeps them.
        let mut new = json!({"metadata": {"name": "web"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}]}});
        prepare(
            &mut new,
            Some(&old),
            &mut Used::default(),
            &ServiceRanges::default(),
        )
        .unwrap();
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        assert_eq!(
            new["spec"]["ports"][0]["nodePort"],
            old["spec"]["ports"][0]["nodePort"]
        );
        assert_eq!(new["spec"]["ports"][0]["targetPort"], 8080);
        // LoadBalancer → ClusterIP (a merge patch of the type) drops the node ports.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        prepare(
            &mut new,
            Some(&old),
            &mut Used::default(),
            &ServiceRanges::default(),
        )
        .unwrap();
        assert!(new["spec"]["ports"][0].get("nodePort").is_none());
        assert!(new["spec"].get("externalTrafficPolicy").is_none());
        assert!(new["spec"].get("allocateLoadBalancerNodePorts").is_none());
        assert_eq!(new["spec"]["clusterIP"], old["spec"]["clusterIP"]);
        // ... and the load-balancer status.
        let mut with_status = old.clone();
        with_status["status"] = json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}});
        let mut new = with_status.clone();
        new["spec"]["type"] = json!("NodePort");
        prepare(
            &mut new,
            Some(&with_status),
            &mut Used::default(),
            &ServiceRanges::default(),
        )
        .unwrap();
        assert_eq!(new["status"], json!({"loadBalancer": {}}));
        assert_eq!(
            new["spec"]["ports"][0]["nodePort"],
            old["spec"]["ports"][0]["nodePort"]
        );
        assert_eq!(new["spec"]["externalTrafficPolicy"], "Cluster");
        // A LoadBalancer keeps its status on spec updates.
        let mut new = with_status.clone();
        new["spec"]["ports"][0]["targetPort"] = json!(81);
        prepare(
            &mut new,
            Some(&with_status),
            &mut Used::default(),
            &ServiceRanges::default(),
        )
        .unwrap();
        assert_eq!(
            new["status"]["loadBalancer"]["ingress"][0]["ip"],
            "192.0.2.1"
        );
        // To ExternalName: the cluster IPs go.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        new["spec"]["externalName"] = json!("example.com");
        prepare(
            &mut new,
            Some(&old),
            &mut Used::default(),
            &ServiceRanges::default(),
        )
        .unwrap();
        assert!(new["spec"].get("clusterIP").is_none() && new["spec"].get("clusterIPs").is_none());
        // The cluster IP may not change.
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("10.96.255.254");
        new["spec"]["clusterIPs"] = json!(["10.96.255.254"]);
        assert_eq!(
            prepare(
                &mut new,
                Some(&old),
                &mut Used::default(),
                &ServiceRanges::default()
            )
            .unwrap_err()
            .code,
            422
        );
    }

    #[test]
    fn taken_addresses_and_ports_are_refused_and_avoided() {
        let a = create(json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"port": 80, "nodePort": 30080}]}})).unwrap();
        let mut used = Used::from_services([&a].into_iter());
        let mut b = json!({"metadata": {"name": "b"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"port": 80}]}});
        assert!(prepare(&mut b, None, &mut used, &ServiceRanges::default())
            .unwrap_err()
            .message
            .contains("already allocated"));
        let mut c = json!({"metadata": {"name": "c"}, "spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 30080}]}});
        assert!(prepare(&mut c, None, &mut used, &ServiceRanges::default())
            .unwrap_err()
            .message
            .contains("already allocated"));
        let ranges = ServiceRanges {
            node_ports: (30080, 30081),
            ..ServiceRanges::default()
        };
        let mut d = json!({"metadata": {"name": "d"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        prepare(&mut d, None, &mut used, &ranges).unwrap();
        assert_eq!(d["spec"]["ports"][0]["nodePort"], 30081);
        let mut e = json!({"metadata": {"name": "e"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}});
        assert_eq!(
            prepare(&mut e, None, &mut used, &ranges).unwrap_err().code,
            500
        );
    }
}
