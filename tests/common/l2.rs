//! L2-mode helpers for the end-to-end tests: a cluster of three node namespaces running the
//! real `ferrolb run` (with a stand-in for kube-proxy and a pod on each), a client namespace on
//! the same LAN, and the client's view of a Service address — `arping`, `ndisc6`, its
//! neighbour table, TCP — plus ARP captures on the LAN bridge.
//!
//! The kube-proxy stand-in: each node carries every pool address on `lo` (/32, /128), with
//! `arp_ignore=1`/`arp_announce=2` (set by [`Lab::host`]) so its kernel never answers ARP for
//! them, and runs `ferrolb lab responder` on `0.0.0.0:80` and `[::]:80` with the node's name. So
//! whichever node the client's frames reach answers TCP, and says who it is; only ferrolb decides
//! which node that is.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::netlab::*;

/// The node names, as in `[node] name` and the Node objects.
pub const NODES: [&str; 3] = ["node1", "node2", "node3"];
/// How many addresses of each family each pool holds (`.200` to `.209`; the dual-stack pool
/// `.210` to `.219`).
pub const POOL_SIZE: u8 = 10;
/// The dual-stack pool (`auto_assign = false`: a Service names it with
/// `ferrolb.io/address-pool`), for Services that require both families from one pool.
pub const DUAL_POOL: &str = "lan-dual";

/// The lab's addressing: IPv4 `10.250.N.0/24` and IPv6 `fd00:250:N::/64` on the LAN.
#[derive(Debug, Clone, Copy)]
pub struct Net {
    /// The third octet (and second IPv6 group), unique per test.
    pub n: u8,
}

impl Net {
    /// `10.250.N.host`.
    pub fn v4(&self, host: u8) -> String {
        format!("10.250.{}.{host}", self.n)
    }

    /// `fd00:250:N::host` (host written in hex digits as given: `::200`).
    pub fn v6(&self, host: u16) -> String {
        format!("fd00:250:{}::{host}", self.n)
    }

    /// The IPv4 pool range, `10.250.N.200-10.250.N.209`.
    pub fn pool_v4(&self) -> String {
        format!("{}-{}", self.v4(200), self.v4(200 + POOL_SIZE - 1))
    }

    /// The IPv6 pool range, `fd00:250:N::200-fd00:250:N::209`.
    pub fn pool_v6(&self) -> String {
        format!(
            "{}-{}",
            self.v6(200),
            self.v6(200 + u16::from(POOL_SIZE) - 1)
        )
    }

    /// The dual-stack pool's ranges: `.210-.219` and `::210-::219`.
    pub fn pool_dual(&self) -> [String; 2] {
        let last = 210 + POOL_SIZE - 1;
        [
            format!("{}-{}", self.v4(210), self.v4(last)),
            format!("{}-{}", self.v6(210), self.v6(u16::from(last))),
        ]
    }

    /// Every address of every pool, both families.
    pub fn pool_addresses(&self) -> Vec<IpAddr> {
        (0..2 * POOL_SIZE)
            .flat_map(|i| [addr(&self.v4(200 + i)), addr(&self.v6(200 + u16::from(i)))])
            .collect()
    }
}

/// One node: its namespace, its eth0 MAC, its daemon and responder.
#[derive(Debug, Clone)]
pub struct L2Node {
    /// Node name (`node1`).
    pub name: String,
    /// The namespace.
    pub host: Host,
    /// eth0's MAC, lower case.
    pub mac: String,
    /// Its `ferrolb.toml`.
    pub config: PathBuf,
    /// The daemon.
    pub daemon: Daemon,
    /// `ferrolb lab responder`.
    pub responder: Proc,
    /// With a cluster network ([`L2Options::cluster_net`]): its bridge-side port, for
    /// [`L2Lab::cut_gossip`].
    pub cluster_port: Option<String>,
}

