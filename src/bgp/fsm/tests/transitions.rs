//! The transitions of one connection, from start to Established and down again.

use super::*;

#[test]
fn starts_idle_and_connects_on_start() {
    let mut h = Harness::new(cfg());
    assert_eq!(h.fsm.state(), State::Idle);
    assert_eq!(h.fsm.next_deadline(), None);
    assert_eq!(
        h.ev(Event::ManualStart),
        vec![Action::Connect { conn: OUT0 }]
    );
    assert_eq!(h.fsm.state(), State::Connect);
    // The connect attempt is bounded by the jittered connect-retry base.
    let d = h.fsm.next_deadline().expect("connect timeout");
    assert!(d >= secs(10).mul_f64(0.75) && d <= secs(10), "{d:?}");
    // A second start changes nothing.
    assert_eq!(h.ev(Event::ManualStart), vec![]);
}

#[test]
fn passive_waits_in_active_without_timer() {
    let mut h = Harness::new(FsmConfig {
        passive: true,
        ..cfg()
    });
    assert_eq!(h.ev(Event::ManualStart), vec![]);
    assert_eq!(h.fsm.state(), State::Active);
    assert_eq!(h.fsm.next_deadline(), None);
    let inb = ConnId::inbound(0);
    let a = h.ev(Event::TcpAccepted { conn: inb });
    assert!(
        matches!(a[..], [Action::SendOpen { conn, .. }] if conn == inb),
        "{a:?}"
    );
    assert_eq!(h.fsm.state(), State::OpenSent);
}

#[test]
fn connected_sends_our_open_and_waits_four_minutes() {
    let mut h = Harness::new(FsmConfig {
        hold_time: 30,
        ..cfg()
    });
    h.ev(Event::ManualStart);
    h.now = secs(1);
    let a = h.ev(Event::TcpConnected { conn: OUT0 });
    let open = LocalOpen {
        asn: LOCAL_AS,
        hold_time: 30,
        router_id: ME,
    };
    assert_eq!(a, vec![Action::SendOpen { conn: OUT0, open }]);
    assert_eq!(h.fsm.state(), State::OpenSent);
    assert_eq!(h.fsm.next_deadline(), Some(secs(1) + OPEN_SENT_HOLD));
    // The peer never answers: dropped with Hold Timer Expired after 4 minutes.
    assert_eq!(h.at(secs(240)), vec![]);
    let a = h.at(secs(241));
    assert_eq!(notifications(&a), vec![(OUT0, code::HOLD_TIMER_EXPIRED, 0)]);
    assert_eq!(closes(&a), vec![(OUT0, DownReason::HoldTimerExpired)]);
    assert_eq!(h.fsm.state(), State::Active);
}

#[test]
fn handshake_reaches_established_after_open_and_keepalive() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    let a = h.ev(Event::Open {
        conn: OUT0,
        open: peer_open(90),
    });
    assert_eq!(a, vec![Action::SendKeepalive { conn: OUT0 }]);
    assert_eq!(h.fsm.state(), State::OpenConfirm);
    assert_eq!(h.fsm.established(), None);
    let a = h.ev(Event::Keepalive { conn: OUT0 });
    let negotiated = Negotiated {
        hold_time: secs(90),
        keepalive_interval: Some(secs(30)),
        peer_asn: PEER_AS,
        peer_router_id: PEER_ID,
    };
    assert_eq!(
        a,
        vec![
            Action::SessionEstablished {
                conn: OUT0,
                negotiated
            },
            Action::AdvertiseAll { conn: OUT0 },
        ]
    );
    assert_eq!(h.fsm.state(), State::Established);
    assert_eq!(h.fsm.established(), Some((OUT0, negotiated)));
    assert_eq!(h.fsm.last_error(), None);
}

#[test]
fn keepalive_in_open_sent_is_an_fsm_error() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    let a = h.ev(Event::Keepalive { conn: OUT0 });
    assert_eq!(
        notifications(&a),
        vec![(OUT0, code::FSM, fsm_error::UNEXPECTED_IN_OPEN_SENT)]
    );
    assert_eq!(h.fsm.state(), State::Active);
    assert!(matches!(
        h.fsm.last_error(),
        Some(DownReason::NotificationSent(n)) if n.code == code::FSM
    ));
}

