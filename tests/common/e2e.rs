//! ferrolb-specific helpers for the end-to-end tests: Service manifests applied with kubectl,
//! Service state read back with kubectl (never with our own client), Events, the allocator
//! Lease, a `kubectl get svc -w` recorder that spots status flaps, and the RBAC check of every
//! request the daemon sent against `packaging/kubernetes/rbac.yaml`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::BufReader;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::netlab::{wait_for, Api, Lab, Proc, Request};

/// The annotation the allocator writes.
pub const POOL_ANNOTATION: &str = "ferrolb.io/ip-allocated-from-pool";
/// The allocator Lease.
pub const LEASE: &str = "ferrolb-allocator";

// === Service manifests ===

/// A Service manifest under construction (`type: LoadBalancer`, port TCP/80 unless told).
#[derive(Debug, Clone)]
pub struct SvcSpec(Value);

/// A LoadBalancer Service `name` in `default`, port TCP/80, selector `app: name`.
pub fn lb(name: &str) -> SvcSpec {
    SvcSpec(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "p80", "protocol": "TCP", "port": 80}],
        },
    }))
}

impl SvcSpec {
    /// Adds an annotation.
    pub fn annotate(mut self, key: &str, value: &str) -> SvcSpec {
        self.0["metadata"]["annotations"][key] = json!(value);
        self
    }

    /// Sets `spec.loadBalancerIP`.
    pub fn lb_ip(mut self, ip: &str) -> SvcSpec {
        self.0["spec"]["loadBalancerIP"] = json!(ip);
        self
    }

    /// Replaces the ports: `(protocol, port)`.
    pub fn ports(mut self, ports: &[(&str, u16)]) -> SvcSpec {
        let list: Vec<Value> = ports
            .iter()
            .map(|(proto, port)| {
                json!({"name": format!("{}-{port}", proto.to_lowercase()), "protocol": proto, "port": port})
            })
            .collect();
        self.0["spec"]["ports"] = json!(list);
        self
    }

    /// Sets `spec.loadBalancerClass`.
    pub fn class(mut self, class: &str) -> SvcSpec {
        self.0["spec"]["loadBalancerClass"] = json!(class);
        self
    }

    /// Sets `spec.ipFamilyPolicy` and `spec.ipFamilies`.
    pub fn families(mut self, policy: &str, families: &[&str]) -> SvcSpec {
        self.0["spec"]["ipFamilyPolicy"] = json!(policy);
        self.0["spec"]["ipFamilies"] = json!(families);
        self
    }

    /// The manifest.
    pub fn value(&self) -> &Value {
        &self.0
    }
}

/// `kubectl apply -f -` of all of them at once (one `v1 List`).
pub fn apply(api: &Api, specs: &[SvcSpec]) {
    let list = json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": specs.iter().map(|s| s.0.clone()).collect::<Vec<_>>(),
    });
    api.kubectl_stdin(&["apply", "-f", "-"], &list.to_string())
        .expect_ok("kubectl apply");
}

// === Service state, through kubectl ===

/// A Service as kubectl shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svc {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub rv: String,
    /// `spec.type`.
    pub service_type: String,
    /// `status.loadBalancer.ingress[].ip`, in order.
    pub ingress: Vec<IpAddr>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

impl Svc {
    /// Reads one Service object.
    pub fn from_json(v: &Value) -> Svc {
        let ingress = v["status"]["loadBalancer"]["ingress"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|i| {
                        i["ip"]
                            .as_str()
                            .unwrap_or_else(|| panic!("ingress without ip: {i}"))
                            .parse()
                            .expect("an IP address")
                    })
                    .collect()
            })
            .unwrap_or_default();
        let annotations = v["metadata"]["annotations"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect()
            })
            .unwrap_or_default();
        let s = |p: &str| {
            v.pointer(p)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        Svc {
            name: s("/metadata/name"),
            uid: s("/metadata/uid"),
            rv: s("/metadata/resourceVersion"),
            service_type: s("/spec/type"),
            ingress,
            annotations,
        }
    }

    /// Whether the allocator is done with it: addresses in the status and the pool annotation.
    pub fn allocated(&self) -> bool {
        !self.ingress.is_empty() && self.pool().is_some()
    }

    /// The pool annotation, if set.
    pub fn pool(&self) -> Option<&str> {
        self.annotations.get(POOL_ANNOTATION).map(String::as_str)
    }
}

