//! The BGP session state machine for one peer (RFC 4271 §8). Pure: no sockets, no tokio, no
//! clock. Time comes in as a [`Duration`] since an epoch the caller picks (the session task
//! keeps a monotonic `Instant` and passes `now - epoch`); randomness (jitter) comes from a
//! seed in the [`FsmConfig`].
//!
//! # Driving it
//!
//! The session layer owns an [`Fsm`], feeds it [`Event`]s with [`Fsm::handle`], and carries
//! out the returned [`Action`]s in order. Between events it sleeps until
//! [`Fsm::next_deadline`] and then calls [`Fsm::on_timer`]. Both calls first fire every timer
//! due at `now`, so a late wake-up is harmless, and afterwards every deadline lies after
//! `now`. The session layer translates between codec messages and these events/actions;
//! capabilities (families, 4-octet AS, route refresh, graceful restart) are negotiated there
//! and never reach the machine — a capability it cannot accept becomes an
//! [`Event::MessageError`] carrying the NOTIFICATION to send. The machine never asks to
//! listen: whoever accepts on port 179 hands a socket from this peer over as
//! [`Event::TcpAccepted`], and the machine takes it or refuses it (NOTIFICATION, Close).
//! A connection the machine has closed is forgotten: later events naming it are ignored.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::Duration;
//! use ferrolb::bgp::fsm::{Action, Event, Fsm, FsmConfig, PeerOpen, State};
//!
//! let mut fsm = Fsm::new(FsmConfig::new(64500, Ipv4Addr::new(10, 0, 0, 1), 64001))?;
//! let t = Duration::from_secs;
//! let [Action::Connect { conn }] = fsm.handle(t(0), Event::ManualStart)[..] else {
//!     unreachable!()
//! };
//! // The socket connected: send our OPEN.
//! assert!(matches!(fsm.handle(t(1), Event::TcpConnected { conn })[..], [Action::SendOpen { .. }]));
//! let open = PeerOpen { version: 4, asn: 64001, hold_time: 30, router_id: Ipv4Addr::new(10, 0, 0, 2) };
//! fsm.handle(t(1), Event::Open { conn, open }); // -> SendKeepalive
//! fsm.handle(t(1), Event::Keepalive { conn }); // -> SessionEstablished, AdvertiseAll
//! assert_eq!(fsm.state(), State::Established);
//! // Sleep until the next timer: our KEEPALIVE, a third of the negotiated 30 s.
//! assert_eq!(fsm.next_deadline(), Some(t(11)));
//! assert_eq!(fsm.on_timer(t(11)), vec![Action::SendKeepalive { conn }]);
//! # Ok::<(), ferrolb::bgp::fsm::ConfigError>(())
//! ```
//!
//! # Connections and collisions
//!
//! RFC 4271 runs one state machine per transport connection and resolves collisions between
//! them (§6.8). Here one [`Fsm`] owns the session and up to two connections, each named by a
//! [`ConnId`] that says who opened it ([`Direction`]): outbound ids are chosen by the machine
//! ([`Action::Connect`]), inbound ids by the session layer ([`Event::TcpAccepted`]). Every
//! connection has its own stage and timers; the session's [`State`] is that of the furthest
//! connection. This keeps collision handling inside the machine, where it can be tested,
//! and gives the session layer one object per peer.
//!
//! - When an OPEN is accepted on one connection and the other has sent its OPEN too
//!   (OpenSent or OpenConfirm), the peer's identifier is known and the collision is
//!   resolved at once: the connection opened by the side with the higher BGP identifier
//!   (then the higher AS, RFC 6286) survives, the other gets Cease / Connection Collision
//!   Resolution (6/7) and is closed. An outbound attempt still connecting is left alone until
//!   its own OPEN arrives.
//! - When a connection reaches Established, the other one (if any) is closed with the same
//!   Cease; a connection arriving while Established is refused with it (RFC 4271 §6.8: the
//!   newer connection loses).
//! - A second inbound connection while one is open, or any while stopped, is refused with
//!   Cease / Connection Rejected (6/5).
//!
//! # States
//!
//! - **Idle**: stopped (before [`Event::ManualStart`], after [`StopKind::Shutdown`]).
//!   Inbound connections are refused.
//! - **Connect**: an outbound connect is in progress (it times out after the connect-retry
//!   base, jittered).
//! - **Active**: started, no connection; inbound connections are accepted. Unless passive, a
//!   connect-retry timer runs: `connect_retry · 2^failures`, capped at `connect_retry_max`,
//!   scaled by a jitter in `[0.75, 1]`. Failures count every time the last connection is
//!   lost; they reset on Established (and on an administrative reset). Errors lead here
//!   rather than to RFC 4271's Idle: the growing timer is the RFC's optional peer
//!   oscillation damping, and accepting the peer's connection meanwhile costs nothing.
//! - **OpenSent**: our OPEN is sent; the hold timer is 4 minutes.
//! - **OpenConfirm**: the peer's OPEN is accepted (version 4, its AS the configured one,
//!   hold time 0 or ≥ 3, identifier non-zero and — inside one AS — not ours); we sent
//!   KEEPALIVE; hold = min(ours, peer's), keepalives every min(configured, hold / 3).
//! - **Established**: after the peer's KEEPALIVE: [`Action::SessionEstablished`] then
//!   [`Action::AdvertiseAll`]. KEEPALIVE, UPDATE and ROUTE-REFRESH restart the hold timer;
//!   a ROUTE-REFRESH also asks for [`Action::AdvertiseAll`].
//!
//! Failures close the connection: hold timer expiry (NOTIFICATION 4), a refused OPEN (2/x),
//! a message the stage does not expect (5 with RFC 6608 subcodes), the codec's
//! [`Event::MessageError`], a received NOTIFICATION or a closed socket. Leaving Established
//! also yields [`Action::SessionDown`]. [`Event::ManualStop`] sends Cease / Administrative
//! Shutdown (6/2), Peer De-configured (6/3), Administrative Reset (6/4) or Other
//! Configuration Change (6/6) on every connection that sent an OPEN ([`StopKind`]); the
//! last two start again after the connect-retry base.
//!
//! Only the connect-retry timers are jittered (RFC 4271 §10 also suggests it for
//! keepalives; a fixed cadence keeps them predictable and they are tiny). KEEPALIVEs are
//! sent at their interval whether or not UPDATEs went out meanwhile.

