//! The gossip membership layer with real UDP sockets on 127.0.0.1: convergence, failure
//! detection (measured), forged and replayed packets, key rotation, planned leave, restarts.
//!
//! Timings are printed (run with `--nocapture`), and only generous bounds are asserted: the
//! machine running the tests may be busy.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use ferrolb::config::JoinAddress;
use ferrolb::membership::packet::{Sealer, SessionId};
use ferrolb::membership::{
    wire, Faults, Key, Keyring, MemberState, Membership, MembershipView, NodeId, Security,
    Settings, Timing,
};
use foca::{Codec as _, Header, Message, PostcardCodec};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;

const LONG: Duration = Duration::from_secs(10);

fn keys(list: &[u8]) -> Security {
    Security::Keys(Keyring::new(list.iter().map(|b| Key::new([*b; 32])).collect()).unwrap())
}

fn settings(name: &str, security: Security, join: &[SocketAddr]) -> Settings {
    Settings {
        node: name.to_string(),
        bind: "127.0.0.1:0".parse().unwrap(),
        advertise: None,
        security,
        timing: Timing {
            sync_timeout: Duration::from_secs(1),
            ..Timing::default()
        },
        join: join
            .iter()
            .map(|a| JoinAddress {
                host: a.ip().to_string(),
                port: a.port(),
            })
            .collect(),
        fingerprint: [1; 8],
        pools: ["default".to_string()].into(),
    }
}

/// Waits until `pred` holds for the view, or panics after `limit`.
async fn wait_for(
    rx: &mut watch::Receiver<MembershipView>,
    limit: Duration,
    what: &str,
    pred: impl Fn(&MembershipView) -> bool,
) -> MembershipView {
    let deadline = Instant::now() + limit;
    loop {
        {
            let v = rx.borrow_and_update();
            if pred(&v) {
                return v.clone();
            }
        }
        match tokio::time::timeout_at(deadline, rx.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => panic!("{what}: the membership task stopped"),
            Err(_) => panic!(
                "{what}: not reached within {limit:?}; view: {:#?}",
                rx.borrow()
            ),
        }
    }
}

fn all_alive_with_meta(v: &MembershipView, n: usize) -> bool {
    v.members.len() == n
        && v.members
            .values()
            .all(|m| m.state == MemberState::Alive && m.meta_known)
}

