//! Unit tests: the state machine driven by events and a fake clock (a `Duration`).

mod collision;
mod negotiation;
mod props;
mod sim;
mod timers;
mod transitions;

use std::net::Ipv4Addr;
use std::time::Duration;

use super::*;

pub(super) const LOCAL_AS: u32 = 64500;
pub(super) const PEER_AS: u32 = 64001;
pub(super) const ME: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(super) const PEER_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
pub(super) const OUT0: ConnId = ConnId {
    direction: Direction::Outbound,
    seq: 0,
};

pub(super) fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub(super) fn cfg() -> FsmConfig {
    FsmConfig::new(LOCAL_AS, ME, PEER_AS)
}

pub(super) fn out(seq: u64) -> ConnId {
    ConnId {
        direction: Direction::Outbound,
        seq,
    }
}

/// A valid OPEN from the peer, proposing `hold` seconds.
pub(super) fn peer_open(hold: u16) -> PeerOpen {
    PeerOpen {
        version: 4,
        asn: PEER_AS,
        hold_time: hold,
        router_id: PEER_ID,
    }
}

/// A machine and the fake clock driving it.
pub(super) struct Harness {
    pub fsm: Fsm,
    pub now: Duration,
}

impl Harness {
    pub fn new(cfg: FsmConfig) -> Harness {
        Harness {
            fsm: Fsm::new(cfg).expect("valid test config"),
            now: Duration::ZERO,
        }
    }

    /// Handles `event` at the current time.
    pub fn ev(&mut self, event: Event) -> Vec<Action> {
        self.fsm.handle(self.now, event)
    }

    /// Moves the clock to `t` and fires what is due (the session task waking up late).
    pub fn at(&mut self, t: Duration) -> Vec<Action> {
        self.now = t;
        self.fsm.on_timer(t)
    }

    /// Sleeps from deadline to deadline, as the session task does, until `until`; returns
    /// every action with the time it happened.
    pub fn run_until(&mut self, until: Duration) -> Vec<(Duration, Action)> {
        let mut log = Vec::new();
        while let Some(d) = self.fsm.next_deadline().filter(|d| *d <= until) {
            assert!(d > self.now, "deadline {d:?} not after now {:?}", self.now);
            self.now = d;
            log.extend(self.fsm.on_timer(d).into_iter().map(|a| (d, a)));
        }
        self.now = until;
        log
    }

    /// Started, connected out, OPENs and KEEPALIVEs exchanged with a peer proposing
    /// `hold`: Established on `OUT0` at the current time.
    pub fn establish(&mut self, hold: u16) -> Vec<Action> {
        let mut all = self.ev(Event::ManualStart);
        all.extend(self.ev(Event::TcpConnected { conn: OUT0 }));
        all.extend(self.ev(Event::Open {
            conn: OUT0,
            open: peer_open(hold),
        }));
        all.extend(self.ev(Event::Keepalive { conn: OUT0 }));
        assert_eq!(self.fsm.state(), State::Established, "{all:?}");
        all
    }
}

/// An established machine with the default configuration.
pub(super) fn established(hold: u16) -> Harness {
    let mut h = Harness::new(cfg());
    h.establish(hold);
    h
}

/// The NOTIFICATIONs among `actions`.
pub(super) fn notifications(actions: &[Action]) -> Vec<(ConnId, u8, u8)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SendNotification { conn, notification } => {
                Some((*conn, notification.code, notification.subcode))
            }
            _ => None,
        })
        .collect()
}

/// The connections closed among `actions`, with why.
pub(super) fn closes(actions: &[Action]) -> Vec<(ConnId, DownReason)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Close { conn, reason } => Some((*conn, reason.clone())),
            _ => None,
        })
        .collect()
}
