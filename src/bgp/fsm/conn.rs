//! One transport connection of the session and its own timers. The session has at most two
//! at a time (one per direction) while a collision is being resolved, and exactly one once
//! Established.

use std::time::Duration;

use super::{ConnId, Negotiated, State};

/// How far a connection got (RFC 4271 §8.2.2's states, per connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Outbound TCP connect in progress.
    Connecting,
    /// Our OPEN is sent; waiting for the peer's.
    OpenSent,
    /// Both OPENs are exchanged; waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// The session runs on this connection.
    Established,
}

impl Stage {
    /// The RFC state a session whose furthest connection is at this stage is in.
    pub fn state(self) -> State {
        match self {
            Stage::Connecting => State::Connect,
            Stage::OpenSent => State::OpenSent,
            Stage::OpenConfirm => State::OpenConfirm,
            Stage::Established => State::Established,
        }
    }
}

/// A connection and its timers. `hold_at` is the connect timeout while connecting, the
/// OpenSent hold (4 min) in OpenSent, the negotiated hold timer after.
#[derive(Debug, Clone)]
pub struct Conn {
    pub id: ConnId,
    pub stage: Stage,
    pub negotiated: Option<Negotiated>,
    pub hold_at: Option<Duration>,
    pub keepalive_at: Option<Duration>,
}

impl Conn {
    /// A connection at `stage` whose first deadline is `hold_at`.
    pub fn new(id: ConnId, stage: Stage, hold_at: Duration) -> Conn {
        Conn {
            id,
            stage,
            negotiated: None,
            hold_at: Some(hold_at),
            keepalive_at: None,
        }
    }

    /// The earliest of its timers.
    pub fn deadline(&self) -> Option<Duration> {
        match (self.hold_at, self.keepalive_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Restarts the hold timer with the negotiated value (none when it is zero).
    pub fn restart_hold(&mut self, now: Duration) {
        if let Some(n) = &self.negotiated {
            self.hold_at = (!n.hold_time.is_zero()).then(|| now + n.hold_time);
        }
    }

    /// Schedules the next KEEPALIVE (none when the hold time is zero).
    pub fn restart_keepalive(&mut self, now: Duration) {
        if let Some(n) = &self.negotiated {
            self.keepalive_at = n.keepalive_interval.map(|k| now + k);
        }
    }

    /// The NOTIFICATION subcode (RFC 6608) for a message this stage does not expect.
    pub fn unexpected_subcode(&self) -> u8 {
        use super::notification::fsm_error as fsm;
        match self.stage {
            Stage::Connecting => fsm::UNSPECIFIED,
            Stage::OpenSent => fsm::UNEXPECTED_IN_OPEN_SENT,
            Stage::OpenConfirm => fsm::UNEXPECTED_IN_OPEN_CONFIRM,
            Stage::Established => fsm::UNEXPECTED_IN_ESTABLISHED,
        }
    }
}