/// Every Service in `default`, by name (`kubectl get svc -o json`).
pub fn services(api: &Api) -> BTreeMap<String, Svc> {
    let list = api.kubectl_json(&["get", "svc", "-n", "default"]);
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(Svc::from_json)
        .map(|s| (s.name.clone(), s))
        .collect()
}

/// Waits until each of `names` has ingress addresses and the pool annotation (the allocator
/// writes the status first, then the annotation); returns every Service then.
pub fn wait_allocated(api: &Api, names: &[&str], timeout: Duration) -> BTreeMap<String, Svc> {
    wait_for(
        &format!("{} services to get addresses", names.len()),
        timeout,
        || {
            let all = services(api);
            let missing: Vec<&str> = names
                .iter()
                .copied()
                .filter(|n| all.get(*n).is_none_or(|s| !s.allocated()))
                .collect();
            if missing.is_empty() {
                Ok(all)
            } else {
                Err(format!("still pending: {missing:?}"))
            }
        },
    )
}

/// Waits until `name`'s Service satisfies `check`; returns it.
pub fn wait_service(
    api: &Api,
    name: &str,
    what: &str,
    timeout: Duration,
    check: impl Fn(&Svc) -> bool,
) -> Svc {
    wait_for(&format!("{name}: {what}"), timeout, || {
        let v = api.kubectl_json(&["get", "svc", "-n", "default", name]);
        let svc = Svc::from_json(&v);
        if check(&svc) {
            Ok(svc)
        } else {
            Err(format!("{svc:?}"))
        }
    })
}

/// The EXTERNAL-IP column of `kubectl get svc` (the server-side table), by name.
pub fn external_ip_column(api: &Api) -> BTreeMap<String, String> {
    let table = api.kubectl_ok(&["get", "svc", "-n", "default"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().expect("a header").split_whitespace().collect();
    let col = header
        .iter()
        .position(|h| *h == "EXTERNAL-IP")
        .unwrap_or_else(|| panic!("no EXTERNAL-IP column in:\n{table}"));
    lines
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells[0].to_string(), cells[col].to_string())
        })
        .collect()
}

/// `kubectl describe svc` of every Service in `default`, split per Service, by name.
pub fn describe_all(api: &Api) -> BTreeMap<String, String> {
    let text = api.kubectl_ok(&["describe", "svc", "-n", "default"]);
    let mut out = BTreeMap::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("Name:") {
            if let Some((n, body)) = current.take() {
                out.insert(n, body);
            }
            current = Some((name.trim().to_string(), String::new()));
        }
        if let Some((_, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some((n, body)) = current {
        out.insert(n, body);
    }
    out
}

/// `kubectl describe svc NAME`.
pub fn describe(api: &Api, name: &str) -> String {
    api.kubectl_ok(&["describe", "svc", "-n", "default", name])
}

/// An Event as kubectl shows it.
#[derive(Debug, Clone)]
pub struct EventView {
    /// `involvedObject.name`.
    pub object: String,
    /// `type`.
    pub kind: String,
    /// `reason`.
    pub reason: String,
    /// `message`.
    pub message: String,
    /// `count`.
    pub count: i64,
    /// `source.host` (the node whose daemon sent it).
    pub host: String,
}

/// Every Event in `default`.
pub fn events(api: &Api) -> Vec<EventView> {
    let list = api.kubectl_json(&["get", "events", "-n", "default"]);
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| {
            let s = |p: &str| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            EventView {
                object: s("/involvedObject/name"),
                kind: s("/type"),
                reason: s("/reason"),
                message: s("/message"),
                count: e["count"].as_i64().unwrap_or(1),
                host: s("/source/host"),
            }
        })
        .collect()
}

/// The allocator Lease, as kubectl shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// `spec.holderIdentity` (empty when released).
    pub holder: String,
    /// `spec.leaseTransitions`.
    pub transitions: i64,
    /// `spec.leaseDurationSeconds`.
    pub duration: i64,
    /// `spec.renewTime`.
    pub renew_time: String,
}

