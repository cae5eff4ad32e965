//! Logging setup: `tracing` to the systemd journal with structured fields when systemd
//! connected our stderr to it (`JOURNAL_STREAM`), otherwise to stderr as readable text; or
//! one JSON object per line on stderr when `log.format = "json"`.
//!
//! In the journal every field of an event is its own journal field, upper-cased without a
//! prefix: `journalctl -u ferrolb SERVICE=default/web` or `PEER=tor1` finds the lines about
//! one Service or peer, and `-o verbose` shows them all.

use std::io::IsTerminal;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Readable text; under systemd the journal adds its own timestamps, so we omit ours.
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The level or filter directive does not parse.
    #[error("log level {level:?} is not a valid filter: {source}")]
    BadLevel {
        /// The level as configured.
        level: String,
        /// The parser's complaint.
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already installed (only in tests).
    #[error("logging was already initialised")]
    AlreadySet,
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over the configured level so an
/// operator can turn on debugging for one run without editing the file.
pub fn init(level: &str, format: Format) -> Result<(), LoggingError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directive) if !directive.is_empty() => EnvFilter::try_new(&directive),
        _ => EnvFilter::try_new(level),
    }
    .map_err(|source| LoggingError::BadLevel {
        level: level.to_string(),
        source,
    })?;
    let journal = std::env::var("JOURNAL_STREAM")
        .ok()
        .filter(|stream| stderr_is(stream));
    if let (Format::Text, Some(_)) = (format, &journal) {
        match tracing_journald::layer() {
            Ok(layer) => {
                return tracing_subscriber::registry()
                    .with(filter)
                    .with(layer.with_field_prefix(None))
                    .try_init()
                    .map_err(|_| LoggingError::AlreadySet);
            }
            // No journal socket (a container without journald): the stream still reaches
            // whoever reads our stderr.
            Err(error) => {
                eprintln!("ferrolb: cannot open the journal socket ({error}); logging to stderr")
            }
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match (format, journal.is_some()) {
        (Format::Json, _) => builder.json().flatten_event(true).try_init(),
        (Format::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (Format::Text, false) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadySet)
}

/// Whether `JOURNAL_STREAM` ("device:inode") names our stderr: systemd sets it for the
/// service's own stream, and a child that inherited the variable but not the stream (a
/// shell started from the service, a redirect) must not log to the journal natively
/// (systemd.exec(5)).
fn stderr_is(journal_stream: &str) -> bool {
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    let stderr = std::io::stderr();
    let Ok(fd) = stderr.as_fd().try_clone_to_owned() else {
        return false;
    };
    std::fs::File::from(fd)
        .metadata()
        .is_ok_and(|m| m.dev() == dev && m.ino() == ino)
}
