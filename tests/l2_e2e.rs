//! End-to-end: L2 mode. Three nodes, each a network namespace running the real `ferrolb run`
//! against the API simulator (in its own namespace on the same LAN), and a client namespace on
//! that LAN. Each node stands in for kube-proxy (every pool address on `lo`, the kernel kept
//! silent by `arp_ignore`/`arp_announce`) and runs `ferrolb lab responder`, which answers TCP
//! with the node's name. Only ferrolb's ARP/NDP answers decide where the client's packets go.
//!
//! The owner of an address is computed here, independently of the product, as the node with the
//! smallest `sha256(node + "#" + address)` among the eligible ones, and checked against the MAC
//! the client resolves, the client's neighbour table, the node that answers TCP, and a capture
//! on the LAN bridge.
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6` and `tcpdump`.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::e2e::*;
use common::l2::*;
use common::netlab::*;

/// How long an address may take to be answered after its Service got it.
const ANNOUNCE: Duration = Duration::from_secs(20);
/// The Ethernet broadcast address, as tcpdump prints it.
const BROADCAST: &str = "ff:ff:ff:ff:ff:ff";
/// How long a change (endpoint moved, Node not ready, Service deleted) may take to show.
const CHANGE: Duration = Duration::from_secs(15);

/// Every node holds a ready endpoint.
fn everywhere() -> Vec<Ep<'static>> {
    NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: true,
        })
        .collect()
}

/// Only `node` holds a ready endpoint; the others hold endpoints that are not ready.
fn only_on(node: &str) -> Vec<Ep<'_>> {
    NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: *n == node,
        })
        .collect()
}

/// Creates Service `name` with `families` (none: the default, IPv4) and an EndpointSlice per
/// family, and waits for its addresses (one per family, each from its family's pool).
fn create_with(
    l: &L2Lab,
    name: &str,
    local: bool,
    families: &[&str],
    endpoints: &[Ep<'_>],
) -> Vec<IpAddr> {
    let mut service = l2_service(name, local, families);
    if families.len() == 2 {
        service["metadata"]["annotations"]["ferrolb.io/address-pool"] = DUAL_POOL.into();
    }
    let mut objects = vec![service];
    let v6 = |f: &&str| *f == "IPv6";
    if families.is_empty() {
        objects.push(endpoint_slice(name, false, endpoints));
    }
    for f in families {
        objects.push(endpoint_slice(name, v6(f), endpoints));
    }
    apply_objects(&l.api, &objects);
    let svc = wait_allocated(&l.api, &[name], Duration::from_secs(30))[name].clone();
    let want: Vec<bool> = if families.is_empty() {
        vec![false]
    } else {
        families.iter().map(v6).collect()
    };
    assert_eq!(
        svc.ingress.iter().map(IpAddr::is_ipv6).collect::<Vec<_>>(),
        want,
        "{name}: one address per family, in the order of ipFamilies: {svc:?}"
    );
    for address in &svc.ingress {
        assert!(
            l.net.pool_addresses().contains(address),
            "{name} got {address}, not an address of the pools"
        );
    }
    svc.ingress
}

/// [`create_with`] for a single-stack Service: its one address.
fn create(l: &L2Lab, name: &str, local: bool, ipv6: bool, endpoints: &[Ep<'_>]) -> IpAddr {
    let families: &[&str] = if ipv6 { &["IPv6"] } else { &[] };
    create_with(l, name, local, families, endpoints)[0]
}

/// Panics unless `mac` is `node`'s.
fn assert_mac_of(l: &L2Lab, mac: &str, node: &str, what: &str) {
    assert_eq!(
        l.who(mac),
        l.who(&l.node(node).mac),
        "{what}: expected {node}'s MAC"
    );
}

/// Waits for a `nodeAssigned` Event on `service` from `node` (MetalLB's wording).
fn wait_node_assigned(l: &L2Lab, service: &str, node: &str) {
    let message = format!("announcing from node \"{node}\" with protocol \"layer2\"");
    wait_for(
        &format!("a nodeAssigned Event on {service} from {node}"),
        CHANGE,
        || {
            let assigned: Vec<EventView> = events(&l.api)
                .into_iter()
                .filter(|e| e.object == service && e.reason == "nodeAssigned")
                .collect();
            if assigned
                .iter()
                .any(|e| e.host == node && e.message == message && e.kind == "Normal")
            {
                Ok(())
            } else {
                Err(format!("{assigned:?}"))
            }
        },
    );
}

/// The nodes that sent a `nodeAssigned` Event on `service`.
fn assigned_by(l: &L2Lab, service: &str) -> BTreeSet<String> {
    events(&l.api)
        .into_iter()
        .filter(|e| e.object == service && e.reason == "nodeAssigned")
        .map(|e| e.host)
        .collect()
}

#[test]
fn tcpdump_arp_lines_parse() {
    let req = "13:41:14.202915 ee:2e:2a:6a:7b:87 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), \
               length 58: Request who-has 10.99.0.2 tell 10.99.0.1, length 44";
    let rep = "13:41:14.202938 7a:0a:a2:68:f9:fd > ee:2e:2a:6a:7b:87, ethertype ARP (0x0806), \
               length 42: Reply 10.99.0.2 is-at 7a:0a:a2:68:f9:fd, length 28";
    let garp = "13:43:38.026645 fa:25:53:3d:0b:e9 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), \
                length 58: Request who-has 10.99.0.2 (ff:ff:ff:ff:ff:ff) tell 10.99.0.2, length 44";
    let r = parse_arp_line(req).expect("a request");
    assert_eq!(r.src, "ee:2e:2a:6a:7b:87");
    assert!(r.is_request_for(addr("10.99.0.2")));
    let p = parse_arp_line(rep).expect("a reply");
    assert_eq!(p.dst, "ee:2e:2a:6a:7b:87");
    assert!(p.is_reply_for(addr("10.99.0.2")));
    assert_eq!(
        p.msg,
        ArpMsg::Reply {
            ip: addr("10.99.0.2"),
            is_at: "7a:0a:a2:68:f9:fd".into()
        }
    );
    let g = parse_arp_line(garp).expect("a gratuitous request");
    assert!(g.is_gratuitous_request(addr("10.99.0.2")));
    assert!(!g.is_request_for(addr("10.99.0.2")));
    assert_eq!(
        parse_arp_line("13:00:00.0 IP 10.0.0.1 > 10.0.0.2: ICMP"),
        None
    );
}

#[test]
fn hash_ranking_is_metallbs() {
    // sha256("node1#10.0.0.1") etc., computed with sha256sum: the smallest digest wins.
    let address = addr("10.0.0.1");
    let digests: Vec<String> = NODES
        .iter()
        .map(|n| {
            let mut cmd = std::process::Command::new("sha256sum");
            cmd.stdin(std::process::Stdio::piped());
            run_with_timeout(
                cmd,
                Some(format!("{n}#{address}").as_bytes()),
                Duration::from_secs(10),
            )
            .expect_ok("sha256sum")
        })
        .collect();
    let smallest = (0..NODES.len())
        .min_by_key(|i| &digests[*i])
        .expect("three nodes");
    assert_eq!(hash_owner(&NODES, address), NODES[smallest]);
    // The product's ranking agrees over every address the tests use.
    for n in [41, 42, 43, 44] {
        for a in (Net { n }).pool_addresses() {
            assert_eq!(
                ferrolb::plan::rank::owner(NODES.iter().copied(), a),
                Some(hash_owner(&NODES, a)),
                "{a}"
            );
        }
    }
    // RFC 5952 text for IPv6: the compressed, lower-case form is what is hashed.
    let v6: IpAddr = "FD00:0250:0000:0000:0000:0000:0000:0200"
        .parse()
        .expect("IPv6");
    assert_eq!(v6.to_string(), "fd00:250::200");
}

/// An IPv4 Service: the client resolves its address to the owner's MAC (and only the owner
/// answers, counted on the bridge), reaches the owner over TCP, and the owner alone records
/// `nodeAssigned`; once the Service is deleted nobody answers.
#[test]
fn ipv4_owner_answers_arp_alone_and_goes_silent_when_the_service_is_deleted() {
    let l = L2Lab::start("fl2e1", 41);
    let address = create(&l, "web", false, false, &everywhere());
    let owner = hash_owner(&NODES, address);
    eprintln!("web got {address}; expected owner {owner}");

    let started = Instant::now();
    let mac = l.wait_arp_answer(address, ANNOUNCE);
    eprintln!(
        "first ARP answer for {address} {:?} after the Service had its address",
        started.elapsed()
    );
    assert_mac_of(&l, &mac, owner, "arping from the client");
    l.assert_reaches(address, owner);
    let (neigh, state) = l.neighbour(address).expect("a neighbour entry after TCP");
    assert_mac_of(&l, &neigh, owner, &format!("ip neigh ({state})"));
    wait_node_assigned(&l, "web", owner);
    assert_eq!(assigned_by(&l, "web"), BTreeSet::from([owner.to_string()]));

    // --- on the wire: N requests, N replies, all from the owner ---
    const N: usize = 20;
    let capture = l.capture_arp("web");
    let macs = l.arping(address, N as u32, Duration::from_secs(10));
    let frames = capture.stop();
    assert_eq!(macs.len(), N, "arping got {macs:?}");
    assert!(macs.iter().all(|m| *m == l.node(owner).mac), "{macs:?}");
    let requests = frames
        .iter()
        .filter(|f| f.src == l.client_mac && f.is_request_for(address))
        .count();
    let replies: Vec<&ArpFrame> = frames
        .iter()
        .filter(|f| f.is_reply_for(address) && f.dst == l.client_mac)
        .collect();
    let from_owner = replies
        .iter()
        .filter(|f| f.src == l.node(owner).mac)
        .count();
    let speakers = senders(&frames, |f| {
        f.is_reply_for(address) || f.is_gratuitous_request(address)
    });
    eprintln!(
        "capture on br0: {requests} requests from the client, {} replies to it ({from_owner} \
         from the owner {owner}), {} frames in all",
        replies.len(),
        frames.len()
    );
    assert_eq!(requests, N, "requests the capture saw");
    assert_eq!(replies.len(), N, "replies to the client: {replies:?}");
    assert_eq!(from_owner, N, "replies from the owner: {replies:?}");
    for f in &replies {
        assert_eq!(
            f.msg,
            ArpMsg::Reply {
                ip: address,
                is_at: l.node(owner).mac.clone()
            },
            "{f:?}"
        );
    }
    assert_eq!(
        speakers,
        BTreeSet::from([l.node(owner).mac.clone()]),
        "every frame claiming {address}: {:?}",
        speakers.iter().map(|m| l.who(m)).collect::<Vec<_>>()
    );

    // --- the Service goes: nobody answers, and the wire stays silent ---
    l.api.kubectl_ok(&["delete", "svc", "web", "-n", "default"]);
    let deleted = Instant::now();
    l.wait_arp_silence(address, CHANGE, 5);
    eprintln!(
        "{address} unanswered {:?} after kubectl delete svc",
        deleted.elapsed()
    );
    let capture = l.capture_arp("web-deleted");
    let macs = l.arping(address, N as u32, Duration::from_secs(3));
    let frames = capture.stop();
    assert!(macs.is_empty(), "answered after deletion: {macs:?}");
    let requests = frames
        .iter()
        .filter(|f| f.src == l.client_mac && f.is_request_for(address))
        .count();
    assert_eq!(requests, N, "requests the capture saw after deletion");
    let claims: Vec<&ArpFrame> = frames
        .iter()
        .filter(|f| f.is_reply_for(address) || f.is_gratuitous_request(address))
        .collect();
    assert!(
        claims.is_empty(),
        "frames claiming {address} after deletion: {claims:?}"
    );
    l.assert_daemons_running();
    assert_rbac(&l.api);
}

/// An IPv6 Service from the IPv6 pool: `ndisc6` resolves the owner's MAC, TCP over IPv6 reaches
/// the owner, the client's neighbour table agrees. A dual-stack Service: both addresses on the
/// owner of the first.
#[test]
fn ipv6_owner_answers_neighbour_solicitations() {
    let l = L2Lab::start("fl2e2", 42);
    let address = create(&l, "web6", false, true, &everywhere());
    let owner = hash_owner(&NODES, address);
    eprintln!("web6 got {address}; expected owner {owner}");

    let started = Instant::now();
    let mac = wait_for(
        &format!("a neighbour advertisement for {address}"),
        ANNOUNCE,
        || l.ndisc6(address, 1).ok_or_else(|| "no answer".to_string()),
    );
    eprintln!(
        "first NA for {address} {:?} after the Service had its address",
        started.elapsed()
    );
    assert_mac_of(&l, &mac, owner, "ndisc6 from the client");
    // Three more solicitations: always the owner.
    for _ in 0..3 {
        let mac = l.ndisc6(address, 3).expect("an answer");
        assert_mac_of(&l, &mac, owner, "ndisc6 again");
    }
    l.assert_reaches(address, owner);
    let (neigh, state) = l.neighbour(address).expect("a neighbour entry after TCP");
    assert_mac_of(&l, &neigh, owner, &format!("ip -6 neigh ({state})"));

    // --- dual stack: both addresses on the node ranked for the first one ---
    let both = create_with(&l, "dual", false, &["IPv4", "IPv6"], &everywhere());
    let owner = hash_owner(&NODES, both[0]);
    let other = hash_owner(&NODES, both[1]);
    eprintln!(
        "dual got {both:?}; owner {owner} (ranked on {}; {} alone would rank {other} first)",
        both[0], both[1]
    );
    let mac = l.wait_arp_answer(both[0], ANNOUNCE);
    assert_mac_of(&l, &mac, owner, "arping, dual stack");
    let mac = wait_for(
        &format!("a neighbour advertisement for {}", both[1]),
        ANNOUNCE,
        || l.ndisc6(both[1], 1).ok_or_else(|| "no answer".to_string()),
    );
    assert_mac_of(
        &l,
        &mac,
        owner,
        "ndisc6, dual stack: the owner of the first address",
    );
    for address in &both {
        l.assert_reaches(*address, owner);
    }
    l.assert_daemons_running();
    assert_rbac(&l.api);
}

/// No ready endpoint anywhere: nobody answers. `externalTrafficPolicy: Local`: only the node
/// with the ready endpoint answers, not the hash-ranked owner; when the endpoint moves, the
/// client's neighbour entry follows on its own (gratuitous ARP) and TCP reaches the new node.
#[test]
fn local_traffic_policy_follows_the_endpoint_and_no_endpoint_means_silence() {
    let l = L2Lab::start("fl2e3", 43);
    let not_ready: Vec<Ep<'_>> = NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: false,
        })
        .collect();
    let idle = create(&l, "idle", false, false, &not_ready);
    let local = create(&l, "local", true, false, &not_ready);

    // --- no ready endpoint anywhere: silence, for both policies ---
    for address in [idle, local] {
        let macs = l.arping(address, 10, Duration::from_secs(3));
        assert!(
            macs.is_empty(),
            "{address} has no ready endpoint, yet was answered by {:?}",
            macs.iter().map(|m| l.who(m)).collect::<Vec<_>>()
        );
    }
    // The same Service with ready endpoints is answered (so the silence was not slowness).
    apply_objects(&l.api, &[endpoint_slice("idle", false, &everywhere())]);
    let mac = l.wait_arp_answer(idle, ANNOUNCE);
    assert_mac_of(&l, &mac, hash_owner(&NODES, idle), "idle, endpoints ready");

    // --- Local: only the node with the ready endpoint, which is not the hash-ranked owner ---
    let ranked = hash_owner(&NODES, local);
    let x = *NODES.iter().find(|n| **n != ranked).expect("another node");
    let y = *NODES
        .iter()
        .find(|n| **n != ranked && **n != x)
        .expect("a third node");
    eprintln!("local got {local}; hash-ranked owner {ranked}; endpoint on {x}, then on {y}");
    apply_objects(&l.api, &[endpoint_slice("local", false, &only_on(x))]);
    let mac = l.wait_arp_answer(local, ANNOUNCE);
    assert_mac_of(&l, &mac, x, &format!("Local policy, endpoint on {x}"));
    let macs = l.arping(local, 5, Duration::from_secs(3));
    assert!(
        macs.len() == 5 && macs.iter().all(|m| *m == l.node(x).mac),
        "{macs:?}"
    );
    l.assert_reaches(local, x);
    let (neigh, _) = l.neighbour(local).expect("a neighbour entry after TCP");
    assert_mac_of(&l, &neigh, x, "ip neigh before the move");

    // --- the endpoint moves: the client's entry follows without the client asking ---
    let capture = l.capture_arp("local-move");
    apply_objects(&l.api, &[endpoint_slice("local", false, &only_on(y))]);
    let moved = Instant::now();
    let y_mac = l.node(y).mac.clone();
    wait_for(
        &format!("the client's neighbour entry for {local} to follow the endpoint to {y}"),
        CHANGE,
        || match l.neighbour(local) {
            Some((mac, _)) if mac == y_mac => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    eprintln!(
        "the client's neighbour entry for {local} moved to {y} {:?} after the EndpointSlice \
         update",
        moved.elapsed()
    );
    let frames = capture.stop();
    let asked: Vec<&ArpFrame> = frames.iter().filter(|f| f.src == l.client_mac).collect();
    assert!(
        asked.is_empty(),
        "the client sent ARP while its entry was to follow on its own: {asked:?}"
    );
    // Each daemon sees the EndpointSlice change on its own, so for a few milliseconds both may
    // claim the address (the old owner's last burst frame, or its answer to the new owner's
    // gratuitous request, unicast to the new owner). What the client can receive after the new
    // owner's first claim must all come from the new owner.
    let x_mac = l.node(x).mac.clone();
    let claims = |f: &&ArpFrame| f.is_reply_for(local) || f.is_gratuitous_request(local);
    let speakers = senders(&frames, |f| claims(&f));
    assert!(
        speakers.contains(&y_mac) && speakers.iter().all(|m| *m == x_mac || *m == y_mac),
        "frames claiming {local} during the move: {:?}",
        speakers.iter().map(|m| l.who(m)).collect::<Vec<_>>()
    );
    let first_y = frames
        .iter()
        .position(|f| f.src == y_mac && claims(&f))
        .expect("a claim from the new owner");
    let to_client_later: Vec<String> = frames[first_y..]
        .iter()
        .filter(claims)
        .filter(|f| f.dst == BROADCAST || f.dst == l.client_mac)
        .filter(|f| f.src != y_mac)
        .map(|f| format!("{} -> {}: {:?}", l.who(&f.src), f.dst, f.msg))
        .collect();
    assert!(
        to_client_later.is_empty(),
        "after {y}'s first claim the client could still hear from others: {to_client_later:?}"
    );
    eprintln!(
        "frames claiming {local} during the move: {}",
        frames
            .iter()
            .filter(claims)
            .map(|f| format!("{} -> {}", l.who(&f.src), f.dst))
            .collect::<Vec<_>>()
            .join(", ")
    );
    l.assert_reaches(local, y);
    let mac = l.wait_arp_answer(local, CHANGE);
    assert_mac_of(&l, &mac, y, "arping after the move");
    let macs = l.arping(local, 5, Duration::from_secs(3));
    assert!(macs.iter().all(|m| *m == y_mac), "{macs:?}");
    l.assert_daemons_running();
    assert_rbac(&l.api);
}

/// The owner's Node goes NotReady: the next-ranked node takes over (arping, the client's
/// neighbour entry, TCP, a `nodeAssigned` Event from it), and the old owner stops answering.
#[test]
fn a_node_going_not_ready_hands_its_address_to_the_next_ranked_node() {
    let l = L2Lab::start("fl2e4", 44);
    let address = create(&l, "web", false, false, &everywhere());
    let owner = hash_owner(&NODES, address);
    let mac = l.wait_arp_answer(address, ANNOUNCE);
    assert_mac_of(&l, &mac, owner, "arping before the failure");
    l.assert_reaches(address, owner);
    wait_node_assigned(&l, "web", owner);

    let others: Vec<&str> = NODES.iter().copied().filter(|n| *n != owner).collect();
    let next = hash_owner(&others, address);
    eprintln!("web got {address}; owner {owner}; after it goes NotReady: {next}");
    set_node_ready(&l.api, owner, false);
    let failed = Instant::now();
    let next_mac = l.node(next).mac.clone();
    wait_for(
        &format!("{next} to answer for {address}"),
        CHANGE,
        || match l.arping(address, 1, Duration::from_millis(500)).as_slice() {
            [mac] if *mac == next_mac => Ok(()),
            other => Err(format!(
                "{:?}",
                other.iter().map(|m| l.who(m)).collect::<Vec<_>>()
            )),
        },
    );
    eprintln!(
        "{next} answers for {address} {:?} after {owner} went NotReady",
        failed.elapsed()
    );
    // The client's entry was moved by the takeover's gratuitous ARP, without being asked.
    let (neigh, state) = l.neighbour(address).expect("the client's entry");
    assert_mac_of(
        &l,
        &neigh,
        next,
        &format!("ip neigh after the takeover ({state})"),
    );
    l.assert_reaches(address, next);
    wait_node_assigned(&l, "web", next);
    assert_eq!(
        assigned_by(&l, "web"),
        BTreeSet::from([owner.to_string(), next.to_string()])
    );
    let macs = l.arping(address, 10, Duration::from_secs(3));
    assert!(
        macs.len() == 10 && macs.iter().all(|m| *m == next_mac),
        "after the takeover: {:?}",
        macs.iter().map(|m| l.who(m)).collect::<Vec<_>>()
    );
    l.assert_daemons_running();
    assert_rbac(&l.api);
}