/// `kube-system/ferrolb-allocator`, or `None` before it exists.
pub fn lease(api: &Api) -> Option<LeaseView> {
    let out = api.kubectl(&["get", "lease", "-n", "kube-system", LEASE, "-o", "json"]);
    if !out.ok {
        assert!(
            out.stderr.contains("NotFound") || out.stderr.contains("not found"),
            "kubectl get lease: {}",
            out.stderr
        );
        return None;
    }
    let v: Value = serde_json::from_str(&out.stdout).expect("lease JSON");
    Some(LeaseView {
        holder: v["spec"]["holderIdentity"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        transitions: v["spec"]["leaseTransitions"].as_i64().unwrap_or(0),
        duration: v["spec"]["leaseDurationSeconds"].as_i64().unwrap_or(0),
        renew_time: v["spec"]["renewTime"].as_str().unwrap_or("").to_string(),
    })
}

/// Waits until the Lease has a holder satisfying `ok`; returns the holder.
pub fn wait_lease_holder(api: &Api, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
    wait_for("the allocator Lease to be held", timeout, || {
        match lease(api) {
            Some(l) if !l.holder.is_empty() && ok(&l.holder) => Ok(l.holder),
            other => Err(format!("{other:?}")),
        }
    })
}

// === checks ===

/// Panics unless every Service of `before` still has the same addresses and the same
/// resourceVersion in `after` (nobody wrote to it at all).
pub fn assert_untouched(before: &BTreeMap<String, Svc>, after: &BTreeMap<String, Svc>, when: &str) {
    for (name, b) in before {
        let a = after
            .get(name)
            .unwrap_or_else(|| panic!("{when}: service {name} disappeared"));
        assert_eq!(
            a.ingress, b.ingress,
            "{when}: the addresses of {name} changed"
        );
        assert_eq!(
            a.rv, b.rv,
            "{when}: {name} was written to (resourceVersion {} -> {}): {a:?}",
            b.rv, a.rv
        );
    }
}

/// The writes (anything but GET) ferrolb sent about the Services named in `names`.
pub fn ferrolb_writes_to<'a>(
    requests: &'a [Request],
    names: &BTreeSet<String>,
) -> Vec<&'a Request> {
    requests
        .iter()
        .filter(|r| r.is_ferrolb() && r.method != "GET")
        .filter(|r| r.resource == "services" && names.contains(&r.name))
        .collect()
}

/// Panics if any two of `services` share an address, or one lies outside `pool`.
pub fn assert_distinct_in(
    services: &BTreeMap<String, Svc>,
    names: &[&str],
    pool: (IpAddr, IpAddr),
) {
    let mut seen: BTreeMap<IpAddr, &str> = BTreeMap::new();
    for name in names {
        let svc = &services[*name];
        assert_eq!(svc.ingress.len(), 1, "{name}: {svc:?}");
        let ip = svc.ingress[0];
        assert!(
            ip >= pool.0 && ip <= pool.1,
            "{name} got {ip}, outside {}-{}",
            pool.0,
            pool.1
        );
        if let Some(other) = seen.insert(ip, name) {
            panic!("{name} and {other} both got {ip}");
        }
    }
}

// === kubectl get svc -w ===