/// How [`L2Lab::start_opts`] builds the lab.
#[derive(Debug, Clone, Default)]
pub struct L2Options {
    /// Gossip membership on (`[cluster] enabled = true`, one shared key).
    pub gossip: bool,
    /// Gossip on a separate cluster network: a second bridge (`cl0`), each node's `eth1` on
    /// `10.251.N.0/24` (`.11`–`.13`), gossip bound there; so gossip can be cut while the
    /// service LAN stays up. Only with `gossip`.
    pub cluster_net: bool,
    /// Each node's `[l2]` keys, as TOML (`require_quorum = true`).
    pub l2: String,
    /// More `[cluster]` keys for each node, as TOML (`sync_timeout = "60s"`). Only with
    /// `gossip`.
    pub cluster: String,
    /// The metrics endpoint on each node's LAN address, port 7472.
    pub metrics: bool,
    /// Pools instead of the L2 lab's three, with the addresses kube-proxy would accept on
    /// each node's `lo` (BGP tests).
    pub pools: Option<(Vec<PoolConfig>, Vec<IpAddr>)>,
    /// `[[bgp.peer]]` tables for every node, each as its keys (TOML lines).
    pub bgp_peers: Vec<String>,
}

/// The cluster network's bridge (in the LAN namespace).
pub const CLUSTER_BRIDGE: &str = "cl0";

/// The L2 lab: API simulator, three nodes, a client.
pub struct L2Lab {
    /// The namespaces and processes (dropped last: it kills everything).
    pub lab: Lab,
    /// Addressing.
    pub net: Net,
    /// The simulator.
    pub api: Api,
    /// node1..node3.
    pub nodes: Vec<L2Node>,
    /// The client namespace (`.50`, `::50`).
    pub client: Host,
    /// The client's eth0 MAC.
    pub client_mac: String,
}

/// A namespace's eth0 MAC, lower case.
pub fn mac_of(lab: &Lab, ns: &str) -> String {
    let out = lab
        .exec(ns, "ip", &["-j", "link", "show", "eth0"])
        .expect_ok("ip link show eth0");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("ip -j link: {e}: {out}"));
    v[0]["address"]
        .as_str()
        .unwrap_or_else(|| panic!("no MAC in {out}"))
        .to_lowercase()
}

/// A Node object: labels `kubernetes.io/hostname`, Ready as given, InternalIP `ip`.
pub fn node_manifest(name: &str, ip: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [{
                "type": "Ready",
                "status": if ready { "True" } else { "False" },
                "reason": if ready { "KubeletReady" } else { "KubeletNotReady" },
            }],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
        },
    })
}

/// `kubectl apply -f -` of `objects` as one `v1 List`.
pub fn apply_objects(api: &Api, objects: &[Value]) {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": objects});
    api.kubectl_stdin(&["apply", "-f", "-"], &list.to_string())
        .expect_ok("kubectl apply");
}

/// Sets a Node's `Ready` condition through its `/status` subresource (as the node lifecycle
/// controller does), with kubectl.
pub fn set_node_ready(api: &Api, node: &str, ready: bool) {
    let patch = json!({"status": {"conditions": [{
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": if ready { "KubeletReady" } else { "NodeStatusUnknown" },
    }]}});
    api.kubectl_ok(&[
        "patch",
        "node",
        node,
        "--subresource=status",
        "--type=strategic",
        "-p",
        &patch.to_string(),
    ]);
    let v = api.kubectl_json(&["get", "node", node]);
    let status = v["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("")
        .to_string();
    assert_eq!(
        status,
        if ready { "True" } else { "False" },
        "Node {node} after the patch: {v}"
    );
}

/// A LoadBalancer Service manifest: port TCP/80, `externalTrafficPolicy` Local or Cluster,
/// `families` (`["IPv6"]` → SingleStack IPv6; empty: the server's default, IPv4).
pub fn l2_service(name: &str, local: bool, families: &[&str]) -> Value {
    let mut v = super::e2e::lb(name).value().clone();
    v["spec"]["externalTrafficPolicy"] = json!(if local { "Local" } else { "Cluster" });
    if !families.is_empty() {
        v["spec"]["ipFamilyPolicy"] = json!(if families.len() > 1 {
            "RequireDualStack"
        } else {
            "SingleStack"
        });
        v["spec"]["ipFamilies"] = json!(families);
    }
    v
}

/// An endpoint of a slice: on `node`, ready (and serving) or not.
#[derive(Debug, Clone, Copy)]
pub struct Ep<'a> {
    /// `nodeName`.
    pub node: &'a str,
    /// `conditions.ready` and `conditions.serving`.
    pub ready: bool,
}

