//! What an operator sees of one peer: [`PeerStatus`], published through a watch channel on
//! every change.

use std::net::IpAddr;
use std::time::SystemTime;

use crate::bgp::codec::ErrorCode;
use crate::bgp::fsm::{DownReason, Notification, State, StopKind};

/// The state of one peer's session, cloned out through a watch channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerStatus {
    /// The peer's name.
    pub name: String,
    /// The peer's address.
    pub peer: IpAddr,
    /// The session's RFC 4271 state.
    pub state: State,
    /// When the session last became Established (`None` while it is not).
    pub established_at: Option<SystemTime>,
    /// Prefixes the peer holds from us.
    pub prefixes_sent: usize,
    /// UPDATE messages sent (End-of-RIB markers included).
    pub updates_sent: u64,
    /// UPDATE messages received.
    pub updates_received: u64,
    /// The last failure, one sentence ("hold timer expired", "peer sent NOTIFICATION 6/2
    /// (cease (AdministrativeShutdown))", …).
    pub last_error: Option<String>,
    /// IPv4 and IPv6 unicast negotiated on the Established session.
    pub families: (bool, bool),
}

impl PeerStatus {
    /// The status of a session that has not started.
    pub fn new(name: &str, peer: IpAddr) -> PeerStatus {
        PeerStatus {
            name: name.to_string(),
            peer,
            state: State::Idle,
            established_at: None,
            prefixes_sent: 0,
            updates_sent: 0,
            updates_received: 0,
            last_error: None,
            families: (false, false),
        }
    }
}

fn notification(n: &Notification) -> String {
    format!(
        "{}/{} ({})",
        n.code,
        n.subcode,
        ErrorCode::from_wire(n.code, n.subcode)
    )
}

/// One sentence for why a connection went down.
pub fn describe(reason: &DownReason) -> String {
    match reason {
        DownReason::Stopped(kind) => match kind {
            StopKind::Shutdown => "stopped by the operator".into(),
            StopKind::Reset => "reset by the operator".into(),
            StopKind::Deconfigured => "peer removed from the configuration".into(),
            StopKind::ConfigChanged => "peer configuration changed".into(),
        },
        DownReason::ConnectFailed => "connection to the peer failed".into(),
        DownReason::ConnectTimeout => "connection to the peer timed out".into(),
        DownReason::ConnectionClosed => "connection closed".into(),
        DownReason::HoldTimerExpired => "hold timer expired: the peer was silent".into(),
        DownReason::NotificationReceived(n) => {
            format!("peer sent NOTIFICATION {}", notification(n))
        }
        DownReason::NotificationSent(n) => format!("we sent NOTIFICATION {}", notification(n)),
        DownReason::Collision => "connection collision lost".into(),
        DownReason::Rejected => "connection rejected".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bgp::fsm::cease;

    #[test]
    fn reasons_read_as_sentences() {
        assert!(describe(&DownReason::HoldTimerExpired).starts_with("hold timer expired"));
        let n = Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN);
        assert_eq!(
            describe(&DownReason::NotificationReceived(n)),
            "peer sent NOTIFICATION 6/2 (cease (AdministrativeShutdown))"
        );
        let n = Notification::new(3, 1);
        assert!(describe(&DownReason::NotificationSent(n))
            .starts_with("we sent NOTIFICATION 3/1 (UPDATE"));
    }
}
