//! BGP routers in the namespace lab ([`super::netlab`]): FRR (`zebra` + `bgpd`) or GoBGP
//! (`gobgpd`) as the router, GoBGP as a stand-in node speaker that injects routes, and a
//! topology of three nodes and a router on a LAN with a client behind the router.
//!
//! ```ignore
//! let lab = Lab::new("fbr1");
//! let topo = BgpTopology::build(&lab, 1, &[SERVICE_V4]);
//! let frr = FrrRouter::start(&lab, &topo.router, &FrrConfig::new(64001).neighbors(&topo.node_ips(), 64500));
//! frr.wait_established(topo.nodes[0].ipv4.into(), WAIT);
//! frr.paths("10.96.0.10/32");              // next hops of every path FRR holds
//! frr.fib_nexthops("10.96.0.10/32");       // next hops of the kernel route (multipath)
//! topo.client_names(SERVICE_V4, 30);       // which node answered each of 30 connections
//! ```
//!
//! Every router and speaker is a process of the [`Lab`]: killed when the lab is dropped (the
//! FRR guard also flushes the nexthop objects zebra leaves in the kernel).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::netlab::{require_program, tail, wait_for, Host, Lab, Proc, FERROLB};

/// How long a daemon may take to answer on its control socket after start.
const STARTUP: Duration = Duration::from_secs(20);
/// Where FRR's daemons are installed (Debian's layout).
pub const FRR_LIBEXEC: &str = "/usr/lib/frr";

/// Panics (the test fails, it is never skipped) unless FRR is installed.
pub fn require_frr() {
    require_program(&format!("{FRR_LIBEXEC}/zebra"));
    require_program(&format!("{FRR_LIBEXEC}/bgpd"));
    require_program("vtysh");
}

/// Panics unless GoBGP (`gobgpd` and its CLI `gobgp`) is installed.
pub fn require_gobgp() {
    require_program("gobgpd");
    require_program("gobgp");
}

// === FRR ===

/// One `neighbor` of an FRR router.
#[derive(Debug, Clone)]
pub struct FrrNeighbor {
    /// The peer's address.
    pub addr: IpAddr,
    /// Its AS number.
    pub remote_as: u32,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// `timers KEEPALIVE HOLD` in seconds; `None`: FRR's defaults (60/180).
    pub timers: Option<(u16, u16)>,
    /// Configured `shutdown` (brought up later with [`FrrRouter::set_shutdown`]).
    pub shutdown: bool,
}

impl FrrNeighbor {
    /// A neighbour with FRR's defaults.
    pub fn new(addr: IpAddr, remote_as: u32) -> FrrNeighbor {
        FrrNeighbor {
            addr,
            remote_as,
            password: None,
            timers: None,
            shutdown: false,
        }
    }
}

/// What an FRR router is configured with.
#[derive(Debug, Clone)]
pub struct FrrConfig {
    /// `router bgp ASN`.
    pub asn: u32,
    /// Its neighbours (IPv4 and IPv6 unicast activated for each).
    pub neighbors: Vec<FrrNeighbor>,
    /// Extra lines inside `router bgp` (before the address families).
    pub extra: Vec<String>,
}