/// The EndpointSlice `<service>-v4` (or `-v6`) of Service `service` (label
/// `kubernetes.io/service-name`), one pod address per endpoint, port 80.
pub fn endpoint_slice(service: &str, ipv6: bool, endpoints: &[Ep<'_>]) -> Value {
    let list: Vec<Value> = endpoints
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let pod = if ipv6 {
                format!("fd00:244::{}", i + 1)
            } else {
                format!("10.244.0.{}", i + 1)
            };
            json!({
                "addresses": [pod],
                "nodeName": e.node,
                "conditions": {"ready": e.ready, "serving": e.ready, "terminating": false},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{service}-{}", if ipv6 { "v6" } else { "v4" }),
            "namespace": "default",
            "labels": {"kubernetes.io/service-name": service},
        },
        "addressType": if ipv6 { "IPv6" } else { "IPv4" },
        "endpoints": list,
        "ports": [{"name": "p80", "protocol": "TCP", "port": 80}],
    })
}

/// The owner ferrolb must pick among `candidates` for `address`: the smallest
/// `sha256(name + "#" + address)` (address in canonical text form), as MetalLB ranks. Written
/// here independently of `ferrolb::plan`, so the test checks the product's ranking too.
pub fn hash_owner<'a>(candidates: &[&'a str], address: IpAddr) -> &'a str {
    candidates
        .iter()
        .copied()
        .min_by_key(|n| {
            let digest: [u8; 32] = Sha256::digest(format!("{n}#{address}")).into();
            (digest, *n)
        })
        .expect("at least one candidate")
}

impl L2Lab {
    /// Builds the lab `prefix` on `10.250.N.0/24` + `fd00:250:N::/64`: simulator (`.2`), Node
    /// objects (Ready), three nodes (`.11`–`.13`) each with the pool addresses on `lo`, a
    /// responder and a daemon (an IPv4 and an IPv6 l2 pool), and a client (`.50`). Returns once
    /// every daemon logged its initial sync.
    pub fn start(prefix: &str, n: u8) -> L2Lab {
        L2Lab::start_with(prefix, n, false)
    }

    /// [`L2Lab::start`], with gossip membership on when `gossip`: one shared key file (32
    /// random bytes, base64, mode 0600), each node bound to its IPv4 address on port 7946 and
    /// joining the other two.
    pub fn start_with(prefix: &str, n: u8, gossip: bool) -> L2Lab {
        L2Lab::start_opts(
            prefix,
            n,
            &L2Options {
                gossip,
                ..L2Options::default()
            },
        )
    }

