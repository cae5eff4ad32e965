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
//! - passive: `gobgpd` connects to our `Listener`.
//!
//! Needs root (network namespaces), `ip`, `gobgpd` and `gobgp`.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener as StdListener};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

// === gobgpd ===

struct Neighbor<'a> {
    addr: IpAddr,
    password: Option<&'a str>,
    /// gobgpd only waits for our connection.
    passive: bool,
}

fn start_gobgpd(lab: &Lab, host: &Host, neighbors: &[Neighbor]) -> Proc {
    let mut toml = format!(
        "[global.config]\n  as = {ROUTER_ASN}\n  router-id = \"{}\"\n",
        host.ipv4
    );
    for n in neighbors {
        toml += &format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {NODE_ASN}\n",
            n.addr
        );
        if let Some(p) = n.password {
            toml += &format!("    auth-password = \"{p}\"\n");
        }
        toml += &format!(
            "  [neighbors.transport.config]\n    passive-mode = {}\n",
            n.passive
        );
        // Dial the node soon when active (the default idle hold after a reset is 30 s).
        toml += "  [neighbors.timers.config]\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n";
        for family in ["ipv4-unicast", "ipv6-unicast"] {
            toml += &format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
            );
        }
    }
    let conf = lab.write_file(&format!("gobgpd-{}.toml", host.name), &toml, 0o644);
    let log = lab.path(&format!("gobgpd-{}.log", host.name));
    let conf = conf.to_string_lossy().to_string();
    let api = format!("127.0.0.1:{GOBGP_API}");
    let p = lab.spawn(
        &host.ns,
        "gobgpd",
        &["-f", &conf, "-t", "toml", "-p", "-l", "debug", "--api-hosts", &api, "--pprof-disable"],
        &log,
    );
    wait_for("gobgpd API", WAIT, || {
        let out = lab.exec(&host.ns, "gobgp", &["-p", GOBGP_API, "global"]);
        if out.ok {
            Ok(())
        } else {
            Err(out.stderr.clone())
        }
    });
    p
}

fn gobgp_json(lab: &Lab, host: &Host, args: &[&str]) -> Value {
    let mut all = vec!["-p", GOBGP_API];
    all.extend_from_slice(args);
    all.push("-j");
    let out = lab.exec(&host.ns, "gobgp", &all).expect_ok("gobgp");
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

/// GoBGP's session state for `addr` (6 = Established).
fn gobgp_session_state(lab: &Lab, host: &Host, addr: IpAddr) -> i64 {
    let all = gobgp_json(lab, host, &["neighbor"]);
    all.as_array()
        .into_iter()
        .flatten()
        .find(|n| n["conf"]["neighbor_address"] == addr.to_string())
        .and_then(|n| n["state"]["session_state"].as_i64())
        .unwrap_or(0)
}

/// GoBGP's RIB of a family: prefix → (next hop, communities, large communities).
fn gobgp_rib(lab: &Lab, host: &Host, family: &str) -> BTreeMap<String, (String, Vec<u64>, Vec<String>)> {
    let rib = gobgp_json(lab, host, &["global", "rib", "-a", family]);
    let mut out = BTreeMap::new();
    for (prefix, paths) in rib.as_object().into_iter().flatten() {
        let Some(path) = paths.get(0) else { continue };
        let mut entry = (String::new(), Vec::new(), Vec::new());
        for attr in path["attrs"].as_array().into_iter().flatten() {
            match attr["type"].as_i64() {
                Some(3) => entry.0 = attr["nexthop"].as_str().unwrap_or("").to_string(),
                Some(14) => entry.0 = attr["nexthop"].as_str().unwrap_or("").to_string(),
                Some(8) => {
                    entry.1 = attr["communities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .collect()
                }
                Some(32) => {
                    entry.2 = attr["value"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| {
                            format!(
                                "{}:{}:{}",
                                c["ASN"], c["LocalData1"], c["LocalData2"]
                            )
                        })
                        .collect()
                }
                _ => {}
            }
        }
        out.insert(prefix.clone(), entry);
    }
    out
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
    let (lab, rtr, node) = lab("fbs1", 1);
    let node_v4 = IpAddr::V4(node.ipv4);
    start_gobgpd(&lab, &rtr, &[Neighbor { addr: node_v4, password: None, passive: true }]);
    let n = Node::start(&node.ns, vec![config("gobgp", &rtr)], None);
    let up = n.wait_state(0, State::Established);
    assert_eq!(up.families, (true, true));
    assert!(up.established_at.is_some());

    let mut routes = Routes::new();
    let a = attrs(&[(64600, 100), (64600, 200)], &[(64600, 1, 2)]);
    routes.insert("10.96.0.10/32".parse().unwrap(), Arc::clone(&a));
    routes.insert("10.96.0.11/32".parse().unwrap(), Arc::clone(&a));
    routes.insert("fd00:96::10/128".parse().unwrap(), attrs(&[(64600, 300)], &[]));
    n.set_routes(routes.clone());
    let v4 = wait_for("IPv4 routes in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv4");
        if rib.len() == 2 { Ok(rib) } else { Err(format!("{rib:?}")) }
    });
    for prefix in ["10.96.0.10/32", "10.96.0.11/32"] {
        let (next_hop, communities, large) = &v4[prefix];
        assert_eq!(next_hop, &node.ipv4.to_string());
        assert_eq!(communities, &vec![(64600u64 << 16) | 100, (64600 << 16) | 200]);
        assert_eq!(large, &vec!["64600:1:2".to_string()]);
    }
    let v6 = wait_for("the IPv6 route in GoBGP", WAIT, || {
        let rib = gobgp_rib(&lab, &rtr, "ipv6");
        if rib.len() == 1 { Ok(rib) } else { Err(format!("{rib:?}")) }
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
        if keys == ["10.96.0.10/32", "10.96.0.12/32"] { Ok(()) } else { Err(format!("{keys:?}")) }
    });

    // Stop::Withdraw: the routes go first, then the session with Cease.
    n.stop(0, Stop::Withdraw);
    assert_eq!(n.status(0).state, State::Idle);
    let v4 = gobgp_rib(&lab, &rtr, "ipv4");
    let v6 = gobgp_rib(&lab, &rtr, "ipv6");
    assert!(v4.is_empty() && v6.is_empty(), "{v4:?} {v6:?}");
    wait_for("GoBGP seeing the session down", WAIT, || {
        match gobgp_session_state(&lab, &rtr, node_v4) {
            6 => Err("still established".into()),
            _ => Ok(()),
        }
    });
    // GoBGP's debug log: it received our withdrawals (queued before the Cease on the same
    // socket), so the routes went because we withdrew them, not only because the session
    // ended. (Its log lines come from several goroutines, so their order proves nothing.)
    let log = std::fs::read_to_string(lab.path("gobgpd-rtr.log")).unwrap_or_default();
    let line = |what: &dyn Fn(&str) -> bool| log.lines().position(|l| what(l));
    let withdrew_v4 = line(&|l| l.contains("withdrawals=\"[10.96.0.10/32 10.96.0.12/32]\""));
    let withdrew_v6 = line(&|l| l.contains("MpUnreach(ipv6-unicast): {NLRIs: [fd00:96::10/128]}"));
    let cease = line(&|l| {
        l.contains("received notification") && l.contains("Code=6") && l.contains("Subcode=2")
    });
    assert!(
        withdrew_v4.is_some() && withdrew_v6.is_some() && cease.is_some(),
        "GoBGP's log does not show our withdrawals and Cease 6/2: {withdrew_v4:?} {withdrew_v6:?} {cease:?}\n{log}"
    );
}