#[test]
fn update_in_open_confirm_is_an_fsm_error() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    h.ev(Event::Open {
        conn: OUT0,
        open: peer_open(90),
    });
    let a = h.ev(Event::Update { conn: OUT0 });
    assert_eq!(
        notifications(&a),
        vec![(OUT0, code::FSM, fsm_error::UNEXPECTED_IN_OPEN_CONFIRM)]
    );
    // Not Established, so no SessionDown.
    assert!(!a.iter().any(|x| matches!(x, Action::SessionDown { .. })));
}

#[test]
fn open_in_established_is_an_fsm_error_and_takes_the_session_down() {
    let mut h = established(90);
    let a = h.ev(Event::Open {
        conn: OUT0,
        open: peer_open(90),
    });
    let n = Notification::fsm_error(fsm_error::UNEXPECTED_IN_ESTABLISHED);
    assert_eq!(
        a,
        vec![
            Action::SendNotification {
                conn: OUT0,
                notification: n.clone()
            },
            Action::Close {
                conn: OUT0,
                reason: DownReason::NotificationSent(n.clone())
            },
            Action::SessionDown {
                reason: DownReason::NotificationSent(n)
            },
        ]
    );
    assert_eq!(h.fsm.state(), State::Active);
}

#[test]
fn received_notification_closes_without_answering() {
    let mut h = established(90);
    let n = Notification::cease(cease::ADMINISTRATIVE_RESET);
    let a = h.ev(Event::Notification {
        conn: OUT0,
        notification: n.clone(),
    });
    let reason = DownReason::NotificationReceived(n);
    assert_eq!(
        a,
        vec![
            Action::Close {
                conn: OUT0,
                reason: reason.clone()
            },
            Action::SessionDown {
                reason: reason.clone()
            },
        ]
    );
    assert_eq!(h.fsm.last_error(), Some(&reason));
}

#[test]
fn closed_connection_goes_active_then_reconnects() {
    let mut h = established(90);
    h.now = secs(5);
    let a = h.ev(Event::TcpClosed { conn: OUT0 });
    assert_eq!(closes(&a), vec![(OUT0, DownReason::ConnectionClosed)]);
    assert!(a.contains(&Action::SessionDown {
        reason: DownReason::ConnectionClosed
    }));
    assert_eq!(h.fsm.state(), State::Active);
    let retry = h.fsm.next_deadline().expect("connect retry");
    assert!(retry > secs(5) && retry <= secs(15), "{retry:?}");
    let log = h.run_until(secs(20));
    assert_eq!(log, vec![(retry, Action::Connect { conn: out(1) })]);
    assert_eq!(h.fsm.state(), State::Connect);
}

#[test]
fn message_error_sends_the_codecs_notification() {
    let mut h = established(90);
    let n = Notification::new(code::UPDATE_MESSAGE, 3).with_data(vec![1, 2]);
    let a = h.ev(Event::MessageError {
        conn: OUT0,
        notification: n.clone(),
    });
    assert_eq!(
        a[0],
        Action::SendNotification {
            conn: OUT0,
            notification: n
        }
    );
    assert!(matches!(a[2], Action::SessionDown { .. }));
}

#[test]
fn route_refresh_asks_for_the_whole_rib_again() {
    let mut h = established(90);
    assert_eq!(
        h.ev(Event::RouteRefresh { conn: OUT0 }),
        vec![Action::AdvertiseAll { conn: OUT0 }]
    );
    assert_eq!(h.ev(Event::Update { conn: OUT0 }), vec![]);
}

#[test]
fn manual_stop_sends_administrative_shutdown_and_stays_down() {
    let mut h = established(90);
    let a = h.ev(Event::ManualStop(StopKind::Shutdown));
    assert_eq!(
        notifications(&a),
        vec![(OUT0, code::CEASE, cease::ADMINISTRATIVE_SHUTDOWN)]
    );
    assert!(a.contains(&Action::SessionDown {
        reason: DownReason::Stopped(StopKind::Shutdown)
    }));
    assert_eq!(h.fsm.state(), State::Idle);
    assert_eq!(h.fsm.next_deadline(), None);
    // An operator's stop is not an error.
    assert_eq!(h.fsm.last_error(), None);
    // Stopped: the peer's connection is refused.
    let inb = ConnId::inbound(7);
    let a = h.ev(Event::TcpAccepted { conn: inb });
    assert_eq!(
        notifications(&a),
        vec![(inb, code::CEASE, cease::CONNECTION_REJECTED)]
    );
    assert_eq!(closes(&a), vec![(inb, DownReason::Rejected)]);
    assert_eq!(h.fsm.connections().count(), 0);
}