/// One state kubectl printed: (event type, Service name, addresses).
type Printed = (String, String, Vec<IpAddr>);

/// `kubectl get svc -w -o json --output-watch-events` running in the background, recording
/// every Service state it prints, so a test can tell whether any status went away or changed
/// (a flap) at any moment — not only at the moments the test looked.
pub struct SvcWatch {
    /// The kubectl process.
    pub proc: Proc,
    events: Arc<Mutex<Vec<Printed>>>,
}

impl SvcWatch {
    /// Starts the watch and waits until kubectl has opened it (the simulator logged kubectl's
    /// watch request).
    pub fn start(lab: &Lab, api: &Api) -> SvcWatch {
        let before = kubectl_watches(api);
        let log = lab.path("kubectl-watch.log");
        let (proc, stdout) = api.kubectl_background(
            lab,
            &[
                "get",
                "svc",
                "-n",
                "default",
                "-w",
                "-o",
                "json",
                "--output-watch-events",
            ],
            &log,
        );
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            let stream =
                serde_json::Deserializer::from_reader(BufReader::new(stdout)).into_iter::<Value>();
            for ev in stream {
                let Ok(ev) = ev else { break };
                let kind = ev["type"].as_str().unwrap_or("").to_string();
                let svc = Svc::from_json(&ev["object"]);
                sink.lock().unwrap().push((kind, svc.name, svc.ingress));
            }
        });
        wait_for("kubectl get -w to watch", Duration::from_secs(20), || {
            if !lab.running(proc) {
                panic!("kubectl get -w exited:\n{}", super::netlab::tail(&log, 20));
            }
            if kubectl_watches(api) > before {
                Ok(())
            } else {
                Err("no watch yet".into())
            }
        });
        SvcWatch { proc, events }
    }

    /// Every state printed for `name`: (event type, addresses).
    pub fn history(&self, name: &str) -> Vec<(String, Vec<IpAddr>)> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, n, _)| n == name)
            .map(|(k, _, ips)| (k.clone(), ips.clone()))
            .collect()
    }

    /// Panics unless every one of `names`, once it showed addresses, kept exactly those in
    /// every later state kubectl printed (and was not deleted), and kubectl is still watching
    /// (so it saw the whole test).
    pub fn assert_no_flaps(&self, lab: &Lab, names: &[String]) {
        assert!(
            lab.running(self.proc),
            "kubectl get -w stopped watching before the end of the test"
        );
        for name in names {
            let history = self.history(name);
            let mut first: Option<&Vec<IpAddr>> = None;
            for (kind, ips) in &history {
                assert_ne!(kind, "DELETED", "{name} was deleted: {history:?}");
                match first {
                    None if !ips.is_empty() => first = Some(ips),
                    None => {}
                    Some(f) => assert_eq!(
                        f, ips,
                        "the status of {name} flapped (kubectl get -w saw {history:?})"
                    ),
                }
            }
            assert!(
                first.is_some(),
                "{name} never showed an address: {history:?}"
            );
        }
    }
}

fn kubectl_watches(api: &Api) -> usize {
    api.requests()
        .iter()
        .filter(|r| r.user_agent.starts_with("kubectl/") && r.verb == "watch")
        .count()
}

// === RBAC ===

/// A rule of a (Cluster)Role.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// `apiGroups`.
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// `resources` (`services`, `services/status`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// `verbs`.
    #[serde(default)]
    pub verbs: Vec<String>,
    /// `resourceNames`.
    #[serde(default)]
    pub resource_names: Vec<String>,
    /// `nonResourceURLs`.
    #[serde(default, rename = "nonResourceURLs")]
    pub non_resource_urls: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc {
    kind: String,
    #[serde(default)]
    metadata: DocMeta,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    role_ref: Option<RoleRef>,
    #[serde(default)]
    subjects: Vec<Subject>,
}

