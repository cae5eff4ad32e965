//! End-to-end: `bgp::session` over real TCP in network namespaces against GoBGP (`gobgpd`).
//! A node namespace runs sessions on a current-thread runtime (on a thread that entered the
//! namespace); router namespaces run `gobgpd` (or a fake peer) on the same LAN.
//!
//! - routes given through the watch reach GoBGP's RIB with our next hop and communities,
//!   IPv6 /128s through MP-BGP over the IPv4 session; a change withdraws and announces;
//!   `Stop::Withdraw` empties GoBGP's RIB and ends the session with Cease;
//! - TCP MD5: the right password brings the session up, a wrong one never;
//! - a frozen `gobgpd` (SIGSTOP) is dropped when the hold timer (3 s) expires;
//! - a fake peer sending a malformed UPDATE gets NOTIFICATION 3/x and is closed, while a
//!   session to `gobgpd` on the same node stays Established;
//! - passive: `gobgpd` connects to our `Listener` (MD5 key on the listening socket);
//!   `Stop::Restart` closes without NOTIFICATION or withdrawals;
//! - IPv4 routes over an IPv6 session, with next hop and router id from the interface;
//! - `Stop::Withdraw` returns (bounded goodbye) even when the peer is frozen;
//! - SYNs leave with TTL 1 (direct eBGP), 255 (iBGP) or the `ebgp_multihop` value.
//!
//! Needs root (network namespaces), `ip`, `gobgpd`, `gobgp` and `tcpdump`.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::gobgp::{self, Neighbor};
use common::netlab::*;
use ferrolb::bgp::codec::{
    AfiSafi, Capability, Community, Context, LargeCommunity, Message, Open, HEADER_LEN,
};
use ferrolb::bgp::fsm::State;
use ferrolb::bgp::session::{Listener, PeerStatus, Session, SessionConfig, Stop};
use ferrolb::bgp::speaker::{RouteAttrs, Routes};
use serde_json::Value;
use tokio::sync::watch;

const ROUTER_ASN: u32 = 64512;
const NODE_ASN: u32 = 64600;
const GOBGP_API: &str = "50051";
const WAIT: Duration = Duration::from_secs(30);

// === the node: sessions on a runtime inside its namespace ===

/// What the test asks of the node's runtime.
enum NodeCmd {
    Stop(usize, Stop, std::sync::mpsc::Sender<()>),
}