#[test]
fn manual_reset_sends_administrative_reset_and_starts_again() {
    let mut h = established(90);
    let a = h.ev(Event::ManualStop(StopKind::Reset));
    assert_eq!(
        notifications(&a),
        vec![(OUT0, code::CEASE, cease::ADMINISTRATIVE_RESET)]
    );
    assert_eq!(h.fsm.state(), State::Active);
    let log = h.run_until(secs(11));
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].1, Action::Connect { conn: out(1) });
}

#[test]
fn stop_while_connecting_closes_without_notification() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    let a = h.ev(Event::ManualStop(StopKind::Shutdown));
    assert_eq!(
        a,
        vec![Action::Close {
            conn: OUT0,
            reason: DownReason::Stopped(StopKind::Shutdown)
        }]
    );
    // The attempt's late success is ignored.
    assert_eq!(h.ev(Event::TcpConnected { conn: OUT0 }), vec![]);
    assert_eq!(h.fsm.state(), State::Idle);
}

#[test]
fn events_for_forgotten_connections_are_ignored() {
    let mut h = established(90);
    h.ev(Event::TcpClosed { conn: OUT0 });
    let deadline = h.fsm.next_deadline();
    for e in [
        Event::Keepalive { conn: OUT0 },
        Event::Update { conn: OUT0 },
        Event::TcpClosed { conn: OUT0 },
        Event::Open {
            conn: OUT0,
            open: peer_open(90),
        },
        Event::MessageError {
            conn: OUT0,
            notification: Notification::new(1, 1),
        },
    ] {
        assert_eq!(h.ev(e.clone()), vec![], "{e:?}");
    }
    assert_eq!(h.fsm.next_deadline(), deadline);
    assert_eq!(h.fsm.state(), State::Active);
}

#[test]
fn connect_failure_goes_active_and_counts() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    let a = h.ev(Event::TcpClosed { conn: OUT0 });
    assert_eq!(closes(&a), vec![(OUT0, DownReason::ConnectFailed)]);
    assert_eq!(h.fsm.state(), State::Active);
    assert_eq!(h.fsm.failures(), 1);
    assert_eq!(h.fsm.last_error(), Some(&DownReason::ConnectFailed));
}

#[test]
fn connect_timeout_abandons_the_attempt() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    let log = h.run_until(secs(10));
    assert_eq!(log.len(), 1, "{log:?}");
    assert_eq!(
        log[0].1,
        Action::Close {
            conn: OUT0,
            reason: DownReason::ConnectTimeout
        }
    );
    assert_eq!(h.fsm.state(), State::Active);
}

#[test]
fn inbound_accepted_while_active_cancels_the_retry_timer() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpClosed { conn: OUT0 });
    assert!(h.fsm.next_deadline().is_some());
    let inb = ConnId::inbound(0);
    h.ev(Event::TcpAccepted { conn: inb });
    assert_eq!(h.fsm.next_deadline(), Some(OPEN_SENT_HOLD));
    // A second inbound connection is refused.
    let second = ConnId::inbound(1);
    let a = h.ev(Event::TcpAccepted { conn: second });
    assert_eq!(closes(&a), vec![(second, DownReason::Rejected)]);
    assert_eq!(
        h.fsm.connections().collect::<Vec<_>>(),
        vec![(inb, State::OpenSent)]
    );
}

#[test]
fn every_stop_kind_has_its_cease_subcode_and_restart_rule() {
    for (kind, subcode, restarts) in [
        (StopKind::Shutdown, cease::ADMINISTRATIVE_SHUTDOWN, false),
        (StopKind::Reset, cease::ADMINISTRATIVE_RESET, true),
        (StopKind::Deconfigured, cease::PEER_DECONFIGURED, false),
        (
            StopKind::ConfigChanged,
            cease::OTHER_CONFIGURATION_CHANGE,
            true,
        ),
    ] {
        let mut h = established(90);
        let a = h.ev(Event::ManualStop(kind));
        assert_eq!(notifications(&a), vec![(OUT0, code::CEASE, subcode)]);
        let expected = if restarts { State::Active } else { State::Idle };
        assert_eq!(h.fsm.state(), expected, "{kind:?}");
        assert_eq!(h.fsm.next_deadline().is_some(), restarts);
    }
}

#[test]
fn a_collision_cease_from_the_peer_is_not_an_error() {
    let mut h = established(90);
    let n = Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION);
    h.ev(Event::Notification {
        conn: OUT0,
        notification: n,
    });
    assert_eq!(h.fsm.last_error(), None);
}
