//! Property tests: random configurations and random event sequences (including nonsense:
//! messages in the wrong state, late events for closed connections, clock jumps). Checked
//! after every step: no panic; every deadline lies after `now`; at most one connection is
//! Established, and only after a valid OPEN answered with KEEPALIVE and then the peer's
//! KEEPALIVE on that connection, with the negotiated timers; no action names a closed
//! connection; every NOTIFICATION is followed by the Close of its connection.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::FileFailurePersistence;

use super::*;

#[derive(Debug, Clone)]
enum Op {
    Start,
    Stop(StopKind),
    Advance(u64),
    Tick,
    Connected(usize),
    Accept,
    Closed(usize),
    Open(usize, PeerOpen),
    Keepalive(usize),
    Update(usize),
    Refresh(usize),
    Notification(usize),
    MessageError(usize),
}

fn any_open() -> impl Strategy<Value = PeerOpen> {
    let ids = [
        Ipv4Addr::UNSPECIFIED,
        ME,
        PEER_ID,
        Ipv4Addr::new(10, 0, 0, 200),
    ];
    (
        select(vec![3u8, 4, 4, 4]),
        select(vec![PEER_AS, PEER_AS, PEER_AS, 1]),
        select(vec![0u16, 1, 2, 3, 9, 90, 300]),
        select(ids.to_vec()),
    )
        .prop_map(|(version, asn, hold_time, router_id)| PeerOpen {
            version,
            asn,
            hold_time,
            router_id,
        })
}