impl FrrConfig {
    /// A router with no neighbours yet.
    pub fn new(asn: u32) -> FrrConfig {
        FrrConfig {
            asn,
            neighbors: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Adds a neighbour per address, all in `remote_as`.
    pub fn neighbors(mut self, addrs: &[IpAddr], remote_as: u32) -> FrrConfig {
        self.neighbors
            .extend(addrs.iter().map(|a| FrrNeighbor::new(*a, remote_as)));
        self
    }

    /// Adds one neighbour.
    pub fn neighbor(mut self, n: FrrNeighbor) -> FrrConfig {
        self.neighbors.push(n);
        self
    }

    /// `bgpd.conf` for a router whose router-id is `router_id`.
    pub fn render(&self, hostname: &str, router_id: Ipv4Addr) -> String {
        let mut c = format!(
            "frr defaults traditional\nhostname {hostname}\n!\nrouter bgp {}\n bgp router-id {router_id}\n",
            self.asn
        );
        // FRR ≥ 7.4 drops eBGP routes without a policy; the lab has none.
        c += " no bgp ebgp-requires-policy\n no bgp default ipv4-unicast\n";
        c += " bgp bestpath as-path multipath-relax\n bgp log-neighbor-changes\n";
        for n in &self.neighbors {
            let a = n.addr;
            let _ = writeln!(c, " neighbor {a} remote-as {}", n.remote_as);
            // The default (120 s) would leave a speaker started after FRR waiting.
            let _ = writeln!(c, " neighbor {a} timers connect 1");
            if let Some(p) = &n.password {
                let _ = writeln!(c, " neighbor {a} password {p}");
            }
            if let Some((keepalive, hold)) = n.timers {
                let _ = writeln!(c, " neighbor {a} timers {keepalive} {hold}");
            }
            if n.shutdown {
                let _ = writeln!(c, " neighbor {a} shutdown");
            }
        }
        for line in &self.extra {
            let _ = writeln!(c, " {line}");
        }
        for family in ["ipv4", "ipv6"] {
            let _ = writeln!(c, " !\n address-family {family} unicast");
            c += "  maximum-paths 8\n  maximum-paths ibgp 8\n";
            for n in &self.neighbors {
                let _ = writeln!(c, "  neighbor {} activate", n.addr);
            }
            c += " exit-address-family\n";
        }
        c += "!\n";
        c
    }
}

/// One path of `show bgp … PREFIX json`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrrPath {
    /// The next hop (the global one for IPv6).
    pub nexthop: IpAddr,
    /// Part of the multipath set installed (`multipath`) or the best path.
    pub selected: bool,
    /// Standard communities as FRR prints them (`"64500:100"`), in order.
    pub communities: Vec<String>,
    /// Large communities (`"64500:1:2"`), in order.
    pub large_communities: Vec<String>,
    /// LOCAL_PREF when the path carries one (iBGP).
    pub local_pref: Option<u64>,
    /// The AS path as FRR prints it (`"64500"`; `"Local"` when empty, as from an iBGP peer).
    pub as_path: String,
}

impl FrrPath {
    fn from_json(path: &Value) -> Option<FrrPath> {
        let hops = path["nexthops"].as_array()?;
        let hop = hops
            .iter()
            .find(|h| h["scope"].as_str().is_none_or(|s| s == "global"))
            .or(hops.first())?;
        let words = |v: &Value| -> Vec<String> {
            v["string"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect()
        };
        Some(FrrPath {
            nexthop: hop["ip"].as_str()?.parse().ok()?,
            selected: path["multipath"].as_bool() == Some(true)
                || path["bestpath"]["overall"].as_bool() == Some(true),
            communities: words(&path["community"]),
            large_communities: words(&path["largeCommunity"]),
            local_pref: path["locPrf"].as_u64(),
            as_path: path["aspath"]["string"].as_str().unwrap_or("").to_string(),
        })
    }
}

/// FRR (`zebra` + `bgpd`, run in the foreground) as the router in `host`'s namespace.
pub struct FrrRouter<'a> {
    lab: &'a Lab,
    /// The router's namespace.
    pub host: Host,
    /// The state directory (configs, sockets, logs), owned by `frr`.
    pub dir: PathBuf,
    zebra: Proc,
    bgpd: Option<Proc>,
}

impl<'a> FrrRouter<'a> {
    /// Writes the configs and starts zebra, then bgpd (same `-z` socket, no TCP vty ports);
    /// returns once bgpd answers vtysh.
    pub fn start(lab: &'a Lab, host: &Host, config: &FrrConfig) -> FrrRouter<'a> {
        require_frr();
        // The daemons drop privileges to `frr`, which must reach its directory inside the
        // lab's (root-only) one.
        std::fs::set_permissions(
            lab.dir(),
            std::os::unix::fs::PermissionsExt::from_mode(0o711),
        )
        .expect("chmod lab directory");
        let dir = lab.path(&format!("frr-{}", host.name));
        std::fs::create_dir_all(&dir).expect("FRR directory");
        let d = dir.display();
        std::fs::write(dir.join("zebra.conf"), format!("hostname {}\n", host.name))
            .expect("zebra.conf");
        std::fs::write(dir.join("bgpd.conf"), config.render(&host.name, host.ipv4))
            .expect("bgpd.conf");
        std::fs::write(
            dir.join("vtysh.conf"),
            "no service integrated-vtysh-config\n",
        )
        .expect("vtysh.conf");
        lab.exec(&host.ns, "chown", &["-R", "frr:frr", &d.to_string()])
            .expect_ok("chown the FRR directory");
        let zebra = lab.spawn(
            &host.ns,
            &format!("{FRR_LIBEXEC}/zebra"),
            &[
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{d}/zebra.conf"),
                "-i",
                &format!("{d}/zebra.pid"),
                "-z",
                &format!("{d}/zserv.api"),
                "--vty_socket",
                &d.to_string(),
                "-P",
                "0",
                "--log",
                &format!("file:{d}/zebra.log"),
            ],
            &dir.join("zebra.out"),
        );
        let mut router = FrrRouter {
            lab,
            host: host.clone(),
            dir: dir.clone(),
            zebra,
            bgpd: None,
        };
        wait_for("zebra's API socket", STARTUP, || {
            if !lab.running(zebra) {
                panic!("zebra exited:\n{}", tail(&dir.join("zebra.out"), 20));
            }
            if dir.join("zserv.api").exists() {
                Ok(())
            } else {
                Err("no zserv.api yet".into())
            }
        });
        router.start_bgpd();
        router
    }

    /// Starts bgpd (after [`FrrRouter::stop_bgpd`]); returns once it answers vtysh.
    pub fn start_bgpd(&mut self) {
        assert!(self.bgpd.is_none(), "bgpd is already running");
        let d = self.dir.display().to_string();
        let out = self.dir.join("bgpd.out");
        let bgpd = self.lab.spawn(
            &self.host.ns,
            &format!("{FRR_LIBEXEC}/bgpd"),
            &[
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &format!("{d}/bgpd.conf"),
                "-i",
                &format!("{d}/bgpd.pid"),
                // Without the same socket as zebra's, bgpd never installs a route.
                "-z",
                &format!("{d}/zserv.api"),
                "--vty_socket",
                &d,
                "-P",
                "0",
                "--log",
                &format!("file:{d}/bgpd.log"),
            ],
            &out,
        );
        self.bgpd = Some(bgpd);
        wait_for("bgpd to answer vtysh", STARTUP, || {
            if !self.lab.running(bgpd) {
                panic!("bgpd exited:\n{}", tail(&out, 20));
            }
            self.try_vtysh("show bgp summary json")
        });
    }

    /// Stops bgpd with SIGTERM (it closes its sessions with a Cease); zebra keeps running
    /// (and removes bgpd's routes from the kernel).
    pub fn stop_bgpd(&mut self) {
        let bgpd = self.bgpd.take().expect("bgpd is running");
        self.lab.terminate(bgpd, Duration::from_secs(10));
    }

    /// Router restarted: bgpd stopped and started again.
    pub fn restart_bgpd(&mut self) {
        self.stop_bgpd();
        self.start_bgpd();
    }

    /// `vtysh -c CMD` against this router, or the error.
    pub fn try_vtysh(&self, cmd: &str) -> Result<String, String> {
        let d = self.dir.display().to_string();
        let out = self.lab.exec(
            &self.host.ns,
            "vtysh",
            &["--vty_socket", &d, "--config_dir", &d, "-c", cmd],
        );
        if out.ok {
            Ok(out.stdout)
        } else {
            Err(format!("vtysh -c {cmd:?}: {}{}", out.stdout, out.stderr))
        }
    }

    /// `vtysh -c CMD`; panics on failure.
    pub fn vtysh(&self, cmd: &str) -> String {
        self.try_vtysh(cmd).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Several configuration lines in one `configure terminal` session (`router bgp ASN`
    /// included where needed by the caller).
    pub fn configure(&self, lines: &[&str]) {
        let d = self.dir.display().to_string();
        let mut args = vec![
            "--vty_socket".to_string(),
            d.clone(),
            "--config_dir".to_string(),
            d,
            "-c".to_string(),
            "configure terminal".to_string(),
        ];
        for l in lines {
            args.push("-c".into());
            args.push((*l).to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.lab
            .exec(&self.host.ns, "vtysh", &args)
            .expect_ok("vtysh configure");
    }

    /// `neighbor ADDR shutdown` on or off in `router bgp asn`.
    pub fn set_shutdown(&self, asn: u32, addr: IpAddr, shutdown: bool) {
        let router = format!("router bgp {asn}");
        let line = if shutdown {
            format!("neighbor {addr} shutdown")
        } else {
            format!("no neighbor {addr} shutdown")
        };
        self.configure(&[&router, &line]);
    }

    /// A `… json` command's output parsed (`Null` when it is not JSON).
    pub fn json(&self, cmd: &str) -> Value {
        serde_json::from_str(&self.vtysh(cmd)).unwrap_or(Value::Null)
    }

    /// Every path FRR holds for `prefix` (`"10.96.0.10/32"`, `"fd00::1/128"`), valid or
    /// not, sorted by next hop; empty when FRR has no such route.
    pub fn routes(&self, prefix: &str) -> Vec<FrrPath> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.json(&format!("show bgp {family} unicast {prefix} json"));
        let mut out: Vec<FrrPath> = v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(FrrPath::from_json)
            .collect();
        out.sort_by_key(|p| p.nexthop);
        out
    }

    /// The next hop of every path FRR holds for `prefix` (the global one for IPv6), sorted.
    pub fn paths(&self, prefix: &str) -> Vec<IpAddr> {
        self.routes(prefix).iter().map(|p| p.nexthop).collect()
    }

    /// Prefixes received from `addr` (`pfxRcd` of `show bgp FAMILY unicast summary json`).
    pub fn prefixes_received(&self, family: &str, addr: IpAddr) -> u64 {
        let v = self.json(&format!("show bgp {family} unicast summary json"));
        v["peers"][addr.to_string()]["pfxRcd"].as_u64().unwrap_or(0)
    }

    /// Why the last session with `addr` ended: `lastResetDueTo` of `show bgp neighbors ADDR
    /// json`, with the NOTIFICATION's reason when there was one (`"BGP Notification send
    /// (Hold Timer Expired/Unspecific)"`); `""` if none.
    pub fn last_reset(&self, addr: IpAddr) -> String {
        let v = self.json(&format!("show bgp neighbors {addr} json"));
        let n = &v[addr.to_string()];
        let due = n["lastResetDueTo"].as_str().unwrap_or("");
        match n["lastNotificationReason"].as_str() {
            Some(reason) => format!("{due} ({reason})"),
            None => due.to_string(),
        }
    }

    /// The session state with `addr` (`"Established"`, `"Active"`, …; `""` if unknown).
    pub fn neighbor_state(&self, addr: IpAddr) -> String {
        let v = self.json(&format!("show bgp neighbors {addr} json"));
        v[addr.to_string()]["bgpState"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Waits until the session with `addr` is Established.
    pub fn wait_established(&self, addr: IpAddr, timeout: Duration) {
        wait_for(
            &format!("FRR's session with {addr}"),
            timeout,
            || match self.neighbor_state(addr) {
                s if s == "Established" => Ok(()),
                s => Err(s),
            },
        );
    }

    /// The next hops of the router's kernel route to `prefix` (one for a plain route, every
    /// member for a multipath one); empty when there is no route.
    pub fn fib_nexthops(&self, prefix: &str) -> Vec<IpAddr> {
        fib_nexthops(self.lab, &self.host.ns, prefix)
    }
}

impl Drop for FrrRouter<'_> {
    fn drop(&mut self) {
        if let Some(bgpd) = self.bgpd.take() {
            self.lab.kill(bgpd);
        }
        self.lab.kill(self.zebra);
        // zebra leaves its nexthop objects behind in the kernel.
        let _ = self.lab.exec(&self.host.ns, "ip", &["nexthop", "flush"]);
    }
}

/// The next hops of the kernel route to `prefix` in `ns` (`ip -j route show PREFIX`): the
/// route's `gateway`, or its `nexthops` when it is multipath, or its nexthop group's members
/// when `ip` shows only the group id (`nhid`).
pub fn fib_nexthops(lab: &Lab, ns: &str, prefix: &str) -> Vec<IpAddr> {
    let family = if prefix.contains(':') { "-6" } else { "-4" };
    let out = lab.exec(ns, "ip", &[family, "-j", "route", "show", prefix]);
    let routes: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
    let mut hops: Vec<IpAddr> = Vec::new();
    for r in routes.as_array().into_iter().flatten() {
        if let Some(g) = r["gateway"].as_str() {
            hops.extend(g.parse::<IpAddr>().ok());
        }
        for h in r["nexthops"].as_array().into_iter().flatten() {
            hops.extend(h["gateway"].as_str().and_then(|g| g.parse::<IpAddr>().ok()));
        }
        if hops.is_empty() {
            if let Some(id) = r["nhid"].as_u64() {
                hops.extend(nexthop_group(lab, ns, id));
            }
        }
    }
    hops.sort();
    hops
}

/// The gateways of nexthop object `id` (a group's members, or the object itself).
fn nexthop_group(lab: &Lab, ns: &str, id: u64) -> Vec<IpAddr> {
    let show = |id: u64| -> Value {
        let out = lab.exec(ns, "ip", &["-j", "nexthop", "show", "id", &id.to_string()]);
        let v: Value = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        v.get(0).cloned().unwrap_or(Value::Null)
    };
    let nh = show(id);
    let members: Vec<u64> = nh["group"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_u64())
        .collect();
    let objects = if members.is_empty() {
        vec![nh]
    } else {
        members.into_iter().map(show).collect()
    };
    objects
        .iter()
        .filter_map(|o| o["gateway"].as_str()?.parse().ok())
        .collect()
}

// === GoBGP ===

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

// === topology ===

/// Three nodes and a router on a LAN (`10.252.N.0/24`, `fd00:252:N::/64`; router `.1`, nodes
/// `.11`–`.13`), and a client on a second link behind the router (`10.253.N.2/24`,
/// `fd00:253:N::2/64`; router `.1`, the client's default route).
pub struct BgpTopology {
    /// The router's namespace (`eth0` on the LAN, `eth1` toward the client).
    pub router: Host,
    /// The node namespaces, each with a responder answering its name on port 80.
    pub nodes: Vec<Host>,
    /// The client's namespace.
    pub client: Host,
    /// The router's address on the client link.
    pub router_client_v4: Ipv4Addr,
}

impl BgpTopology {
    /// Builds it in `lab` with subnet number `net`; `services` (`"10.96.0.10"`,
    /// `"fd00:96::10"`) go on every node's `lo`, where the responder answers them.
    pub fn build(lab: &Lab, net: u8, services: &[&str]) -> BgpTopology {
        let router = lab.host(
            "rtr",
            &format!("10.252.{net}.1/24"),
            Some(&format!("fd00:252:{net}::1/64")),
        );
        let mut nodes = Vec::new();
        for i in 1..=3u8 {
            let h = lab.host(
                &format!("n{i}"),
                &format!("10.252.{net}.1{i}/24"),
                Some(&format!("fd00:252:{net}::1{i}/64")),
            );
            nodes.push(h);
        }
        // The client gets its own link: its LAN cable is replaced by one to a second bridge.
        let client = lab.host("cl", &format!("10.253.{net}.2/24"), None);
        lab.exec(&client.ns, "ip", &["link", "del", "eth0"])
            .expect_ok("unplug the client from the LAN");
        lab.add_bridge("brc");
        lab.attach(&client, "brc", "eth0", &format!("10.253.{net}.2/24"));
        lab.attach(&router, "brc", "eth1", &format!("10.253.{net}.1/24"));
        let ip = |ns: &str, args: &[&str]| {
            lab.exec(ns, "ip", args).expect_ok(&format!("ip {args:?}"));
        };
        ip(
            &client.ns,
            &[
                "addr",
                "add",
                &format!("fd00:253:{net}::2/64"),
                "dev",
                "eth0",
                "nodad",
            ],
        );
        ip(
            &router.ns,
            &[
                "addr",
                "add",
                &format!("fd00:253:{net}::1/64"),
                "dev",
                "eth1",
                "nodad",
            ],
        );
        ip(
            &client.ns,
            &["route", "add", "default", "via", &format!("10.253.{net}.1")],
        );
        ip(
            &client.ns,
            &[
                "-6",
                "route",
                "add",
                "default",
                "via",
                &format!("fd00:253:{net}::1"),
            ],
        );
        // NETLAB.md: ECMP on an L4 hash, and no redirects (they would let hosts bypass the
        // router and collapse the split).
        let mut router_sysctls: Vec<(String, &str)> = [
            "net.ipv4.ip_forward",
            "net.ipv6.conf.all.forwarding",
            "net.ipv4.fib_multipath_hash_policy",
            "net.ipv6.fib_multipath_hash_policy",
        ]
        .iter()
        .map(|k| (k.to_string(), "1"))
        .collect();
        for ifc in ["all", "default", "eth0", "eth1"] {
            router_sysctls.push((format!("net.ipv4.conf.{ifc}.send_redirects"), "0"));
        }
        let pairs: Vec<(&str, &str)> = router_sysctls
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        lab.sysctl(&router.ns, &pairs);
        for h in nodes.iter().chain([&client]) {
            lab.sysctl(
                &h.ns,
                &[
                    ("net.ipv4.conf.all.accept_redirects", "0"),
                    ("net.ipv4.conf.default.accept_redirects", "0"),
                    ("net.ipv6.conf.all.accept_redirects", "0"),
                    ("net.ipv6.conf.default.accept_redirects", "0"),
                ],
            );
        }
        for h in &nodes {
            // Answers to the client go back through the router.
            ip(
                &h.ns,
                &["route", "add", "default", "via", &format!("10.252.{net}.1")],
            );
            ip(
                &h.ns,
                &[
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    &format!("fd00:252:{net}::1"),
                ],
            );
            for s in services {
                let len = if s.contains(':') { "128" } else { "32" };
                let mut args = vec!["addr", "add"];
                let cidr = format!("{s}/{len}");
                args.extend([cidr.as_str(), "dev", "lo"]);
                if s.contains(':') {
                    args.push("nodad");
                }
                ip(&h.ns, &args);
            }
            start_responder(lab, h);
        }
        BgpTopology {
            router,
            nodes,
            client,
            router_client_v4: format!("10.253.{net}.1").parse().expect("IPv4"),
        }
    }

    /// The nodes' IPv4 addresses.
    pub fn node_ips(&self) -> Vec<IpAddr> {
        self.nodes.iter().map(|h| IpAddr::V4(h.ipv4)).collect()
    }

    /// The nodes' IPv6 addresses.
    pub fn node_ipv6s(&self) -> Vec<IpAddr> {
        self.nodes
            .iter()
            .filter_map(|h| h.ipv6.map(IpAddr::V6))
            .collect()
    }

    /// The router's LAN address.
    pub fn router_ip(&self) -> IpAddr {
        IpAddr::V4(self.router.ipv4)
    }

    /// Opens `count` TCP connections (HTTP, each from a new source port) from the client to
    /// `address` port 80: the name each answering node gave, or the error.
    pub fn client_names(
        &self,
        lab: &Lab,
        address: &str,
        count: usize,
    ) -> Vec<Result<String, String>> {
        let url = if address.contains(':') {
            format!("http://[{address}]/")
        } else {
            format!("http://{address}/")
        };
        // One shell for all of them: a process per connection from the test would be slow.
        let script = format!(
            "for i in $(seq {count}); do curl -sS -g --connect-timeout 3 --max-time 5 {url} 2>&1 || echo 'ERR'; done"
        );
        let out = lab.exec(&self.client.ns, "bash", &["-c", &script]);
        out.stdout
            .lines()
            .map(|l| {
                let l = l.trim();
                if self.nodes.iter().any(|n| n.name == l) {
                    Ok(l.to_string())
                } else {
                    Err(l.to_string())
                }
            })
            .collect()
    }
}

/// `ferrolb lab responder` on `host`, ports 80 (IPv4 and IPv6), answering its name.
fn start_responder(lab: &Lab, host: &Host) -> Proc {
    let log = lab.path(&format!("responder-{}.log", host.name));
    let p = lab.spawn(
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
        &log,
    );
    wait_for(
        &format!("the responder on {}", host.name),
        Duration::from_secs(10),
        || {
            if !lab.running(p) {
                panic!("the responder exited:\n{}", tail(&log, 10));
            }
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.matches("listening on").count() == 2 {
                Ok(())
            } else {
                Err(text)
            }
        },
    );
    p
}
