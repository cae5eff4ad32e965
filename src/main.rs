//! The `ferrolb` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ferrolb::config::{self, LoadOptions};
use ferrolb::host::dbus::cli as dbus_cli;
use ferrolb::host::logging;

/// LoadBalancer Services for bare-metal Kubernetes: one host daemon per node answers ARP/NDP or
/// speaks BGP for the Service addresses it owns.
#[derive(Debug, Parser)]
#[command(name = "ferrolb", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon (what systemd starts).
    Run {
        /// The main configuration file [default: $FERROLB_CONFIG, else /etc/ferrolb/ferrolb.toml].
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration (main file, conf.d, FERROLB_* variables), print a
    /// summary and exit 0, or print every error and exit 1.
    CheckConfig {
        /// The main configuration file [default: $FERROLB_CONFIG, else /etc/ferrolb/ferrolb.toml].
        #[arg(long, short = 'c', value_name = "PATH")]
        config: Option<PathBuf>,
    },
    /// Write a kubeconfig for this node's daemon from the API server's URL, the CA certificate
    /// and a file holding the ServiceAccount token (see packaging/kubernetes/rbac.yaml).
    Kubeconfig {
        /// The API server, e.g. https://10.0.0.1:6443.
        #[arg(long, value_name = "URL")]
        server: String,
        /// The file holding the bearer token (read by the daemon at run time, re-read when it
        /// changes; not copied into the kubeconfig).
        #[arg(long, value_name = "PATH")]
        token_file: PathBuf,
        /// The cluster's CA certificate (PEM), embedded in the kubeconfig.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Where to write it (mode 0600) [default: standard output].
        #[arg(long, short = 'o', value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// Show what the running daemon is doing (over D-Bus): a summary, or one table.
    Status(ferrolb::host::dbus::cli::StatusArgs),
    /// Hand every address away to the other nodes, answering for a grace period.
    Drain(ferrolb::host::dbus::cli::DrainArgs),
    /// Take part in announcing again after `ferrolb drain`.
    Undrain(ferrolb::host::dbus::cli::BusArgs),
    /// Ask the running daemon to re-read its configuration (as `systemctl reload` does).
    Reload(ferrolb::host::dbus::cli::BusArgs),
    /// Ask the running daemon to exit for a graceful restart.
    Restart(ferrolb::host::dbus::cli::BusArgs),
    /// Convert MetalLB configuration (the v0.9-v0.12 ConfigMap or the metallb.io CRDs, in
    /// multi-document YAML) to ferrolb.toml on stdout; what could not be carried over, and what
    /// to do by hand, goes to stderr. Exit 1 when a file is unreadable, not YAML or holds no
    /// MetalLB configuration.
    ImportMetallb {
        /// The YAML files (`kubectl get -o yaml` output, manifests).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// The lab: what tests and demos run ferrolb against.
    #[cfg(feature = "lab")]
    #[command(subcommand)]
    Lab(LabCommand),
}

/// `ferrolb lab …`.
#[cfg(feature = "lab")]
#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Run the in-memory Kubernetes API simulator (HTTP/HTTPS; kubectl works against it).
    Apiserver(Box<ferrolb::lab::apiserver::ApiserverArgs>),
    /// A stand-in for kube-proxy and a pod on a lab node: answers every TCP connection on the
    /// listen addresses with NAME (an HTTP/1 request gets `200 OK` with body `NAME\n`).
    Responder(ferrolb::lab::responder::ResponderArgs),
    /// The story so far, non-interactively: the API simulator, three daemons, Services getting
    /// addresses, the allocator killed and replaced; a report with the measured figures.
    Demo,
    /// Build a cluster in network namespaces (ferrolb-*): a LAN, nodes running ferrolb, a
    /// client, a router (FRR when installed), the API simulator; apply an example (root).
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=9))]
        nodes: u8,
    },
    /// Remove everything `lab up` made (and nothing else).
    Down,
    /// Run kubectl against the lab's API (inside the lab).
    Kubectl {
        /// kubectl's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Pull a node's LAN cable (its bridge-side link goes down).
    Fail {
        /// The node (node1, node2, …).
        node: String,
    },
    /// Plug a node's LAN cable back in.
    Heal {
        /// The node (node1, node2, …).
        node: String,
    },
    /// The lab's namespaces, processes, Services, addresses and who answers them.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => check_config(config),
        Command::ImportMetallb { files } => import_metallb(&files),
        Command::Run { config } => run(config),
        Command::Kubeconfig {
            server,
            token_file,
            ca_file,
            output,
        } => write_kubeconfig(&server, &token_file, ca_file.as_deref(), output.as_deref()),
        Command::Status(args) => dbus_cli::status(args),
        Command::Drain(args) => dbus_cli::drain(args),
        Command::Undrain(bus) => dbus_cli::control(dbus_cli::Control::Undrain, bus),
        Command::Reload(bus) => dbus_cli::control(dbus_cli::Control::Reload, bus),
        Command::Restart(bus) => dbus_cli::control(dbus_cli::Control::Restart, bus),
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Apiserver(args)) => ferrolb::lab::apiserver::run_cli(*args),
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Responder(args)) => ferrolb::lab::responder::run_cli(args),
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Demo) => lab_demo(),
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Up { nodes }) => lab_report(lab_up(nodes)),
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Down) => lab_report(ferrolb::lab::down::down()),
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Kubectl { args }) => match ferrolb::lab::kubectl::kubectl(&args) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(error) => lab_report(Err(error)),
        },
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Fail { node }) => {
            lab_report(ferrolb::lab::fault::cable(&node, false))
        }
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Heal { node }) => {
            lab_report(ferrolb::lab::fault::cable(&node, true))
        }
        #[cfg(feature = "lab")]
        Command::Lab(LabCommand::Status) => lab_report(ferrolb::lab::status::status()),
    }
}

