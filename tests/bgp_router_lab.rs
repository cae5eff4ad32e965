//! The BGP router lab ([`common::bgp`]) proved with GoBGP stand-ins as the node speakers, so
//! the daemon's BGP tests can be written on top of it:
//!
//! - FRR as the router: three `gobgpd` node speakers (AS 64500) announce the same /32 with
//!   their own address as next hop → FRR holds three paths, the router's kernel FIB a
//!   multipath route with three next hops, and 30 TCP connections from the client behind the
//!   router land on at least two nodes; one node withdraws → two paths, in FRR and the FIB;
//!   the same for a /128 over MP-BGP; bgpd restarted → sessions and paths come back;
//! - FRR with an MD5 password: the right key gives a session, a wrong one none; communities
//!   and large communities show in FRR's JSON; a speaker
//!   frozen (SIGSTOP) is dropped at hold-timer expiry (`timers 1 3`) and its path with it;
//! - FRR with an iBGP speaker: LOCAL_PREF shows in FRR's JSON, the AS path is empty;
//! - GoBGP as the router: its RIB holds the three paths (gobgpd installs no kernel routes).
//!
//! Needs root, `ip`, `curl`, FRR (`/usr/lib/frr/{zebra,bgpd}`, `vtysh`) and GoBGP (`gobgpd`,
//! `gobgp`); a missing one fails the test.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::bgp::*;
use common::netlab::*;

const ROUTER_ASN: u32 = 64001;
const NODE_ASN: u32 = 64500;
const SERVICE_V4: &str = "10.96.0.10";
const SERVICE_V6: &str = "fd00:96::10";
/// Sessions (gobgpd waits a few seconds before it dials) and route propagation.
const WAIT: Duration = Duration::from_secs(40);

/// Starts a stand-in speaker on every node, dialling the router, with API ports from `port`.
fn speakers<'a>(lab: &'a Lab, topo: &BgpTopology, port: u16) -> Vec<GoBgpRouter<'a>> {
    topo.nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            GoBgpRouter::speaker(
                lab,
                n,
                NODE_ASN,
                topo.router_ip(),
                ROUTER_ASN,
                port + i as u16,
            )
        })
        .collect()
}

/// Every speaker announces the service addresses with its own next hop.
fn announce_all(topo: &BgpTopology, speakers: &[GoBgpRouter]) {
    for (n, s) in topo.nodes.iter().zip(speakers) {
        s.announce(&format!("{SERVICE_V4}/32"), IpAddr::V4(n.ipv4));
        let v6 = n.ipv6.expect("nodes have IPv6");
        s.announce(&format!("{SERVICE_V6}/128"), IpAddr::V6(v6));
    }
}

