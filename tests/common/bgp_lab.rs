//! The BGP lab: the L2 lab's cluster (API simulator, three nodes running `ferrolb run`, a
//! client) with bgp pools (`10.96.N.0/28`, `fd00:96:N::/124`, on every node's `lo`), one
//! `[[bgp.peer]]` (the router at `.1`, hold time 9 s unless given), and a router namespace
//! (forwarding, L4 multipath hash, no redirects) running FRR with every node as a neighbour,
//! `maximum-paths 8` and graceful restart; the client routes service addresses through it.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::e2e::wait_allocated;
use super::frr::Frr;
use super::l2::*;
use super::netlab::*;

/// Router AS; the nodes are AS 64500.
pub const ROUTER_ASN: u32 = 64001;
pub const NODE_ASN: u32 = 64500;
/// How long a route may take to reach the router after its Service got its address.
pub const ROUTE: Duration = Duration::from_secs(30);

/// The BGP lab: the L2 lab's cluster with a bgp pool and a router.
pub struct BgpLab {
    /// FRR in the router (first: dropped before the namespaces go).
    pub frr: Frr,
    /// The cluster (API simulator, nodes with daemons, client).
    pub l: L2Lab,
    /// The router's namespace (`.1` on the LAN).
    pub router: Host,
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
    pub fn start(
        prefix: &str,
        n: u8,
        pool_keys: &str,
        peer_extra: &str,
        router_asn: u32,
    ) -> BgpLab {
        BgpLab::build(prefix, n, pool_keys, peer_extra, router_asn, |_| None)
    }

    /// The nodes sign their sessions with `password` (from a `password_file`); the router
    /// expects it from every node but `bad_node`, for which it has another one.
    pub fn start_with_password(
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
    pub fn cluster(
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
                "name = \"router\"\naddress = \"{}\"\nasn = {router_asn}\nmy_asn = {NODE_ASN}\n{}connect_time = \"1s\"\n{peer_extra}",
                net.v4(1),
                if peer_extra.contains("hold_time") { "" } else { "hold_time = \"9s\"\n" }
            )],
            metrics: true,
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

    pub fn build(
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

    pub fn node_ips(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .l
            .nodes
            .iter()
            .map(|n| n.host.ipv4.to_string())
            .collect();
        v.sort();
        v
    }

    pub fn wait_paths(&self, prefix: &str, want: &[String]) {
        wait_for(&format!("FRR paths of {prefix} = {want:?}"), ROUTE, || {
            let got = self.frr.paths(&self.l.lab, prefix);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    }

    pub fn wait_established(&self) {
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
pub fn service(b: &BgpLab, name: &str, local: bool, ready: &[&str], ipv6: bool) -> IpAddr {
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
    let svcs = wait_allocated(&b.l.api, &[name], ROUTE);
    svcs[name].ingress[0]
}

/// The node whose LAN address is `ip`.
pub fn node_by_ip<'a>(b: &'a BgpLab, ip: &str) -> &'a L2Node {
    b.l.nodes
        .iter()
        .find(|n| n.host.ipv4.to_string() == ip)
        .expect("a node with that address")
}