    /// [`L2Lab::start`] with `options`.
    pub fn start_opts(prefix: &str, n: u8, options: &L2Options) -> L2Lab {
        let gossip = options.gossip;
        assert!(
            gossip || !options.cluster_net,
            "a cluster network carries gossip"
        );
        for tool in ["arping", "ndisc6", "tcpdump", "curl"] {
            require_program(tool);
        }
        let lab = Lab::new(prefix);
        let net = Net { n };
        let cidr4 = |h: u8| format!("{}/24", net.v4(h));
        let cidr6 = |h: u16| format!("{}/64", net.v6(h));
        let api_host = lab.host("api", &cidr4(2), Some(&cidr6(2)));
        let client = lab.host("client", &cidr4(50), Some(&cidr6(50)));
        let hosts: Vec<Host> = (0..NODES.len())
            .map(|i| {
                let h = 11 + i as u8;
                lab.host(NODES[i], &cidr4(h), Some(&cidr6(u16::from(h))))
            })
            .collect();
        let api = lab.apiserver(&api_host, &ApiserverOptions::default());
        let nodes: Vec<Value> = hosts
            .iter()
            .map(|h| node_manifest(&h.name, &h.ipv4.to_string(), true))
            .collect();
        apply_objects(&api, &nodes);

        let key = gossip.then(|| {
            use base64::Engine as _;
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
                .expect("random bytes");
            let text = base64::engine::general_purpose::STANDARD.encode(bytes);
            lab.write_file("gossip.key", &format!("{text}\n"), 0o600)
        });
        // The address each node gossips on: its cluster-network address, or its LAN address.
        let gossip_ip = |i: usize| -> String {
            if options.cluster_net {
                format!("10.251.{n}.{}", 11 + i)
            } else {
                net.v4(11 + i as u8)
            }
        };
        if options.cluster_net {
            lab.add_bridge(CLUSTER_BRIDGE);
        }
        let node_ips: Vec<String> = (0..hosts.len()).map(gossip_ip).collect();
        let mut out = Vec::new();
        for (i, host) in hosts.into_iter().enumerate() {
            let cluster_port = options.cluster_net.then(|| {
                lab.attach(
                    &host,
                    CLUSTER_BRIDGE,
                    "eth1",
                    &format!("{}/24", gossip_ip(i)),
                )
            });
            // kube-proxy's part: the node accepts traffic for every pool address.
            let mut batch = String::new();
            let on_lo = match &options.pools {
                Some((_, addresses)) => addresses.clone(),
                None => net.pool_addresses(),
            };
            for a in on_lo {
                let _ = match a {
                    IpAddr::V4(_) => writeln!(batch, "addr add {a}/32 dev lo"),
                    IpAddr::V6(_) => writeln!(batch, "addr add {a}/128 dev lo nodad"),
                };
            }
            let file = lab.write_file(&format!("lo-{}.ip", host.name), &batch, 0o644);
            lab.exec(&host.ns, "ip", &["-batch", &file.to_string_lossy()])
                .expect_ok("ip -batch (service addresses on lo)");
            let responder_log = lab.path(&format!("responder-{}.log", host.name));
            let responder = lab.spawn(
                &host.ns,
                FERROLB,
                &[
                    "lab",
                    "responder",
                    "--listen",
                    "0.0.0.0:80",
                    "--listen",
                    "[::]:80",
                    "--name",
                    &host.name,
                ],
                &responder_log,
            );
            wait_for(
                &format!("the responder on {}", host.name),
                Duration::from_secs(10),
                || {
                    if !lab.running(responder) {
                        panic!("the responder exited:\n{}", tail(&responder_log, 10));
                    }
                    let text = std::fs::read_to_string(&responder_log).unwrap_or_default();
                    if text.matches("listening on").count() == 2 {
                        Ok(())
                    } else {
                        Err(text)
                    }
                },
            );
            let mut node_config = NodeConfig::new(&host.name, &api.kubeconfig);
            node_config.l2 = options.l2.clone();
            if options.metrics {
                node_config.metrics_listen = format!("{}:7472", host.ipv4);
            }
            if let Some(key) = &key {
                let me = gossip_ip(i);
                let join: Vec<String> = node_ips
                    .iter()
                    .filter(|ip| **ip != me)
                    .map(|ip| format!("\"{ip}:7946\""))
                    .collect();
                node_config.cluster = format!(
                    "enabled = true\nbind = \"{me}:7946\"\nsecret_file = \"{}\"\njoin = [{}]\n{}\n",
                    key.display(),
                    join.join(", "),
                    options.cluster
                );
            }
            node_config.bgp_peers = options.bgp_peers.clone();
            let node_config = match &options.pools {
                Some((pools, _)) => {
                    node_config.pools = pools.clone();
                    node_config
                }
                None => node_config
                    .pool(PoolConfig::new("lan-v4", &[&net.pool_v4()]))
                    .pool(PoolConfig::new("lan-v6", &[&net.pool_v6()]))
                    .pool({
                        let [v4, v6] = net.pool_dual();
                        PoolConfig::new(DUAL_POOL, &[&v4, &v6]).manual()
                    }),
            };
            let config = lab.ferrolb_config(&node_config);
            let mac = mac_of(&lab, &host.ns);
            let daemon = lab.start_ferrolb(&host, &config);
            out.push(L2Node {
                name: host.name.clone(),
                host,
                mac,
                config,
                daemon,
                responder,
                cluster_port,
            });
        }
        let client_mac = mac_of(&lab, &client.ns);
        L2Lab {
            lab,
            net,
            api,
            nodes: out,
            client,
            client_mac,
        }
    }

