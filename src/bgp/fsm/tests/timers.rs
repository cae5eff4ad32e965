//! Hold timer enforcement, keepalive cadence and connect-retry backoff.

use super::*;

fn keepalive_times(log: &[(Duration, Action)]) -> Vec<u64> {
    log.iter()
        .filter(|(_, a)| matches!(a, Action::SendKeepalive { .. }))
        .map(|(t, _)| t.as_secs())
        .collect()
}

#[test]
fn silent_peer_is_dropped_when_the_hold_timer_expires() {
    let mut h = established(90);
    h.now = secs(20);
    h.ev(Event::Keepalive { conn: OUT0 });
    // Our keepalives go out at 30 and 60; the peer says nothing after 20 s.
    let log = h.run_until(secs(120));
    assert_eq!(keepalive_times(&log), vec![30, 60, 90]);
    let drop: Vec<_> = log
        .iter()
        .filter(|(_, a)| !matches!(a, Action::SendKeepalive { .. }))
        .cloned()
        .collect();
    let n = Notification::new(code::HOLD_TIMER_EXPIRED, 0);
    assert_eq!(
        drop,
        vec![
            (
                secs(110),
                Action::SendNotification {
                    conn: OUT0,
                    notification: n
                }
            ),
            (
                secs(110),
                Action::Close {
                    conn: OUT0,
                    reason: DownReason::HoldTimerExpired
                }
            ),
            (
                secs(110),
                Action::SessionDown {
                    reason: DownReason::HoldTimerExpired
                }
            ),
            // Then a reconnect after the jittered base delay.
            (drop_retry(&log), Action::Connect { conn: out(1) }),
        ]
    );
    assert_eq!(h.fsm.last_error(), Some(&DownReason::HoldTimerExpired));
}

fn drop_retry(log: &[(Duration, Action)]) -> Duration {
    let t = log
        .iter()
        .find(|(_, a)| matches!(a, Action::Connect { .. }))
        .map(|(t, _)| *t)
        .expect("a reconnect");
    assert!(
        t >= secs(110) + secs(10).mul_f64(0.75) && t <= secs(120),
        "{t:?}"
    );
    t
}

#[test]
fn keepalives_every_third_of_the_hold_time_while_the_peer_talks() {
    let mut h = established(9);
    let mut sent = Vec::new();
    // The peer sends an UPDATE or KEEPALIVE every 8 s, just inside its 9 s hold.
    for i in 1..=10u64 {
        let log = h.run_until(secs(8 * i));
        sent.extend(keepalive_times(&log));
        let e = if i % 2 == 0 {
            Event::Update { conn: OUT0 }
        } else {
            Event::Keepalive { conn: OUT0 }
        };
        assert_eq!(h.ev(e), vec![]);
    }
    assert_eq!(sent, (1..=26).map(|k| 3 * k).collect::<Vec<_>>());
    assert_eq!(h.fsm.state(), State::Established);
}

#[test]
fn late_wake_up_sends_one_keepalive_and_restarts_from_now() {
    let mut h = established(90);
    h.ev(Event::Keepalive { conn: OUT0 });
    let a = h.at(secs(50));
    assert_eq!(a, vec![Action::SendKeepalive { conn: OUT0 }]);
    assert_eq!(h.fsm.next_deadline(), Some(secs(80)));
}

#[test]
fn a_due_hold_timer_fires_before_a_late_message() {
    let mut h = established(9);
    h.now = secs(9);
    let a = h.ev(Event::Keepalive { conn: OUT0 });
    assert!(a.contains(&Action::SessionDown {
        reason: DownReason::HoldTimerExpired
    }));
}

#[test]
fn open_confirm_uses_the_negotiated_hold_time() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    h.ev(Event::Open {
        conn: OUT0,
        open: peer_open(30),
    });
    // No KEEPALIVE from the peer: our keepalives at 10 and 20, dropped at 30.
    let log = h.run_until(secs(31));
    assert_eq!(keepalive_times(&log), vec![10, 20]);
    assert!(log.contains(&(
        secs(30),
        Action::Close {
            conn: OUT0,
            reason: DownReason::HoldTimerExpired
        }
    )));
    assert!(!log
        .iter()
        .any(|(_, a)| matches!(a, Action::SessionDown { .. })));
}

/// The delays between connect attempts when every attempt is refused at once.
fn retry_delays(mut h: Harness, n: usize) -> Vec<Duration> {
    h.ev(Event::ManualStart);
    let mut delays = Vec::new();
    let mut seq = 0;
    for _ in 0..n {
        h.ev(Event::TcpClosed { conn: out(seq) });
        seq += 1;
        let failed_at = h.now;
        let next = h.fsm.next_deadline().expect("retry timer");
        assert_eq!(h.at(next), vec![Action::Connect { conn: out(seq) }]);
        delays.push(next - failed_at);
    }
    delays
}

#[test]
fn backoff_doubles_up_to_the_cap_with_jitter() {
    let delays = retry_delays(Harness::new(cfg()), 7);
    let caps = [10, 20, 40, 80, 120, 120, 120].map(secs);
    for (d, cap) in delays.iter().zip(caps) {
        assert!(*d <= cap && *d >= cap.mul_f64(0.75), "{d:?} vs {cap:?}");
    }
    // Another seed spreads the same schedule differently; the same seed repeats it.
    let other = retry_delays(
        Harness::new(FsmConfig {
            jitter_seed: 99,
            ..cfg()
        }),
        7,
    );
    assert_ne!(delays, other);
    assert_eq!(delays, retry_delays(Harness::new(cfg()), 7));
}

#[test]
fn backoff_restarts_after_established() {
    let mut h = Harness::new(cfg());
    h.ev(Event::ManualStart);
    for seq in 0..4 {
        h.ev(Event::TcpClosed { conn: out(seq) });
        let next = h.fsm.next_deadline().expect("retry");
        h.at(next);
    }
    assert_eq!(h.fsm.failures(), 4);
    h.ev(Event::TcpConnected { conn: out(4) });
    h.ev(Event::Open {
        conn: out(4),
        open: peer_open(90),
    });
    h.ev(Event::Keepalive { conn: out(4) });
    assert_eq!(h.fsm.failures(), 0);
    let down_at = h.now;
    h.ev(Event::TcpClosed { conn: out(4) });
    let d = h.fsm.next_deadline().expect("retry") - down_at;
    assert!(d <= secs(10), "{d:?}");
}

#[test]
fn passive_session_never_connects_out() {
    let mut h = Harness::new(FsmConfig {
        passive: true,
        ..cfg()
    });
    h.ev(Event::ManualStart);
    let inb = ConnId::inbound(0);
    h.ev(Event::TcpAccepted { conn: inb });
    h.ev(Event::TcpClosed { conn: inb });
    assert_eq!(h.fsm.state(), State::Active);
    assert_eq!(h.fsm.next_deadline(), None);
}
