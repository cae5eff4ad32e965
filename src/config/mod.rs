//! Configuration: schema, loading and validation.
//!
//! Sources, later ones winning: built-in defaults < the main file (`--config PATH`, else
//! `FERROLB_CONFIG`, else [`DEFAULT_PATH`]) < `conf.d/*.toml` beside the main file, in name order
//! (arrays — pools, peers — are appended, other keys override) < `FERROLB_SECTION__KEY`
//! environment variables. Every error names its file, line and column (or its environment
//! variable) and its key path, says what is wrong and what would be accepted, and all of them
//! are reported at once.
//!
//! - [`schema`]: what a file may contain (serde, unknown keys refused);
//! - `spans`: where each key was written (figment forgets positions; `toml_edit` keeps them);
//! - `load`: reading, per-file checks, merging, environment, file checks;
//! - `validate`: the pure semantic rules, from the merged schema to a [`Config`];
//! - [`model`]: the validated [`Config`] the daemon reads;
//! - [`community`], [`values`]: parsers for single values;
//! - `diagnostic`: [`Diagnostic`]s and how they print; `summary`: [`Config::summary`].
#![deny(clippy::unwrap_used, clippy::expect_used)]

use std::fmt;
use std::path::PathBuf;

pub mod community;
mod diagnostic;
mod load;
pub mod model;
pub mod schema;
mod spans;
mod summary;
mod validate;
pub mod values;

pub use community::Community;
pub use diagnostic::{Diagnostic, Location, Severity};
pub use load::{CONFIG_VAR, ENV_PREFIX};
pub use model::{
    BgpAdvertisement, Cluster, Config, Failback, GossipTiming, Kubernetes, Log, LogFormat, Metrics,
    Mode, Node, Peer, Pool, PoolMode, L2,
};
pub use values::JoinAddress;

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

/// A loaded, valid configuration and its warnings.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// Warnings (exit 0 from `check-config`); those with [`Diagnostic::blocks_start`] stop
    /// `ferrolb run`.
    pub warnings: Vec<Diagnostic>,
    /// The files read, in order: the main file, then conf.d.
    pub sources: Vec<PathBuf>,
}

/// Every error found, at once, in file order. `Display` prints one per line.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigErrors(pub Vec<Diagnostic>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("invalid configuration");
        }
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// Loads, merges and validates: the main file, conf.d, the `FERROLB_*` variables of
/// `opts.env`. A missing main file is an error.
pub fn load(opts: &LoadOptions) -> Result<Loaded, ConfigErrors> {
    load::load(opts)
}

/// The same pipeline on one in-memory file (no conf.d, no environment): for fuzzing and tests.
/// `name` is used in messages (and its directory anchors relative paths).
pub fn load_str(name: &str, text: &str) -> Result<Loaded, ConfigErrors> {
    load::load_str(name, text)
}