/// Sessions running in a node namespace. The test thread feeds routes, reads statuses and
/// stops sessions; dropping it stops the rest without a goodbye.
struct Node {
    routes: watch::Sender<Arc<Routes>>,
    statuses: Vec<watch::Receiver<PeerStatus>>,
    /// Every state each session went through, in order (a watcher task records them).
    history: Vec<Arc<Mutex<Vec<State>>>>,
    cmds: Option<tokio::sync::mpsc::UnboundedSender<NodeCmd>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Node {
    /// Starts `configs` in `ns`; with `listen`, a [`Listener`] on that address takes the
    /// peers' connections.
    fn start(ns: &str, configs: Vec<SessionConfig>, listen: Option<SocketAddr>) -> Node {
        let (routes, routes_rx) = watch::channel(Arc::new(Routes::new()));
        let (cmds, mut cmd_rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/var/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let file = File::open(&path).expect("namespace file");
            // SAFETY: setns on a valid namespace fd; it affects only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = listen.map(|addr| Listener::bind(addr).expect("listener"));
                let mut sessions = Vec::new();
                let mut statuses = Vec::new();
                let mut history = Vec::new();
                for cfg in configs {
                    let (peer, password) = (cfg.peer, cfg.password.clone());
                    let session = Session::spawn(cfg, routes_rx.clone());
                    if let Some(l) = &listener {
                        l.add_peer(peer, password.as_deref(), session.acceptor())
                            .expect("add peer");
                    }
                    let mut status = session.status();
                    let seen = Arc::new(Mutex::new(vec![status.borrow().state]));
                    let record = Arc::clone(&seen);
                    tokio::spawn(async move {
                        while status.changed().await.is_ok() {
                            let state = status.borrow_and_update().state;
                            let mut h = record.lock().unwrap();
                            if h.last() != Some(&state) {
                                h.push(state);
                            }
                        }
                    });
                    statuses.push(session.status());
                    history.push(seen);
                    sessions.push(Some(session));
                }
                ready_tx.send((statuses, history)).expect("test thread");
                while let Some(NodeCmd::Stop(i, how, done)) = cmd_rx.recv().await {
                    if let Some(session) = sessions[i].take() {
                        session.stop(how).await;
                    }
                    let _ = done.send(());
                }
                for session in sessions.into_iter().flatten() {
                    session.stop(Stop::Restart).await;
                }
                drop(listener);
            });
        });
        let (statuses, history) = ready_rx.recv().expect("node runtime started");
        Node {
            routes,
            statuses,
            history,
            cmds: Some(cmds),
            thread: Some(thread),
        }
    }

    fn status(&self, i: usize) -> PeerStatus {
        self.statuses[i].borrow().clone()
    }

    fn set_routes(&self, routes: Routes) {
        self.routes.send_replace(Arc::new(routes));
    }

    /// Stops session `i` and waits until its goodbye is flushed.
    fn stop(&self, i: usize, how: Stop) {
        let (done, wait) = std::sync::mpsc::channel();
        self.cmds
            .as_ref()
            .expect("node running")
            .send(NodeCmd::Stop(i, how, done))
            .expect("node runtime");
        wait.recv_timeout(Duration::from_secs(10))
            .expect("stop returned");
    }

    fn wait_state(&self, i: usize, want: State) -> PeerStatus {
        wait_for(&format!("session {i} {want:?}"), WAIT, || {
            let s = self.status(i);
            if s.state == want {
                Ok(s)
            } else {
                Err(format!("{s:?}"))
            }
        })
    }

    fn ever(&self, i: usize, state: State) -> bool {
        self.history[i].lock().unwrap().contains(&state)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cmds.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// === gobgpd (tests/common/gobgp.rs) with this file's AS numbers and API port ===

fn start_gobgpd(lab: &Lab, host: &Host, neighbors: &[Neighbor]) -> Proc {
    gobgp::start_gobgpd(lab, host, (ROUTER_ASN, NODE_ASN), neighbors, GOBGP_API)
}

fn gobgp_json(lab: &Lab, host: &Host, args: &[&str]) -> Value {
    gobgp::gobgp_json(lab, host, GOBGP_API, args)
}

fn gobgp_session_state(lab: &Lab, host: &Host, addr: IpAddr) -> i64 {
    gobgp::gobgp_session_state(lab, host, GOBGP_API, addr)
}

fn gobgp_rib(
    lab: &Lab,
    host: &Host,
    family: &str,
) -> BTreeMap<String, (String, Vec<u64>, Vec<String>)> {
    gobgp::gobgp_rib(lab, host, GOBGP_API, family)
}

fn attrs(communities: &[(u16, u16)], large: &[(u32, u32, u32)]) -> Arc<RouteAttrs> {
    Arc::new(RouteAttrs {
        communities: communities
            .iter()
            .map(|&(h, l)| Community((u32::from(h) << 16) | u32::from(l)))
            .collect(),
        large_communities: large
            .iter()
            .map(|&(global, local1, local2)| LargeCommunity {
                global,
                local1,
                local2,
            })
            .collect(),
        local_pref: None,
    })
}

/// A lab with a router and a node (both with IPv4 and IPv6) on one LAN.
fn lab(prefix: &str, net: u8) -> (Lab, Host, Host) {
    let lab = Lab::new(prefix);
    let rtr = lab.host(
        "rtr",
        &format!("10.251.{net}.1/24"),
        Some(&format!("fd00:251:{net}::1/64")),
    );
    let node = lab.host(
        "node",
        &format!("10.251.{net}.2/24"),
        Some(&format!("fd00:251:{net}::2/64")),
    );
    (lab, rtr, node)
}

fn config(name: &str, peer: &Host) -> SessionConfig {
    let mut cfg = SessionConfig::new(name, IpAddr::V4(peer.ipv4), NODE_ASN, ROUTER_ASN);
    cfg.connect_retry = Duration::from_secs(1);
    cfg
}

#[test]
fn routes_reach_gobgp_follow_changes_and_are_withdrawn_on_stop() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs1", 1);
    let node_v4 = IpAddr::V4(node.ipv4);
    start_gobgpd(&lab, &rtr, &[Neighbor::to(node_v4)]);
    let n = Node::start(&node.ns, vec![config("gobgp", &rtr)], None);
    let up = n.wait_state(0, State::Established);
    assert_eq!(up.families, (true, true));
    assert!(up.established_at.is_some());

    let mut routes = Routes::new();
    let a = attrs(&[(64600, 100), (64600, 200)], &[(64600, 1, 2)]);
    routes.insert("10.96.0.10/32".parse().unwrap(), Arc::clone(&a));
    routes.insert("10.96.0.11/32".parse().unwrap(), Arc::clone(&a));
    routes.insert(
        "fd00:96::10/128".parse().unwrap(),
        attrs(&[(64600, 300)], &[]),
    );
    n.set_routes(routes.clone());
    let v4 = wait_for("IPv4 routes in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.len() == 2 {
            Ok(rib)
        } else {
            Err(format!("{rib:?}"))
        }
    });
    for prefix in ["10.96.0.10/32", "10.96.0.11/32"] {
        let (next_hop, communities, large) = &v4[prefix];
        assert_eq!(next_hop, &node.ipv4.to_string());
        assert_eq!(
            communities,
            &vec![(64600u64 << 16) | 100, (64600 << 16) | 200]
        );
        assert_eq!(large, &vec!["64600:1:2".to_string()]);
    }
    let v6 = wait_for("the IPv6 route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv6");
        if rib.len() == 1 {
            Ok(rib)
        } else {
            Err(format!("{rib:?}"))
        }
    });
    let (next_hop, communities, _) = &v6["fd00:96::10/128"];
    assert_eq!(next_hop, &node.ipv6.unwrap().to_string());
    assert_eq!(communities, &vec![(64600u64 << 16) | 300]);
    let s = n.status(0);
    assert_eq!(s.prefixes_sent, 3);
    assert!(s.updates_sent >= 2, "{s:?}");

    // A change: one prefix goes, another comes.
    routes.remove(&"10.96.0.11/32".parse().unwrap());
    routes.insert("10.96.0.12/32".parse().unwrap(), Arc::clone(&a));
    n.set_routes(routes);
    wait_for("GoBGP following the change", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        let keys: Vec<&str> = rib.keys().map(String::as_str).collect();
        if keys == ["10.96.0.10/32", "10.96.0.12/32"] {
            Ok(())
        } else {
            Err(format!("{keys:?}"))
        }
    });

    // Routes GoBGP sends us are received (and dropped: a node keeps no routes).
    let before = n.status(0).updates_received;
    lab.exec(
        &rtr.ns,
        "gobgp",
        &[
            "-p",
            GOBGP_API,
            "global",
            "rib",
            "add",
            "-a",
            "ipv4",
            "192.0.2.0/24",
            "nexthop",
            &rtr.ipv4.to_string(),
        ],
    )
    .expect_ok("gobgp rib add");
    wait_for("GoBGP's UPDATE received", WAIT, || {
        let s = n.status(0);
        if s.updates_received > before {
            Ok(())
        } else {
            Err(format!("{s:?}"))
        }
    });
    assert_eq!(n.status(0).state, State::Established);

    // Stop::Withdraw: the routes go first, then the session with Cease.
    n.stop(0, Stop::Withdraw);
    assert_eq!(n.status(0).state, State::Idle);
    wait_for("GoBGP's RIB without our routes", WAIT, || {
        let mut v4 = gobgp_rib(&lab, &rtr, "ipv4");
        v4.remove("192.0.2.0/24");
        let v6 = gobgp_rib(&lab, &rtr, "ipv6");
        if v4.is_empty() && v6.is_empty() {
            Ok(())
        } else {
            Err(format!("{v4:?} {v6:?}"))
        }
    });
    wait_for(
        "GoBGP seeing the session down",
        WAIT,
        || match gobgp_session_state(&lab, &rtr, node_v4) {
            6 => Err("still established".into()),
            _ => Ok(()),
        },
    );
    // GoBGP's debug log: it received our withdrawals (queued before the Cease on the same
    // socket), so the routes went because we withdrew them, not only because the session
    // ended. (Its log lines come from several goroutines, so their order proves nothing.)
    let log = std::fs::read_to_string(lab.path("gobgpd-rtr.log")).unwrap_or_default();
    let seen = |needle: &str| log.lines().any(|l| l.contains(needle));
    let withdrew_v4 = seen("withdrawals=\"[10.96.0.10/32 10.96.0.12/32]\"");
    let withdrew_v6 = seen("MpUnreach(ipv6-unicast): {NLRIs: [fd00:96::10/128]}");
    let cease = log.lines().any(|l| {
        l.contains("received notification") && l.contains("Code=6") && l.contains("Subcode=2")
    });
    assert!(
        withdrew_v4 && withdrew_v6 && cease,
        "GoBGP's log does not show our withdrawals and Cease 6/2: {withdrew_v4:?} {withdrew_v6:?} {cease:?}\n{log}"
    );
}