    /// The node named `name`.
    pub fn node(&self, name: &str) -> &L2Node {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Cuts (`cut = true`) or restores node `name`'s link to the cluster network: its gossip
    /// stops reaching the others (and theirs it) while its service LAN link stays up.
    pub fn cut_gossip(&self, name: &str, cut: bool) {
        let port =
            self.node(name).cluster_port.as_deref().unwrap_or_else(|| {
                panic!("{name} has no cluster network (L2Options::cluster_net)")
            });
        self.lab.port(port, !cut);
    }

    /// The node whose eth0 has `mac`, if any.
    pub fn node_by_mac(&self, mac: &str) -> Option<&L2Node> {
        self.nodes.iter().find(|n| n.mac.eq_ignore_ascii_case(mac))
    }

    /// A MAC, named after its node when it is one ("node2 (aa:…)").
    pub fn who(&self, mac: &str) -> String {
        match self.node_by_mac(mac) {
            Some(n) => format!("{} ({mac})", n.name),
            None if mac.eq_ignore_ascii_case(&self.client_mac) => format!("client ({mac})"),
            None => format!("unknown ({mac})"),
        }
    }

    // --- the client's view ---

    /// `arping -r -c COUNT -W 0.1 -w WAIT -i eth0 ADDR` from the client: the MACs of every
    /// reply, lower case (empty: nobody answered).
    pub fn arping(&self, address: IpAddr, count: u32, wait: Duration) -> Vec<String> {
        let count = count.to_string();
        let wait = format!("{:.2}", wait.as_secs_f64());
        let target = address.to_string();
        let out = self.lab.exec(
            &self.client.ns,
            "arping",
            &[
                "-r", "-c", &count, "-W", "0.1", "-w", &wait, "-i", "eth0", &target,
            ],
        );
        // Exit status 1 with nothing printed is "no reply"; anything on stderr is a failure to
        // ask at all, which must not pass for silence.
        assert!(
            !out.timed_out
                && out.stderr.trim().is_empty()
                && (out.ok || out.stdout.trim().is_empty()),
            "arping {target}: {out:?}"
        );
        out.stdout
            .lines()
            .map(|l| l.trim().to_lowercase())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// Waits until one arping from the client is answered; returns the MAC.
    pub fn wait_arp_answer(&self, address: IpAddr, timeout: Duration) -> String {
        wait_for(
            &format!("an ARP reply for {address}"),
            timeout,
            || match self
                .arping(address, 1, Duration::from_millis(500))
                .as_slice()
            {
                [mac] => Ok(mac.clone()),
                [] => Err("no reply".into()),
                more => panic!("one ARP request for {address} drew several replies: {more:?}"),
            },
        )
    }

    /// Waits until arping from the client gets no answer (one request, 0.5 s); then checks that
    /// `count` more requests stay unanswered too.
    pub fn wait_arp_silence(&self, address: IpAddr, timeout: Duration, count: u32) {
        wait_for(
            &format!("no ARP reply for {address}"),
            timeout,
            || match self
                .arping(address, 1, Duration::from_millis(500))
                .as_slice()
            {
                [] => Ok(()),
                macs => Err(format!("answered by {macs:?}")),
            },
        );
        let macs = self.arping(address, count, Duration::from_secs(2));
        assert!(
            macs.is_empty(),
            "{address} answered again after it went silent: {:?}",
            macs.iter().map(|m| self.who(m)).collect::<Vec<_>>()
        );
    }

    /// `ndisc6 -1 -r R -w 500 ADDR eth0` from the client: the target link-layer address of the
    /// advertisement, lower case.
    pub fn ndisc6(&self, address: IpAddr, tries: u32) -> Option<String> {
        let tries = tries.to_string();
        let target = address.to_string();
        let out = self.lab.exec(
            &self.client.ns,
            "ndisc6",
            &["-1", "-r", &tries, "-w", "500", &target, "eth0"],
        );
        out.stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("Target link-layer address:"))
            .map(|m| m.trim().to_lowercase())
    }

    /// The client's neighbour entry for `address`: (MAC, state), or `None` without one (or
    /// without a MAC, e.g. FAILED/INCOMPLETE).
    pub fn neighbour(&self, address: IpAddr) -> Option<(String, String)> {
        let target = address.to_string();
        let out = self
            .lab
            .exec(
                &self.client.ns,
                "ip",
                &["neigh", "show", &target, "dev", "eth0"],
            )
            .expect_ok("ip neigh show");
        let line = out.lines().next()?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let mac = words
            .iter()
            .position(|w| *w == "lladdr")
            .and_then(|i| words.get(i + 1))?
            .to_lowercase();
        let state = words.last().map(|s| s.to_string()).unwrap_or_default();
        Some((mac, state))
    }

    /// `curl http://ADDR/` from the client: the body (the responder's name line), or the error.
    pub fn http(&self, address: IpAddr) -> Result<String, String> {
        let url = match address {
            IpAddr::V4(a) => format!("http://{a}/"),
            IpAddr::V6(a) => format!("http://[{a}]/"),
        };
        let out = self.lab.exec(
            &self.client.ns,
            "curl",
            &[
                "-sS",
                "-g",
                "--connect-timeout",
                "3",
                "--max-time",
                "5",
                &url,
            ],
        );
        if out.ok {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(format!("curl {url}: {}", out.stderr.trim()))
        }
    }

    /// A raw TCP connection to ADDR:80 from the client (bash's `/dev/tcp`), sending nothing:
    /// what the responder said.
    pub fn tcp(&self, address: IpAddr) -> Result<String, String> {
        let script = format!("exec 3<>/dev/tcp/{address}/80 && timeout 5 cat <&3");
        let out = self
            .lab
            .exec(&self.client.ns, "timeout", &["10", "bash", "-c", &script]);
        if out.ok {
            Ok(out.stdout.trim().to_string())
        } else {
            Err(format!("tcp {address}:80: {}", out.stderr.trim()))
        }
    }

    /// Asserts that HTTP and raw TCP from the client both reach `node`'s responder.
    pub fn assert_reaches(&self, address: IpAddr, node: &str) {
        assert_eq!(
            self.http(address).as_deref(),
            Ok(node),
            "curl from the client to {address}"
        );
        assert_eq!(
            self.tcp(address).as_deref(),
            Ok(node),
            "a TCP connection from the client to {address}"
        );
    }

    /// Starts an ARP capture on the LAN bridge; its end is marked by ARP requests from the API
    /// simulator's namespace for `.254` (an address nobody has).
    pub fn capture_arp(&self, name: &str) -> Capture<'_> {
        Capture::start(&self.lab, name, &self.api.ns, addr(&self.net.v4(254)))
    }

