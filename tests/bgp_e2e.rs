//! End-to-end: BGP mode. Three nodes, each a network namespace running the real `ferrolb run`
//! against the API simulator, peer with a router namespace running FRR (`zebra` + `bgpd`,
//! `maximum-paths 8`). A Service in a bgp pool must appear in FRR with every eligible node as
//! next hop, as a multipath route in the router's kernel FIB, and a client routed through the
//! router must land on different nodes. Withdrawals (Service deleted, Local policy without
//! endpoints, SIGTERM) must reach the router as withdrawals, not as hold-timer expiries.
//!
//! Needs root, `ip`, `curl`, `/usr/bin/kubectl`, FRR (`/usr/lib/frr/{zebra,bgpd}`, `vtysh`).

mod common;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use common::l2::*;
use common::netlab::*;

/// Router AS; the nodes are AS 64500.
const ROUTER_ASN: u32 = 64001;
const NODE_ASN: u32 = 64500;
/// How long a route may take to reach the router after its Service got its address.
const ROUTE: Duration = Duration::from_secs(30);

/// FRR in the router namespace.
struct Frr {
    ns: String,
    dir: PathBuf,
    bgpd: std::cell::Cell<Proc>,
}

impl Frr {
    /// Starts zebra and bgpd in `router` with `bgpd_conf` (NETLAB.md: same `-z` path for
    /// both, `-P 0`, a state directory owned by `frr`).
    fn start(lab: &Lab, router: &Host, bgpd_conf: &str) -> Frr {
        require_program("vtysh");
        let dir = lab.path("frr");
        std::fs::create_dir_all(&dir).unwrap();
        // The daemons drop to `frr` and must reach their directory inside the lab's.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(lab.dir(), std::fs::Permissions::from_mode(0o711)).unwrap();
        std::fs::write(dir.join("zebra.conf"), "hostname router\n").unwrap();
        std::fs::write(dir.join("bgpd.conf"), bgpd_conf).unwrap();
        std::fs::write(
            dir.join("vtysh.conf"),
            "no service integrated-vtysh-config\n",
        )
        .unwrap();
        Command::new("chown")
            .args(["-R", "frr:frr"])
            .arg(&dir)
            .status()
            .expect("chown");
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        let zserv = d("zserv.api");
        let zebra_args = [
            "-d",
            "-u",
            "frr",
            "-g",
            "frr",
            "-f",
            &d("zebra.conf"),
            "-i",
            &d("zebra.pid"),
            "-z",
            &zserv,
            "--vty_socket",
            &d(""),
            "-P",
            "0",
            "--log",
            &format!("file:{}", d("zebra.log")),
        ];
        lab.exec(&router.ns, "/usr/lib/frr/zebra", &zebra_args)
            .expect_ok("zebra");
        let frr = Frr {
            ns: router.ns.clone(),
            dir: dir.clone(),
            bgpd: std::cell::Cell::new(Frr::spawn_bgpd(lab, router, &dir)),
        };
        frr.wait_up(lab);
        frr
    }

    fn spawn_bgpd(lab: &Lab, router: &Host, dir: &std::path::Path) -> Proc {
        let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
        lab.spawn(
            &router.ns,
            "/usr/lib/frr/bgpd",
            &[
                "-u",
                "frr",
                "-g",
                "frr",
                "-f",
                &d("bgpd.conf"),
                "-i",
                &d("bgpd.pid"),
                "-z",
                &d("zserv.api"),
                "--vty_socket",
                &d(""),
                "-P",
                "0",
                "--log",
                &format!("file:{}", d("bgpd.log")),
            ],
            &dir.join("bgpd.out"),
        )
    }

    /// Stops bgpd (SIGTERM: it closes its sessions) and starts it again.
    fn restart_bgpd(&self, lab: &Lab, router: &Host) {
        lab.terminate(self.bgpd.get(), Duration::from_secs(20));
        self.bgpd.set(Frr::spawn_bgpd(lab, router, &self.dir));
        self.wait_up(lab);
    }

    /// The bgpd process.
    fn bgpd(&self) -> Proc {
        self.bgpd.get()
    }