#[test]
fn md5_right_password_comes_up_and_a_wrong_one_never() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs2", 2);
    let rtr2 = lab.host("rtr2", "10.251.2.3/24", None);
    let node_v4 = IpAddr::V4(node.ipv4);
    for host in [&rtr, &rtr2] {
        let neighbor = Neighbor {
            password: Some("s3cret"),
            ..Neighbor::to(node_v4)
        };
        start_gobgpd(&lab, host, &[neighbor]);
    }
    let mut right = config("right", &rtr);
    right.password = Some("s3cret".into());
    let mut wrong = config("wrong", &rtr2);
    wrong.password = Some("wr0ng".into());
    let n = Node::start(&node.ns, vec![right, wrong], None);
    n.wait_state(0, State::Established);
    assert_eq!(gobgp_session_state(&lab, &rtr, node_v4), 6);
    // The wrong key: every SYN is dropped by GoBGP's kernel, attempt after attempt.
    wait_for("three connect attempts with the wrong key", WAIT, || {
        let h = n.history[1].lock().unwrap().clone();
        let attempts = h.iter().filter(|s| **s == State::Connect).count();
        if attempts >= 3 {
            Ok(())
        } else {
            Err(format!("{h:?}"))
        }
    });
    assert!(!n.ever(1, State::Established) && !n.ever(1, State::OpenSent));
    let s = n.status(1);
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.contains("timed out")),
        "{s:?}"
    );
    assert_ne!(gobgp_session_state(&lab, &rtr2, node_v4), 6);
    assert_eq!(n.status(0).state, State::Established);
}

