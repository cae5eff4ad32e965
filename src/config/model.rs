//! The validated configuration: what the rest of the daemon reads. Every value has its proper
//! type and every default is filled in; building one is [`super::validate`]'s job.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::community::Community;
use super::values::JoinAddress;
use crate::ipam::IpRange;

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[node]`.
    pub node: Node,
    /// `[kubernetes]`.
    pub kubernetes: Kubernetes,
    /// `[cluster]`: gossip membership.
    pub cluster: Cluster,
    /// `[l2]`: ARP/NDP announcement.
    pub l2: L2,
    /// `[[pool]]`, in configuration order (main file first, then conf.d in name order).
    pub pools: Vec<Pool>,
    /// `[[bgp.peer]]`, in configuration order.
    pub peers: Vec<Peer>,
    /// `[metrics]`.
    pub metrics: Metrics,
    /// `[log]`.
    pub log: Log,
}

/// `[node]`: this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Node {
    /// The Kubernetes Node name; `None`: the host name, resolved at start.
    pub name: Option<String>,
}

/// `[kubernetes]`: how to reach the API server, and the leader election Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kubernetes {
    /// A kubeconfig file (exclusive with `server`).
    pub kubeconfig: Option<PathBuf>,
    /// The API server URL (`https://…`), used with `token_file` and `ca_file`.
    pub server: Option<String>,
    /// A file holding a bearer token.
    pub token_file: Option<PathBuf>,
    /// A PEM file of CA certificates for the API server.
    pub ca_file: Option<PathBuf>,
    /// Skip TLS verification of the API server (testing only).
    pub insecure_skip_tls_verify: bool,
    /// Only Services with this `spec.loadBalancerClass`; `None`: Services that name no class.
    pub load_balancer_class: Option<String>,
    /// Namespace of the allocator's Lease.
    pub lease_namespace: String,
    /// Lease duration.
    pub lease_duration: Duration,
    /// How long the holder keeps trying to renew before it gives up leadership.
    pub renew_deadline: Duration,
    /// Interval between acquire/renew attempts.
    pub retry_period: Duration,
    /// Watch the API (`true`) or poll it every `poll_interval`.
    pub watch: bool,
    /// Polling interval when `watch` is off.
    pub poll_interval: Duration,
    /// Interval of full re-lists, as a safety net.
    pub resync_interval: Duration,
    /// Requests per second to the API server, on average (client-go's `--kube-api-qps`).
    pub qps: u32,
    /// Requests allowed in a burst (client-go's `--kube-api-burst`).
    pub burst: u32,
}

/// `[cluster]`: the gossip membership that detects dead nodes quickly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// Whether gossip runs; off: liveness from Node `Ready` conditions.
    pub enabled: bool,
    /// UDP (and TCP) address gossip binds.
    pub bind: SocketAddr,
    /// The shared key file; `None` only with `insecure`.
    pub secret_file: Option<PathBuf>,
    /// Gossip without encryption or authentication.
    pub insecure: bool,
    /// Whom to contact at start; empty: every Node's InternalIP from the API.
    pub join: Vec<JoinAddress>,
    /// SWIM/Lifeguard timing.
    pub timing: GossipTiming,
}

/// `[cluster]` timing keys (see `membership::Timing` for what each does and why the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GossipTiming {
    /// One member probed per interval.
    pub probe_interval: Duration,
    /// Wait for a direct ack before asking others (shorter than `probe_interval`).
    pub probe_timeout: Duration,
    /// Suspect → down once independently confirmed.
    pub suspicion_timeout: Duration,
    /// Suspect → down unconfirmed, as a multiple of `suspicion_timeout` (1-10).
    pub suspicion_max_multiplier: u32,
    /// Members asked to ping a member that missed a direct ping (1-10).
    pub indirect_probes: u32,
    /// How often pending updates are pushed.
    pub gossip_interval: Duration,
    /// Members each push goes to (1-10).
    pub gossip_fanout: u32,
    /// How long a starting node waits for a complete sync before going on.
    pub sync_timeout: Duration,
}

/// `[l2]`: ARP/NDP behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L2 {
    /// What happens when a better-ranked node comes back.
    pub failback: Failback,
    /// Announce only while this node sees a majority of the cluster.
    pub require_quorum: bool,
    /// Periodic gratuitous ARP / unsolicited NA while announcing; `None`: only on takeover.
    pub gratuitous_refresh: Option<Duration>,
    /// How long a draining daemon (SIGUSR1) keeps answering for the addresses it handed over,
    /// for clients whose ARP cache keeps the old owner a while.
    pub drain_grace: Duration,
}

/// `l2.failback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Failback {
    /// A healthy owner keeps its addresses (fewer moves, fewer ARP storms).
    #[default]
    Sticky,
    /// Addresses move back to the top-ranked node as soon as it is eligible again.
    Immediate,
}

