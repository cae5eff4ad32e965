//! The daemon's face to the host: logging, Prometheus metrics and the systemd notify protocol (later D-Bus).
//! `host` reports the daemon's state; it never decides anything.

pub mod logging;
pub mod metrics;
pub mod notify;