    /// The owner ferrolb must pick for `address` among the nodes named in `candidates`.
    pub fn expected_owner<'a>(&self, candidates: &[&'a str], address: IpAddr) -> &'a str {
        hash_owner(candidates, address)
    }

    /// Every node's daemon is still running.
    pub fn assert_daemons_running(&self) {
        for n in &self.nodes {
            assert!(
                self.lab.running(n.daemon.proc),
                "ferrolb on {} exited:\n{}",
                n.name,
                tail(&n.daemon.log, 30)
            );
        }
    }
}

// === captures ===

/// An ARP frame as `tcpdump -e -nn` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArpFrame {
    /// Ethernet source, lower case.
    pub src: String,
    /// Ethernet destination, lower case.
    pub dst: String,
    /// The ARP message.
    pub msg: ArpMsg,
    /// When it was captured, in microseconds since the Unix epoch (lines from `tcpdump -tt`,
    /// as [`read_capture`] reads; `None` for a time of day).
    pub unix_us: Option<u64>,
}

/// The two ARP operations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArpMsg {
    /// `Request who-has TARGET tell SENDER`.
    Request {
        /// Target protocol address.
        who_has: IpAddr,
        /// Sender protocol address.
        tell: IpAddr,
    },
    /// `Reply IP is-at MAC`.
    Reply {
        /// Sender protocol address.
        ip: IpAddr,
        /// Sender hardware address, lower case.
        is_at: String,
    },
}