#[test]
fn a_frozen_peer_is_dropped_at_hold_timer_expiry_and_routes_return_after() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs3", 3);
    let node_v4 = IpAddr::V4(node.ipv4);
    let neighbor = Neighbor {
        hold_time: Some(3),
        ..Neighbor::to(node_v4)
    };
    let gobgpd = start_gobgpd(&lab, &rtr, &[neighbor]);
    let mut cfg = config("gobgp", &rtr);
    cfg.hold_time = Duration::from_secs(3);
    let n = Node::start(&node.ns, vec![cfg], None);
    let mut routes = Routes::new();
    routes.insert("10.96.3.1/32".parse().unwrap(), attrs(&[], &[]));
    n.set_routes(routes);
    n.wait_state(0, State::Established);
    wait_for("the route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.contains_key("10.96.3.1/32") {
            Ok(())
        } else {
            Err(format!("{rib:?}"))
        }
    });

    lab.signal(gobgpd, "STOP");
    let down = wait_for("the session to leave Established", WAIT, || {
        let s = n.status(0);
        if s.state != State::Established {
            Ok(s)
        } else {
            Err(format!("{s:?}"))
        }
    });
    assert!(
        down.last_error
            .as_deref()
            .is_some_and(|e| e.contains("hold timer expired")),
        "{down:?}"
    );
    assert_eq!(down.prefixes_sent, 0);

    // Back: the session comes up again and the route is sent again.
    lab.signal(gobgpd, "CONT");
    wait_for("the session back and the route re-advertised", WAIT, || {
        let s = n.status(0);
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if s.state == State::Established && rib.contains_key("10.96.3.1/32") {
            Ok(())
        } else {
            Err(format!("{s:?} {rib:?}"))
        }
    });
}

