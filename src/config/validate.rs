//! Semantic validation: from the merged file schema to a [`Config`] with proper types, or every
//! problem at once. Pure: values and the span index in, diagnostics out; no files are read
//! (the file checks — does the key exist, who can read it — are the loader's).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::community::Community;
use super::diagnostic::Diagnostic;
use super::model::{
    BgpAdvertisement, Cluster, Config, GossipTiming, Kubernetes, Log, Metrics, Mode, Node, Peer,
    Pool, PoolMode, L2,
};
use super::schema::{FileConfig, PeerSection, PoolSection};
use super::spans::{join, SpanIndex};
use super::values::{
    check_http_url, check_interface_name, check_label_value, check_log_level, check_pool_name,
    check_qualified_name, closest, fmt_duration, is_dns1123_label, is_dns1123_subdomain,
    parse_join, parse_listen_addr,
};
use crate::ipam::range::to_u128;
use crate::ipam::{Family, IpRange};

/// The outcome of validation: the configuration if there was no error, and every finding.
#[derive(Debug, Clone)]
pub struct Validated {
    /// `Some` exactly when `diagnostics` holds no error.
    pub config: Option<Config>,
    /// Errors and warnings, in the order found.
    pub diagnostics: Vec<Diagnostic>,
}

/// Validates the merged configuration. `index` gives positions for the messages; `base_dir`
/// (the main file's directory) anchors relative file paths.
pub fn validate(raw: &FileConfig, index: &SpanIndex, base_dir: Option<&Path>) -> Validated {
    let mut v = Validator {
        index,
        base_dir,
        diags: Vec::new(),
    };
    let node = v.node(raw);
    let kubernetes = v.kubernetes(raw);
    let cluster = v.cluster(raw);
    let l2 = L2 {
        failback: raw.l2.failback,
        require_quorum: raw.l2.require_quorum,
        gratuitous_refresh: match raw.l2.gratuitous_refresh.0 {
            d if d.is_zero() => None,
            d => Some(d),
        },
        drain_grace: v
            .duration_in(
                "l2.drain_grace",
                raw.l2.drain_grace.0,
                Duration::ZERO,
                Duration::from_secs(600),
                "default 30s: how long a drained node keeps answering clients with stale ARP caches",
            )
            .unwrap_or(raw.l2.drain_grace.0),
    };
    if l2
        .gratuitous_refresh
        .is_some_and(|d| d < Duration::from_secs(1))
    {
        v.err(
            "l2.gratuitous_refresh",
            "must be 0s (off) or at least 1s: a shorter refresh floods the LAN with broadcasts",
        );
    }
    if l2.require_quorum && !raw.cluster.enabled {
        v.warn(
            "l2.require_quorum",
            "has no effect with cluster.enabled = false: quorum is counted among gossip members",
        );
    }
    let peers = v.peers(raw);
    let pools = v.pools(raw);
    let metrics = v.metrics(raw, cluster.as_ref());
    let log = v.log(raw);
    if raw.pool.is_empty() {
        v.diags.push(Diagnostic::warning(
            v.index.main_file(),
            "pool",
            "no [[pool]] is configured: there is nothing to announce",
        ));
    }

    let has_errors = v.diags.iter().any(Diagnostic::is_error);
    let config = match (kubernetes, cluster, pools, peers, metrics, log) {
        (Some(kubernetes), Some(cluster), Some(pools), Some(peers), Some(metrics), Some(log))
            if !has_errors =>
        {
            Some(Config {
                node,
                kubernetes,
                cluster,
                l2,
                pools,
                peers,
                metrics,
                log,
            })
        }
        _ => None,
    };
    Validated {
        config,
        diagnostics: v.diags,
    }
}

struct Validator<'a> {
    index: &'a SpanIndex,
    base_dir: Option<&'a Path>,
    diags: Vec<Diagnostic>,
}

/// `Some` of all the values if every one is `Some`, else `None` (an error was recorded).
macro_rules! all_some {
    ($($x:ident),+ $(,)?) => {
        match ($($x,)+) {
            ($(Some($x),)+) => Some(($($x,)+)),
            _ => None,
        }
    };
}

