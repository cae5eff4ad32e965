//! The daemon's face to the host: logging and the systemd notify protocol (later D-Bus and
//! metrics). `host` reports the daemon's state; it never decides anything.

pub mod logging;
pub mod notify;