/// The async runtime; two workers are plenty for a host daemon.
fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime),
        Err(error) => {
            eprintln!("ferrolb: cannot start the async runtime: {error}");
            None
        }
    }
}

#[cfg(feature = "lab")]
fn lab_up(nodes: u8) -> Result<String, ferrolb::lab::LabError> {
    let program = std::env::current_exe().map_err(|source| ferrolb::lab::LabError::File {
        path: "/proc/self/exe".into(),
        source,
    })?;
    ferrolb::lab::up::up(&ferrolb::lab::up::UpOptions {
        nodes: usize::from(nodes),
        program,
    })
}

/// Prints a lab command's message (stdout) or error (stderr, exit code 1).
#[cfg(feature = "lab")]
fn lab_report(result: Result<String, ferrolb::lab::LabError>) -> ExitCode {
    match result {
        Ok(message) => {
            println!("{}", message.trim_end());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("ferrolb lab: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(feature = "lab")]
fn lab_demo() -> ExitCode {
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(error) => {
            eprintln!("ferrolb lab demo: cannot find this program (/proc/self/exe): {error}");
            return ExitCode::FAILURE;
        }
    };
    match ferrolb::lab::demo::run(program) {
        Ok(report) => {
            print!("{}", report.text());
            if report.clean {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("ferrolb lab demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn write_kubeconfig(
    server: &str,
    token_file: &std::path::Path,
    ca_file: Option<&std::path::Path>,
    output: Option<&std::path::Path>,
) -> ExitCode {
    if let Err(e) = url::Url::parse(server) {
        eprintln!("ferrolb kubeconfig: --server {server:?} is not a URL: {e}");
        return ExitCode::FAILURE;
    }
    let ca = match ca_file.map(std::fs::read).transpose() {
        Ok(ca) => ca,
        Err(e) => {
            eprintln!(
                "ferrolb kubeconfig: cannot read the CA file {}: {e}",
                ca_file.map(|p| p.display().to_string()).unwrap_or_default()
            );
            return ExitCode::FAILURE;
        }
    };
    let token_file = match std::path::absolute(token_file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!(
                "ferrolb kubeconfig: token file {}: {e}",
                token_file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let text = ferrolb::kube::kubeconfig::render(server, ca.as_deref(), &token_file);
    match output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match write_private(path, &text) {
            Ok(()) => {
                eprintln!("wrote {}", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("ferrolb kubeconfig: cannot write {}: {e}", path.display());
                ExitCode::FAILURE
            }
        },
    }
}

/// Writes a credentials file readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

fn load_options(path: Option<PathBuf>) -> LoadOptions {
    LoadOptions {
        path,
        // `std::env::vars()` panics on a variable that is not UTF-8; such a variable cannot be
        // one of ours anyway.
        env: std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    }
}

fn import_metallb(files: &[PathBuf]) -> ExitCode {
    let mut inputs = Vec::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(text) => inputs.push((f.display().to_string(), text)),
            Err(e) => {
                eprintln!("ferrolb: cannot read {}: {e}", f.display());
                return ExitCode::FAILURE;
            }
        }
    }
    match ferrolb::import::metallb::convert(&inputs) {
        Ok(c) => {
            print!("{}", c.toml);
            for note in &c.notes {
                eprintln!("note: {note}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ferrolb: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match config::load(&load_options(path)) {
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

fn run(path: Option<PathBuf>) -> ExitCode {
    let opts = load_options(path);
    let loaded = match config::load(&opts) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("ferrolb: not started: the configuration has errors (see above)");
            return ExitCode::FAILURE;
        }
    };
    let (level, format) = log_settings(&loaded.config);
    if let Err(error) = logging::init(&level, format) {
        eprintln!("ferrolb: {error}");
        return ExitCode::FAILURE;
    }
    let Some(runtime) = runtime() else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(ferrolb::daemon::run(opts, loaded)) {
        Ok(ferrolb::daemon::Exit::Stopped) => ExitCode::SUCCESS,
        Ok(ferrolb::daemon::Exit::Restart) => ExitCode::from(ferrolb::daemon::Exit::RESTART_CODE),
        Err(error) => {
            tracing::error!(%error, "daemon stopped");
            eprintln!("ferrolb: {error}");
            ExitCode::FAILURE
        }
    }
}

fn log_settings(config: &config::Config) -> (String, logging::Format) {
    let format = match config.log.format {
        config::LogFormat::Text => logging::Format::Text,
        config::LogFormat::Json => logging::Format::Json,
    };
    (config.log.level.clone(), format)
}
