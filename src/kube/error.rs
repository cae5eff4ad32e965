//! Errors of the Kubernetes client, each with the context an operator needs.

use std::path::PathBuf;
use std::time::Duration;

/// A kubeconfig that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    /// The file cannot be read.
    #[error("cannot read kubeconfig {path}: {source}")]
    Read {
        /// The kubeconfig.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not a usable kubeconfig.
    #[error("kubeconfig {path}: {reason}")]
    Invalid {
        /// The kubeconfig.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// The `Status` object the API server returns with an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
pub struct ApiStatus {
    /// HTTP code.
    #[serde(default)]
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `Conflict`, `Expired`, …).
    #[serde(default)]
    pub reason: String,
    /// Human-readable message.
    #[serde(default)]
    pub message: String,
}

/// A failed API request.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// A file the connection needs cannot be read.
    #[error("cannot read {what} {path}: {source}")]
    ReadFile {
        /// What the file is.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// TLS set-up failed (bad CA bundle or client certificate).
    #[error("TLS set-up: {0}")]
    Tls(String),
    /// The request did not complete (connection refused, reset, timed out).
    #[error("{method} {url}: {source}")]
    Transport {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// What failed.
        source: reqwest::Error,
    },
    /// The server answered with an error status.
    #[error("{method} {url}: {code} {reason}: {message}", code = status.code, reason = status.reason, message = status.message)]
    Api {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// The decoded `Status`.
        status: ApiStatus,
        /// `Retry-After`, when the server sent one (429, 503).
        retry_after: Option<Duration>,
    },
    /// The body does not decode as the expected type.
    #[error("{method} {url}: cannot decode the response: {reason}")]
    Decode {
        /// HTTP method.
        method: &'static str,
        /// Full URL.
        url: String,
        /// The decoder's complaint.
        reason: String,
    },
}

impl KubeError {
    /// The HTTP code of an API error.
    pub fn code(&self) -> Option<u16> {
        match self {
            KubeError::Api { status, .. } => Some(status.code),
            _ => None,
        }
    }

    /// 409: a write lost a race (stale `resourceVersion`) or the name exists.
    pub fn is_conflict(&self) -> bool {
        self.code() == Some(409)
    }

    /// 404.
    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// 410: the requested `resourceVersion` is too old; relist.
    pub fn is_gone(&self) -> bool {
        self.code() == Some(410)
    }

    /// How long the server asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            KubeError::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
