//! Errors of the D-Bus service and client.

use super::{BusTarget, BUS_NAME};

/// What went wrong talking to the bus; messages are written for an operator.
#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    /// The bus could not be reached or refused us.
    #[error("cannot connect to {bus}: {source}")]
    Connect {
        /// Which bus.
        bus: BusTarget,
        /// Why (boxed: zbus errors are large and this travels in every `Result`).
        source: Box<zbus::Error>,
    },
    /// Another process owns the daemon's name (a second daemon on this host?).
    #[error("{BUS_NAME} is already owned on {bus} (is another ferrolb running?)")]
    NameTaken {
        /// Which bus.
        bus: BusTarget,
    },
    /// Nobody owns the daemon's name.
    #[error("ferrolb is not running (no {BUS_NAME} on {bus})")]
    NotRunning {
        /// Which bus.
        bus: BusTarget,
    },
    /// The bus policy refused the call (only root and group `ferrolb` may call methods).
    #[error("permission denied calling {member} on {BUS_NAME}: run as root or as a member of group ferrolb ({message})")]
    AccessDenied {
        /// The method or property.
        member: String,
        /// The bus's explanation.
        message: String,
    },
    /// The daemon answered the method with an error.
    #[error("{member} failed: {message}")]
    Refused {
        /// The method.
        member: String,
        /// The daemon's explanation.
        message: String,
    },
    /// Anything else on the bus while doing `member`.
    #[error("{member} on {bus}: {source}")]
    Bus {
        /// What we were doing (a method, a property, "serve").
        member: String,
        /// Which bus.
        bus: BusTarget,
        /// Why (boxed: zbus errors are large and this travels in every `Result`).
        source: Box<zbus::Error>,
    },
}