impl Validator<'_> {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic::error(
            self.index.locate_or_main(path),
            path,
            message,
        ));
    }

    fn warn(&mut self, path: &str, message: impl Into<String>) {
        self.diags.push(Diagnostic::warning(
            self.index.locate_or_main(path),
            path,
            message,
        ));
    }

    /// The first of `paths` the operator wrote (else the first): where to report a rule that
    /// involves several keys.
    fn written<'p>(&self, paths: &[&'p str]) -> &'p str {
        paths
            .iter()
            .copied()
            .find(|p| self.index.is_written(p))
            .unwrap_or(paths[0])
    }

    fn path(&mut self, key: &str, p: &Option<PathBuf>) -> Option<Option<PathBuf>> {
        match p {
            Some(p) if p.as_os_str().is_empty() => {
                self.err(key, "empty path; name a file, or leave the key out");
                None
            }
            Some(p) => Some(Some(match self.base_dir {
                Some(base) if p.is_relative() => base.join(p),
                _ => p.clone(),
            })),
            None => Some(None),
        }
    }

    /// A duration for a message about `reported`: with where it comes from, unless it is the
    /// reported key itself.
    fn value_at(&self, key: &str, d: Duration, reported: &str) -> String {
        if key == reported {
            fmt_duration(d)
        } else {
            format!("{}, {}", fmt_duration(d), self.index.describe(key))
        }
    }

    fn positive(&mut self, key: &str, d: Duration) -> Option<Duration> {
        if d.is_zero() {
            self.err(key, "must be longer than 0s");
            None
        } else {
            Some(d)
        }
    }

    fn selector(&mut self, key: &str, selector: &BTreeMap<String, String>) -> bool {
        let mut ok = true;
        for (label, value) in selector {
            let path = join(key, label);
            if let Err(e) = check_qualified_name(label) {
                self.err(&path, format!("label key {e}"));
                ok = false;
            }
            if let Err(e) = check_label_value(value) {
                self.err(&path, e);
                ok = false;
            }
        }
        ok
    }

    fn node(&mut self, raw: &FileConfig) -> Node {
        if let Some(name) = &raw.node.name {
            if !is_dns1123_subdomain(name) {
                self.err(
                    "node.name",
                    format!("{name:?} is not a Kubernetes Node name: use lower-case letters, digits, '-' and '.' (253 at most), like \"worker-1\"; it must equal the Node's name"),
                );
            }
        }
        Node {
            name: raw.node.name.clone(),
        }
    }

    fn kubernetes(&mut self, raw: &FileConfig) -> Option<Kubernetes> {
        let k = &raw.kubernetes;
        let mut ok = true;
        if k.kubeconfig.is_some() && k.server.is_some() {
            self.err(
                "kubernetes.server",
                "kubernetes.kubeconfig and kubernetes.server exclude each other: use a kubeconfig file, or server with token_file and ca_file, not both",
            );
            ok = false;
        }
        if let Some(server) = &k.server {
            if let Err(e) = check_http_url(server) {
                self.err("kubernetes.server", e);
                ok = false;
            }
        }
        for (key, set) in [
            ("kubernetes.token_file", k.token_file.is_some()),
            ("kubernetes.ca_file", k.ca_file.is_some()),
        ] {
            if set && k.server.is_none() {
                let why = if k.kubeconfig.is_some() {
                    "the kubeconfig file carries its own credentials; remove this key, or use kubernetes.server instead of kubeconfig"
                } else {
                    "it is used together with kubernetes.server; set the server URL too"
                };
                self.err(key, format!("is set without kubernetes.server: {why}"));
                ok = false;
            }
        }
        if k.insecure_skip_tls_verify {
            if k.ca_file.is_some() {
                self.err(
                    "kubernetes.insecure_skip_tls_verify",
                    "kubernetes.ca_file and insecure_skip_tls_verify = true exclude each other: verify with the CA, or skip verification, not both",
                );
                ok = false;
            } else {
                self.warn(
                    "kubernetes.insecure_skip_tls_verify",
                    "the API server's certificate is not verified: anyone on the path can impersonate it; use ca_file",
                );
            }
        }
        if let Some(class) = &k.load_balancer_class {
            if let Err(e) = check_qualified_name(class) {
                self.err(
                    "kubernetes.load_balancer_class",
                    format!("{e}; a class looks like \"ferrolb.io/lb\""),
                );
                ok = false;
            }
        }
        if !is_dns1123_label(&k.lease_namespace) {
            self.err(
                "kubernetes.lease_namespace",
                format!(
                    "{:?} is not a namespace name: use lower-case letters, digits and '-', like \"kube-system\"",
                    k.lease_namespace
                ),
            );
            ok = false;
        }
        let lease = self.positive("kubernetes.lease_duration", k.lease_duration.0);
        let renew = self.positive("kubernetes.renew_deadline", k.renew_deadline.0);
        let retry = self.positive("kubernetes.retry_period", k.retry_period.0);
        let poll = self.positive("kubernetes.poll_interval", k.poll_interval.0);
        let resync = self.positive("kubernetes.resync_interval", k.resync_interval.0);
        if let (Some(lease), Some(renew)) = (lease, renew) {
            if renew >= lease {
                let at = self.written(&["kubernetes.renew_deadline", "kubernetes.lease_duration"]);
                let message = format!(
                    "renew_deadline ({}) must be shorter than lease_duration ({}): the holder must give up before others may take the Lease",
                    self.value_at("kubernetes.renew_deadline", renew, at),
                    self.value_at("kubernetes.lease_duration", lease, at),
                );
                self.err(at, message);
                ok = false;
            }
        }
        if let (Some(renew), Some(retry)) = (renew, retry) {
            if retry >= renew {
                let at = self.written(&["kubernetes.retry_period", "kubernetes.renew_deadline"]);
                let message = format!(
                    "retry_period ({}) must be shorter than renew_deadline ({}): the holder needs several tries to renew",
                    self.value_at("kubernetes.retry_period", retry, at),
                    self.value_at("kubernetes.renew_deadline", renew, at),
                );
                self.err(at, message);
                ok = false;
            }
        }
        if !(1..=10_000).contains(&k.qps) {
            self.err(
                "kubernetes.qps",
                format!(
                    "{} requests per second is out of range: use 1 to 10000 (default 20)",
                    k.qps
                ),
            );
            ok = false;
        } else if k.burst < k.qps || k.burst > 10_000 {
            let at = self.written(&["kubernetes.burst", "kubernetes.qps"]);
            self.err(
                at,
                format!(
                    "burst ({}) must be at least qps ({}) and at most 10000",
                    k.burst, k.qps
                ),
            );
            ok = false;
        }
        let kubeconfig = self.path("kubernetes.kubeconfig", &k.kubeconfig);
        let token_file = self.path("kubernetes.token_file", &k.token_file);
        let ca_file = self.path("kubernetes.ca_file", &k.ca_file);
        let (kubeconfig, token_file, ca_file, lease, renew, retry, poll, resync) =
            all_some!(kubeconfig, token_file, ca_file, lease, renew, retry, poll, resync)?;
        ok.then(|| Kubernetes {
            kubeconfig,
            server: k.server.clone(),
            token_file,
            ca_file,
            insecure_skip_tls_verify: k.insecure_skip_tls_verify,
            load_balancer_class: k.load_balancer_class.clone(),
            lease_namespace: k.lease_namespace.clone(),
            lease_duration: lease,
            renew_deadline: renew,
            retry_period: retry,
            watch: k.watch,
            poll_interval: poll,
            resync_interval: resync,
            qps: k.qps,
            burst: k.burst,
        })
    }

    fn cluster(&mut self, raw: &FileConfig) -> Option<Cluster> {
        let c = &raw.cluster;
        let bind = match parse_listen_addr(&c.bind, 7946) {
            Ok(a) => Some(a),
            Err(e) => {
                self.err("cluster.bind", e);
                None
            }
        };
        let port = bind.map_or(7946, |b| b.port());
        let mut join = Vec::new();
        let mut ok = true;
        for (i, entry) in c.join.iter().enumerate() {
            match parse_join(entry, port) {
                Ok(j) => join.push(j),
                Err(e) => {
                    self.err(&format!("cluster.join[{i}]"), e);
                    ok = false;
                }
            }
        }
        if c.enabled && !c.insecure && c.secret_file.is_none() {
            self.err(
                "cluster.secret_file",
                "gossip must be encrypted: set cluster.secret_file, or cluster.insecure = true to run unencrypted",
            );
            ok = false;
        }
        if c.enabled && c.insecure {
            let mut msg = "gossip runs unencrypted and unauthenticated: anyone who can reach the gossip port can forge membership and move addresses".to_string();
            if c.secret_file.is_some() {
                msg.push_str("; cluster.secret_file is ignored");
            }
            self.warn("cluster.insecure", msg);
        }
        let secret_file = self.path("cluster.secret_file", &c.secret_file);
        let timing = self.gossip_timing(raw);
        let (bind, secret_file, timing) = all_some!(bind, secret_file, timing)?;
        ok.then_some(Cluster {
            enabled: c.enabled,
            bind,
            secret_file,
            insecure: c.insecure,
            join,
            timing,
        })
    }

    /// A duration within `[min, max]`, or an error saying so.
    fn duration_in(
        &mut self,
        key: &str,
        d: Duration,
        min: Duration,
        max: Duration,
        why: &str,
    ) -> Option<Duration> {
        if d < min || d > max {
            self.err(
                key,
                format!(
                    "{} is out of range: use {} to {} ({why})",
                    fmt_duration(d),
                    fmt_duration(min),
                    fmt_duration(max)
                ),
            );
            None
        } else {
            Some(d)
        }
    }

    /// An integer within `1..=max`.
    fn count_in(&mut self, key: &str, n: i64, max: u32, default: u32) -> Option<u32> {
        match u32::try_from(n) {
            Ok(v) if (1..=max).contains(&v) => Some(v),
            _ => {
                self.err(
                    key,
                    format!("{n} is out of range: use 1 to {max} (default {default})"),
                );
                None
            }
        }
    }

    fn gossip_timing(&mut self, raw: &FileConfig) -> Option<GossipTiming> {
        let c = &raw.cluster;
        let ms = Duration::from_millis;
        let interval = self.duration_in(
            "cluster.probe_interval",
            c.probe_interval.0,
            ms(10),
            Duration::from_secs(60),
            "default 100ms",
        );
        let timeout = self.duration_in(
            "cluster.probe_timeout",
            c.probe_timeout.0,
            ms(1),
            Duration::from_secs(60),
            "default 40ms",
        );
        let suspicion = self.duration_in(
            "cluster.suspicion_timeout",
            c.suspicion_timeout.0,
            ms(10),
            Duration::from_secs(600),
            "default 150ms",
        );
        let gossip = self.duration_in(
            "cluster.gossip_interval",
            c.gossip_interval.0,
            ms(10),
            Duration::from_secs(60),
            "default 100ms",
        );
        let sync = self.duration_in(
            "cluster.sync_timeout",
            c.sync_timeout.0,
            Duration::from_secs(1),
            Duration::from_secs(600),
            "default 5s",
        );
        let mult = self.count_in(
            "cluster.suspicion_max_multiplier",
            c.suspicion_max_multiplier,
            10,
            3,
        );
        let indirect = self.count_in("cluster.indirect_probes", c.indirect_probes, 10, 3);
        let fanout = self.count_in("cluster.gossip_fanout", c.gossip_fanout, 10, 3);
        let (interval, timeout, suspicion, gossip, sync, mult, indirect, fanout) =
            all_some!(interval, timeout, suspicion, gossip, sync, mult, indirect, fanout)?;
        let mut ok = true;
        if timeout >= interval {
            let at = self.written(&["cluster.probe_timeout", "cluster.probe_interval"]);
            let message = format!(
                "probe_timeout ({}) must be shorter than probe_interval ({}): the rest of the interval is for the indirect probes",
                self.value_at("cluster.probe_timeout", timeout, at),
                self.value_at("cluster.probe_interval", interval, at),
            );
            self.err(at, message);
            ok = false;
        }
        if suspicion < interval {
            let at = self.written(&["cluster.suspicion_timeout", "cluster.probe_interval"]);
            let message = format!(
                "suspicion_timeout ({}) must be at least probe_interval ({}): a suspected member needs time to hear of it and refute",
                self.value_at("cluster.suspicion_timeout", suspicion, at),
                self.value_at("cluster.probe_interval", interval, at),
            );
            self.err(at, message);
            ok = false;
        }
        ok.then_some(GossipTiming {
            probe_interval: interval,
            probe_timeout: timeout,
            suspicion_timeout: suspicion,
            suspicion_max_multiplier: mult,
            indirect_probes: indirect,
            gossip_interval: gossip,
            gossip_fanout: fanout,
            sync_timeout: sync,
        })
    }

    fn metrics(&mut self, raw: &FileConfig, cluster: Option<&Cluster>) -> Option<Metrics> {
        let text = raw.metrics.listen.trim();
        if text.is_empty() {
            return Some(Metrics { listen: None });
        }
        match parse_listen_addr(text, 7472) {
            Ok(addr) => {
                if let Some(c) = cluster.filter(|c| c.enabled) {
                    if clash(addr, c.bind) {
                        self.err(
                            "metrics.listen",
                            format!(
                                "{addr} collides with cluster.bind {} (gossip also uses TCP on its port); choose another port",
                                c.bind
                            ),
                        );
                        return None;
                    }
                }
                Some(Metrics { listen: Some(addr) })
            }
            Err(e) => {
                self.err(
                    "metrics.listen",
                    format!("{e}; or \"\" to disable the metrics endpoint"),
                );
                None
            }
        }
    }

    fn log(&mut self, raw: &FileConfig) -> Option<Log> {
        match check_log_level(&raw.log.level) {
            Ok(()) => Some(Log {
                level: raw.log.level.trim().to_string(),
                format: raw.log.format,
            }),
            Err(e) => {
                self.err("log.level", e);
                None
            }
        }
    }

    fn peers(&mut self, raw: &FileConfig) -> Option<Vec<Peer>> {
        let mut out = Vec::new();
        let mut ok = true;
        let mut names: HashMap<String, usize> = HashMap::new();
        for (i, p) in raw.bgp.peer.iter().enumerate() {
            let at = format!("bgp.peer[{i}]");
            let name = peer_name(p);
            if let Some(name) = &name {
                let key = if p.name.is_some() {
                    format!("{at}.name")
                } else {
                    format!("{at}.address")
                };
                if p.name.is_some()
                    && (name.is_empty()
                        || name.chars().any(|c| c.is_whitespace() || c.is_control()))
                {
                    self.err(
                        &key,
                        format!("peer name {name:?} must be non-empty, without whitespace"),
                    );
                    ok = false;
                } else if let Some(&j) = names.get(name) {
                    let hint = if p.name.is_none() {
                        "; peers without a name are named by their address: give each a distinct name = \"…\""
                    } else {
                        ""
                    };
                    self.err(
                        &key,
                        format!(
                            "peer name {name:?} is already used by bgp.peer[{j}] ({}); peer names must be unique{hint}",
                            self.index.describe(&format!("bgp.peer[{j}]")),
                        ),
                    );
                    ok = false;
                } else {
                    names.insert(name.clone(), i);
                }
            }
            match self.peer(&at, p, name) {
                Some(peer) => out.push(peer),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn asn(&mut self, key: &str, asn: Option<i64>, what: &str) -> Option<u32> {
        match asn {
            None => {
                self.err(key, format!("is required: {what}, 1-4294967295"));
                None
            }
            Some(0) => {
                self.err(key, "AS 0 is reserved (RFC 7607); use 1-4294967295");
                None
            }
            Some(n) => match u32::try_from(n) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(key, format!("AS {n} is out of range; use 1-4294967295"));
                    None
                }
            },
        }
    }

    fn peer(&mut self, at: &str, p: &PeerSection, name: Option<String>) -> Option<Peer> {
        let key = |k: &str| format!("{at}.{k}");
        let address = match &p.address {
            None => {
                self.err(
                    &key("address"),
                    "is required: the neighbour's IP address, like address = \"192.168.100.3\"",
                );
                None
            }
            Some(a) => match a.trim().parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => {
                    self.err(&key("address"), format!("{a:?} is not an IP address; write an IPv4 or IPv6 address like \"192.168.100.3\" or \"fd00:100::3\""));
                    None
                }
            },
        };
        let asn = self.asn(&key("asn"), p.asn, "the neighbour's AS number");
        let my_asn = self.asn(&key("my_asn"), p.my_asn, "our AS number");
        let port = match p.port {
            None => Some(179),
            Some(n) => match u16::try_from(n).ok().filter(|n| *n != 0) {
                Some(n) => Some(n),
                None => {
                    self.err(
                        &key("port"),
                        format!("{n} is not a TCP port; use 1-65535 (BGP's is 179)"),
                    );
                    None
                }
            },
        };
        let hold = self.hold_time(&key("hold_time"), p.hold_time.0);
        let keepalive = match (p.keepalive_time, hold) {
            (None, Some(h)) => Some(Duration::from_secs(h.as_secs() / 3)),
            (None, None) => None,
            (Some(k), hold) => self.keepalive(&key("keepalive_time"), k.0, hold),
        };
        let connect = self.positive(&key("connect_time"), p.connect_time.0);
        let password_file = self.path(&key("password_file"), &p.password_file);
        let multihop = match p.ebgp_multihop {
            None => Some(None),
            Some(t) => match u8::try_from(t).ok().filter(|t| *t >= 2) {
                Some(_) if asn.is_some() && asn == my_asn => {
                    self.err(
                        &key("ebgp_multihop"),
                        format!("applies to eBGP sessions only; this peer is iBGP (asn = my_asn = {}): iBGP sessions are multi-hop already", asn.unwrap_or_default()),
                    );
                    None
                }
                Some(t) => Some(Some(t)),
                None => {
                    self.err(
                        &key("ebgp_multihop"),
                        format!("TTL {t} is out of range 2-255 (a directly connected peer needs no ebgp_multihop: leave it out)"),
                    );
                    None
                }
            },
        };
        let source = match &p.source_address {
            None => Some(None),
            Some(s) => match s.trim().parse::<IpAddr>() {
                Ok(ip) => match address {
                    Some(a) if Family::of(a) != Family::of(ip) => {
                        self.err(
                            &key("source_address"),
                            format!("{ip} is {} but the peer address {a} is {}; use a local address of the same family", Family::of(ip), Family::of(a)),
                        );
                        None
                    }
                    _ => Some(Some(ip)),
                },
                Err(_) => {
                    self.err(&key("source_address"), format!("{s:?} is not an IP address; write a local address of this node, like \"192.168.100.10\""));
                    None
                }
            },
        };
        let router_id = match &p.router_id {
            None => Some(None),
            Some(s) => match s.trim().parse::<Ipv4Addr>() {
                Ok(id) if id.is_unspecified() => {
                    self.err(&key("router_id"), "0.0.0.0 is not a valid BGP identifier (RFC 6286); use a non-zero IPv4 address");
                    None
                }
                Ok(id) => Some(Some(id)),
                Err(_) => {
                    self.err(&key("router_id"), format!("{s:?} is not an IPv4 address: a BGP identifier is 32 bits, written like \"10.0.0.1\" (also for IPv6 sessions)"));
                    None
                }
            },
        };
        let selector_ok = self.selector(&key("node_selector"), &p.node_selector);
        let (
            name,
            address,
            asn,
            my_asn,
            port,
            hold,
            keepalive,
            connect,
            password_file,
            multihop,
            source,
            router_id,
        ) = all_some!(
            name,
            address,
            asn,
            my_asn,
            port,
            hold,
            keepalive,
            connect,
            password_file,
            multihop,
            source,
            router_id
        )?;
        selector_ok.then(|| Peer {
            name,
            address,
            asn,
            my_asn,
            port,
            hold_time: hold,
            keepalive_time: keepalive,
            connect_time: connect,
            password_file,
            ebgp_multihop: multihop,
            source_address: source,
            router_id,
            node_selector: p.node_selector.clone(),
            passive: p.passive,
            graceful_restart: p.graceful_restart,
        })
    }

    fn hold_time(&mut self, key: &str, hold: Duration) -> Option<Duration> {
        if hold.subsec_nanos() != 0 {
            self.err(
                key,
                format!(
                    "{} is not a whole number of seconds; BGP negotiates hold times in seconds",
                    fmt_duration(hold)
                ),
            );
            None
        } else if hold > Duration::ZERO && hold < Duration::from_secs(3) {
            self.err(key, format!("a hold time of {} is not allowed: use \"0s\" (no keepalives) or at least \"3s\" (RFC 4271, 4.2)", fmt_duration(hold)));
            None
        } else if hold > Duration::from_secs(65535) {
            self.err(
                key,
                format!(
                    "{} is too long; BGP's hold time is at most 65535s",
                    fmt_duration(hold)
                ),
            );
            None
        } else {
            Some(hold)
        }
    }

    fn keepalive(&mut self, key: &str, k: Duration, hold: Option<Duration>) -> Option<Duration> {
        if k.subsec_nanos() != 0 {
            self.err(
                key,
                format!(
                    "{} is not a whole number of seconds; BGP keepalives are timed in seconds",
                    fmt_duration(k)
                ),
            );
            return None;
        }
        let hold = hold?;
        if k > hold {
            self.err(key, format!("keepalive_time ({}) must not exceed hold_time ({}); a third of the hold time is usual", fmt_duration(k), fmt_duration(hold)));
            None
        } else if k.is_zero() && !hold.is_zero() {
            self.err(key, format!("0s sends no keepalives, so the peer's hold timer ({}) would expire; use at most the hold time, usually a third of it", fmt_duration(hold)));
            None
        } else {
            Some(k)
        }
    }

    fn pools(&mut self, raw: &FileConfig) -> Option<Vec<Pool>> {
        let peer_names: Vec<String> = raw.bgp.peer.iter().filter_map(peer_name).collect();
        let mut names: HashMap<&str, usize> = HashMap::new();
        let mut out = Vec::new();
        let mut ok = true;
        let mut all_ranges: Vec<(IpRange, usize, usize)> = Vec::new();
        for (i, p) in raw.pool.iter().enumerate() {
            let at = format!("pool[{i}]");
            match &p.name {
                None => {
                    self.err(
                        &format!("{at}.name"),
                        "is required: every pool needs a name, like name = \"default\"",
                    );
                    ok = false;
                }
                Some(name) => {
                    if let Err(e) = check_pool_name(name) {
                        self.err(&format!("{at}.name"), e);
                        ok = false;
                    } else if let Some(&j) = names.get(name.as_str()) {
                        self.err(
                            &format!("{at}.name"),
                            format!("pool name {name:?} is already used by pool[{j}] ({}); pool names must be unique", self.index.describe(&format!("pool[{j}].name"))),
                        );
                        ok = false;
                    } else {
                        names.insert(name, i);
                    }
                }
            }
            let ranges = self.addresses(&at, p);
            if let Some(ranges) = &ranges {
                all_ranges.extend(ranges.iter().enumerate().map(|(j, r)| (*r, i, j)));
            }
            match self.pool(&at, p, ranges, &peer_names, raw.bgp.peer.is_empty()) {
                Some(pool) => out.push(pool),
                None => ok = false,
            }
        }
        if !self.overlaps(raw, all_ranges) {
            ok = false;
        }
        ok.then_some(out)
    }

    fn addresses(&mut self, at: &str, p: &PoolSection) -> Option<Vec<IpRange>> {
        let key = format!("{at}.addresses");
        if p.addresses.is_empty() {
            self.err(&key, "the pool has no addresses; list CIDRs, ranges or single addresses, like addresses = [\"192.168.10.10-192.168.10.30\", \"fd00:10::/120\"]");
            return None;
        }
        let mut ranges = Vec::new();
        let mut ok = true;
        for (j, text) in p.addresses.iter().enumerate() {
            match text.parse::<IpRange>() {
                Ok(r) => ranges.push(r),
                Err(e) => {
                    self.err(&format!("{key}[{j}]"), e.to_string());
                    ok = false;
                }
            }
        }
        if ok && p.avoid_buggy_ips && !ranges.is_empty() && ranges.iter().all(only_buggy) {
            self.err(&format!("{at}.avoid_buggy_ips"), "with avoid_buggy_ips = true every address of this pool is skipped (they all end in .0 or .255); add addresses or set it to false");
            ok = false;
        }
        ok.then_some(ranges)
    }

    fn pool(
        &mut self,
        at: &str,
        p: &PoolSection,
        ranges: Option<Vec<IpRange>>,
        peer_names: &[String],
        no_peers: bool,
    ) -> Option<Pool> {
        let mut ok = self.selector(&format!("{at}.node_selector"), &p.node_selector);
        let mode = match p.mode {
            None => {
                self.err(&format!("{at}.mode"), "is required: mode = \"l2\" (ARP/NDP on the LAN) or mode = \"bgp\" (routes to BGP peers)");
                None
            }
            Some(Mode::L2) => {
                if p.bgp.is_some() {
                    self.err(&format!("{at}.bgp"), "[pool.bgp] applies to bgp pools only, and this pool has mode = \"l2\"; remove the table or set mode = \"bgp\"");
                    ok = false;
                }
                self.interfaces(at, p.interfaces.as_deref().unwrap_or_default())
                    .map(|interfaces| PoolMode::L2 { interfaces })
            }
            Some(Mode::Bgp) => {
                if p.interfaces.is_some() {
                    self.err(&format!("{at}.interfaces"), "applies to l2 pools only, and this pool has mode = \"bgp\" (its routes go out on the peers' sessions); remove it or set mode = \"l2\"");
                    ok = false;
                }
                if no_peers {
                    self.err(&format!("{at}.mode"), "this pool is announced by BGP, but no [[bgp.peer]] is configured; add a peer or use mode = \"l2\"");
                    ok = false;
                }
                self.advertisement(at, p, ranges.as_deref().unwrap_or_default(), peer_names)
                    .map(PoolMode::Bgp)
            }
        };
        let name = p.name.clone();
        let (name, addresses, mode) = all_some!(name, ranges, mode)?;
        ok.then(|| Pool {
            name,
            addresses,
            avoid_buggy_ips: p.avoid_buggy_ips,
            auto_assign: p.auto_assign,
            node_selector: p.node_selector.clone(),
            mode,
        })
    }

    fn interfaces(&mut self, at: &str, list: &[String]) -> Option<Vec<String>> {
        let mut ok = true;
        for (j, name) in list.iter().enumerate() {
            let key = format!("{at}.interfaces[{j}]");
            if let Err(e) = check_interface_name(name) {
                self.err(&key, e);
                ok = false;
            } else if let Some(k) = list[..j].iter().position(|n| n == name) {
                self.err(
                    &key,
                    format!("{name:?} is listed twice (also {at}.interfaces[{k}])"),
                );
                ok = false;
            }
        }
        ok.then(|| list.to_vec())
    }

    fn advertisement(
        &mut self,
        at: &str,
        p: &PoolSection,
        ranges: &[IpRange],
        peer_names: &[String],
    ) -> Option<BgpAdvertisement> {
        let default = Default::default();
        let b = p.bgp.as_ref().unwrap_or(&default);
        let mut ok = true;
        for (j, peer) in b.peers.iter().enumerate() {
            let key = format!("{at}.bgp.peers[{j}]");
            if !peer_names.iter().any(|n| n == peer) {
                let known: Vec<&str> = peer_names.iter().map(String::as_str).collect();
                let hint = match closest(peer, &known) {
                    Some(c) => format!("; did you mean {c:?}?"),
                    None if known.is_empty() => String::new(),
                    None => format!("; known peers: {}", known.join(", ")),
                };
                self.err(&key, format!("no [[bgp.peer]] is named {peer:?} (a peer's name defaults to its address){hint}"));
                ok = false;
            } else if let Some(k) = b.peers[..j].iter().position(|n| n == peer) {
                self.err(
                    &key,
                    format!("{peer:?} is listed twice (also {at}.bgp.peers[{k}])"),
                );
                ok = false;
            }
        }
        let mut communities: Vec<(usize, Community)> = Vec::new();
        for (j, text) in b.communities.iter().enumerate() {
            let key = format!("{at}.bgp.communities[{j}]");
            match text.parse::<Community>() {
                Ok(c) => match communities.iter().find(|(_, o)| *o == c) {
                    Some((k, _)) => {
                        self.err(&key, format!("{text:?} is listed twice (as {at}.bgp.communities[{k}], {:?}); list each community once", b.communities[*k]));
                        ok = false;
                    }
                    None => communities.push((j, c)),
                },
                Err(e) => {
                    self.err(&key, e.to_string());
                    ok = false;
                }
            }
        }
        let communities = communities.into_iter().map(|(_, c)| c).collect();
        let local_pref = match b.local_pref {
            None => Some(None),
            Some(n) => match u32::try_from(n) {
                Ok(n) => Some(Some(n)),
                Err(_) => {
                    self.err(
                        &format!("{at}.bgp.local_pref"),
                        format!("{n} is out of range; LOCAL_PREF is 0-4294967295"),
                    );
                    None
                }
            },
        };
        let v4 = self.aggregation(
            at,
            "aggregation_length",
            b.aggregation_length,
            Family::V4,
            ranges,
        );
        let v6 = self.aggregation(
            at,
            "aggregation_length_v6",
            b.aggregation_length_v6,
            Family::V6,
            ranges,
        );
        let (local_pref, v4, v6) = all_some!(local_pref, v4, v6)?;
        ok.then(|| BgpAdvertisement {
            peers: b.peers.clone(),
            communities,
            local_pref,
            aggregation_length: v4,
            aggregation_length_v6: v6,
        })
    }

    fn aggregation(
        &mut self,
        at: &str,
        name: &str,
        value: Option<i64>,
        family: Family,
        ranges: &[IpRange],
    ) -> Option<u8> {
        let key = format!("{at}.bgp.{name}");
        let bits = family.bits();
        let len = match value {
            None => return Some(bits),
            Some(n) => match u8::try_from(n).ok().filter(|n| *n <= bits) {
                Some(n) => n,
                None => {
                    self.err(
                        &key,
                        format!("{n} is not an {family} prefix length; use 0-{bits}"),
                    );
                    return None;
                }
            },
        };
        let most_specific = ranges
            .iter()
            .filter(|r| r.family() == family)
            .flat_map(IpRange::to_cidrs)
            .max_by_key(|net| net.prefix_len());
        if let Some(net) = most_specific {
            if net.prefix_len() > len {
                self.err(
                    &key,
                    format!("/{len} is shorter than {net}, part of this pool's addresses: a route aggregated to /{len} would announce addresses outside the pool; use at least {}", net.prefix_len()),
                );
                return None;
            }
        }
        Some(len)
    }

    /// Reports every address that overlaps an earlier one (in this pool or another). Returns
    /// whether there were none.
    fn overlaps(&mut self, raw: &FileConfig, mut all: Vec<(IpRange, usize, usize)>) -> bool {
        all.sort_by_key(|(r, i, j)| (r.family(), to_u128(r.start()), to_u128(r.end()), *i, *j));
        let mut reach: Option<(IpRange, usize, usize)> = None;
        let mut found = Vec::new();
        for cur in &all {
            if let Some(prev) = reach {
                if prev.0.overlaps(&cur.0) {
                    let (first, second) = if (prev.1, prev.2) < (cur.1, cur.2) {
                        (prev, *cur)
                    } else {
                        (*cur, prev)
                    };
                    found.push((first, second));
                }
                if prev.0.family() != cur.0.family() || to_u128(cur.0.end()) > to_u128(prev.0.end())
                {
                    reach = Some(*cur);
                }
            } else {
                reach = Some(*cur);
            }
        }
        found.sort_by_key(|(_, s)| (s.1, s.2));
        let none = found.is_empty();
        for (first, second) in found {
            let text =
                |i: usize, j: usize| raw.pool[i].addresses.get(j).cloned().unwrap_or_default();
            let first_key = format!("pool[{}].addresses[{}]", first.1, first.2);
            let whose = if first.1 == second.1 {
                "of the same pool".to_string()
            } else {
                match &raw.pool[first.1].name {
                    Some(n) => format!("of pool {n:?}"),
                    None => "of another pool".to_string(),
                }
            };
            self.err(
                &format!("pool[{}].addresses[{}]", second.1, second.2),
                format!(
                    "{:?} overlaps {:?} {whose} ({first_key}, {}); every address may belong to one pool, once",
                    text(second.1, second.2),
                    text(first.1, first.2),
                    self.index.describe(&first_key),
                ),
            );
        }
        none
    }
}

fn peer_name(p: &PeerSection) -> Option<String> {
    p.name
        .clone()
        .or_else(|| p.address.as_ref().map(|a| a.trim().to_string()))
}

/// Whether every address of the range ends in `.0` or `.255` (IPv4 only).
fn only_buggy(r: &IpRange) -> bool {
    r.family() == Family::V4
        && r.size() <= 2
        && (0..r.size()).all(|n| {
            r.nth(n)
                .is_some_and(|ip| matches!(ip, IpAddr::V4(a) if matches!(a.octets()[3], 0 | 255)))
        })
}

/// Whether two listening addresses would take the same port.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port() && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

#[cfg(test)]
mod tests;
