//! Checking the peer's OPEN and negotiating the timers.

use super::*;

/// The actions after the peer sends `open` on an outbound connection in OpenSent.
fn answer(cfg: FsmConfig, open: PeerOpen) -> (Harness, Vec<Action>) {
    let mut h = Harness::new(cfg);
    h.ev(Event::ManualStart);
    h.ev(Event::TcpConnected { conn: OUT0 });
    let a = h.ev(Event::Open { conn: OUT0, open });
    (h, a)
}

fn refused_with(open: PeerOpen, subcode: u8) -> Notification {
    let (h, a) = answer(cfg(), open);
    assert_eq!(notifications(&a), vec![(OUT0, code::OPEN_MESSAGE, subcode)]);
    assert_eq!(h.fsm.state(), State::Active);
    match &a[0] {
        Action::SendNotification { notification, .. } => notification.clone(),
        other => panic!("expected a NOTIFICATION, got {other:?}"),
    }
}

fn negotiated(cfg: FsmConfig, peer_hold: u16) -> Negotiated {
    let mut h = Harness::new(cfg);
    h.establish(peer_hold);
    h.fsm.established().expect("established").1
}

#[test]
fn hold_time_is_the_smaller_and_keepalive_a_third() {
    let n = negotiated(cfg(), 30);
    assert_eq!(n.hold_time, secs(30));
    assert_eq!(n.keepalive_interval, Some(secs(10)));
    let n = negotiated(
        FsmConfig {
            hold_time: 9,
            ..cfg()
        },
        180,
    );
    assert_eq!(n.hold_time, secs(9));
    assert_eq!(n.keepalive_interval, Some(secs(3)));
}

#[test]
fn configured_keepalive_is_kept_but_capped_at_a_third() {
    let c = FsmConfig {
        keepalive_time: Some(secs(10)),
        ..cfg()
    };
    assert_eq!(negotiated(c.clone(), 90).keepalive_interval, Some(secs(10)));
    assert_eq!(negotiated(c, 15).keepalive_interval, Some(secs(5)));
}

#[test]
fn zero_hold_time_runs_no_timers() {
    let mut h = established(0);
    let (_, n) = h.fsm.established().expect("established");
    assert_eq!(n.hold_time, Duration::ZERO);
    assert_eq!(n.keepalive_interval, None);
    assert_eq!(h.fsm.next_deadline(), None);
    assert_eq!(h.run_until(secs(100_000)), vec![]);
    assert_eq!(h.fsm.state(), State::Established);
    // Ours zero, theirs 90: zero too.
    assert_eq!(
        negotiated(
            FsmConfig {
                hold_time: 0,
                ..cfg()
            },
            90
        )
        .hold_time,
        Duration::ZERO
    );
}

#[test]
fn hold_time_of_one_or_two_seconds_is_refused() {
    for hold in [1, 2] {
        refused_with(peer_open(hold), open_error::UNACCEPTABLE_HOLD_TIME);
    }
    // Three is the smallest allowed.
    assert_eq!(negotiated(cfg(), 3).keepalive_interval, Some(secs(1)));
}

#[test]
fn wrong_peer_as_is_refused() {
    let open = PeerOpen {
        asn: PEER_AS + 1,
        ..peer_open(90)
    };
    refused_with(open, open_error::BAD_PEER_AS);
}

#[test]
fn version_other_than_four_is_refused_naming_ours() {
    let open = PeerOpen {
        version: 3,
        ..peer_open(90)
    };
    let n = refused_with(open, open_error::UNSUPPORTED_VERSION);
    assert_eq!(n.data, vec![0, 4]);
}

#[test]
fn zero_router_id_is_refused() {
    let open = PeerOpen {
        router_id: Ipv4Addr::UNSPECIFIED,
        ..peer_open(90)
    };
    refused_with(open, open_error::BAD_BGP_IDENTIFIER);
}

#[test]
fn our_own_router_id_is_refused_inside_one_as_only() {
    let ibgp = FsmConfig::new(PEER_AS, ME, PEER_AS);
    let open = PeerOpen {
        router_id: ME,
        ..peer_open(90)
    };
    let (_, a) = answer(ibgp, open);
    assert_eq!(
        notifications(&a),
        vec![(OUT0, code::OPEN_MESSAGE, open_error::BAD_BGP_IDENTIFIER)]
    );
    // RFC 6286: two eBGP speakers may share an identifier.
    let (h, a) = answer(cfg(), open);
    assert_eq!(a, vec![Action::SendKeepalive { conn: OUT0 }]);
    assert_eq!(h.fsm.state(), State::OpenConfirm);
}

#[test]
fn config_is_checked() {
    let bad = [
        (
            FsmConfig::new(1, Ipv4Addr::UNSPECIFIED, 2),
            ConfigError::RouterIdZero,
        ),
        (
            FsmConfig {
                hold_time: 2,
                ..cfg()
            },
            ConfigError::HoldTime(2),
        ),
        (
            FsmConfig {
                keepalive_time: Some(Duration::from_millis(500)),
                ..cfg()
            },
            ConfigError::KeepaliveTooShort(Duration::from_millis(500)),
        ),
        (
            FsmConfig {
                connect_retry: Duration::ZERO,
                ..cfg()
            },
            ConfigError::ConnectRetryTooShort(Duration::ZERO),
        ),
    ];
    for (c, e) in bad {
        assert_eq!(Fsm::new(c).err(), Some(e));
    }
    assert!(Fsm::new(FsmConfig {
        hold_time: 0,
        ..cfg()
    })
    .is_ok());
}