/// Reads one BGP message (header included), or `None` at EOF / error.
fn read_message(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    stream.read_exact(&mut header).ok()?;
    let len = usize::from(u16::from_be_bytes([header[16], header[17]]));
    let mut body = vec![0u8; len.saturating_sub(HEADER_LEN)];
    stream.read_exact(&mut body).ok()?;
    Some([header.to_vec(), body].concat())
}

/// What the fake peer saw after its malformed UPDATE.
#[derive(Debug)]
struct FakeOutcome {
    /// Code and subcode of the NOTIFICATION it got.
    notification: Option<(u8, u8)>,
    /// The connection was closed after it.
    closed: bool,
}

/// A peer in `ns` on port 179 that opens a session like a real one (OPEN, KEEPALIVE),
/// then sends an UPDATE whose withdrawn-routes length overruns the message.
fn fake_peer(ns: &str, asn: u32, id: std::net::Ipv4Addr) -> std::thread::JoinHandle<FakeOutcome> {
    let path = format!("/var/run/netns/{ns}");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let file = File::open(&path).expect("namespace file");
        // SAFETY: setns on a valid namespace fd; it affects only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        let listener = StdListener::bind("0.0.0.0:179").expect("fake peer listens");
        ready_tx.send(()).expect("test thread");
        let (mut s, _) = listener.accept().expect("our session connects");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let ours = read_message(&mut s).expect("our OPEN");
        assert_eq!(ours[18], 1, "first message is OPEN");
        let ctx = Context::default();
        let open = Message::Open(Open {
            asn,
            hold_time: 90,
            bgp_id: id,
            capabilities: vec![
                Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                Capability::FourOctetAs(asn),
            ],
        });
        s.write_all(&open.encode(&ctx).unwrap()).unwrap();
        s.write_all(&Message::Keepalive.encode(&ctx).unwrap())
            .unwrap();
        // Our KEEPALIVE answers the OPEN; then the session is Established on our side.
        while read_message(&mut s).expect("our KEEPALIVE")[18] != 4 {}
        let mut bad = vec![0xff; 16];
        bad.extend_from_slice(&23u16.to_be_bytes());
        bad.extend_from_slice(&[2, 0x00, 0x10, 0x00, 0x00]);
        s.write_all(&bad).unwrap();
        let mut outcome = FakeOutcome {
            notification: None,
            closed: false,
        };
        while let Some(m) = read_message(&mut s) {
            if m[18] == 3 {
                outcome.notification = Some((m[19], m[20]));
                break;
            }
        }
        let mut rest = Vec::new();
        outcome.closed = s.read_to_end(&mut rest).is_ok();
        outcome
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("fake peer listening");
    handle
}

#[test]
fn a_malformed_update_resets_that_session_only() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs4", 4);
    let fake = lab.host("fake", "10.251.4.3/24", None);
    let node_v4 = IpAddr::V4(node.ipv4);
    start_gobgpd(&lab, &rtr, &[Neighbor::to(node_v4)]);
    let peer = fake_peer(&fake.ns, 64513, fake.ipv4);
    let mut to_fake = config("fake", &fake);
    to_fake.peer_asn = 64513;
    to_fake.connect_retry = Duration::from_secs(30);
    let n = Node::start(&node.ns, vec![config("gobgp", &rtr), to_fake], None);
    let up = n.wait_state(0, State::Established);

    let outcome = peer.join().expect("fake peer");
    assert_eq!(
        outcome.notification.map(|(code, _)| code),
        Some(3),
        "{outcome:?}"
    );
    assert!(outcome.closed, "{outcome:?}");
    assert!(n.ever(1, State::Established));
    let s = n.status(1);
    assert_ne!(s.state, State::Established);
    assert!(
        s.last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("we sent NOTIFICATION 3/")),
        "{s:?}"
    );
    // The other session never noticed.
    let other = n.status(0);
    assert_eq!(other.state, State::Established);
    assert_eq!(other.established_at, up.established_at);
    assert_eq!(gobgp_session_state(&lab, &rtr, node_v4), 6);
}