/// `pool.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// ARP (IPv4) and NDP (IPv6) on the LAN.
    L2,
    /// Routes to BGP peers.
    Bgp,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::L2 => "l2",
            Mode::Bgp => "bgp",
        })
    }
}

impl std::fmt::Display for Failback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Failback::Sticky => "sticky",
            Failback::Immediate => "immediate",
        })
    }
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// `[[pool]]`: addresses Services can get, and how they are announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Unique name (the `ferrolb.io/address-pool` annotation names it).
    pub name: String,
    /// The addresses, as written (validated: no overlaps with each other or other pools).
    pub addresses: Vec<IpRange>,
    /// Skip IPv4 addresses ending in `.0` and `.255`.
    pub avoid_buggy_ips: bool,
    /// Whether Services that ask for no pool may get addresses from this one.
    pub auto_assign: bool,
    /// Nodes that may announce this pool's addresses (label → value); empty: all.
    pub node_selector: BTreeMap<String, String>,
    /// The announcement mode and its settings.
    pub mode: PoolMode,
}

impl Pool {
    /// The mode without its settings.
    pub fn mode_kind(&self) -> Mode {
        match self.mode {
            PoolMode::L2 { .. } => Mode::L2,
            PoolMode::Bgp(_) => Mode::Bgp,
        }
    }
}

/// How a pool is announced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolMode {
    /// ARP/NDP.
    L2 {
        /// Interfaces to answer on; empty: every interface with a route to the address.
        interfaces: Vec<String>,
    },
    /// BGP, with `[pool.bgp]`'s settings.
    Bgp(BgpAdvertisement),
}

/// `[pool.bgp]`: how a bgp pool's routes are advertised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvertisement {
    /// Peer names to advertise to; empty: all peers.
    pub peers: Vec<String>,
    /// Communities attached to the routes.
    pub communities: Vec<Community>,
    /// LOCAL_PREF (sent to iBGP peers only).
    pub local_pref: Option<u32>,
    /// Prefix length of IPv4 routes (32: one route per address).
    pub aggregation_length: u8,
    /// Prefix length of IPv6 routes (128: one route per address).
    pub aggregation_length_v6: u8,
}

/// `[[bgp.peer]]`: a BGP neighbour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Unique name (default: the address as written).
    pub name: String,
    /// The neighbour's address.
    pub address: IpAddr,
    /// The neighbour's AS.
    pub asn: u32,
    /// Our AS.
    pub my_asn: u32,
    /// TCP port.
    pub port: u16,
    /// Proposed hold time (0 or ≥ 3 s, whole seconds).
    pub hold_time: Duration,
    /// Keepalive interval (default: a third of the hold time).
    pub keepalive_time: Duration,
    /// ConnectRetry interval.
    pub connect_time: Duration,
    /// File holding the TCP MD5 password.
    pub password_file: Option<PathBuf>,
    /// TTL for multi-hop eBGP sessions.
    pub ebgp_multihop: Option<u8>,
    /// Local address of the session.
    pub source_address: Option<IpAddr>,
    /// BGP identifier; `None`: chosen from the node's addresses.
    pub router_id: Option<Ipv4Addr>,
    /// Nodes that peer with this neighbour (label → value); empty: all.
    pub node_selector: BTreeMap<String, String>,
    /// Wait for the neighbour to connect; never connect out.
    pub passive: bool,
    /// Advertise the graceful restart capability (RFC 4724).
    pub graceful_restart: bool,
}

impl Peer {
    /// Whether the session is internal BGP (same AS on both sides).
    pub fn is_ibgp(&self) -> bool {
        self.asn == self.my_asn
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metrics {
    /// Where the Prometheus endpoint listens; `None`: disabled.
    pub listen: Option<SocketAddr>,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    /// A level or `tracing` filter directive (`"info"`, `"info,ferrolb::bgp=debug"`).
    pub level: String,
    /// Line format.
    pub format: LogFormat,
}

/// `log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl Config {
    /// The pools as IPAM needs them, in configuration order: (name, addresses,
    /// `avoid_buggy_ips`, `auto_assign`).
    pub fn ipam_pools(&self) -> Vec<(String, Vec<IpRange>, bool, bool)> {
        self.pools
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    p.addresses.clone(),
                    p.avoid_buggy_ips,
                    p.auto_assign,
                )
            })
            .collect()
    }

    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// The peer called `name`.
    pub fn peer(&self, name: &str) -> Option<&Peer> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// The peers a bgp pool is advertised to (its `peers`, or all); empty for an l2 pool.
    pub fn pool_peers(&self, pool: &Pool) -> Vec<&Peer> {
        match &pool.mode {
            PoolMode::L2 { .. } => Vec::new(),
            PoolMode::Bgp(adv) if adv.peers.is_empty() => self.peers.iter().collect(),
            PoolMode::Bgp(adv) => self
                .peers
                .iter()
                .filter(|p| adv.peers.contains(&p.name))
                .collect(),
        }
    }
}
