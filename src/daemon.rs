//! Wiring: starts the daemon's tasks.