fn wait_paths(what: &str, want: &[IpAddr], f: impl Fn() -> Vec<IpAddr>) {
    wait_for(what, WAIT, || {
        let got = f();
        if got == want {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    });
}

#[test]
fn bgp_router_lab_frr_multipath_from_three_gobgp_speakers() {
    require_frr();
    require_gobgp();
    require_program("curl");
    let lab = Lab::new("fbr1");
    let topo = BgpTopology::build(&lab, 1, &[SERVICE_V4, SERVICE_V6]);
    let config = FrrConfig::new(ROUTER_ASN).neighbors(&topo.node_ips(), NODE_ASN);
    let mut frr = FrrRouter::start(&lab, &topo.router, &config);
    let speakers = speakers(&lab, &topo, 50151);
    for a in topo.node_ips() {
        frr.wait_established(a, WAIT);
    }
    announce_all(&topo, &speakers);

    let v4 = format!("{SERVICE_V4}/32");
    let v6 = format!("{SERVICE_V6}/128");
    let all_v4 = topo.node_ips();
    let all_v6 = topo.node_ipv6s();
    wait_paths("three IPv4 paths in FRR", &all_v4, || frr.paths(&v4));
    wait_paths("a 3-way multipath IPv4 route in the FIB", &all_v4, || {
        frr.fib_nexthops(&v4)
    });
    wait_paths("three IPv6 paths in FRR (MP-BGP)", &all_v6, || {
        frr.paths(&v6)
    });
    wait_paths("a 3-way multipath IPv6 route in the FIB", &all_v6, || {
        frr.fib_nexthops(&v6)
    });

    for service in [SERVICE_V4, SERVICE_V6] {
        let answers = topo.client_names(&lab, service, 30);
        let names: BTreeSet<String> = answers
            .iter()
            .map(|a| a.clone().unwrap_or_else(|e| panic!("{service}: {e}")))
            .collect();
        assert_eq!(answers.len(), 30, "{service}: {answers:?}");
        assert!(
            names.len() >= 2,
            "30 connections to {service} should spread over the nodes, all went to {names:?}"
        );
    }

    // One node withdraws: FRR and the kernel are down to two paths.
    speakers[0].withdraw(&v4);
    speakers[0].withdraw(&v6);
    wait_paths("two IPv4 paths in FRR", &all_v4[1..], || frr.paths(&v4));
    wait_paths("two IPv4 next hops in the FIB", &all_v4[1..], || {
        frr.fib_nexthops(&v4)
    });
    wait_paths("two IPv6 paths in FRR", &all_v6[1..], || frr.paths(&v6));
    let names: BTreeSet<String> = topo
        .client_names(&lab, SERVICE_V4, 10)
        .into_iter()
        .map(|a| a.unwrap_or_else(|e| panic!("after the withdraw: {e}")))
        .collect();
    assert!(
        !names.contains(&topo.nodes[0].name),
        "{} withdrew but still got connections: {names:?}",
        topo.nodes[0].name
    );

    // The router restarts: sessions come back and the speakers' routes are learnt again.
    frr.restart_bgpd();
    for a in topo.node_ips() {
        frr.wait_established(a, WAIT);
    }
    wait_paths("two IPv4 paths after bgpd restarted", &all_v4[1..], || {
        frr.paths(&v4)
    });
    wait_paths(
        "two FIB next hops after bgpd restarted",
        &all_v4[1..],
        || frr.fib_nexthops(&v4),
    );
}

#[test]
fn bgp_router_lab_gobgp_router_rib_holds_three_paths() {
    require_gobgp();
    let lab = Lab::new("fbr2");
    let topo = BgpTopology::build(&lab, 2, &[SERVICE_V4, SERVICE_V6]);
    let router = GoBgpRouter::start(
        &lab,
        &topo.router,
        &GoBgpConfig {
            asn: ROUTER_ASN,
            router_id: topo.router.ipv4,
            listen: true,
            api_port: 50250,
            neighbors: topo
                .node_ips()
                .into_iter()
                .map(|addr| GoBgpNeighbor {
                    addr,
                    peer_as: NODE_ASN,
                    password: None,
                    passive: false,
                })
                .collect(),
        },
    );
    let speakers = speakers(&lab, &topo, 50251);
    for a in topo.node_ips() {
        router.wait_established(a, WAIT);
    }
    announce_all(&topo, &speakers);
    let v4 = format!("{SERVICE_V4}/32");
    let v6 = format!("{SERVICE_V6}/128");
    let all_v4 = topo.node_ips();
    let all_v6 = topo.node_ipv6s();
    wait_paths("three IPv4 paths in gobgpd's RIB", &all_v4, || {
        router.paths(&v4)
    });
    wait_paths("three IPv6 paths in gobgpd's RIB", &all_v6, || {
        router.paths(&v6)
    });

    speakers[2].withdraw(&v4);
    wait_paths("two IPv4 paths in gobgpd's RIB", &all_v4[..2], || {
        router.paths(&v4)
    });
}

#[test]
fn bgp_router_lab_frr_password_and_hold_timer() {
    require_frr();
    require_gobgp();
    let lab = Lab::new("fbr3");
    let topo = BgpTopology::build(&lab, 3, &[SERVICE_V4]);
    let [n1, n2] = [&topo.nodes[0], &topo.nodes[1]];
    let (a1, a2) = (IpAddr::V4(n1.ipv4), IpAddr::V4(n2.ipv4));
    let mut config = FrrConfig::new(ROUTER_ASN);
    for a in [a1, a2] {
        let mut n = FrrNeighbor::new(a, NODE_ASN);
        n.password = Some("lab-secret".into());
        // Keepalives every second, hold 3 s: a silent peer is dropped within seconds.
        n.timers = Some((1, 3));
        config = config.neighbor(n);
    }
    let frr = FrrRouter::start(&lab, &topo.router, &config);
    let mut right = GoBgpConfig::speaker(n1, NODE_ASN, topo.router_ip(), ROUTER_ASN, 50351);
    right.neighbors[0].password = Some("lab-secret".into());
    let mut wrong = GoBgpConfig::speaker(n2, NODE_ASN, topo.router_ip(), ROUTER_ASN, 50352);
    wrong.neighbors[0].password = Some("not-the-secret".into());
    let s1 = GoBgpRouter::start(&lab, n1, &right);
    let s2 = GoBgpRouter::start(&lab, n2, &wrong);

    frr.wait_established(a1, WAIT);
    s1.announce_with(
        &format!("{SERVICE_V4}/32"),
        a1,
        &[
            "community",
            "64500:100,64500:7",
            "large-community",
            "64500:1:2",
        ],
    );
    wait_paths("n1's path in FRR", &[a1], || {
        frr.paths(&format!("{SERVICE_V4}/32"))
    });
    let path = &frr.routes(&format!("{SERVICE_V4}/32"))[0];
    assert!(path.selected, "{path:?}");
    assert_eq!(path.as_path, NODE_ASN.to_string());
    assert_eq!(path.communities, ["64500:7", "64500:100"]);
    assert_eq!(path.large_communities, ["64500:1:2"]);
    // n2 dialled (and was dialled) all along with the wrong key: TCP never got through.
    assert_ne!(frr.neighbor_state(a2), "Established");
    assert_ne!(s2.neighbor_state(topo.router_ip()), 6);

    // n1's speaker goes silent: FRR drops the session at hold-timer expiry, and the path.
    lab.signal(s1.proc, "STOP");
    wait_for("FRR to drop the silent peer", WAIT, || {
        match frr.neighbor_state(a1) {
            s if s == "Established" => Err(s),
            _ => Ok(()),
        }
    });
    wait_paths("no path once the peer went silent", &[], || {
        frr.paths(&format!("{SERVICE_V4}/32"))
    });
    let reason = frr.last_reset(a1);
    let log = std::fs::read_to_string(frr.dir.join("bgpd.log")).unwrap_or_default();
    assert!(
        reason.contains("Hold Timer"),
        "the session should end at hold-timer expiry, FRR says {reason:?}; bgpd.log:\n{log}"
    );
    lab.signal(s1.proc, "CONT");
}

#[test]
fn bgp_router_lab_frr_ibgp_local_pref() {
    require_frr();
    require_gobgp();
    let lab = Lab::new("fbr4");
    let topo = BgpTopology::build(&lab, 4, &[SERVICE_V4]);
    let n1 = &topo.nodes[0];
    let a1 = IpAddr::V4(n1.ipv4);
    // The node in the router's own AS: iBGP, where LOCAL_PREF is carried.
    let config = FrrConfig::new(ROUTER_ASN).neighbors(&[a1], ROUTER_ASN);
    let frr = FrrRouter::start(&lab, &topo.router, &config);
    let speaker = GoBgpRouter::speaker(&lab, n1, ROUTER_ASN, topo.router_ip(), ROUTER_ASN, 50451);
    frr.wait_established(a1, WAIT);
    let prefix = format!("{SERVICE_V4}/32");
    speaker.announce_with(&prefix, a1, &["local-pref", "200"]);
    wait_paths("n1's iBGP path in FRR", &[a1], || frr.paths(&prefix));
    let path = &frr.routes(&prefix)[0];
    assert_eq!(path.local_pref, Some(200), "{path:?}");
    assert_eq!(path.as_path, "Local", "an iBGP route has an empty AS path");
    wait_paths("the iBGP route in the FIB", &[a1], || {
        frr.fib_nexthops(&prefix)
    });
}
