//! `gobgpd` in a lab namespace: the router under test, or a stand-in node speaker that
//! originates routes through its CLI.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde_json::Value;

use super::super::netlab::{tail, wait_for, Host, Lab, Proc};
use super::{require_gobgp, STARTUP};

/// One neighbour of a `gobgpd`.
#[derive(Debug, Clone)]
pub struct GoBgpNeighbor {
    /// The peer's address.
    pub addr: IpAddr,
    /// Its AS number.
    pub peer_as: u32,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Only wait for the peer's connection.
    pub passive: bool,
}

/// What a `gobgpd` is configured with.
#[derive(Debug, Clone)]
pub struct GoBgpConfig {
    /// Its AS number.
    pub asn: u32,
    /// Router id.
    pub router_id: Ipv4Addr,
    /// Listen for BGP on port 179 (else it only dials out: `port = -1`).
    pub listen: bool,
    /// The gRPC API port on 127.0.0.1 (of its namespace).
    pub api_port: u16,
    /// Its neighbours (IPv4 and IPv6 unicast for each).
    pub neighbors: Vec<GoBgpNeighbor>,
}

impl GoBgpConfig {
    /// A stand-in node speaker on `host`: AS `asn`, listening on 179 and dialling `router`
    /// (AS `router_as`), IPv4 and IPv6 unicast.
    pub fn speaker(
        host: &Host,
        asn: u32,
        router: IpAddr,
        router_as: u32,
        api_port: u16,
    ) -> GoBgpConfig {
        GoBgpConfig {
            asn,
            router_id: host.ipv4,
            listen: true,
            api_port,
            neighbors: vec![GoBgpNeighbor {
                addr: router,
                peer_as: router_as,
                password: None,
                passive: false,
            }],
        }
    }

    /// The toml file.
    pub fn render(&self) -> String {
        let mut t = format!(
            "[global.config]\n  as = {}\n  router-id = \"{}\"\n",
            self.asn, self.router_id
        );
        if !self.listen {
            t += "  port = -1\n";
        }
        for n in &self.neighbors {
            let _ = write!(
                t,
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}\n",
                n.addr, n.peer_as
            );
            if let Some(p) = &n.password {
                let _ = writeln!(t, "    auth-password = \"{p}\"");
            }
            let _ = writeln!(
                t,
                "  [neighbors.transport.config]\n    passive-mode = {}",
                n.passive
            );
            // Dial soon (the default idle hold after a reset is 30 s).
            t += "  [neighbors.timers.config]\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n";
            for family in ["ipv4-unicast", "ipv6-unicast"] {
                let _ = writeln!(
                    t,
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\""
                );
            }
        }
        t
    }
}

/// A running `gobgpd`: the router under test, or a stand-in node speaker injecting routes.
pub struct GoBgpRouter<'a> {
    lab: &'a Lab,
    /// Its namespace.
    pub host: Host,
    /// Its gRPC API port.
    pub api_port: u16,
    /// The process.
    pub proc: Proc,
}

impl<'a> GoBgpRouter<'a> {
    /// Starts `gobgpd` in `host`'s namespace; returns once its API answers.
    pub fn start(lab: &'a Lab, host: &Host, config: &GoBgpConfig) -> GoBgpRouter<'a> {
        require_gobgp();
        let conf = lab.write_file(
            &format!("gobgpd-{}.toml", host.name),
            &config.render(),
            0o644,
        );
        let log = lab.path(&format!("gobgpd-{}.log", host.name));
        let api = format!("127.0.0.1:{}", config.api_port);
        let proc = lab.spawn(
            &host.ns,
            "gobgpd",
            &[
                "-f",
                &conf.to_string_lossy(),
                "-t",
                "toml",
                "-p",
                "--api-hosts",
                &api,
                "--pprof-disable",
            ],
            &log,
        );
        let g = GoBgpRouter {
            lab,
            host: host.clone(),
            api_port: config.api_port,
            proc,
        };
        wait_for("gobgpd's API", STARTUP, || {
            if !lab.running(proc) {
                panic!("gobgpd exited:\n{}", tail(&log, 20));
            }
            g.try_gobgp(&["global"]).map(|_| ())
        });
        g
    }

    /// A stand-in node speaker with [`GoBgpConfig::speaker`]'s configuration.
    pub fn speaker(
        lab: &'a Lab,
        host: &Host,
        asn: u32,
        router: IpAddr,
        router_as: u32,
        api_port: u16,
    ) -> GoBgpRouter<'a> {
        let config = GoBgpConfig::speaker(host, asn, router, router_as, api_port);
        GoBgpRouter::start(lab, host, &config)
    }

