//! The benchmark's cluster: a LAN of network namespaces (made by the end-to-end tests' lab),
//! the in-process API simulator listening inside one of them, Nodes, Services and
//! EndpointSlices in the simulator, and `ferrolb run` daemons in the node namespaces.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig};
use serde_json::{json, Value};

use crate::frames::MacAddr;
use crate::netlab::{self, Daemon, Host, Lab, NodeConfig, PoolConfig};
use crate::netns::Inside;

/// Namespace prefix: everything this benchmark makes is `flb-l2b-…`.
pub const PREFIX: &str = "flb-l2b";
/// The LAN's /24 (its own, though namespaces keep it apart from other labs anyway).
const NET: &str = "10.250.77";
const NET6: &str = "fd00:250:77";
/// The l2 pool.
const POOL4: &str = "10.250.77.100-10.250.77.199";
const POOL6: &str = "fd00:250:77::100-fd00:250:77::1ff";
/// The node names (Kubernetes Node = lab host = `[node] name`).
pub const NODES: [&str; 3] = ["n1", "n2", "n3"];

/// The running cluster. Dropping it stops the simulator, returns the main thread to the
/// namespace it started in, then kills every daemon and deletes every namespace (the lab).
pub struct Cluster {
    /// The daemons by node name.
    pub daemons: BTreeMap<String, Daemon>,
    /// The simulator.
    pub api: ApiServer,
    rt: tokio::runtime::Runtime,
    _inside: Inside,
    kubeconfig: PathBuf,
    /// The client namespace's host.
    pub client: Host,
    /// The node hosts by name.
    pub nodes: BTreeMap<String, Host>,
    /// eth0 MAC of every host by name (`client`, `n1`, …).
    pub macs: BTreeMap<String, MacAddr>,
    /// The namespaces.
    pub lab: Lab,
}

/// The `eth0` MAC of a namespace, from `ip -j link`.
fn mac_of(ns: &str) -> MacAddr {
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-j", "link", "show", "dev", "eth0"])
        .output()
        .expect("ip link runs");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    let text = v[0]["address"].as_str().expect("an eth0 address");
    text.parse()
        .unwrap_or_else(|e| panic!("MAC {text:?}: {e:?}"))
}

impl Cluster {
    /// Builds the LAN (api, n1–n3, client), starts the simulator in `api` and creates Node
    /// `n1` (Ready); no daemon yet.
    pub fn new() -> Cluster {
        netlab::require_root();
        let lab = Lab::new(PREFIX);
        let api_host = lab.host(
            "api",
            &format!("{NET}.2/24"),
            Some(&format!("{NET6}::2/64")),
        );
        let mut nodes = BTreeMap::new();
        for (i, n) in NODES.iter().enumerate() {
            let h = lab.host(
                n,
                &format!("{NET}.{}/24", 11 + i),
                Some(&format!("{NET6}::{}/64", 11 + i)),
            );
            nodes.insert(n.to_string(), h);
        }
        let client = lab.host(
            "client",
            &format!("{NET}.50/24"),
            Some(&format!("{NET6}::50/64")),
        );
        let mut macs = BTreeMap::new();
        for h in nodes.values().chain([&client]) {
            macs.insert(h.name.clone(), mac_of(&h.ns));
        }
        // From here on the main thread, and every thread it starts (the simulator's runtime),
        // lives in the API namespace: the daemons reach the simulator over the LAN as nodes
        // reach a real API server.
        let inside = Inside::enter(&api_host.ns).expect("entering the API namespace");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let api = rt
            .block_on(ApiServer::start(ApiServerConfig {
                https: vec![std::net::SocketAddr::new(api_host.ipv4.into(), 6443)],
                token: Some(format!("bench-{:016x}", fastrand::u64(..))),
                bookmark_interval: Duration::from_secs(1),
                ..ApiServerConfig::default()
            }))
            .expect("the simulator starts");
        let kubeconfig = lab.path("kubeconfig");
        api.write_kubeconfig(&kubeconfig, true)
            .expect("kubeconfig written");
        let c = Cluster {
            daemons: BTreeMap::new(),
            api,
            rt,
            _inside: inside,
            kubeconfig,
            client,
            nodes,
            macs,
            lab,
        };
        c.create_node("n1");
        c
    }