#[derive(Debug, Default, Deserialize)]
struct DocMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RoleRef {
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
struct Subject {
    kind: String,
    name: String,
    #[serde(default)]
    namespace: Option<String>,
}

/// What `packaging/kubernetes/rbac.yaml` grants the `ferrolb` ServiceAccount: the rules of
/// every ClusterRole bound to it by a ClusterRoleBinding (any namespace), and of every Role
/// bound to it by a RoleBinding (that namespace only).
#[derive(Debug)]
pub struct Rbac {
    cluster: Vec<Rule>,
    namespaced: Vec<(String, Rule)>,
}

/// How Kubernetes' authorizer sees one request (`RequestInfo`), worked out here from the
/// method, path and query alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestInfo {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; empty
    /// for a non-resource request.
    pub verb: String,
    /// API group (`""` for core).
    pub api_group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource.
    pub subresource: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
}

impl RequestInfo {
    /// Classifies a request as the API server's `RequestInfoFactory` does.
    pub fn of(method: &str, path: &str, query: &str) -> RequestInfo {
        let mut info = RequestInfo {
            verb: String::new(),
            api_group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
        };
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let rest: &[&str] = match segs.as_slice() {
            ["api", _version, rest @ ..] if !rest.is_empty() => rest,
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => {
                info.api_group = (*group).to_string();
                rest
            }
            _ => return info, // discovery, /version, /healthz…: non-resource
        };
        let watch_query = query
            .split('&')
            .any(|kv| kv == "watch=true" || kv == "watch=1");
        let (mut rest, legacy_watch) = match rest {
            ["watch", tail @ ..] => (tail.to_vec(), true),
            other => (other.to_vec(), false),
        };
        if rest.first() == Some(&"namespaces") && rest.len() >= 3 {
            info.namespace = rest[1].to_string();
            rest.drain(..2);
        }
        info.resource = rest.first().map(|s| s.to_string()).unwrap_or_default();
        info.name = rest.get(1).map(|s| s.to_string()).unwrap_or_default();
        info.subresource = rest.get(2).map(|s| s.to_string()).unwrap_or_default();
        if info.resource == "namespaces" && info.namespace.is_empty() {
            info.namespace = info.name.clone();
        }
        let named = !info.name.is_empty();
        info.verb = match method {
            "GET" | "HEAD" if legacy_watch || watch_query => "watch",
            "GET" | "HEAD" if named => "get",
            "GET" | "HEAD" => "list",
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" if named => "delete",
            "DELETE" => "deletecollection",
            other => panic!("unexpected method {other} {path}"),
        }
        .to_string();
        info
    }