mod action;
mod config;
mod conn;
mod event;
mod machine;
mod messages;
mod notification;
mod open;
mod timers;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub use action::{Action, DownReason, LocalOpen, Negotiated};
pub use config::{
    ConfigError, FsmConfig, DEFAULT_CONNECT_RETRY, DEFAULT_CONNECT_RETRY_MAX, DEFAULT_HOLD_TIME,
};
pub use event::{ConnId, Direction, Event, PeerOpen, StopKind};
pub use notification::{cease, code, fsm_error, open_error, Notification};
pub use open::BGP_VERSION;
pub use timers::OPEN_SENT_HOLD;

use conn::{Conn, Stage};
use timers::Jitter;

/// The RFC 4271 session states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Stopped.
    Idle,
    /// Connecting out.
    Connect,
    /// Started, no connection: waiting for the peer or for the connect-retry timer.
    Active,
    /// Our OPEN sent.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Up.
    Established,
}

/// The state machine of one BGP peer. See the module documentation.
#[derive(Debug, Clone)]
pub struct Fsm {
    cfg: FsmConfig,
    started: bool,
    /// At most one per direction; exactly one when Established.
    conns: Vec<Conn>,
    /// The connect-retry timer (Active, not passive).
    retry_at: Option<Duration>,
    /// Consecutive losses since the last Established: the backoff exponent.
    failures: u32,
    jitter: Jitter,
    next_outbound: u64,
    last_error: Option<DownReason>,
}

impl Fsm {
    /// A stopped (Idle) machine; send [`Event::ManualStart`] to start it.
    pub fn new(cfg: FsmConfig) -> Result<Fsm, ConfigError> {
        cfg.validate()?;
        Ok(Fsm {
            jitter: Jitter::new(cfg.jitter_seed),
            cfg,
            started: false,
            conns: Vec::with_capacity(2),
            retry_at: None,
            failures: 0,
            next_outbound: 0,
            last_error: None,
        })
    }

    /// Fires the timers due at `now`, then handles `event`.
    pub fn handle(&mut self, now: Duration, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        self.fire_due(now, &mut out);
        self.apply(now, event, &mut out);
        self.settle(now);
        out
    }

    /// Fires the timers due at `now` (hold, keepalive, connect timeout, connect retry).
    pub fn on_timer(&mut self, now: Duration) -> Vec<Action> {
        let mut out = Vec::new();
        self.fire_due(now, &mut out);
        self.settle(now);
        out
    }

    /// When [`Fsm::on_timer`] must be called next; `None`: no timer runs.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.conns
            .iter()
            .filter_map(Conn::deadline)
            .chain(self.retry_at)
            .min()
    }

    /// The session's state: that of its furthest connection, else Active or Idle.
    pub fn state(&self) -> State {
        match self.conns.iter().map(|c| c.stage).max() {
            Some(stage) => stage.state(),
            None if self.started => State::Active,
            None => State::Idle,
        }
    }

    /// The connection carrying the Established session and what was agreed on it.
    pub fn established(&self) -> Option<(ConnId, Negotiated)> {
        self.conns
            .iter()
            .filter(|c| c.stage == Stage::Established)
            .find_map(|c| c.negotiated.map(|n| (c.id, n)))
    }

    /// The connections the machine currently knows, with their state.
    pub fn connections(&self) -> impl Iterator<Item = (ConnId, State)> + '_ {
        self.conns.iter().map(|c| (c.id, c.stage.state()))
    }

    /// Why the last connection failed (operator stops, lost collisions and refused extra
    /// connections are not errors), for status reporting.
    pub fn last_error(&self) -> Option<&DownReason> {
        self.last_error.as_ref()
    }

    /// Consecutive failures since the session was last Established.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The configuration.
    pub fn config(&self) -> &FsmConfig {
        &self.cfg
    }
}