#[test]
fn passive_session_takes_gobgps_signed_connection_and_restart_sends_no_notification() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs5", 5);
    let node_v4 = IpAddr::V4(node.ipv4);
    let neighbor = Neighbor {
        password: Some("pass1"),
        passive: false,
        ..Neighbor::to(node_v4)
    };
    start_gobgpd(&lab, &rtr, &[neighbor]);
    let mut cfg = config("gobgp", &rtr);
    cfg.passive = true;
    cfg.password = Some("pass1".into());
    let n = Node::start(&node.ns, vec![cfg], Some("[::]:179".parse().unwrap()));
    let mut routes = Routes::new();
    routes.insert("10.96.5.1/32".parse().unwrap(), attrs(&[], &[]));
    n.set_routes(routes);
    n.wait_state(0, State::Established);
    assert!(
        !n.ever(0, State::Connect),
        "a passive session never connects out"
    );
    wait_for("the route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.contains_key("10.96.5.1/32") {
            Ok(())
        } else {
            Err(format!("{rib:?}"))
        }
    });

    // Restart: the socket closes without a NOTIFICATION and without withdrawals.
    n.stop(0, Stop::Restart);
    wait_for(
        "GoBGP seeing the session down",
        WAIT,
        || match gobgp_session_state(&lab, &rtr, node_v4) {
            6 => Err("still established".into()),
            _ => Ok(()),
        },
    );
    let log = std::fs::read_to_string(lab.path("gobgpd-rtr.log")).unwrap_or_default();
    assert!(!log.contains("received notification"), "{log}");
    assert!(!log.contains("withdrawals=\"[10.96.5.1/32]\""), "{log}");
}

#[test]
fn ipv4_routes_over_an_ipv6_session_with_the_router_id_from_the_interface() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs6", 6);
    let node_v6 = IpAddr::V6(node.ipv6.unwrap());
    start_gobgpd(&lab, &rtr, &[Neighbor::to(node_v6)]);
    let mut cfg = config("gobgp6", &rtr);
    cfg.peer = IpAddr::V6(rtr.ipv6.unwrap());
    cfg.source_address = Some(node_v6);
    let n = Node::start(&node.ns, vec![cfg], None);
    let mut routes = Routes::new();
    routes.insert("10.96.6.1/32".parse().unwrap(), attrs(&[], &[]));
    routes.insert("fd00:96::61/128".parse().unwrap(), attrs(&[], &[]));
    n.set_routes(routes);
    assert_eq!(n.wait_state(0, State::Established).families, (true, true));
    let v4 = wait_for("the IPv4 route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.len() == 1 {
            Ok(rib)
        } else {
            Err(format!("{rib:?}"))
        }
    });
    assert_eq!(v4["10.96.6.1/32"].0, node.ipv4.to_string());
    let v6 = wait_for("the IPv6 route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv6");
        if rib.len() == 1 {
            Ok(rib)
        } else {
            Err(format!("{rib:?}"))
        }
    });
    assert_eq!(v6["fd00:96::61/128"].0, node_v6.to_string());
    // Our router id: the node's IPv4 address on the session's interface.
    let neighbors = gobgp_json(&lab, &rtr, &["neighbor"]);
    let id = neighbors[0]["state"]["router_id"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(id, node.ipv4.to_string(), "{neighbors}");
}

