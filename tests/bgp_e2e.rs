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
use std::time::Duration;

use serde_json::Value;

use common::bgp_lab::*;
use common::l2::*;
use common::netlab::*;

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

    // Each node's metrics say so: the session is up, two prefixes held by the router. (The
    // daemon publishes its own counts at most every 200 ms: wait for them.)
    for node in &b.l.nodes {
        let url = format!("http://{}:7472/metrics", node.host.ipv4);
        wait_for(&format!("{}'s BGP metrics", node.name), ROUTE, || {
            let text =
                b.l.lab
                    .exec(&b.l.client.ns, "curl", &["-sS", &url])
                    .expect_ok("scrape");
            for want in [
                "ferrolb_bgp_session_up{peer=\"router\"} 1",
                "ferrolb_bgp_announced_prefixes{peer=\"router\"} 2",
                "ferrolb_announced_addresses{mode=\"bgp\"} 2",
            ] {
                if !text.lines().any(|l| l == want) {
                    return Err(format!("{want} not in:\n{text}"));
                }
            }
            let sent = text
                .lines()
                .find_map(|l| l.strip_prefix("ferrolb_bgp_updates_sent_total{peer=\"router\"} "))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if sent >= 2 {
                Ok(())
            } else {
                Err(format!("UPDATEs sent: {sent}"))
            }
        });
    }

    // Deleted → withdrawn everywhere.
    b.l.api.kubectl_ok(&["delete", "service", "web"]);
    b.wait_paths(&prefix, &[]);
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
    // An invalid file is refused: the daemon keeps running on the previous configuration,
    // the session stays up, the route keeps the new local_pref.
    let valid = std::fs::read_to_string(&node1.config).unwrap();
    std::fs::write(
        &node1.config,
        valid.replace("local_pref = 300", "local_pref = \"high\""),
    )
    .unwrap();
    b.l.lab.signal(node1.daemon.proc, "HUP");
    b.l.lab
        .wait_for_log(&node1.daemon, "refused", Duration::from_secs(20));
    std::fs::write(&node1.config, valid).unwrap();
    assert_eq!(
        established(&b, &node1.host.ipv4.to_string()),
        before,
        "an invalid reload reset the session"
    );
    let v = b
        .frr
        .json(&b.l.lab, &format!("show bgp ipv4 unicast {prefix} json"));
    assert!(
        v["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["locPrf"] == 300),
        "{v}"
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
