//! The daemon's face to the host: logging, Prometheus metrics, the systemd notify protocol and
//! the D-Bus interface.
//! `host` reports the daemon's state; it never decides anything.

pub mod dbus;
pub mod logging;
pub mod metrics;
pub mod notify;
