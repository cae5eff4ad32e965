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