/// `n` members named m0…, all joining m0; returns once every view has them all.
async fn cluster(n: usize, security: impl Fn(usize) -> Security) -> Vec<Membership> {
    let first = Membership::start(settings("m0", security(0), &[]))
        .await
        .unwrap();
    let seed = first.identity().addr;
    let mut members = vec![first];
    for i in 1..n {
        members.push(
            Membership::start(settings(&format!("m{i}"), security(i), &[seed]))
                .await
                .unwrap(),
        );
    }
    for m in &members {
        wait_for(&mut m.view(), LONG, "convergence", |v| {
            all_alive_with_meta(v, n) && v.synced
        })
        .await;
    }
    members
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_converge_and_share_metadata() {
    let ms = cluster(16, |_| keys(&[1])).await;
    let claims: BTreeSet<IpAddr> = [
        "192.168.10.10".parse().unwrap(),
        "fd00::10".parse().unwrap(),
    ]
    .into();
    ms[2].set_claims(claims.clone());
    ms[2].set_pools(["default".to_string(), "other".to_string()].into());
    ms[3].set_fingerprint([9; 8]);
    for m in &ms {
        let v = wait_for(&mut m.view(), LONG, "metadata", |v| {
            v.members["m2"].claims == claims
                && v.members["m2"].pools.len() == 2
                && v.members["m3"].fingerprint == Some([9; 8])
        })
        .await;
        assert_eq!(v.count(MemberState::Alive), 16);
        assert!(v.synced && !v.sync_timed_out, "{v:?}");
    }
    // m0..m2 see m3's fingerprint differ from theirs.
    let v = ms[0].view().borrow().clone();
    assert_eq!(v.fingerprint_mismatches(), vec!["m3"]);
    let c = ms[0].counters().snapshot();
    assert!(c.member_up >= 3, "{c:?}");
    assert_eq!(c.dropped_total(), 0, "{c:?}");
    assert!(c.packets_in > 0 && c.bytes_out > 0);
}

/// Broadcasts are sent a bounded number of times; a member that missed all of them (here:
/// it ignores every broadcast of metadata) still catches up, through the digests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_metadata_version_is_caught_up_by_digests() {
    let ms = cluster(4, |_| keys(&[1])).await;
    ms[3].set_faults(Faults {
        ignore_broadcast_meta: true,
        ..Faults::default()
    });
    let before = ms[3].counters().snapshot().meta_refreshes;
    let claims: BTreeSet<IpAddr> = ["192.168.10.10".parse().unwrap()].into();
    let started = Instant::now();
    ms[1].set_claims(claims.clone());
    for m in &ms {
        wait_for(&mut m.view(), LONG, "claims", |v| {
            v.members["m1"].claims == claims
        })
        .await;
        println!(
            "{} has the claims after {:?}",
            m.identity().node,
            started.elapsed()
        );
    }
    let c = ms[3].counters().snapshot();
    assert!(c.meta_refreshes > before, "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gossip_bandwidth_at_three_members_is_small() {
    let ms = cluster(3, |_| keys(&[1])).await;
    let before: Vec<_> = ms.iter().map(|m| m.counters().snapshot()).collect();
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    for (i, m) in ms.iter().enumerate() {
        let c = m.counters().snapshot();
        let out = (c.bytes_out - before[i].bytes_out) as f64 / window.as_secs_f64();
        let pkts = (c.packets_out - before[i].packets_out) as f64 / window.as_secs_f64();
        println!(
            "m{i}: {out:.0} B/s out in {pkts:.1} packets/s (UDP payload, steady state, 3 members)"
        );
        // A probe round is a ping and an ack of ~100-200 bytes every 100 ms.
        assert!(out < 20_000.0, "{out} B/s");
        assert_eq!(c.member_down, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_first_node_is_synced_by_timeout() {
    let m = Membership::start(settings("alone", keys(&[1]), &[]))
        .await
        .unwrap();
    let started = Instant::now();
    let v = wait_for(&mut m.view(), LONG, "sync timeout", |v| v.synced).await;
    assert!(v.sync_timed_out && !v.connected);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(v.members.len(), 1);
    assert_eq!(v.members["alone"].state, MemberState::Alive);
}

/// Kills (task stopped, or all its packets dropped) one member of a fresh 3-node cluster,
/// several times, and measures how long until both survivors see it down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_member_is_declared_down_quickly() {
    let runs = 12;
    let mut times = Vec::new();
    for run in 0..runs {
        let mut ms = cluster(3, |_| keys(&[1])).await;
        // Let the probe cycle run a little, at a varying phase.
        tokio::time::sleep(Duration::from_millis(300 + 37 * run as u64)).await;
        let mut a = ms[0].view();
        let mut b = ms[1].view();
        let t0 = Instant::now();
        if run % 2 == 0 {
            drop(ms.pop());
        } else {
            ms[2].set_faults(Faults {
                drop_incoming: true,
                drop_outgoing: true,
                ..Faults::default()
            });
        }
        let down = |v: &MembershipView| {
            v.members
                .get("m2")
                .is_some_and(|m| m.state == MemberState::Down)
        };
        let (_, _) = tokio::join!(
            wait_for(&mut a, LONG, "m0 sees m2 down", down),
            wait_for(&mut b, LONG, "m1 sees m2 down", down),
        );
        times.push(t0.elapsed());
        let c0 = ms[0].counters().snapshot();
        assert!(c0.member_down >= 1, "{c0:?}");
        // The survivors stay alive for each other.
        assert!(ms[0].view().borrow().is_alive("m1"));
        assert!(ms[1].view().borrow().is_alive("m0"));
    }
    times.sort();
    let p50 = percentile(&times, 0.5);
    let max = *times.last().unwrap();
    println!(
        "detection of a dead member, 3 nodes, default timing, {runs} runs: p50 {} ms, p90 {} ms, max {} ms; all: {:?}",
        p50.as_millis(),
        percentile(&times, 0.9).as_millis(),
        max.as_millis(),
        times.iter().map(|t| t.as_millis()).collect::<Vec<_>>()
    );
    assert!(max < Duration::from_secs(5), "max {max:?}");
}

/// A member that goes deaf and mute for a moment — shorter than a probe round plus a
/// suspicion — is suspected at most, refutes, and is never declared down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_stall_is_refuted_not_declared_down() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let ms = cluster(3, |_| keys(&[1])).await;
    let stall = Duration::from_millis(120);
    for i in 0..15u64 {
        tokio::time::sleep(Duration::from_millis(250 + 23 * i)).await;
        ms[2].set_faults(Faults {
            drop_incoming: true,
            drop_outgoing: true,
            ..Faults::default()
        });
        tokio::time::sleep(stall).await;
        ms[2].set_faults(Faults::default());
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let c: Vec<_> = ms.iter().map(|m| m.counters().snapshot()).collect();
    let suspicions: u64 = c.iter().map(|c| c.suspicions).sum();
    println!(
        "15 stalls of {} ms: {suspicions} suspicions raised, {} refuted by the stalled node, {} confirmations, downs {:?}",
        stall.as_millis(),
        c[2].refutations,
        c[0].confirmations + c[1].confirmations,
        c.iter().map(|c| c.member_down).collect::<Vec<_>>()
    );
    assert!(c.iter().all(|c| c.member_down == 0), "{c:#?}");
    assert_eq!(c[2].rejoins, 0);
    for m in &ms {
        assert!(all_alive_with_meta(&m.view().borrow(), 3));
    }
}

/// Gossip cut between one node and the rest: each side declares the other down; once the
/// link is back, everyone is alive again (the side declared down rejoins under a new boot id,
/// its metadata with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_heals() {
    let ms = cluster(3, |_| keys(&[1])).await;
    ms[2].set_claims(["10.2.2.2".parse().unwrap()].into());
    let mut v0 = ms[0].view();
    wait_for(&mut v0, LONG, "claims", |v| {
        !v.members["m2"].claims.is_empty()
    })
    .await;
    let cut = Faults {
        drop_incoming: true,
        drop_outgoing: true,
        ..Faults::default()
    };
    ms[2].set_faults(cut);
    wait_for(&mut v0, LONG, "m2 down", |v| {
        v.members["m2"].state == MemberState::Down
    })
    .await;
    let mut v2 = ms[2].view();
    wait_for(&mut v2, LONG, "m2 alone", |v| {
        v.members["m0"].state == MemberState::Down && v.members["m1"].state == MemberState::Down
    })
    .await;
    let healed = Instant::now();
    ms[2].set_faults(Faults::default());
    for m in &ms {
        wait_for(&mut m.view(), Duration::from_secs(20), "healed", |v| {
            all_alive_with_meta(v, 3)
        })
        .await;
    }
    println!(
        "partition healed {} ms after the link came back",
        healed.elapsed().as_millis()
    );
    let v = ms[1].view().borrow().clone();
    assert_eq!(v.members["m2"].claims.len(), 1, "claims survive a rejoin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leave_is_seen_at_once_not_after_suspicion() {
    let ms = cluster(3, |_| keys(&[1])).await;
    let mut a = ms[0].view();
    let mut b = ms[1].view();
    let t0 = Instant::now();
    ms[2].leave().await.unwrap();
    let left = |v: &MembershipView| {
        v.members
            .get("m2")
            .is_some_and(|m| m.state == MemberState::Left)
    };
    tokio::join!(
        wait_for(&mut a, LONG, "m0 sees m2 left", left),
        wait_for(&mut b, LONG, "m1 sees m2 left", left),
    );
    let took = t0.elapsed();
    println!(
        "planned leave seen by both others after {} ms",
        took.as_millis()
    );
    // Far below the 150-450 ms a suspicion takes.
    assert!(took < Duration::from_millis(1000), "{took:?}");
    assert!(ms[2].view().borrow().left);
    // SWIM's own leave arrives too, counted as a leave, not a failure.
    for m in &ms[..2] {
        let deadline = Instant::now() + LONG;
        while m.counters().snapshot().member_left == 0 {
            assert!(Instant::now() < deadline, "no leave counted");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(m.counters().snapshot().member_down, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_supersedes_its_previous_life() {
    let mut ms = cluster(3, |_| keys(&[1])).await;
    ms[2].set_claims(["10.1.1.1".parse().unwrap()].into());
    let mut a = ms[0].view();
    let old = wait_for(&mut a, LONG, "claims", |v| {
        !v.members["m2"].claims.is_empty()
    })
    .await
    .members["m2"]
        .clone();
    let addr = ms[2].identity().addr;
    drop(ms.pop());
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Same node name, same address, new boot.
    let mut s = settings("m2", keys(&[1]), &[ms[0].identity().addr]);
    s.bind = addr;
    let again = Membership::start(s).await.unwrap();
    let v = wait_for(&mut a, LONG, "new boot alive", |v| {
        let m = &v.members["m2"];
        m.boot > old.boot && m.state == MemberState::Alive && m.meta_known
    })
    .await;
    assert!(
        v.members["m2"].claims.is_empty(),
        "a new life claims nothing yet"
    );
    wait_for(&mut again.view(), LONG, "restarted node synced", |v| {
        v.synced && all_alive_with_meta(v, 3)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_keeps_members_talking() {
    // Step 1 of a rotation: m1 has the new key second; m0 only the old one.
    let ms = cluster(2, |i| if i == 0 { keys(&[1]) } else { keys(&[1, 2]) }).await;
    drop(ms);
    // Step 2: m1 sends with the new key; m0 accepts both.
    let ms = cluster(2, |i| if i == 0 { keys(&[1, 2]) } else { keys(&[2, 1]) }).await;
    drop(ms);
    // Without the shared key they never meet, and the packets are counted.
    let a = Membership::start(settings("a", keys(&[1]), &[]))
        .await
        .unwrap();
    let b = Membership::start(settings("b", keys(&[2]), &[]))
        .await
        .unwrap();
    b.set_join_addrs([a.identity().addr]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(a.view().borrow().members.len(), 1);
    assert_eq!(b.view().borrow().members.len(), 1);
    assert!(a.counters().snapshot().dropped_unknown_key > 0);
    assert!(b.view().borrow().sync_timed_out);
}

/// A foca join request from a member that does not exist.
fn announce(from: &str, from_addr: SocketAddr, to: SocketAddr) -> Vec<u8> {
    let header = Header {
        src: NodeId::new(from, from_addr, 1),
        src_incarnation: 0,
        dst: NodeId::placeholder(to),
        message: Message::Announce,
    };
    let mut buf = Vec::new();
    PostcardCodec.encode_header(&header, &mut buf).unwrap();
    wire::foca(&buf)
}

async fn settle_counters(
    m: &Membership,
    pred: impl Fn(&ferrolb::membership::CounterSnapshot) -> bool,
) {
    let deadline = Instant::now() + LONG;
    while !pred(&m.counters().snapshot()) {
        assert!(
            Instant::now() < deadline,
            "counters: {:?}",
            m.counters().snapshot()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_replayed_packets_change_nothing_and_are_counted() {
    let ms = cluster(3, |_| keys(&[1])).await;
    let target = ms[0].identity().addr;
    let attacker = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let evil_addr = attacker.local_addr().unwrap();
    let before = ms[0].view().borrow().clone();
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };

    // Capture what m1 sends, to replay it.
    ms[1].set_faults(Faults {
        capture_outgoing: true,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let captured: Vec<Vec<u8>> = ms[1]
        .take_captured()
        .into_iter()
        .filter(|(to, _)| *to == target)
        .map(|(_, p)| p)
        .collect();
    ms[1].set_faults(Faults::default());
    assert!(captured.len() >= 3, "captured {}", captured.len());

    let base = ms[0].counters().snapshot();
    // 1. Random bytes.
    for i in 0..50u8 {
        let junk: Vec<u8> = (0..(i as usize * 7))
            .map(|j| (j as u8).wrapping_mul(31) ^ i)
            .collect();
        attacker.send_to(&junk, target).await.unwrap();
    }
    // 2. Truncated and bit-flipped real packets.
    for p in &captured {
        attacker.send_to(&p[..p.len() / 2], target).await.unwrap();
        let mut flipped = p.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0x01;
        attacker.send_to(&flipped, target).await.unwrap();
    }
    // 3. A join request from a made-up member, under a key the cluster does not have, under
    //    a forged key id, and in plaintext.
    let evil = announce("evil", evil_addr, target);
    let mut wrong = Sealer::new(&keys(&[66]), SessionId([7; 16])).unwrap();
    attacker
        .send_to(&wrong.seal(&evil, now_ms()), target)
        .await
        .unwrap();
    let mut forged_id = wrong.seal(&evil, now_ms());
    forged_id[2..6].copy_from_slice(&Key::new([1; 32]).id().0);
    attacker.send_to(&forged_id, target).await.unwrap();
    let mut plain = Sealer::new(&Security::Insecure, SessionId([8; 16])).unwrap();
    attacker
        .send_to(&plain.seal(&evil, now_ms()), target)
        .await
        .unwrap();
    // 4. Replays of authentic packets.
    for p in &captured {
        attacker.send_to(p, target).await.unwrap();
    }

    let n = captured.len() as u64;
    settle_counters(&ms[0], |c| {
        c.dropped_replay >= base.dropped_replay + n
            && c.dropped_auth > base.dropped_auth + n
            && c.dropped_malformed > base.dropped_malformed
            && c.dropped_unknown_key > base.dropped_unknown_key
            && c.dropped_security_mismatch > base.dropped_security_mismatch
    })
    .await;
    let c = ms[0].counters().snapshot();
    println!("forged/replayed packets dropped by m0: {c:?}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ms[0].view().borrow().clone();
    assert_eq!(
        after.members.keys().collect::<Vec<_>>(),
        before.members.keys().collect::<Vec<_>>()
    );
    assert!(all_alive_with_meta(&after, 3), "{after:#?}");
    assert_eq!(c.member_down, 0);

    // Replays of a dead member's packets do not bring it back.
    let mut ms = ms;
    ms[2].set_faults(Faults {
        capture_outgoing: true,
        ..Faults::default()
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let from_m2: Vec<Vec<u8>> = ms[2]
        .take_captured()
        .into_iter()
        .filter(|(to, _)| *to == target)
        .map(|(_, p)| p)
        .collect();
    assert!(!from_m2.is_empty());
    drop(ms.pop());
    let mut v0 = ms[0].view();
    wait_for(&mut v0, LONG, "m2 down", |v| {
        v.members["m2"].state == MemberState::Down
    })
    .await;
    let replays_before = ms[0].counters().snapshot().dropped_replay;
    for p in &from_m2 {
        attacker.send_to(p, target).await.unwrap();
    }
    settle_counters(&ms[0], |c| {
        c.dropped_replay >= replays_before + from_m2.len() as u64
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(ms[0].view().borrow().members["m2"].state, MemberState::Down);

    // Control: the same join request sealed with the cluster key *is* accepted — so the
    // forged ones above were refused for their crypto, not for their content.
    let mut right = Sealer::new(&keys(&[1]), SessionId([9; 16])).unwrap();
    attacker
        .send_to(&right.seal(&evil, now_ms()), target)
        .await
        .unwrap();
    wait_for(&mut v0, LONG, "control member accepted", |v| {
        v.members.contains_key("evil")
    })
    .await;
}