    /// Runs an in-process request against the simulator; panics unless it answers `want`.
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
        let (code, v) = self.rt.block_on(self.api.request(method, path, body));
        assert_eq!(code, want, "{method} {path}: {v}");
        v
    }

    /// Creates an object in-process.
    pub fn create(&self, obj: &Value) -> Value {
        self.rt
            .block_on(self.api.create(obj))
            .unwrap_or_else(|e| panic!("create {obj}: {e}"))
    }

    /// Creates Node `name`, Ready, with its LAN address as InternalIP.
    pub fn create_node(&self, name: &str) {
        let host = &self.nodes[name];
        self.create(&json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [
                    {"type": "InternalIP", "address": host.ipv4.to_string()},
                    {"type": "Hostname", "address": name},
                ],
            },
        }));
    }

    /// Writes Node `name`'s Ready condition (a merge patch of its status, in-process); returns
    /// when the write was made (the simulator has notified its watchers by then).
    pub fn set_ready(&self, name: &str, ready: bool) {
        let status = if ready { "True" } else { "False" };
        self.request(
            "PATCH",
            &format!("/api/v1/nodes/{name}/status"),
            Some(&json!({"status": {"conditions": [
                {"type": "Ready", "status": status, "reason": "Bench"}
            ]}})),
            200,
        );
    }

    /// Creates LoadBalancer Service `name` (dual-stack when `dual`, `externalTrafficPolicy:
    /// Local` when `local`) and its EndpointSlice with one ready endpoint on `endpoint_node`.
    pub fn create_service(&self, name: &str, dual: bool, local: bool, endpoint_node: &str) {
        let mut spec = json!({
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "p80", "protocol": "TCP", "port": 80}],
        });
        if dual {
            spec["ipFamilyPolicy"] = json!("RequireDualStack");
            spec["ipFamilies"] = json!(["IPv4", "IPv6"]);
        }
        if local {
            spec["externalTrafficPolicy"] = json!("Local");
        }
        self.create(&json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            "spec": spec,
        }));
        self.create(&json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{name}-x1"),
                "namespace": "default",
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": "IPv4",
            "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}],
            "endpoints": [endpoint(endpoint_node)],
        }));
    }

    /// Moves Service `name`'s only endpoint to `node` (one write of its EndpointSlice).
    pub fn move_endpoint(&self, name: &str, node: &str) {
        self.request(
            "PATCH",
            &format!("/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/{name}-x1"),
            Some(&json!({"endpoints": [endpoint(node)]})),
            200,
        );
    }

    /// Waits (60 s at most) until Service `name` has addresses in its status; returns them.
    pub fn wait_addresses(&self, name: &str) -> Vec<IpAddr> {
        let path = format!("/api/v1/namespaces/default/services/{name}");
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            let ips: Vec<IpAddr> = self
                .api
                .object(&path)
                .and_then(|s| s["status"]["loadBalancer"]["ingress"].as_array().cloned())
                .unwrap_or_default()
                .iter()
                .filter_map(|i| i["ip"].as_str()?.parse().ok())
                .collect();
            if !ips.is_empty() {
                return ips;
            }
            assert!(
                Instant::now() < end,
                "Service {name} got no address in 60 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `ferrolb run` on node `name` (an l2 pool over the LAN) and waits for its initial
    /// sync.
    pub fn start_daemon(&mut self, name: &str) {
        self.start_daemons(&[name]);
    }

    /// Starts `ferrolb run` on several nodes at once, then waits for each one's initial sync.
    pub fn start_daemons(&mut self, names: &[&str]) {
        let mut started = Vec::new();
        for name in names {
            let cfg = NodeConfig::new(name, &self.kubeconfig)
                .pool(PoolConfig::new("bench", &[POOL4, POOL6]));
            let config = self.lab.ferrolb_config(&cfg);
            let log = self.lab.path(&format!("ferrolb-{name}.log"));
            let config = config.to_string_lossy().into_owned();
            let proc = self.lab.spawn(
                &self.nodes[*name].ns,
                netlab::FERROLB,
                &["run", "--config", &config],
                &log,
            );
            started.push(Daemon {
                proc,
                node: name.to_string(),
                log,
            });
        }
        for d in started {
            self.lab
                .wait_for_log(&d, "initial sync complete", Duration::from_secs(30));
            self.daemons.insert(d.node.clone(), d);
        }
    }

    /// Frames dropped so far by the packet sockets of process `pid` in node `node`'s namespace
    /// because their receive queue was full (the `d` of `ss -0 -m -p`'s `skmem`).
    pub fn socket_drops(&self, node: &str, pid: u32) -> Option<u64> {
        let out = self
            .lab
            .exec(&self.nodes[node].ns, "ss", &["-0", "-m", "-p", "-n"]);
        if !out.ok {
            return None;
        }
        let owner = format!("pid={pid},");
        let mut total = None;
        // One entry per socket: a line starting with its Netid, `skmem:(…)` on a later line.
        let mut mine = false;
        for line in out.stdout.lines() {
            if line.starts_with("p_") {
                mine = line.contains(&owner);
            }
            if !mine {
                continue;
            }
            if let Some(mem) = line.split("skmem:(").nth(1) {
                let drops = mem
                    .split(')')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .find_map(|f| f.strip_prefix('d')?.parse::<u64>().ok())
                    .unwrap_or(0);
                *total.get_or_insert(0) += drops;
            }
        }
        total
    }

    /// The node whose eth0 has `mac`.
    pub fn node_of(&self, mac: MacAddr) -> Option<&str> {
        self.macs
            .iter()
            .find(|(n, m)| **m == mac && n.as_str() != "client")
            .map(|(n, _)| n.as_str())
    }

    /// The client's IPv6 address.
    pub fn client_v6(&self) -> Ipv6Addr {
        self.client.ipv6.expect("the client has IPv6")
    }

    /// The client's IPv4 address.
    pub fn client_v4(&self) -> Ipv4Addr {
        self.client.ipv4
    }
}

fn endpoint(node: &str) -> Value {
    let i = NODES.iter().position(|n| *n == node).unwrap_or(9) + 1;
    json!({
        "addresses": [format!("10.244.{i}.10")],
        "conditions": {"ready": true, "serving": true, "terminating": false},
        "nodeName": node,
    })
}
