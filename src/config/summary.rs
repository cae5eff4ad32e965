//! `ferrolb check-config`'s short summary of a valid configuration. The first line stands on
//! its own (the daemon uses it as its systemd `STATUS=`).

use std::fmt::Write as _;

use super::model::{Config, Mode, Pool, PoolMode};
use super::values::fmt_duration;
use crate::ipam::{Family, IpRange};

impl Config {
    /// A few lines for `check-config`: an overview, then each pool with its mode and size, each
    /// peer, and how Kubernetes, gossip, metrics and logs are set up.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let node = self.node.name.as_deref().unwrap_or("(host name)");
        let _ = writeln!(
            s,
            "node {node}: {}, {}, gossip {}, metrics {}",
            count(self.pools.len(), "pool"),
            count(self.peers.len(), "BGP peer"),
            if self.cluster.enabled { "on" } else { "off" },
            if self.metrics.listen.is_some() {
                "on"
            } else {
                "off"
            },
        );
        for pool in &self.pools {
            let _ = writeln!(s, "pool {}: {}", pool.name, self.describe_pool(pool));
        }
        for peer in &self.peers {
            let name = if peer.name == peer.address.to_string() {
                peer.name.clone()
            } else {
                format!("{} ({})", peer.name, peer.address)
            };
            let kind = if peer.is_ibgp() { ", iBGP" } else { "" };
            let _ = writeln!(
                s,
                "peer {name}: AS {} from AS {}{kind}, hold {}{}",
                peer.asn,
                peer.my_asn,
                fmt_duration(peer.hold_time),
                if peer.passive { ", passive" } else { "" },
            );
        }
        if self.pools.iter().any(|p| p.mode_kind() == Mode::L2) {
            let _ = writeln!(
                s,
                "l2: {} failback{}{}",
                self.l2.failback,
                if self.l2.require_quorum {
                    ", announces only with a quorum"
                } else {
                    ""
                },
                match self.l2.gratuitous_refresh {
                    Some(d) => format!(
                        ", gratuitous refresh every {}",
                        humantime::format_duration(d)
                    ),
                    None => String::new(),
                },
            );
        }
        let k = &self.kubernetes;
        let api = match (&k.kubeconfig, &k.server) {
            (Some(path), _) => format!("kubeconfig {}", path.display()),
            (None, Some(url)) => format!("server {url}"),
            (None, None) => "default credentials".to_string(),
        };
        let class = match &k.load_balancer_class {
            Some(c) => format!("Services of class {c}"),
            None => "Services without a class".to_string(),
        };
        let _ = writeln!(
            s,
            "kubernetes: {api}, {class}, lease in {}",
            k.lease_namespace
        );
        let c = &self.cluster;
        if c.enabled {
            let security = match (&c.secret_file, c.insecure) {
                (_, true) => "UNENCRYPTED".to_string(),
                (Some(path), false) => format!("encrypted with {}", path.display()),
                (None, false) => "encrypted".to_string(),
            };
            let join = if c.join.is_empty() {
                "every Node's InternalIP".to_string()
            } else {
                c.join
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let t = &c.timing;
            let _ = writeln!(
                s,
                "gossip: on, {}, {security}, joins {join}; probe every {} (ack within {}), down after {}-{} of suspicion",
                c.bind,
                fmt_duration(t.probe_interval),
                fmt_duration(t.probe_timeout),
                fmt_duration(t.suspicion_timeout),
                fmt_duration(t.suspicion_timeout * t.suspicion_max_multiplier),
            );
        } else {
            let _ = writeln!(s, "gossip: off (node liveness from Node Ready conditions)");
        }
        match self.metrics.listen {
            Some(addr) => {
                let _ = writeln!(s, "metrics: http://{addr}/metrics");
            }
            None => {
                let _ = writeln!(s, "metrics: off");
            }
        }
        let _ = writeln!(s, "log: {}, {}", self.log.level, self.log.format);
        s
    }

    fn describe_pool(&self, pool: &Pool) -> String {
        let mut d = pool.mode_kind().to_string();
        match &pool.mode {
            PoolMode::L2 { interfaces } if !interfaces.is_empty() => {
                let _ = write!(d, " on {}", interfaces.join(", "));
            }
            PoolMode::L2 { .. } => {}
            PoolMode::Bgp(adv) if adv.peers.is_empty() => d.push_str(" to all peers"),
            PoolMode::Bgp(adv) => {
                let _ = write!(d, " to {}", adv.peers.join(", "));
            }
        }
        let sizes: Vec<String> = [Family::V4, Family::V6]
            .into_iter()
            .filter_map(|f| {
                let n = pool
                    .addresses
                    .iter()
                    .filter(|r| r.family() == f)
                    .fold(0u128, |n, r| n.saturating_add(r.size()));
                (n > 0).then(|| format!("{} {f}", amount(n)))
            })
            .collect();
        let total: u128 = pool
            .addresses
            .iter()
            .fold(0u128, |n, r| n.saturating_add(r.size()));
        let noun = if total == 1 { "address" } else { "addresses" };
        let ranges: Vec<String> = pool.addresses.iter().map(IpRange::to_string).collect();
        let _ = write!(d, ", {} {noun} ({})", sizes.join(" + "), ranges.join(", "));
        if !pool.auto_assign {
            d.push_str(", on request only");
        }
        if pool.avoid_buggy_ips {
            d.push_str(", avoiding .0 and .255");
        }
        if !pool.node_selector.is_empty() {
            let sel: Vec<String> = pool
                .node_selector
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = write!(d, ", nodes {}", sel.join(","));
        }
        d
    }
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// A count of addresses; large powers of two (IPv6 prefixes) as `2^n`.
fn amount(n: u128) -> String {
    if n >= 1 << 32 && n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else if n == u128::MAX {
        "2^128".to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts() {
        assert_eq!(amount(21), "21");
        assert_eq!(amount(1 << 64), "2^64");
        assert_eq!(amount(u128::MAX), "2^128");
        assert_eq!(amount((1 << 40) + 1), "1099511627777");
    }

    #[test]
    fn summarises_pools_peers_and_services() {
        let text = r#"
            [cluster]
            secret_file = "/etc/ferrolb/gossip.key"
            [[pool]]
            name = "default"
            mode = "l2"
            addresses = ["192.168.10.10-192.168.10.30", "fd00:10::/120"]
            [[pool]]
            name = "transit"
            mode = "bgp"
            addresses = ["10.1.0.0/24"]
            auto_assign = false
            [[bgp.peer]]
            address = "192.168.100.3"
            asn = 64001
            my_asn = 64500
        "#;
        let loaded = crate::config::load_str("t.toml", text).unwrap();
        let s = loaded.config.summary();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(
            lines[0],
            "node (host name): 2 pools, 1 BGP peer, gossip on, metrics on"
        );
        assert_eq!(
            lines[1],
            "pool default: l2, 21 IPv4 + 256 IPv6 addresses (192.168.10.10-192.168.10.30, fd00:10::/120)"
        );
        assert_eq!(
            lines[2],
            "pool transit: bgp to all peers, 256 IPv4 addresses (10.1.0.0/24), on request only"
        );
        assert_eq!(
            lines[3],
            "peer 192.168.100.3: AS 64001 from AS 64500, hold 90s"
        );
        assert!(s.contains("gossip: on, 0.0.0.0:7946, encrypted with /etc/ferrolb/gossip.key"));
        assert!(s.contains("metrics: http://0.0.0.0:7472/metrics"));
    }
}
