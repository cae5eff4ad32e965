//! `ferrolb status`, `ferrolb drain`, `undrain`, `restart`, `reload`: the D-Bus client
//! commands. Each prints one clear sentence and exits non-zero when the daemon is not there.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::Client;
use super::{render, BusTarget, DaemonStatus, DbusError};

/// Where to find the daemon.
#[derive(Debug, Clone, Args)]
pub struct BusArgs {
    /// The D-Bus address to use instead of the system bus (e.g. unix:path=/run/test/bus).
    #[arg(long, value_name = "ADDRESS", global = true)]
    pub bus: Option<String>,
}

/// `ferrolb status [services|members|bgp] [--json]`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Which table; without one, a summary.
    #[command(subcommand)]
    pub table: Option<StatusTable>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bus: BusArgs,
}

/// The tables `ferrolb status` can print.
#[derive(Debug, Clone, Copy, Subcommand)]
pub enum StatusTable {
    /// The LoadBalancer Services: address, pool, mode, where announced, or why not.
    Services,
    /// The gossip members and their state.
    Members,
    /// The BGP sessions: state, uptime, prefixes sent, last error.
    Bgp,
}

/// `ferrolb drain [--grace 30s]`.
#[derive(Debug, Clone, Args)]
pub struct DrainArgs {
    /// How long to keep answering after handing the addresses away (whole seconds).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_grace)]
    pub grace: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub bus: BusArgs,
}

/// A method without arguments: `reload`, `undrain`, `restart`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `ferrolb reload`.
    Reload,
    /// `ferrolb undrain`.
    Undrain,
    /// `ferrolb restart`.
    Restart,
}

/// Runs `ferrolb status …`.
pub fn status(args: StatusArgs) -> ExitCode {
    let target = BusTarget::from_option(args.bus.bus);
    run(async move {
        let client = Client::connect(target).await?;
        let status = client.status().await?;
        Ok(if args.json {
            json(&status, args.table)
        } else {
            text(&status, args.table)
        })
    })
}

/// Runs `ferrolb drain`.
pub fn drain(args: DrainArgs) -> ExitCode {
    let target = BusTarget::from_option(args.bus.bus);
    run(async move {
        Client::connect(target).await?.drain(args.grace).await?;
        Ok(format!(
            "draining: addresses handed away, answering for {}s more\n",
            args.grace
        ))
    })
}

/// Runs `ferrolb reload`, `undrain` or `restart`.
pub fn control(control: Control, bus: BusArgs) -> ExitCode {
    let target = BusTarget::from_option(bus.bus);
    run(async move {
        let client = Client::connect(target).await?;
        Ok(match control {
            Control::Reload => client.reload().await.map(|()| "configuration reloaded\n")?,
            Control::Undrain => client.undrain().await.map(|()| "undrained\n")?,
            Control::Restart => client.restart().await.map(|()| "restarting\n")?,
        }
        .to_owned())
    })
}

fn text(status: &DaemonStatus, table: Option<StatusTable>) -> String {
    match table {
        None => render::summary(status),
        Some(StatusTable::Services) => render::services(&status.services),
        Some(StatusTable::Members) => render::members(&status.members),
        Some(StatusTable::Bgp) => render::bgp_sessions(&status.bgp_sessions),
    }
}

fn json(status: &DaemonStatus, table: Option<StatusTable>) -> String {
    let value = match table {
        None => serde_json::to_value(status),
        Some(StatusTable::Services) => serde_json::to_value(&status.services),
        Some(StatusTable::Members) => serde_json::to_value(&status.members),
        Some(StatusTable::Bgp) => serde_json::to_value(&status.bgp_sessions),
    };
    // Plain strings and numbers always serialize; the fallback only keeps this total.
    let mut out = value
        .and_then(|v| serde_json::to_string_pretty(&v))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    out.push('\n');
    out
}

/// Runs one client command on a small runtime; prints its output, or the error as one line.
fn run(command: impl std::future::Future<Output = Result<String, DbusError>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ferrolb: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(output) => {
            print!("{output}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// `--grace`: a humantime duration ("30s", "2m") of whole seconds that fits the method's u32.
fn parse_grace(text: &str) -> Result<u32, String> {
    let duration = humantime::parse_duration(text).map_err(|e| format!("{text:?}: {e}"))?;
    if duration.subsec_nanos() != 0 {
        return Err(format!("{text:?}: give whole seconds"));
    }
    u32::try_from(duration.as_secs()).map_err(|_| format!("{text:?}: too long"))
}

#[cfg(test)]
mod tests {
    use super::parse_grace;

    #[test]
    fn grace_takes_whole_seconds_in_human_units() {
        assert_eq!(parse_grace("30s"), Ok(30));
        assert_eq!(parse_grace("2m"), Ok(120));
        assert_eq!(parse_grace("0s"), Ok(0));
        assert!(parse_grace("1500ms").is_err());
        assert!(parse_grace("thirty").is_err());
        assert!(parse_grace("200years").is_err());
    }
}