impl ArpFrame {
    /// A reply (of any form: solicited or gratuitous) saying where `address` is.
    pub fn is_reply_for(&self, address: IpAddr) -> bool {
        matches!(&self.msg, ArpMsg::Reply { ip, .. } if *ip == address)
    }

    /// A request for `address` whose sender is someone else (not a gratuitous request).
    pub fn is_request_for(&self, address: IpAddr) -> bool {
        matches!(&self.msg, ArpMsg::Request { who_has, tell } if *who_has == address && *tell != address)
    }

    /// A gratuitous request for `address` (sender = target).
    pub fn is_gratuitous_request(&self, address: IpAddr) -> bool {
        matches!(&self.msg, ArpMsg::Request { who_has, tell } if *who_has == address && *tell == address)
    }
}

/// Parses one line of `tcpdump -e -nn` for an ARP frame (`None` for anything else).
pub fn parse_arp_line(line: &str) -> Option<ArpFrame> {
    let words: Vec<&str> = line.split_whitespace().collect();
    // "TIME SRC > DST, ethertype ARP (0x0806), length N: OP ..."
    let arrow = words.iter().position(|w| *w == ">")?;
    let src = words.get(arrow - 1)?.to_lowercase();
    let dst = words.get(arrow + 1)?.trim_end_matches(',').to_lowercase();
    if !line.contains("ethertype ARP") {
        return None;
    }
    let after = |key: &str| -> Option<&str> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1).map(|w| w.trim_end_matches(','))
    };
    let msg = if let Some(who_has) = after("who-has") {
        ArpMsg::Request {
            who_has: who_has.parse().ok()?,
            tell: after("tell")?.parse().ok()?,
        }
    } else {
        ArpMsg::Reply {
            ip: after("Reply")?.parse().ok()?,
            is_at: after("is-at")?.to_lowercase(),
        }
    };
    let unix_us = words.first().and_then(|w| unix_us(w));
    Some(ArpFrame {
        src,
        dst,
        msg,
        unix_us,
    })
}

/// `1732640000.123456` (tcpdump -tt) in microseconds.
fn unix_us(word: &str) -> Option<u64> {
    let (secs, frac) = word.split_once('.')?;
    let micros: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    Some(secs.parse::<u64>().ok()? * 1_000_000 + micros.parse::<u64>().ok()?)
}

/// `tcpdump -i br0 --immediate-mode -U -w FILE arp` running in the LAN namespace.
///
/// Stopping it must not lose the last frames (tcpdump drops what it has not yet read from the
/// kernel when interrupted), so [`Capture::stop`] first sends a marker — an ARP request for an
/// address nobody has, from another namespace on the LAN — and waits until the file holds it:
/// every frame before it on the bridge is in the file then.
pub struct Capture<'a> {
    lab: &'a Lab,
    proc: Proc,
    file: PathBuf,
    log: PathBuf,
    marker_ns: String,
    marker: IpAddr,
}

