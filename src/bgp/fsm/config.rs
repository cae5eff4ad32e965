//! What the state machine needs to know about the session: who we are, who the peer must be,
//! the timers we want.

use std::net::Ipv4Addr;
use std::time::Duration;

/// Default hold time we propose, in seconds (RFC 4271 §10 suggests 90).
pub const DEFAULT_HOLD_TIME: u16 = 90;
/// Default base of the connect-retry backoff (the config's `connect_time` default).
pub const DEFAULT_CONNECT_RETRY: Duration = Duration::from_secs(10);
/// Default cap of the connect-retry backoff (RFC 4271 §10's ConnectRetryTime).
pub const DEFAULT_CONNECT_RETRY_MAX: Duration = Duration::from_secs(120);

/// Configuration of one peer's state machine. Build with [`FsmConfig::new`] and adjust the
/// public fields; [`Fsm::new`](super::Fsm::new) checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsmConfig {
    /// Our AS number (4 octets; the codec sends AS_TRANS in the 2-octet field when needed).
    pub local_asn: u32,
    /// Our BGP identifier. Must not be 0.0.0.0.
    pub router_id: Ipv4Addr,
    /// The AS the peer must announce in its OPEN.
    pub peer_asn: u32,
    /// Hold time we propose, in seconds: 0 (no hold timer, no keepalives) or at least 3.
    pub hold_time: u16,
    /// Keepalive interval we want; `None`: a third of the hold time. Never longer than a
    /// third of the negotiated hold time. At least one second when set.
    pub keepalive_time: Option<Duration>,
    /// Base of the connect-retry backoff, and how long one outbound connect attempt may take.
    pub connect_retry: Duration,
    /// Cap of the connect-retry backoff.
    pub connect_retry_max: Duration,
    /// Never connect out; wait for the peer to connect.
    pub passive: bool,
    /// Seed of the jitter applied to connect-retry delays (RFC 4271 §10), so a fleet of nodes
    /// does not reconnect in lockstep. Any value; pass a random one in production, a fixed
    /// one in tests.
    pub jitter_seed: u64,
}

impl FsmConfig {
    /// A configuration with the defaults: hold time 90 s, keepalive a third of it, connect
    /// retry from 10 s up to 120 s, active.
    pub fn new(local_asn: u32, router_id: Ipv4Addr, peer_asn: u32) -> FsmConfig {
        FsmConfig {
            local_asn,
            router_id,
            peer_asn,
            hold_time: DEFAULT_HOLD_TIME,
            keepalive_time: None,
            connect_retry: DEFAULT_CONNECT_RETRY,
            connect_retry_max: DEFAULT_CONNECT_RETRY_MAX,
            passive: false,
            jitter_seed: 0,
        }
    }

    /// Whether the session is internal BGP (same AS on both sides).
    pub fn is_ibgp(&self) -> bool {
        self.local_asn == self.peer_asn
    }

    /// Checks the values the state machine relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.router_id.is_unspecified() {
            return Err(ConfigError::RouterIdZero);
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if let Some(k) = self.keepalive_time {
            if k < Duration::from_secs(1) {
                return Err(ConfigError::KeepaliveTooShort(k));
            }
        }
        if self.connect_retry < Duration::from_millis(1) {
            return Err(ConfigError::ConnectRetryTooShort(self.connect_retry));
        }
        Ok(())
    }
}

/// Why [`FsmConfig::validate`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The router id is 0.0.0.0.
    #[error("router id 0.0.0.0 is not a valid BGP identifier (RFC 6286)")]
    RouterIdZero,
    /// A hold time of 1 or 2 seconds.
    #[error("hold time {0}s is not allowed: use 0 or at least 3 seconds (RFC 4271 §4.2)")]
    HoldTime(u16),
    /// A keepalive interval under one second.
    #[error("keepalive interval {0:?} is shorter than one second")]
    KeepaliveTooShort(Duration),
    /// A connect-retry base under one millisecond.
    #[error("connect retry {0:?} is shorter than one millisecond")]
    ConnectRetryTooShort(Duration),
}