/// Mostly a valid OPEN, so that sessions get far enough to be interesting.
fn an_open() -> impl Strategy<Value = PeerOpen> {
    prop_oneof![
        3 => select(vec![0u16, 3, 9, 90, 300]).prop_map(peer_open),
        1 => any_open(),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    // Connection picks count from the newest, and favour it.
    let i = || select(vec![0usize, 0, 0, 1, 2]);
    prop_oneof![
        2 => Just(Op::Start),
        1 => select(vec![
            StopKind::Shutdown,
            StopKind::Reset,
            StopKind::Deconfigured,
            StopKind::ConfigChanged,
        ])
        .prop_map(Op::Stop),
        // Mostly short steps (sessions survive), sometimes long silences.
        6 => (0u64..3_000).prop_map(Op::Advance),
        1 => (0u64..400_000).prop_map(Op::Advance),
        2 => Just(Op::Tick),
        4 => i().prop_map(Op::Connected),
        2 => Just(Op::Accept),
        1 => i().prop_map(Op::Closed),
        5 => (i(), an_open()).prop_map(|(c, o)| Op::Open(c, o)),
        6 => i().prop_map(Op::Keepalive),
        2 => i().prop_map(Op::Update),
        1 => i().prop_map(Op::Refresh),
        1 => i().prop_map(Op::Notification),
        1 => i().prop_map(Op::MessageError),
    ]
}

/// Ops, with some full handshakes on one connection (each step still checked), so that
/// sessions often get Established and then meet the nonsense.
fn ops() -> impl Strategy<Value = Vec<Op>> {
    let chunk = prop_oneof![
        6 => op().prop_map(|o| vec![o]),
        2 => (select(vec![0usize, 0, 1]), select(vec![0u16, 3, 9, 90])).prop_map(|(i, hold)| {
            vec![
                Op::Connected(i),
                Op::Open(i, peer_open(hold)),
                Op::Keepalive(i),
            ]
        }),
    ];
    (any::<bool>(), proptest::collection::vec(chunk, 0..40)).prop_map(|(start, chunks)| {
        let first = start.then_some(Op::Start);
        first
            .into_iter()
            .chain(chunks.into_iter().flatten())
            .collect()
    })
}

fn any_config() -> impl Strategy<Value = FsmConfig> {
    (
        select(vec![0u16, 3, 9, 90]),
        any::<bool>(),
        any::<bool>(),
        select(vec![None, Some(secs(1)), Some(secs(20))]),
        any::<u64>(),
    )
        .prop_map(|(hold_time, passive, ibgp, keepalive_time, jitter_seed)| {
            let peer_asn = if ibgp { LOCAL_AS } else { PEER_AS };
            FsmConfig {
                hold_time,
                passive,
                keepalive_time,
                jitter_seed,
                ..FsmConfig::new(LOCAL_AS, ME, peer_asn)
            }
        })
}

fn valid(cfg: &FsmConfig, o: &PeerOpen) -> bool {
    o.version == 4
        && o.asn == cfg.peer_asn
        && o.hold_time != 1
        && o.hold_time != 2
        && !o.router_id.is_unspecified()
        && !(o.router_id == cfg.router_id && cfg.is_ibgp())
}

fn conn_of(a: &Action) -> Option<ConnId> {
    match a {
        Action::Connect { conn }
        | Action::SendOpen { conn, .. }
        | Action::SendKeepalive { conn }
        | Action::SendNotification { conn, .. }
        | Action::Close { conn, .. }
        | Action::SessionEstablished { conn, .. }
        | Action::AdvertiseAll { conn } => Some(*conn),
        Action::SessionDown { .. } => None,
    }
}

/// What the test remembers across steps.
#[derive(Default)]
struct Model {
    known: Vec<ConnId>,
    closed: BTreeSet<ConnId>,
    /// The OPEN accepted on each connection (answered with KEEPALIVE).
    accepted: BTreeMap<ConnId, PeerOpen>,
    next_inbound: u64,
}

impl Model {
    fn pick(&self, i: usize) -> ConnId {
        if self.known.is_empty() {
            OUT0
        } else {
            self.known[self.known.len() - 1 - i % self.known.len()]
        }
    }
}

fn run(cfg: FsmConfig, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut fsm = Fsm::new(cfg.clone()).expect("valid");
    let mut m = Model::default();
    let mut now = Duration::ZERO;
    for op in ops {
        let was_established = fsm.established().is_some();
        let event = match op {
            Op::Start => Some(Event::ManualStart),
            Op::Stop(k) => Some(Event::ManualStop(k)),
            Op::Advance(ms) => {
                now += Duration::from_millis(ms);
                None
            }
            Op::Tick => {
                now = fsm.next_deadline().unwrap_or(now).max(now);
                None
            }
            Op::Connected(i) => Some(Event::TcpConnected { conn: m.pick(i) }),
            Op::Accept => {
                let conn = ConnId::inbound(m.next_inbound);
                m.next_inbound += 1;
                m.known.push(conn);
                Some(Event::TcpAccepted { conn })
            }
            Op::Closed(i) => Some(Event::TcpClosed { conn: m.pick(i) }),
            Op::Open(i, open) => Some(Event::Open {
                conn: m.pick(i),
                open,
            }),
            Op::Keepalive(i) => Some(Event::Keepalive { conn: m.pick(i) }),
            Op::Update(i) => Some(Event::Update { conn: m.pick(i) }),
            Op::Refresh(i) => Some(Event::RouteRefresh { conn: m.pick(i) }),
            Op::Notification(i) => Some(Event::Notification {
                conn: m.pick(i),
                notification: Notification::cease(cease::ADMINISTRATIVE_RESET),
            }),
            Op::MessageError(i) => Some(Event::MessageError {
                conn: m.pick(i),
                notification: Notification::new(code::UPDATE_MESSAGE, 1),
            }),
        };
        let actions = match &event {
            Some(e) => fsm.handle(now, e.clone()),
            None => fsm.on_timer(now),
        };

        // Deadlines: all in the future.
        if let Some(d) = fsm.next_deadline() {
            prop_assert!(d > now, "deadline {d:?} <= now {now:?} after {event:?}");
        }
        // Nothing said about a connection after its Close; NOTIFICATION then Close.
        for (k, a) in actions.iter().enumerate() {
            if let Some(c) = conn_of(a) {
                prop_assert!(!m.closed.contains(&c), "{a:?} after close");
            }
            match a {
                Action::Connect { conn } => {
                    prop_assert!(!cfg.passive);
                    m.known.push(*conn);
                }
                Action::SendNotification { conn, .. } => {
                    let next = actions.get(k + 1);
                    prop_assert!(
                        matches!(next, Some(Action::Close { conn: c, .. }) if c == conn),
                        "{actions:?}"
                    );
                }
                Action::Close { conn, .. } => {
                    m.closed.insert(*conn);
                }
                Action::SendKeepalive { conn } => {
                    if let Some(Event::Open { conn: c, open }) = &event {
                        if c == conn {
                            prop_assert!(valid(&cfg, open), "accepted {open:?}");
                            m.accepted.insert(*conn, *open);
                        }
                    }
                }
                Action::SessionEstablished { conn, negotiated } => {
                    prop_assert_eq!(&event, &Some(Event::Keepalive { conn: *conn }));
                    let open = m.accepted.get(conn);
                    prop_assert!(open.is_some(), "Established without an accepted OPEN");
                    let hold = cfg.hold_time.min(open.map_or(0, |o| o.hold_time));
                    prop_assert_eq!(negotiated.hold_time, secs(u64::from(hold)));
                    let third = secs(u64::from(hold)) / 3;
                    match negotiated.keepalive_interval {
                        None => prop_assert_eq!(hold, 0),
                        Some(k) => prop_assert!(k >= secs(1) && k <= third),
                    }
                }
                Action::SessionDown { .. } => prop_assert!(was_established),
                Action::SendOpen { .. } | Action::AdvertiseAll { .. } => {}
            }
        }
        // An invalid OPEN never gets a KEEPALIVE.
        if let Some(Event::Open { open, .. }) = &event {
            if !valid(&cfg, open) {
                let answered = actions
                    .iter()
                    .any(|a| matches!(a, Action::SendKeepalive { .. }));
                prop_assert!(!answered || !m.accepted.values().any(|o| o == open));
            }
        }
        let established = fsm
            .connections()
            .filter(|(_, s)| *s == State::Established)
            .count();
        prop_assert!(established <= 1);
        prop_assert_eq!(established == 1, fsm.state() == State::Established);
        prop_assert!(fsm.connections().count() <= 2);
        if fsm.state() == State::Idle {
            prop_assert_eq!(fsm.next_deadline(), None);
            prop_assert_eq!(fsm.connections().count(), 0);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 1024,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_event_sequences_keep_the_invariants(
        cfg in any_config(),
        ops in ops(),
    ) {
        run(cfg, ops)?;
    }
}
