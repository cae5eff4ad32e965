//! Collision detection (RFC 4271 §6.8): both sides connect; the connection opened by the
//! higher BGP identifier survives.

use super::sim::{Side, Sim};
use super::*;

const HIGH: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
const INB: ConnId = ConnId {
    direction: Direction::Inbound,
    seq: 0,
};

/// Both connections up and our OPEN sent on each.
fn two_connections(router_id: Ipv4Addr) -> Harness {
    let mut h = Harness::new(FsmConfig { router_id, ..cfg() });
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    h.ev(Event::TcpAccepted { conn: INB });
    assert_eq!(h.fsm.connections().count(), 2);
    h
}

fn open_on(h: &mut Harness, conn: ConnId) -> Vec<Action> {
    h.ev(Event::Open {
        conn,
        open: peer_open(90),
    })
}

const COLLISION: (u8, u8) = (code::CEASE, cease::CONNECTION_COLLISION_RESOLUTION);

#[test]
fn higher_local_id_keeps_our_connection() {
    let mut h = two_connections(HIGH);
    let a = open_on(&mut h, INB);
    assert_eq!(notifications(&a), vec![(INB, COLLISION.0, COLLISION.1)]);
    assert_eq!(closes(&a), vec![(INB, DownReason::Collision)]);
    assert_eq!(
        open_on(&mut h, OUT0),
        vec![Action::SendKeepalive { conn: OUT0 }]
    );
    h.ev(Event::Keepalive { conn: OUT0 });
    assert_eq!(h.fsm.established().map(|e| e.0), Some(OUT0));
    // Losing a collision is not an error.
    assert_eq!(h.fsm.last_error(), None);
}

#[test]
fn higher_peer_id_keeps_the_peers_connection() {
    let mut h = two_connections(ME);
    let a = open_on(&mut h, INB);
    assert_eq!(
        a,
        vec![
            Action::SendNotification {
                conn: OUT0,
                notification: Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION)
            },
            Action::Close {
                conn: OUT0,
                reason: DownReason::Collision
            },
            Action::SendKeepalive { conn: INB },
        ]
    );
    h.ev(Event::Keepalive { conn: INB });
    assert_eq!(h.fsm.established().map(|e| e.0), Some(INB));
}

#[test]
fn the_losing_connection_is_closed_when_its_own_open_arrives_first() {
    let mut h = two_connections(ME);
    let a = open_on(&mut h, OUT0);
    assert_eq!(closes(&a), vec![(OUT0, DownReason::Collision)]);
    assert!(!a.contains(&Action::SendKeepalive { conn: OUT0 }));
    assert_eq!(
        h.fsm.connections().collect::<Vec<_>>(),
        vec![(INB, State::OpenSent)]
    );
}

#[test]
fn a_connection_in_open_confirm_loses_to_the_preferred_one() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    open_on(&mut h, OUT0);
    assert_eq!(h.fsm.state(), State::OpenConfirm);
    h.ev(Event::TcpAccepted { conn: INB });
    let a = open_on(&mut h, INB);
    assert_eq!(notifications(&a), vec![(OUT0, COLLISION.0, COLLISION.1)]);
    assert_eq!(
        h.fsm.connections().collect::<Vec<_>>(),
        vec![(INB, State::OpenConfirm)]
    );
}

#[test]
fn a_connection_arriving_while_established_is_refused() {
    let mut h = established(90);
    let a = h.ev(Event::TcpAccepted { conn: INB });
    assert_eq!(notifications(&a), vec![(INB, COLLISION.0, COLLISION.1)]);
    assert_eq!(closes(&a), vec![(INB, DownReason::Collision)]);
    assert_eq!(h.fsm.established().map(|e| e.0), Some(OUT0));
}

#[test]
fn established_closes_an_outbound_attempt_still_connecting() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpAccepted { conn: INB });
    // The outbound attempt has no OPEN yet: the collision waits.
    assert_eq!(
        open_on(&mut h, INB),
        vec![Action::SendKeepalive { conn: INB }]
    );
    assert_eq!(h.fsm.connections().count(), 2);
    let a = h.ev(Event::Keepalive { conn: INB });
    assert_eq!(
        a[0],
        Action::Close {
            conn: OUT0,
            reason: DownReason::Collision
        }
    );
    assert!(notifications(&a).is_empty());
    assert_eq!(h.fsm.established().map(|e| e.0), Some(INB));
}

#[test]
fn equal_identifiers_between_ases_are_broken_by_as_number() {
    // Same identifier as the peer (allowed for eBGP); our AS 64500 > 64001: ours wins.
    let mut h = two_connections(PEER_ID);
    let a = open_on(&mut h, INB);
    assert_eq!(closes(&a), vec![(INB, DownReason::Collision)]);
}

/// Both speakers connect at the same instant, messages in send order: the link opened by
/// the higher identifier carries the session on both sides.
#[test]
fn simultaneous_connects_keep_the_link_of_the_higher_identifier_both_ways() {
    for (a_id, b_id, winner) in [(HIGH, ME, Side::A), (ME, HIGH, Side::B)] {
        let mut sim = Sim::new(a_id, b_id, 0);
        sim.run(secs(60), true);
        let link = sim.session_link().expect("one session on one link");
        assert_eq!(link.opener, winner);
        assert_eq!(sim.links.len(), 2, "no reconnect needed");
    }
}

/// Whatever the interleaving, the two speakers end up on one shared link and stay there.
#[test]
fn any_interleaving_converges_on_one_link() {
    for seed in 1..200u64 {
        let mut sim = Sim::new(HIGH, ME, seed);
        sim.run(secs(1800), false);
        let link = sim.session_link();
        assert!(
            link.is_some(),
            "seed {seed}: {:?} / {:?}",
            sim.a.state(),
            sim.b.state()
        );
    }
}
