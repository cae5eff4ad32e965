//! Configuration: schema, loading and validation.
//!
//! INTERFACE STUB — replaced by the real module. `main.rs` relies on exactly these names.

use std::fmt;
use std::path::PathBuf;

/// The default main file.
pub const DEFAULT_PATH: &str = "/etc/ferrolb/ferrolb.toml";

/// Where to load from.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--config PATH`; `None` → `FERROLB_CONFIG` from `env`, else [`DEFAULT_PATH`].
    pub path: Option<PathBuf>,
    /// The environment (`std::env::vars()` in the binary; explicit in tests).
    pub env: Vec<(String, String)>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {}

impl Config {
    /// A few lines for `check-config`: pools with sizes and modes, peers.
    pub fn summary(&self) -> String {
        String::new()
    }
}

/// One finding, with where it is.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Set for findings that `ferrolb run` refuses to start with although `check-config` passes.
    pub blocks_start: bool,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, _f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// A loaded, valid configuration and its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings (exit 0 from `check-config`).
    pub warnings: Vec<Diagnostic>,
    /// The files read, in order.
    pub sources: Vec<PathBuf>,
}

/// Every error found, at once.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid configuration")]
pub struct ConfigErrors(pub Vec<Diagnostic>);

/// Load, merge and validate.
pub fn load(_opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    Err(ConfigErrors(Vec::new()))
}

/// The same pipeline on one in-memory file (no conf.d, no environment): for fuzzing and tests.
pub fn load_str(_name: &str, _text: &str) -> Result<Loaded, ConfigErrors> {
    Err(ConfigErrors(Vec::new()))
}
