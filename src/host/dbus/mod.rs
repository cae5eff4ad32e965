//! The D-Bus interface `io.ferrolb.Daemon1` (object `/io/ferrolb/Daemon1`, service
//! `io.ferrolb.Daemon1` on the system bus): what `ferrolb status` and `busctl` read, and the
//! `Reload`/`Drain`/`Undrain`/`Restart` methods.
//!
//! The daemon stays decoupled from zbus: it publishes a [`DaemonStatus`] through a
//! `tokio::sync::watch` channel and receives [`Request`]s through an `mpsc` channel, answering
//! each on its oneshot. [`serve`] owns the bus side; [`client::Client`] is the CLI's side.

pub mod cli;
pub mod client;
mod error;
mod model;
pub mod render;
mod request;
mod service;

pub use error::DbusError;
pub use model::{BgpSessionRow, DaemonStatus, MemberRow, ServiceRow};
pub use request::{Action, Request};
pub use service::{serve, Handle, MethodError};

use std::fmt;

/// The well-known name the daemon owns.
pub const BUS_NAME: &str = "io.ferrolb.Daemon1";
/// The object the interface lives on.
pub const OBJECT_PATH: &str = "/io/ferrolb/Daemon1";
/// The interface name.
pub const INTERFACE: &str = "io.ferrolb.Daemon1";

/// Which bus to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusTarget {
    /// The system bus (what the packaged daemon and `ferrolb status` use).
    System,
    /// A bus at an explicit address, e.g. `unix:path=/run/test/bus` (tests run a private
    /// `dbus-daemon`).
    Address(String),
}

impl BusTarget {
    /// The system bus unless an address is given.
    pub fn from_option(address: Option<String>) -> Self {
        address.map_or(BusTarget::System, BusTarget::Address)
    }

    fn builder(&self) -> zbus::Result<zbus::connection::Builder<'static>> {
        match self {
            BusTarget::System => zbus::connection::Builder::system(),
            BusTarget::Address(address) => zbus::connection::Builder::address(address.as_str()),
        }
    }
}

impl fmt::Display for BusTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusTarget::System => f.write_str("the system bus"),
            BusTarget::Address(address) => write!(f, "the bus at {address}"),
        }
    }
}