    /// Waits until bgpd answers on its vty socket.
    fn wait_up(&self, lab: &Lab) {
        let d = self.dir.to_string_lossy().into_owned();
        wait_for("bgpd answering vtysh", Duration::from_secs(15), || {
            let out = lab.exec(
                &self.ns,
                "vtysh",
                &[
                    "--vty_socket",
                    &d,
                    "--config_dir",
                    &d,
                    "-c",
                    "show bgp summary",
                ],
            );
            if out.ok {
                Ok(())
            } else {
                Err(out.stderr)
            }
        });
    }

    fn vtysh(&self, lab: &Lab, cmd: &str) -> String {
        let d = self.dir.to_string_lossy().into_owned();
        lab.exec(
            &self.ns,
            "vtysh",
            &["--vty_socket", &d, "--config_dir", &d, "-c", cmd],
        )
        .expect_ok(cmd)
    }

    fn json(&self, lab: &Lab, cmd: &str) -> Value {
        let text = self.vtysh(lab, cmd);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{cmd}: {e}: {text}"))
    }

    /// The next hops FRR holds for `prefix` (every path), sorted.
    fn paths(&self, lab: &Lab, prefix: &str) -> Vec<String> {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let v = self.json(lab, &format!("show bgp {family} unicast {prefix} json"));
        let mut hops: Vec<String> = v["paths"]
            .as_array()
            .map(|paths| {
                paths
                    .iter()
                    .filter_map(|p| p["nexthops"][0]["ip"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        hops.sort();
        hops
    }

    /// The next hops of `prefix` in the router's kernel FIB.
    fn fib(&self, lab: &Lab, prefix: &str) -> Vec<String> {
        let flag = if prefix.contains(':') { "-6" } else { "-4" };
        let out = lab
            .exec(&self.ns, "ip", &[flag, "-j", "route", "show", prefix])
            .expect_ok("ip route");
        let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        let mut hops: Vec<String> = Vec::new();
        for route in v.as_array().into_iter().flatten() {
            if let Some(gw) = route["gateway"].as_str() {
                hops.push(gw.to_string());
            }
            for nh in route["nexthops"].as_array().into_iter().flatten() {
                if let Some(gw) = nh["gateway"].as_str() {
                    hops.push(gw.to_string());
                }
            }
        }
        hops.sort();
        hops
    }

    /// The state of the session with `neighbor`, and why it last went down.
    fn neighbor(&self, lab: &Lab, neighbor: &str) -> (String, String) {
        let v = self.json(lab, &format!("show bgp neighbor {neighbor} json"));
        let n = &v[neighbor];
        (
            n["bgpState"].as_str().unwrap_or("").to_string(),
            n["lastResetDueTo"].as_str().unwrap_or("").to_string(),
        )
    }
}

impl Drop for Frr {
    fn drop(&mut self) {
        // zebra leaves nexthop objects behind (NETLAB.md); the namespace goes with the lab.
        let _ = Command::new("ip")
            .args(["-n", &self.ns, "nexthop", "flush"])
            .status();
        for pid in ["zebra.pid", "bgpd.pid"] {
            if let Ok(text) = std::fs::read_to_string(self.dir.join(pid)) {
                let _ = Command::new("kill").arg(text.trim()).status();
            }
        }
    }
}

use std::process::Command;

/// The BGP lab: the L2 lab's cluster with a bgp pool and a router.
struct BgpLab {
    l: L2Lab,
    router: Host,
    frr: Frr,
    /// Removed when the lab goes.
    password_file: Option<PathBuf>,
}

impl Drop for BgpLab {
    fn drop(&mut self) {
        if let Some(file) = &self.password_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

impl BgpLab {
    fn start(prefix: &str, n: u8, pool_keys: &str, peer_extra: &str, router_asn: u32) -> BgpLab {
        BgpLab::build(prefix, n, pool_keys, peer_extra, router_asn, |_| None)
    }

    /// The nodes sign their sessions with `password` (from a `password_file`); the router
    /// expects it from every node but `bad_node`, for which it has another one.
    fn start_with_password(
        prefix: &str,
        n: u8,
        pool_keys: &str,
        router_asn: u32,
        password: &str,
        bad_node: &str,
    ) -> BgpLab {
        let file = std::env::temp_dir().join(format!("{prefix}-bgp.password"));
        std::fs::write(&file, format!("{password}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let extra = format!("password_file = \"{}\"\n", file.display());
        let mut b = BgpLab::build(prefix, n, pool_keys, &extra, router_asn, |node| {
            Some(if node == bad_node {
                "not-the-key".to_string()
            } else {
                password.to_string()
            })
        });
        b.password_file = Some(file);
        b
    }

    /// The cluster, the router namespace (sysctls, client routes) but no routing daemon.
    fn cluster(
        prefix: &str,
        n: u8,
        pool_keys: &str,
        peer_extra: &str,
        router_asn: u32,
    ) -> (L2Lab, Host) {
        let net = Net { n };
        let pool_v4 = format!("10.96.{n}.0/28");
        let pool_v6 = format!("fd00:96:{n}::/124");
        let on_lo: Vec<IpAddr> = (0..16u8)
            .flat_map(|i| {
                [
                    format!("10.96.{n}.{i}").parse().unwrap(),
                    format!("fd00:96:{n}::{i:x}").parse().unwrap(),
                ]
            })
            .collect();
        let options = L2Options {
            pools: Some((
                vec![
                    PoolConfig::new("bgp-v4", &[&pool_v4]).bgp(pool_keys),
                    PoolConfig::new("bgp-v6", &[&pool_v6]).bgp(pool_keys),
                ],
                on_lo,
            )),
            bgp_peers: vec![format!(
                "name = \"router\"\naddress = \"{}\"\nasn = {router_asn}\nmy_asn = {NODE_ASN}\nhold_time = \"9s\"\nconnect_time = \"1s\"\n{peer_extra}",
                net.v4(1)
            )],
            ..L2Options::default()
        };
        let l = L2Lab::start_opts(prefix, n, &options);
        let router = l.lab.host(
            "router",
            &format!("{}/24", net.v4(1)),
            Some(&format!("{}/64", net.v6(1))),
        );
        l.lab.sysctl(
            &router.ns,
            &[
                ("net.ipv4.ip_forward", "1"),
                ("net.ipv6.conf.all.forwarding", "1"),
                ("net.ipv4.fib_multipath_hash_policy", "1"),
                ("net.ipv6.fib_multipath_hash_policy", "1"),
                ("net.ipv4.conf.all.send_redirects", "0"),
                ("net.ipv4.conf.eth0.send_redirects", "0"),
            ],
        );
        // The client reaches service addresses through the router only.
        l.lab.sysctl(
            &l.client.ns,
            &[
                ("net.ipv4.conf.all.accept_redirects", "0"),
                ("net.ipv6.conf.all.accept_redirects", "0"),
            ],
        );
        l.lab
            .exec(
                &l.client.ns,
                "ip",
                &["route", "add", "10.96.0.0/16", "via", &net.v4(1)],
            )
            .expect_ok("client route");
        l.lab
            .exec(
                &l.client.ns,
                "ip",
                &["-6", "route", "add", "fd00:96::/32", "via", &net.v6(1)],
            )
            .expect_ok("client route v6");
        (l, router)
    }

    fn build(
        prefix: &str,
        n: u8,
        pool_keys: &str,
        peer_extra: &str,
        router_asn: u32,
        router_password: impl Fn(&str) -> Option<String>,
    ) -> BgpLab {
        let (l, router) = BgpLab::cluster(prefix, n, pool_keys, peer_extra, router_asn);
        let net = l.net;
        let neighbors: String = l
            .nodes
            .iter()
            .map(|node| {
                let ip = node.host.ipv4;
                let mut lines = format!(" neighbor {ip} peer-group NODES\n");
                if let Some(password) = router_password(&node.name) {
                    lines.push_str(&format!(" neighbor {ip} password {password}\n"));
                }
                lines
            })
            .collect();
        let conf = format!(
            "hostname router\n!\nrouter bgp {router_asn}\n bgp router-id {rid}\n no bgp ebgp-requires-policy\n bgp graceful-restart\n bgp bestpath as-path multipath-relax\n neighbor NODES peer-group\n neighbor NODES remote-as {NODE_ASN}\n neighbor NODES timers connect 1\n{neighbors} address-family ipv4 unicast\n  neighbor NODES activate\n  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n address-family ipv6 unicast\n  neighbor NODES activate\n  maximum-paths 8\n  maximum-paths ibgp 8\n exit-address-family\n!\n",
            rid = net.v4(1),
        );
        let frr = Frr::start(&l.lab, &router, &conf);
        BgpLab {
            l,
            router,
            frr,
            password_file: None,
        }
    }

    fn node_ips(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .l
            .nodes
            .iter()
            .map(|n| n.host.ipv4.to_string())
            .collect();
        v.sort();
        v
    }

    fn wait_paths(&self, prefix: &str, want: &[String]) {
        wait_for(&format!("FRR paths of {prefix} = {want:?}"), ROUTE, || {
            let got = self.frr.paths(&self.l.lab, prefix);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    }

    fn wait_established(&self) {
        for ip in self.node_ips() {
            wait_for(&format!("session with {ip} Established"), ROUTE, || {
                let (state, why) = self.frr.neighbor(&self.l.lab, &ip);
                if state == "Established" {
                    Ok(())
                } else {
                    Err(format!("{state} ({why})"))
                }
            });
        }
    }
}

/// Creates Service `name` (Local or Cluster policy) with ready endpoints on `ready` nodes and
/// returns its address.
fn service(b: &BgpLab, name: &str, local: bool, ready: &[&str], ipv6: bool) -> IpAddr {
    let families: &[&str] = if ipv6 { &["IPv6"] } else { &[] };
    let eps: Vec<Ep<'_>> = NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: ready.contains(n),
        })
        .collect();
    apply_objects(
        &b.l.api,
        &[
            l2_service(name, local, families),
            endpoint_slice(name, ipv6, &eps),
        ],
    );
    let svcs = common::e2e::wait_allocated(&b.l.api, &[name], ROUTE);
    svcs[name].ingress[0]
}

#[test]
fn every_node_advertises_frr_installs_multipath_and_flows_spread() {
    let b = BgpLab::start("fbge", 61, "", "", ROUTER_ASN);
    b.wait_established();
    let address = service(&b, "web", false, &NODES, false);
    let prefix = format!("{address}/32");
    b.wait_paths(&prefix, &b.node_ips());
    wait_for("a multipath route in the router's FIB", ROUTE, || {
        let fib = b.frr.fib(&b.l.lab, &prefix);
        if fib == b.node_ips() {
            Ok(())
        } else {
            Err(format!("{fib:?}"))
        }
    });
    // Flows from the client spread over the nodes (L4 hash on the router).
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let who = b.l.tcp(address).expect("TCP through the router");
        seen.insert(who);
    }
    assert!(seen.len() >= 2, "every connection landed on {seen:?}");

    // IPv6 /128 over the IPv4 session (MP-BGP), next hop the node's IPv6 address.
    let v6 = service(&b, "web6", false, &NODES, true);
    let mut want6: Vec<String> =
        b.l.nodes
            .iter()
            .filter_map(|n| n.host.ipv6)
            .map(|a| a.to_string())
            .collect();
    want6.sort();
    b.wait_paths(&format!("{v6}/128"), &want6);

    // Deleted → withdrawn everywhere.
    b.l.api.kubectl_ok(&["delete", "service", "web"]);
    b.wait_paths(&prefix, &[]);
}

/// `[[bgp.peer]]` keys shared by the tests: the router, hold time 9 s, reconnect fast.
fn node_by_ip<'a>(b: &'a BgpLab, ip: &str) -> &'a L2Node {
    b.l.nodes
        .iter()
        .find(|n| n.host.ipv4.to_string() == ip)
        .expect("a node with that address")
}

#[test]
fn local_policy_follows_endpoints_sigterm_withdraws_and_a_restarted_router_gets_everything_back() {
    let b = BgpLab::start("fbgl", 62, "", "", ROUTER_ASN);
    b.wait_established();
    let ips = b.node_ips();
    let address = service(&b, "local", true, &["node2"], false);
    let prefix = format!("{address}/32");
    let node2 = b.l.node("node2").host.ipv4.to_string();
    let node3 = b.l.node("node3").host.ipv4.to_string();
    b.wait_paths(&prefix, std::slice::from_ref(&node2));
    // The endpoint moves: the router's path follows.
    let eps = [
        Ep {
            node: "node1",
            ready: false,
        },
        Ep {
            node: "node2",
            ready: false,
        },
        Ep {
            node: "node3",
            ready: true,
        },
    ];
    apply_objects(&b.l.api, &[endpoint_slice("local", false, &eps)]);
    b.wait_paths(&prefix, std::slice::from_ref(&node3));

    // A Cluster Service on every node; then node3's daemon gets SIGTERM: its paths go with a
    // withdrawal and a Cease, not a hold-timer expiry.
    let all = service(&b, "all", false, &NODES, false);
    let all_prefix = format!("{all}/32");
    b.wait_paths(&all_prefix, &ips);
    let node3_daemon = node_by_ip(&b, &node3).daemon.proc;
    b.l.lab.terminate(node3_daemon, Duration::from_secs(20));
    let rest: Vec<String> = ips.iter().filter(|ip| **ip != node3).cloned().collect();
    b.wait_paths(&all_prefix, &rest);
    b.wait_paths(&prefix, &[]);
    let (state, _) = b.frr.neighbor(&b.l.lab, &node3);
    assert_ne!(state, "Established");
    let v = b
        .frr
        .json(&b.l.lab, &format!("show bgp neighbor {node3} json"));
    let n = &v[&node3];
    assert_eq!(n["lastResetDueTo"], "BGP Notification received", "{n}");
    assert_eq!(
        n["lastErrorCodeSubcode"], "0602",
        "not Cease / Administrative Shutdown: {n}"
    );

    // The router restarts: the sessions come back and the routes are advertised again.
    b.frr.restart_bgpd(&b.l.lab, &b.router);
    b.wait_paths(&all_prefix, &rest);
}

#[test]
fn communities_local_pref_md5_reload_and_hold_timer() {
    // iBGP (LOCAL_PREF is for internal peers), an MD5 password; the router knows node1's and
    // node2's password, and a different one for node3.
    let pool =
        "communities = [\"65000:100\", \"no-export\", \"large:64500:7:9\"]\nlocal_pref = 250\n";
    let b = BgpLab::start_with_password("fbgc", 63, pool, NODE_ASN, "s3cret-key", "node3");
    let ips = b.node_ips();
    let node3 = b.l.node("node3").host.ipv4.to_string();
    let good: Vec<String> = ips.iter().filter(|ip| **ip != node3).cloned().collect();
    for ip in &good {
        wait_for(&format!("{ip} Established with MD5"), ROUTE, || {
            let (state, why) = b.frr.neighbor(&b.l.lab, ip);
            if state == "Established" {
                Ok(())
            } else {
                Err(format!("{state} {why}"))
            }
        });
    }
    let address = service(&b, "tagged", false, &NODES, false);
    let prefix = format!("{address}/32");
    b.wait_paths(&prefix, &good);
    let v = b
        .frr
        .json(&b.l.lab, &format!("show bgp ipv4 unicast {prefix} json"));
    for path in v["paths"].as_array().expect("paths") {
        assert_eq!(path["locPrf"], 250, "{path}");
        let communities = path["community"]["string"].as_str().unwrap_or("");
        assert!(
            communities.contains("65000:100") && communities.contains("no-export"),
            "{path}"
        );
        assert_eq!(path["largeCommunity"]["string"], "64500:7:9", "{path}");
    }
    // The wrong password never makes a session (the kernel drops the unsigned segments).
    let (state, _) = b.frr.neighbor(&b.l.lab, &node3);
    assert_ne!(state, "Established");

    // A reload that changes only a pool keeps the sessions (FRR counts no new connection).
    let node1 = b.l.node("node1");
    let established = |b: &BgpLab, ip: &str| {
        let v = b
            .frr
            .json(&b.l.lab, &format!("show bgp neighbor {ip} json"));
        v[ip]["connectionsEstablished"].as_u64().unwrap_or(0)
    };
    let before = established(&b, &node1.host.ipv4.to_string());
    let text = std::fs::read_to_string(&node1.config).unwrap();
    std::fs::write(
        &node1.config,
        text.replace("local_pref = 250", "local_pref = 300"),
    )
    .unwrap();
    b.l.lab.signal(node1.daemon.proc, "HUP");
    wait_for("node1's path with the new local_pref", ROUTE, || {
        let v = b
            .frr
            .json(&b.l.lab, &format!("show bgp ipv4 unicast {prefix} json"));
        let prefs: Vec<i64> = v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["locPrf"].as_i64())
            .collect();
        if prefs.contains(&300) {
            Ok(())
        } else {
            Err(format!("{prefs:?}"))
        }
    });
    assert_eq!(
        established(&b, &node1.host.ipv4.to_string()),
        before,
        "the reload reset the session"
    );

    // The router goes silent: the nodes drop the session when the hold timer (9 s) expires.
    b.l.lab.signal(b.frr.bgpd(), "STOP");
    for ip in &good {
        let node = node_by_ip(&b, ip);
        b.l.lab
            .wait_for_log(&node.daemon, "hold timer expired", Duration::from_secs(40));
    }
    b.l.lab.signal(b.frr.bgpd(), "CONT");
}

#[test]
fn gobgp_as_the_router_holds_every_node_as_a_path() {
    use common::gobgp::{gobgp_paths, gobgp_session_state, start_gobgpd, Neighbor};
    const API: &str = "50061";
    let (l, router) = BgpLab::cluster("fbgg", 64, "", "", ROUTER_ASN);
    let neighbors: Vec<Neighbor> = l
        .nodes
        .iter()
        .map(|n| Neighbor::to(IpAddr::V4(n.host.ipv4)))
        .collect();
    start_gobgpd(&l.lab, &router, (ROUTER_ASN, NODE_ASN), &neighbors, API);
    for n in &l.nodes {
        wait_for(
            &format!("GoBGP session with {}", n.name),
            ROUTE,
            || match gobgp_session_state(&l.lab, &router, API, IpAddr::V4(n.host.ipv4)) {
                6 => Ok(()),
                s => Err(format!("state {s}")),
            },
        );
    }
    let eps: Vec<Ep<'_>> = NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: true,
        })
        .collect();
    apply_objects(
        &l.api,
        &[
            l2_service("web", false, &[]),
            endpoint_slice("web", false, &eps),
        ],
    );
    let address = common::e2e::wait_allocated(&l.api, &["web"], ROUTE)["web"].ingress[0];
    let mut want: Vec<String> = l.nodes.iter().map(|n| n.host.ipv4.to_string()).collect();
    want.sort();
    let prefix = format!("{address}/32");
    wait_for("GoBGP holds a path from every node", ROUTE, || {
        let got = gobgp_paths(&l.lab, &router, API, "ipv4", &prefix);
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
    l.api.kubectl_ok(&["delete", "service", "web"]);
    wait_for("GoBGP drops the withdrawn prefix", ROUTE, || {
        let got = gobgp_paths(&l.lab, &router, API, "ipv4", &prefix);
        if got.is_empty() {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

#[test]
fn sigusr2_restarts_gracefully_the_router_keeps_forwarding_until_the_daemon_is_back() {
    let b = BgpLab::start("fbgr", 65, "", "", ROUTER_ASN);
    b.wait_established();
    let ips = b.node_ips();
    let address = service(&b, "web", false, &NODES, false);
    let prefix = format!("{address}/32");
    b.wait_paths(&prefix, &ips);
    let node1 = b.l.node("node1");
    let node1_ip = node1.host.ipv4.to_string();

    // SIGUSR2: the daemon exits for a restart (status 75) without withdrawing.
    b.l.lab.signal(node1.daemon.proc, "USR2");
    let status =
        b.l.lab
            .wait_exit(node1.daemon.proc, Duration::from_secs(20));
    assert_eq!(status.code(), Some(75), "exit status of a restart");
    wait_for("FRR sees node1's session down", ROUTE, || {
        let (state, _) = b.frr.neighbor(&b.l.lab, &node1_ip);
        if state != "Established" {
            Ok(())
        } else {
            Err(state)
        }
    });
    // The router keeps node1's path, marked stale, and keeps forwarding along it.
    let v = b
        .frr
        .json(&b.l.lab, &format!("show bgp ipv4 unicast {prefix} json"));
    let stale: Vec<&Value> = v["paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["nexthops"][0]["ip"] == node1_ip.as_str())
        .collect();
    assert_eq!(
        stale.len(),
        1,
        "node1's path is gone during the restart: {v}"
    );
    assert_eq!(stale[0]["stale"], true, "{}", stale[0]);
    assert_eq!(b.frr.fib(&b.l.lab, &prefix), ips, "the FIB dropped node1");

    // The daemon is back: the session returns, the path is refreshed (no longer stale).
    let _daemon = b.l.lab.start_ferrolb(&node1.host, &node1.config);
    wait_for("node1's path fresh again", ROUTE, || {
        let v = b
            .frr
            .json(&b.l.lab, &format!("show bgp ipv4 unicast {prefix} json"));
        let fresh = v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["nexthops"][0]["ip"] == node1_ip.as_str() && p["stale"] != true);
        if fresh {
            Ok(())
        } else {
            Err(v.to_string())
        }
    });
    b.wait_paths(&prefix, &ips);
}
