//! What goes wrong decoding or encoding, and what RFC 4271 §6 / RFC 7606 say to do about it.

use thiserror::Error;

use super::notification::Notification;
use super::update::Update;

/// A received message that cannot be taken as it is, with the remedy the RFCs prescribe.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Fatal for the session: send `notification`, then close (RFC 4271 §6).
    #[error("{detail}: closing the session with NOTIFICATION {notification}")]
    SessionReset {
        /// What was wrong, for the log.
        detail: String,
        /// The NOTIFICATION to send before closing.
        notification: Notification,
    },
    /// RFC 7606 "treat-as-withdraw": the UPDATE's attributes are malformed, but its routes
    /// could be parsed; they must be handled as withdrawn and the session stays up.
    #[error("{detail}: routes of the UPDATE treated as withdrawn (RFC 7606)")]
    TreatAsWithdraw {
        /// What was wrong, for the log.
        detail: String,
        /// Every route the UPDATE carried (announced or withdrawn), as withdrawals only:
        /// IPv4 in `withdrawn`, IPv6 in `mp_unreach`.
        withdraw: Box<Update>,
    },
}

impl DecodeError {
    pub(crate) fn reset(detail: impl Into<String>, notification: Notification) -> Self {
        Self::SessionReset {
            detail: detail.into(),
            notification,
        }
    }

    /// The NOTIFICATION to send, when the error is fatal for the session.
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            Self::SessionReset { notification, .. } => Some(notification),
            Self::TreatAsWithdraw { .. } => None,
        }
    }
}

/// A message that cannot be put on the wire as asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    /// The message would exceed the negotiated maximum size.
    #[error("{what} would be {len} octets, over the limit of {max}")]
    TooLong {
        /// Which message or field.
        what: &'static str,
        /// Its encoded length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A field holds a value the wire format cannot carry.
    #[error("{0}")]
    Invalid(&'static str),
}
