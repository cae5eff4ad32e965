//! The `ferrolb` command line. Minimal stand-in with `check-config` only, so the configuration
//! tests can drive the real binary; the full CLI (`run`, …) replaces it with the same
//! behaviour and flags.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ferrolb::config::{self, LoadOptions};

/// LoadBalancer Services for bare-metal Kubernetes.
#[derive(Debug, Parser)]
#[command(name = "ferrolb", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Load and validate the configuration (main file, conf.d, FERROLB_* variables), print a
    /// summary and exit 0, or print every error and exit 1.
    CheckConfig {
        /// The main configuration file [default: $FERROLB_CONFIG, else /etc/ferrolb/ferrolb.toml].
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::CheckConfig { config } => check_config(config),
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    let opts = LoadOptions {
        path,
        // `std::env::vars()` panics on a variable that is not UTF-8; such a variable cannot be
        // one of ours anyway.
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    match config::load(&opts) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                eprintln!("{warning}");
            }
            print!("{}", loaded.config.summary());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}