    fn resource_path(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

fn has(list: &[String], want: &str) -> bool {
    list.iter().any(|x| x == want || x == "*")
}

impl Rule {
    fn allows(&self, r: &RequestInfo) -> bool {
        if r.resource.is_empty() {
            return false;
        }
        has(&self.verbs, &r.verb)
            && has(&self.api_groups, &r.api_group)
            && (has(&self.resources, &r.resource_path())
                || (r.subresource.is_empty() && has(&self.resources, &r.resource)))
            && (self.resource_names.is_empty()
                || (!r.name.is_empty() && self.resource_names.contains(&r.name)))
    }
}

impl Rbac {
    /// Loads the shipped manifest.
    pub fn load() -> Rbac {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/packaging/kubernetes/rbac.yaml"
        );
        let text = std::fs::read_to_string(path).expect("rbac.yaml");
        let docs: Vec<Doc> =
            serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        let sa_name = "ferrolb";
        let sa_ns = "kube-system";
        assert!(
            docs.iter().any(|d| d.kind == "ServiceAccount"
                && d.metadata.name == sa_name
                && d.metadata.namespace.as_deref() == Some(sa_ns)),
            "rbac.yaml defines no ServiceAccount {sa_ns}/{sa_name}"
        );
        let binds_sa = |d: &Doc| {
            d.subjects.iter().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == sa_name
                    && s.namespace.as_deref() == Some(sa_ns)
            })
        };
        let mut cluster = Vec::new();
        let mut namespaced = Vec::new();
        for binding in docs.iter().filter(|d| binds_sa(d)) {
            let Some(role_ref) = &binding.role_ref else {
                continue;
            };
            let role = docs
                .iter()
                .find(|d| d.kind == role_ref.kind && d.metadata.name == role_ref.name)
                .unwrap_or_else(|| {
                    panic!(
                        "{} binds a missing {} {}",
                        binding.metadata.name, role_ref.kind, role_ref.name
                    )
                });
            match (binding.kind.as_str(), role.kind.as_str()) {
                ("ClusterRoleBinding", "ClusterRole") => cluster.extend(role.rules.clone()),
                ("RoleBinding", "Role" | "ClusterRole") => {
                    let ns = binding.metadata.namespace.clone().unwrap_or_default();
                    if role.kind == "Role" {
                        assert_eq!(
                            role.metadata.namespace.as_deref(),
                            Some(ns.as_str()),
                            "RoleBinding {} and Role {} are in different namespaces",
                            binding.metadata.name,
                            role.metadata.name
                        );
                    }
                    namespaced.extend(role.rules.iter().map(|r| (ns.clone(), r.clone())));
                }
                other => panic!("unexpected binding {other:?}"),
            }
        }
        assert!(
            !cluster.is_empty(),
            "no ClusterRole bound to the ServiceAccount"
        );
        Rbac {
            cluster,
            namespaced,
        }
    }

    /// Whether the ServiceAccount may make request `r`.
    pub fn allows(&self, r: &RequestInfo, path: &str) -> bool {
        if r.resource.is_empty() {
            return self
                .cluster
                .iter()
                .any(|rule| rule.non_resource_urls.iter().any(|u| u == path || u == "*"));
        }
        self.cluster.iter().any(|rule| rule.allows(r))
            || self
                .namespaced
                .iter()
                .any(|(ns, rule)| *ns == r.namespace && rule.allows(r))
    }

    /// Checks every ferrolb request of `requests`; returns the refused ones, described, and
    /// the (verb, resource) pairs seen.
    pub fn check(&self, requests: &[Request]) -> (Vec<String>, BTreeSet<(String, String)>) {
        let mut refused = Vec::new();
        let mut seen = BTreeSet::new();
        for r in requests.iter().filter(|r| r.is_ferrolb()) {
            let info = RequestInfo::of(&r.method, &r.path, &r.query);
            // Our classification and the simulator's must agree, or one of them is wrong.
            let sim = RequestInfo {
                verb: r.verb.clone(),
                api_group: r.api_group.clone(),
                resource: r.resource.clone(),
                subresource: r.subresource.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            };
            assert_eq!(
                info, sim,
                "classification of {} {}?{}",
                r.method, r.path, r.query
            );
            seen.insert((info.verb.clone(), info.resource_path()));
            if !self.allows(&info, &r.path) {
                refused.push(format!(
                    "{} {}?{} = {} {}{} in namespace {:?}",
                    r.method,
                    r.path,
                    r.query,
                    info.verb,
                    if info.api_group.is_empty() {
                        String::new()
                    } else {
                        format!("{}/", info.api_group)
                    },
                    info.resource_path(),
                    info.namespace
                ));
            }
        }
        (refused, seen)
    }
}

/// Panics if ferrolb sent any request so far that `rbac.yaml` does not permit. Every test calls
/// it at its end, so every run counts towards the RBAC check.
pub fn assert_rbac(api: &Api) {
    let (refused, _) = Rbac::load().check(&api.requests());
    assert!(
        refused.is_empty(),
        "ferrolb sent requests packaging/kubernetes/rbac.yaml does not permit:\n{}",
        refused.join("\n")
    );
}