    /// `gobgp -p PORT ARGS` in its namespace, or the error.
    pub fn try_gobgp(&self, args: &[&str]) -> Result<String, String> {
        let port = self.api_port.to_string();
        let mut all = vec!["-p", &port];
        all.extend_from_slice(args);
        let out = self.lab.exec(&self.host.ns, "gobgp", &all);
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(format!("gobgp {args:?}: {}{}", out.stdout, out.stderr))
        }
    }

    /// `gobgp ARGS -j`, parsed (`Null` when not JSON); panics when gobgp fails.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("-j");
        let text = self.try_gobgp(&all).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// The session state with `addr` as GoBGP numbers it (6 = Established; 0 unknown).
    pub fn neighbor_state(&self, addr: IpAddr) -> i64 {
        self.json(&["neighbor"])
            .as_array()
            .into_iter()
            .flatten()
            .find(|n| n["conf"]["neighbor_address"] == addr.to_string())
            .and_then(|n| n["state"]["session_state"].as_i64())
            .unwrap_or(0)
    }

    /// Waits until the session with `addr` is Established.
    pub fn wait_established(&self, addr: IpAddr, timeout: Duration) {
        wait_for(
            &format!("gobgpd's session with {addr}"),
            timeout,
            || match self.neighbor_state(addr) {
                6 => Ok(()),
                s => Err(format!("session_state {s}")),
            },
        );
    }

    /// The global RIB of `family` (`"ipv4"`, `"ipv6"`): prefix → the next hop of each path,
    /// sorted.
    pub fn rib(&self, family: &str) -> BTreeMap<String, Vec<IpAddr>> {
        let rib = self.json(&["global", "rib", "-a", family]);
        let mut out = BTreeMap::new();
        for (prefix, paths) in rib.as_object().into_iter().flatten() {
            let mut hops: Vec<IpAddr> = paths
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    p["attrs"].as_array()?.iter().find_map(|a| {
                        // NEXT_HOP (3) or MP_REACH_NLRI (14).
                        matches!(a["type"].as_i64(), Some(3 | 14))
                            .then(|| a["nexthop"].as_str()?.parse::<IpAddr>().ok())
                            .flatten()
                    })
                })
                .collect();
            hops.sort();
            out.insert(prefix.clone(), hops);
        }
        out
    }

    /// The next hops GoBGP holds for `prefix` (empty when none).
    pub fn paths(&self, prefix: &str) -> Vec<IpAddr> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.rib(family).remove(prefix).unwrap_or_default()
    }

    /// Originates `prefix` with next hop `nexthop` (`gobgp global rib add`).
    pub fn announce(&self, prefix: &str, nexthop: IpAddr) {
        self.announce_with(prefix, nexthop, &[]);
    }

    /// Like [`GoBgpRouter::announce`], with attributes in gobgp's words appended
    /// (`["community", "64500:100", "large-community", "64500:1:2", "local-pref", "200"]`).
    pub fn announce_with(&self, prefix: &str, nexthop: IpAddr, attrs: &[&str]) {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let nh = nexthop.to_string();
        let mut args = vec!["global", "rib", "add", "-a", family, prefix, "nexthop", &nh];
        args.extend_from_slice(attrs);
        self.try_gobgp(&args).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Withdraws `prefix` it originated (`gobgp global rib del`).
    pub fn withdraw(&self, prefix: &str) {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        self.try_gobgp(&["global", "rib", "del", "-a", family, prefix])
            .unwrap_or_else(|e| panic!("{e}"));
    }
}
