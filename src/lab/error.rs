//! What can go wrong building, driving or tearing down the lab.

use std::io;
use std::path::PathBuf;

/// A lab command failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The lab changes network namespaces: only root may.
    #[error("`ferrolb lab {0}` must run as root (try sudo)")]
    NotRoot(&'static str),
    /// A program the lab needs is not installed.
    #[error("{program} is not installed (apt-get install {package})")]
    Missing {
        /// The program.
        program: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// `lab up` while a lab runs.
    #[error("a lab is already running ({0}); run `ferrolb lab down` first")]
    AlreadyRunning(String),
    /// A command that needs a lab, without one.
    #[error("no lab is running (start one with `sudo ferrolb lab up`)")]
    NotRunning,
    /// `fail`/`heal` of a node the lab does not have.
    #[error("the lab has no node {name:?} (it has {known})")]
    UnknownNode {
        /// The name given.
        name: String,
        /// The lab's nodes, comma-separated.
        known: String,
    },
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status and stderr, or why it could not start.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The state file is not what `lab up` writes.
    #[error("the lab state {} is unreadable: {detail}", path.display())]
    BadState {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// `lab up` failed; what it had made was removed.
    #[error("{error}\n(everything `lab up` had made was removed; the logs are kept in {})", logs.display())]
    Undone {
        /// What went wrong.
        error: Box<LabError>,
        /// Where the logs were copied.
        logs: PathBuf,
    },
    /// Something the lab started did not come up in time.
    #[error("{what} did not come up within {seconds} s{}", log.as_ref().map(|l| format!(" (see {})", l.display())).unwrap_or_default())]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        seconds: u64,
        /// Where its log is.
        log: Option<PathBuf>,
    },
}

impl LabError {
    /// A `File` error for `path`.
    pub fn file(path: &std::path::Path) -> impl FnOnce(io::Error) -> LabError + '_ {
        move |source| LabError::File {
            path: path.to_path_buf(),
            source,
        }
    }
}
