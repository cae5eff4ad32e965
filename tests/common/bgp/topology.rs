//! The BGP lab's topology: a router and three nodes on a LAN, a client behind the router, a
//! responder on every node.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use super::super::netlab::{tail, wait_for, Host, Lab, Proc, FERROLB};

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
