//! The daemon's face to the host: logging (later systemd, D-Bus, metrics).
