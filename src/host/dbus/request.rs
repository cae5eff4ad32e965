//! What a D-Bus method call asks of the daemon, and how the daemon answers.

use std::time::Duration;

use tokio::sync::oneshot;

/// An action an operator asked for through D-Bus (or `ferrolb drain`/`undrain`/`restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Re-read and validate the configuration; apply it as a diff (as SIGHUP does).
    Reload,
    /// Hand every address away, but keep answering for `grace` so traffic moves cleanly.
    Drain {
        /// How long to keep answering after handing the addresses away.
        grace: Duration,
    },
    /// Take part in announcing again after a drain.
    Undrain,
    /// Exit for a graceful restart (systemd's `Restart=` starts the daemon again).
    Restart,
}

/// One request to the daemon: the action, and where to answer. The D-Bus method returns once
/// the daemon answers; `Err(reason)` becomes the D-Bus error `io.ferrolb.Daemon1.Error.Refused`
/// carrying `reason`, written for an operator.
#[derive(Debug)]
pub struct Request {
    /// What was asked.
    pub action: Action,
    /// The daemon's answer. Dropping it unanswered makes the call fail with
    /// `io.ferrolb.Daemon1.Error.Unavailable`.
    pub reply: oneshot::Sender<Result<(), String>>,
}

impl Action {
    /// The D-Bus method's name, for logs and errors.
    pub fn method(&self) -> &'static str {
        match self {
            Action::Reload => "Reload",
            Action::Drain { .. } => "Drain",
            Action::Undrain => "Undrain",
            Action::Restart => "Restart",
        }
    }
}
