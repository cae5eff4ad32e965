//! The systemd notify protocol (`Type=notify`): readiness, status lines, stopping. A no-op when
//! not started by systemd (`NOTIFY_SOCKET` unset).

use sd_notify::NotifyState;

/// Tells systemd the daemon is ready, with a status line.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Updates the one-line status `systemctl status` shows.
pub fn status(status: &str) {
    send(&[NotifyState::Status(status)]);
}

/// Tells systemd a reload has started.
pub fn reloading() {
    send(&[NotifyState::Reloading]);
}

/// How often to tell systemd the daemon is alive: half the unit's `WatchdogSec=` (systemd
/// passes it in `WATCHDOG_USEC`); `None` when no watchdog is set.
pub fn watchdog_interval() -> Option<std::time::Duration> {
    sd_notify::watchdog_enabled().map(|timeout| timeout / 2)
}

/// Tells systemd the daemon is alive (sent from the main loop, so a wedged loop stops it and
/// systemd restarts the daemon).
pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Tells systemd the daemon is shutting down.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(states: &[NotifyState<'_>]) {
    // Failing to notify must never stop the daemon; systemd's own timeout reports it.
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!(%error, "sd_notify failed");
    }
}
