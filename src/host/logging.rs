//! Logging setup: `tracing` to stderr, readable text or one JSON object per line.

use std::io::IsTerminal;

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
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match (format, under_systemd) {
        (Format::Json, _) => builder.json().flatten_event(true).try_init(),
        (Format::Text, true) => builder.without_time().with_ansi(false).try_init(),
        (Format::Text, false) => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
    result.map_err(|_| LoggingError::AlreadySet)
}