#[test]
fn withdraw_stop_returns_even_when_the_peer_is_frozen() {
    require_program("gobgpd");
    require_program("gobgp");
    let (lab, rtr, node) = lab("fbs7", 7);
    let gobgpd = start_gobgpd(&lab, &rtr, &[Neighbor::to(IpAddr::V4(node.ipv4))]);
    let n = Node::start(&node.ns, vec![config("gobgp", &rtr)], None);
    let mut routes = Routes::new();
    routes.insert("10.96.7.1/32".parse().unwrap(), attrs(&[], &[]));
    n.set_routes(routes);
    n.wait_state(0, State::Established);
    wait_for("the route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.contains_key("10.96.7.1/32") {
            Ok(())
        } else {
            Err(format!("{rib:?}"))
        }
    });
    // The peer's kernel still takes our bytes, but it never closes its side: the goodbye's
    // wait is bounded (Node::stop panics if stop does not return).
    lab.signal(gobgpd, "STOP");
    n.stop(0, Stop::Withdraw);
    assert_eq!(n.status(0).state, State::Idle);
    lab.signal(gobgpd, "CONT");
    // Thawed, GoBGP reads what we sent before closing: the withdrawal and the Cease.
    wait_for("GoBGP's RIB without our route", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.is_empty() {
            Ok(())
        } else {
            Err(format!("{rib:?}"))
        }
    });
    wait_for("GoBGP logging our Cease", WAIT, || {
        let log = std::fs::read_to_string(lab.path("gobgpd-rtr.log")).unwrap_or_default();
        if log.contains("received notification") {
            Ok(())
        } else {
            Err("not yet".into())
        }
    });
}

#[test]
fn syns_carry_ttl_1_for_direct_ebgp_255_for_ibgp_and_the_multihop_value() {
    require_program("tcpdump");
    let (lab, rtr, node) = lab("fbs8", 8);
    let pcap = lab.path("syn.pcap");
    let pcap_s = pcap.to_string_lossy().to_string();
    let capture = lab.spawn(
        &rtr.ns,
        "tcpdump",
        &[
            "-i",
            "eth0",
            "-n",
            "-U",
            "-w",
            &pcap_s,
            "tcp[tcpflags] & tcp-syn != 0 and tcp[tcpflags] & tcp-ack == 0",
        ],
        &lab.path("tcpdump.log"),
    );
    wait_for("tcpdump listening", WAIT, || {
        let log = std::fs::read_to_string(lab.path("tcpdump.log")).unwrap_or_default();
        if log.contains("listening on") {
            Ok(())
        } else {
            Err(log)
        }
    });
    // Nothing listens on these ports: each session keeps sending SYNs, which is all we need.
    let direct = config("direct", &rtr);
    let mut ibgp = config("ibgp", &rtr);
    ibgp.port = 1790;
    ibgp.peer_asn = NODE_ASN;
    let mut multihop = config("multihop", &rtr);
    multihop.port = 1791;
    multihop.ebgp_multihop = Some(5);
    let _n = Node::start(&node.ns, vec![direct, ibgp, multihop], None);
    let ttls = wait_for("a SYN of each session", WAIT, || {
        let out = lab.exec(&rtr.ns, "tcpdump", &["-r", &pcap_s, "-n", "-v"]);
        let text = out.stdout.clone();
        let mut ttls = BTreeMap::new();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.windows(2) {
            let Some(ttl) = pair[0]
                .split("ttl ")
                .nth(1)
                .and_then(|r| r.split(',').next())
            else {
                continue;
            };
            let Some(port) = pair[1]
                .split(" > ")
                .nth(1)
                .and_then(|d| d.split(':').next())
                .and_then(|d| d.rsplit('.').next())
            else {
                continue;
            };
            ttls.insert(port.to_string(), ttl.to_string());
        }
        if ttls.len() == 3 {
            Ok(ttls)
        } else {
            Err(text)
        }
    });
    lab.kill(capture);
    assert_eq!(ttls["179"], "1");
    assert_eq!(ttls["1790"], "255");
    assert_eq!(ttls["1791"], "5");
}
