//! FRR (`zebra` + `bgpd`) as the router in a lab namespace: its configuration, vtysh access,
//! its paths, sessions and the kernel routes zebra installs.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::super::netlab::{tail, wait_for, Host, Lab, Proc};
use super::{require_frr, FRR_LIBEXEC, STARTUP};

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

    /// Stops bgpd with SIGTERM (it closes its sessions); zebra keeps running
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