impl<'a> Capture<'a> {
    /// Starts it and waits until tcpdump listens. `marker_ns` (a namespace on the LAN) asks for
    /// `marker` (an address nobody has) to mark the end.
    pub fn start(lab: &'a Lab, name: &str, marker_ns: &str, marker: IpAddr) -> Capture<'a> {
        let file = lab.path(&format!("{name}.pcap"));
        let log = lab.path(&format!("tcpdump-{name}.log"));
        let file_arg = file.to_string_lossy().into_owned();
        // -Z root: keep writing into the lab directory (mode 0700) after start.
        let proc = lab.spawn(
            lab.lan(),
            "tcpdump",
            &[
                "-i",
                "br0",
                "--immediate-mode",
                "-U",
                "-nn",
                "-Z",
                "root",
                "-w",
                &file_arg,
                "arp",
            ],
            &log,
        );
        wait_for("tcpdump to listen", Duration::from_secs(10), || {
            if !lab.running(proc) {
                panic!("tcpdump exited:\n{}", tail(&log, 10));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("listening on") {
                Ok(())
            } else {
                Err(text)
            }
        });
        Capture {
            lab,
            proc,
            file,
            log,
            marker_ns: marker_ns.to_string(),
            marker,
        }
    }

    /// Marks the end, waits until the marker is in the file, stops tcpdump (SIGINT) and returns
    /// every ARP frame captured before the marker, in order.
    pub fn stop(self) -> Vec<ArpFrame> {
        let marker = self.marker;
        let is_marker =
            |f: &ArpFrame| matches!(f.msg, ArpMsg::Request { who_has, .. } if who_has == marker);
        let target = marker.to_string();
        let frames = wait_for(
            "the capture's end marker in the file",
            Duration::from_secs(10),
            || {
                // Nobody answers: exit status 1 is expected.
                self.lab.exec(
                    &self.marker_ns,
                    "arping",
                    &["-q", "-c", "1", "-w", "0.2", "-i", "eth0", &target],
                );
                let frames = try_read_capture(&self.file)?;
                match frames.iter().position(is_marker) {
                    Some(end) => Ok(frames[..end].to_vec()),
                    None => Err(format!("{} frames, no marker yet", frames.len())),
                }
            },
        );
        self.lab.signal(self.proc, "INT");
        let status = self.lab.wait_exit(self.proc, Duration::from_secs(10));
        assert!(
            status.success(),
            "tcpdump: {status}\n{}",
            tail(&self.log, 10)
        );
        frames
    }
}

/// `tcpdump -r FILE -e -nn -tt`, parsed; panics on a file tcpdump cannot read or a line that does
/// not parse.
pub fn read_capture(file: &std::path::Path) -> Vec<ArpFrame> {
    try_read_capture(file).unwrap_or_else(|e| panic!("{e}"))
}

/// `tcpdump -r FILE -e -nn -tt`, parsed (an error while tcpdump may still be writing the file's
/// last record, say).
pub fn try_read_capture(file: &std::path::Path) -> Result<Vec<ArpFrame>, String> {
    let mut cmd = std::process::Command::new("tcpdump");
    cmd.args(["-r"]).arg(file).args(["-e", "-nn", "-tt"]);
    let out = run_with_timeout(cmd, None, Duration::from_secs(30));
    if !out.ok {
        return Err(format!(
            "tcpdump -r {}: {}",
            file.display(),
            out.stderr.trim()
        ));
    }
    let mut frames = Vec::new();
    for line in out.stdout.lines() {
        match parse_arp_line(line) {
            Some(f) => frames.push(f),
            None => return Err(format!("a line of the ARP capture did not parse: {line}")),
        }
    }
    Ok(frames)
}

/// The distinct senders (Ethernet source) of `frames` that satisfy `f`.
pub fn senders(frames: &[ArpFrame], f: impl Fn(&ArpFrame) -> bool) -> BTreeSet<String> {
    frames
        .iter()
        .filter(|fr| f(fr))
        .map(|fr| fr.src.clone())
        .collect()
}
