//! Wiring: starts the daemon's tasks and runs its main loop.
//!
//! Today the daemon loads and validates its configuration, reports what it will announce, and
//! serves signals: SIGHUP re-reads the configuration (an invalid file is refused and the old one
//! kept), SIGTERM/SIGINT stop it. The Kubernetes client, the allocator and the announcers plug
//! into this loop as they land.

use tokio::signal::unix::{signal, SignalKind};

use crate::config::{self, LoadOptions, Loaded};
use crate::host::notify;

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A finding that `check-config` only warns about, but the daemon will not run with.
    #[error("refusing to start: {0}")]
    Refused(String),
    /// The signal handlers could not be installed.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: LoadOptions, loaded: Loaded) -> Result<(), DaemonError> {
    refuse_blockers(&loaded)?;
    let mut current = loaded;
    log_config(&current, "configuration loaded");

    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = install(SignalKind::hangup(), "SIGHUP")?;

    notify::ready(&status_line(&current));
    tracing::info!("ready; waiting for SIGTERM (SIGHUP reloads the configuration)");

    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM received; stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received; stopping"); break; }
            _ = hup.recv() => {
                notify::reloading();
                current = reload(&opts, current);
                notify::ready(&status_line(&current));
            }
        }
    }
    notify::stopping();
    Ok(())
}

/// Re-reads the configuration; on any error keeps the running one (rule of the house: a bad
/// reload changes nothing) and says so.
fn reload(opts: &LoadOptions, current: Loaded) -> Loaded {
    match config::load(opts) {
        Ok(new) => match refuse_blockers(&new) {
            Ok(()) => {
                log_config(&new, "configuration reloaded");
                new
            }
            Err(error) => {
                tracing::error!(%error, "reload refused; keeping the running configuration");
                current
            }
        },
        Err(errors) => {
            for diagnostic in &errors.0 {
                tracing::error!(%diagnostic, "reload refused");
            }
            tracing::error!(
                errors = errors.0.len(),
                "configuration invalid; keeping the running configuration"
            );
            notify::status("reload refused: configuration invalid; running on the previous one");
            current
        }
    }
}

fn refuse_blockers(loaded: &Loaded) -> Result<(), DaemonError> {
    let blockers: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|w| w.blocks_start)
        .map(ToString::to_string)
        .collect();
    if blockers.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Refused(blockers.join("; ")))
    }
}

fn log_config(loaded: &Loaded, what: &str) {
    let files: Vec<String> = loaded
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(files = %files.join(", "), "{what}");
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "configuration warning");
    }
    for line in loaded.config.summary().lines() {
        tracing::info!("{line}");
    }
}

fn status_line(loaded: &Loaded) -> String {
    let first = loaded.config.summary();
    let first = first.lines().next().unwrap_or("configuration loaded");
    format!("running: {first}")
}

fn install(
    kind: SignalKind,
    name: &'static str,
) -> Result<tokio::signal::unix::Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Signal {
        signal: name,
        source,
    })
}
