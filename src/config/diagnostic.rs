//! Findings about a configuration, each with where it is: file, line and column (or the
//! environment variable), the key path, what is wrong and what would be accepted.

use std::fmt;
use std::path::PathBuf;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The configuration is refused.
    Error,
    /// The configuration is accepted; the operator should look (some warnings still stop
    /// `ferrolb run`: see [`Diagnostic::blocks_start`]).
    Warning,
}

/// Where a finding is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Location {
    /// In a file; line and column are 1-based and known whenever the parser or a span gives
    /// them.
    File {
        /// The file as it was named.
        path: PathBuf,
        /// 1-based line.
        line: Option<usize>,
        /// 1-based column, in characters.
        column: Option<usize>,
    },
    /// In an environment variable.
    Env {
        /// Its name, e.g. `FERROLB_LOG__LEVEL`.
        var: String,
    },
    /// Nowhere in particular (e.g. a built-in default).
    Unknown,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { path, line, column } => {
                write!(f, "{}", path.display())?;
                if let Some(line) = line {
                    write!(f, ":{line}")?;
                    if let Some(column) = column {
                        write!(f, ":{column}")?;
                    }
                }
                Ok(())
            }
            Location::Env { var } => write!(f, "environment {var}"),
            Location::Unknown => f.write_str("(default)"),
        }
    }
}

/// One finding, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// Where.
    pub location: Location,
    /// The key path, like `pool[1].addresses[0]` or `bgp.peer[0].hold_time`; empty when the
    /// finding is about a whole file.
    pub key: String,
    /// What is wrong and what would be accepted.
    pub message: String,
    /// Set for findings that `ferrolb run` refuses to start with although `check-config` passes.
    pub blocks_start: bool,
}

impl Diagnostic {
    /// An error.
    pub fn error(location: Location, key: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            location,
            key: key.into(),
            message: message.into(),
            blocks_start: false,
        }
    }

    /// A warning.
    pub fn warning(location: Location, key: impl Into<String>, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            location,
            key: key.into(),
            message: message.into(),
            blocks_start: false,
        }
    }

    /// The same finding, marked as one `ferrolb run` refuses to start with.
    pub fn blocking(mut self) -> Self {
        self.blocks_start = true;
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    /// One line, like a compiler:
    /// `/etc/ferrolb/ferrolb.toml:12:13: pool[1].addresses[0]: … ends before it starts; …`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if self.location != Location::Unknown {
            write!(f, "{}: ", self.location)?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)?;
        if self.blocks_start {
            f.write_str(" (ferrolb run refuses to start until this is fixed)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_a_compiler() {
        let d = Diagnostic::error(
            Location::File {
                path: "/etc/ferrolb/ferrolb.toml".into(),
                line: Some(12),
                column: Some(13),
            },
            "pool[1].addresses[0]",
            "\"10.0.0.9-10.0.0.1\" ends before it starts",
        );
        assert_eq!(
            d.to_string(),
            "/etc/ferrolb/ferrolb.toml:12:13: pool[1].addresses[0]: \"10.0.0.9-10.0.0.1\" ends before it starts"
        );
        let d = Diagnostic::error(
            Location::Env {
                var: "FERROLB_LOG__LEVEL".into(),
            },
            "log.level",
            "bad",
        );
        assert_eq!(
            d.to_string(),
            "environment FERROLB_LOG__LEVEL: log.level: bad"
        );
        let d = Diagnostic::warning(
            Location::File {
                path: "a.toml".into(),
                line: None,
                column: None,
            },
            "",
            "no pool",
        );
        assert_eq!(d.to_string(), "warning: a.toml: no pool");
        let d = Diagnostic::warning(Location::Unknown, "cluster.secret_file", "missing").blocking();
        assert!(d
            .to_string()
            .starts_with("warning: cluster.secret_file: missing ("));
        assert!(!d.is_error());
    }
}
