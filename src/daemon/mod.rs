//! Wiring: starts the daemon's tasks and runs its main loop.
//!
//! Every daemon reflects Services, EndpointSlices and Nodes from the API and competes for the
//! allocator Lease; the holder runs the [`allocator::Controller`] and writes Service status.
//! Every daemon is also a speaker: once synced it re-plans after each batch of changes and
//! announces what the plan gives this node.
//! One loop owns all state and receives everything as messages — reflector updates, the
//! Lease's verdict, re-reads from the writer, signals — so decisions never race each other.
//!
//! With `cluster.enabled`, gossip membership starts once the Nodes are known; liveness then
//! comes from it (and Node `Ready` not `False`), owners are sticky per `l2.failback`, and
//! nothing is announced until the membership has synced (or its sync timeout passed).
//!
//! Signals: SIGHUP re-reads the configuration (an invalid file is refused and the running one
//! kept; new pools are applied as a diff; `[cluster]` changes need a restart), SIGTERM/SIGINT
//! stop the daemon, releasing the Lease so another daemon takes over at once — with gossip,
//! after withdrawing from candidacy and waiting (at most [`HANDOVER_TIMEOUT`]) until other
//! members claim our addresses, answering meanwhile, then leaving the cluster. SIGUSR1
//! drains: withdraw, keep answering for `l2.drain_grace`, then stop answering (the daemon
//! stays up, a member, until SIGTERM). BGP routes are withdrawn at the start of a drain or a
//! stop, and sessions closed with a Cease; SIGUSR2 (and `ferrolb restart`) stops for a
//! restart instead: sessions are closed without withdrawing, so routers that support
//! graceful restart keep forwarding until the daemon is back.

mod bgp;
mod gossip;
mod main_loop;
mod report;
mod speaker;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::allocator::{self, Action};
use crate::config::{self, Config, LoadOptions, Loaded};
use crate::host::dbus::{self, DaemonStatus};
use crate::host::{metrics, notify};
use crate::ipam;
use crate::kube::events::EventRecorder;
use crate::kube::lease::{self, ElectionSettings, Elector};
use crate::kube::objects::{EndpointSliceInfo, NodeInfo, ServiceInfo};
use crate::kube::reflector::{self, Health, ReflectorSettings, Update};
use crate::kube::store::Store;
use crate::kube::{kubeconfig, Client, Connection};
use main_loop::{Flow, Inputs, MainLoop, Signals};
use report::{DaemonMetrics, LoopReport, Reporting};

/// Name of the allocator Lease.
pub const LEASE_NAME: &str = "ferrolb-allocator";
/// Where the kubeconfig is looked for when ferrolb.toml names neither a kubeconfig nor a server.
pub const DEFAULT_KUBECONFIG: &str = "/etc/ferrolb/kubeconfig";
/// How long a stopping daemon waits for the Lease release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping daemon keeps answering while waiting for others to claim its
/// addresses (gossip on).
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A finding that `check-config` only warns about, but the daemon will not run with.
    #[error("refusing to start: {0}")]
    Refused(String),
    /// The signal handlers could not be installed.
    #[error("cannot install the {signal} handler: {source}")]
    Signal {
        /// Which signal.
        signal: &'static str,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The node name could not be determined.
    #[error("cannot determine the node name (set node.name): {0}")]
    NodeName(std::io::Error),
    /// The API connection could not be set up.
    #[error("{0}")]
    Kubernetes(String),
    /// Gossip membership could not start.
    #[error("cannot start gossip membership: {0}")]
    Gossip(String),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] metrics::server::BindError),
    /// The ARP/NDP responders could not start.
    #[error("cannot start the ARP/NDP responders for the l2 pools: {0}")]
    L2(#[from] crate::l2::L2Error),
}

/// Re-plan at least once per this many messages, even while more are queued, so a steady
/// stream of changes cannot hold announcements back.
const REPLAN_EVERY: u32 = 256;

/// How the daemon ended (without error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT: a planned stop.
    Stopped,
    /// `ferrolb restart` (D-Bus `Restart`): stopped as planned, to be started again. The binary
    /// exits with [`Exit::RESTART_CODE`], which the unit's `RestartForceExitStatus=` names.
    Restart,
}

impl Exit {
    /// The exit status of a requested restart.
    pub const RESTART_CODE: u8 = 75;
}

/// Runs the daemon until SIGTERM or SIGINT (or a restart asked for over D-Bus).
pub async fn run(opts: LoadOptions, loaded: Loaded) -> Result<Exit, DaemonError> {
    refuse_blockers(&loaded)?;
    log_config(&loaded, "configuration loaded");
    let node = node_name(&loaded.config)?;
    let client = api_client(&loaded.config)?;
    tracing::info!(node = %node, server = %client.server(), "connecting to the Kubernetes API");
    let signals = install_signals()?;

    let health = Arc::new(Health::default());
    let (svc_tx, reflected) = spawn_reflectors(&client, &loaded.config, health.clone());
    let (leading, release_tx, election) = spawn_election(&client, &loaded.config, &node);
    let events = EventRecorder::spawn(client.clone(), "ferrolb-allocator".into(), node.clone());
    let speaker_events =
        EventRecorder::spawn(client.clone(), "ferrolb-speaker".into(), node.clone());
    let (speaker, l2) =
        speaker::Speaker::start(&node, &loaded.config, speaker_events.clone()).await?;
    let (action_tx, action_rx) = mpsc::unbounded_channel::<Action>();
    tokio::spawn(writer::run(
        client.clone(),
        events,
        leading.clone(),
        action_rx,
        svc_tx,
    ));

    let (status_tx, status_rx) = watch::channel(DaemonStatus::default());
    let (request_tx, requests) = mpsc::channel(16);
    let dbus = start_dbus(status_rx, request_tx).await;
    let mut inputs = Inputs {
        signals,
        services: reflected.services,
        nodes: reflected.nodes,
        slices: reflected.slices,
        l2,
        leading,
        requests,
    };
    let (report_tx, report) = watch::channel(LoopReport::default());
    let gossip_handles = Arc::new(OnceLock::new());
    if let Some(listen) = loaded.config.metrics.listen {
        let listener = metrics::server::bind(listen).await?;
        tracing::info!(%listen, "metrics endpoint listening (/metrics, /healthz, /readyz)");
        let source = Arc::new(DaemonMetrics {
            report,
            gossip: gossip_handles.clone(),
            health,
            client: client.clone(),
        });
        tokio::spawn(metrics::server::serve(listener, source));
    }
    let mut main = MainLoop::new(
        opts,
        loaded,
        node,
        speaker,
        action_tx,
        speaker_events,
        Reporting {
            report: report_tx,
            gossip: gossip_handles,
            status: status_tx,
        },
    );
    while main.step(&mut inputs).await? == Flow::Continue {}
    let restart = main.restart;
    main.shutdown(election, release_tx).await;
    if let Some(handle) = dbus {
        handle.close().await;
    }
    Ok(if restart {
        Exit::Restart
    } else {
        Exit::Stopped
    })
}

/// Offers `io.ferrolb.Daemon1` on the system bus (`$FERROLB_DBUS_ADDRESS` names another bus,
/// for tests). Without a bus the daemon runs on: D-Bus is for the operator, not the job.
async fn start_dbus(
    status: watch::Receiver<DaemonStatus>,
    requests: mpsc::Sender<dbus::Request>,
) -> Option<dbus::Handle> {
    let target = dbus::BusTarget::from_option(std::env::var("FERROLB_DBUS_ADDRESS").ok());
    match dbus::serve(target, status, requests).await {
        Ok(handle) => {
            tracing::info!(
                name = dbus::BUS_NAME,
                "D-Bus interface ready (ferrolb status)"
            );
            Some(handle)
        }
        Err(error) => {
            tracing::warn!(%error, "no D-Bus interface: ferrolb status will not reach this daemon");
            None
        }
    }
}

/// The receiving ends of the reflectors.
struct Reflected {
    services: mpsc::Receiver<Update<ServiceInfo>>,
    nodes: mpsc::Receiver<Update<NodeInfo>>,
    slices: mpsc::Receiver<Update<EndpointSliceInfo>>,
}

/// Starts reflecting Services, Nodes and EndpointSlices; also returns the Services' sender,
/// through which the writer hands back re-read Services.
fn spawn_reflectors(
    client: &Client,
    config: &Config,
    health: Arc<Health>,
) -> (mpsc::Sender<Update<ServiceInfo>>, Reflected) {
    let k = &config.kubernetes;
    let settings = ReflectorSettings {
        watch: k.watch,
        poll_interval: k.poll_interval,
        resync_interval: k.resync_interval,
        health,
        ..ReflectorSettings::default()
    };
    let (svc_tx, services) = mpsc::channel::<Update<ServiceInfo>>(1024);
    let (node_tx, nodes) = mpsc::channel::<Update<NodeInfo>>(256);
    let (slice_tx, slices) = mpsc::channel::<Update<EndpointSliceInfo>>(1024);
    tokio::spawn(reflector::run(
        client.clone(),
        settings.clone(),
        svc_tx.clone(),
    ));
    tokio::spawn(reflector::run(client.clone(), settings.clone(), node_tx));
    tokio::spawn(reflector::run(client.clone(), settings, slice_tx));
    let reflected = Reflected {
        services,
        nodes,
        slices,
    };
    (svc_tx, reflected)
}

/// Starts competing for the allocator Lease: whether this node leads, the sender that asks
/// the election to release the Lease, and its task.
fn spawn_election(
    client: &Client,
    config: &Config,
    node: &str,
) -> (watch::Receiver<bool>, watch::Sender<bool>, JoinHandle<()>) {
    let k = &config.kubernetes;
    let (leading_tx, leading_rx) = watch::channel(false);
    let (release_tx, release_rx) = watch::channel(false);
    let election = tokio::spawn(lease::run(
        client.clone(),
        ElectionSettings {
            namespace: k.lease_namespace.clone(),
            name: LEASE_NAME.to_string(),
            lease_duration: k.lease_duration,
            renew_deadline: k.renew_deadline,
            retry_period: k.retry_period,
        },
        Elector::new(node.to_string(), k.lease_duration),
        leading_tx,
        release_rx,
    ));
    (leading_rx, release_tx, election)
}

fn install_signals() -> Result<Signals, DaemonError> {
    Ok(Signals {
        term: install(SignalKind::terminate(), "SIGTERM")?,
        int: install(SignalKind::interrupt(), "SIGINT")?,
        hup: install(SignalKind::hangup(), "SIGHUP")?,
        usr1: install(SignalKind::user_defined1(), "SIGUSR1")?,
        usr2: install(SignalKind::user_defined2(), "SIGUSR2")?,
    })
}

/// What the daemon knows of the cluster.
#[derive(Default)]
struct State {
    services: Store<ServiceInfo>,
    nodes: Store<NodeInfo>,
    slices: Store<EndpointSliceInfo>,
}

impl State {
    fn synced(&self) -> bool {
        self.services.synced() && self.nodes.synced() && self.slices.synced()
    }
}

fn status_line(
    state: &State,
    controller: Option<&allocator::Controller>,
    speaker: &speaker::Speaker,
) -> String {
    let role = match controller {
        Some(c) => format!(
            "allocator; {} services ({} allocated, {} pending); {} nodes",
            state.services.len(),
            c.allocated(),
            c.pending(),
            state.nodes.len()
        ),
        None => format!(
            "{} services; {} nodes",
            state.services.len(),
            state.nodes.len()
        ),
    };
    let mut line = format!("{role}; announcing {} l2 addresses", speaker.announced());
    if speaker.bgp().counts().1 > 0 {
        line.push_str(&format!(", {} over BGP", speaker.announced_bgp()));
    }
    line
}

/// The IPAM pools of a configuration.
pub fn ipam_pools(config: &Config) -> Vec<ipam::Pool> {
    config
        .ipam_pools()
        .into_iter()
        .map(|(name, ranges, avoid, auto)| {
            ipam::Pool::new(name, ranges)
                .with_avoid_buggy_ips(avoid)
                .with_auto_assign(auto)
        })
        .collect()
}

/// The API connection the configuration describes.
pub fn connection(config: &Config) -> Result<Connection, DaemonError> {
    let k = &config.kubernetes;
    if let Some(server) = &k.server {
        let url = url::Url::parse(server)
            .map_err(|e| DaemonError::Kubernetes(format!("kubernetes.server {server:?}: {e}")))?;
        return Ok(Connection::from_parts(
            url,
            k.token_file.clone(),
            k.ca_file.clone(),
            k.insecure_skip_tls_verify,
        ));
    }
    let path = k
        .kubeconfig
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_KUBECONFIG));
    let mut conn = kubeconfig::load(&path, None).map_err(|e| {
        DaemonError::Kubernetes(format!(
            "{e} (set kubernetes.kubeconfig, or kubernetes.server with token_file and ca_file)"
        ))
    })?;
    conn.insecure_skip_tls_verify |= k.insecure_skip_tls_verify;
    Ok(conn)
}

fn api_client(config: &Config) -> Result<Client, DaemonError> {
    let conn = connection(config)?;
    let k = &config.kubernetes;
    Client::new(&conn, f64::from(k.qps), k.burst)
        .map_err(|e| DaemonError::Kubernetes(format!("Kubernetes API {}: {e}", conn.server)))
}

fn node_name(config: &Config) -> Result<String, DaemonError> {
    if let Some(name) = &config.node.name {
        return Ok(name.clone());
    }
    let host = std::fs::read_to_string(Path::new("/proc/sys/kernel/hostname"))
        .map_err(DaemonError::NodeName)?;
    Ok(host.trim().to_string())
}

/// Re-reads the configuration; `None` on any error, which the caller answers by keeping the
/// running one (rule of the house: a bad reload changes nothing), as this says.
fn reload(opts: &LoadOptions) -> Option<Loaded> {
    let result = match config::load(opts) {
        Ok(new) => match refuse_blockers(&new) {
            Ok(()) => {
                log_config(&new, "configuration reloaded");
                notify::ready("configuration reloaded");
                return Some(new);
            }
            Err(error) => {
                tracing::error!(%error, "reload refused; keeping the running configuration");
                error.to_string()
            }
        },
        Err(errors) => {
            for diagnostic in &errors.0 {
                tracing::error!(%diagnostic, "reload refused");
            }
            format!("{} errors in the configuration", errors.0.len())
        }
    };
    notify::ready(&format!(
        "reload refused ({result}); running on the previous configuration"
    ));
    None
}

fn refuse_blockers(loaded: &Loaded) -> Result<(), DaemonError> {
    let blockers: Vec<String> = loaded
        .warnings
        .iter()
        .filter(|w| w.blocks_start)
        .map(ToString::to_string)
        .collect();
    if blockers.is_empty() {
        Ok(())
    } else {
        Err(DaemonError::Refused(blockers.join("; ")))
    }
}

fn log_config(loaded: &Loaded, what: &str) {
    let files: Vec<String> = loaded
        .sources
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    tracing::info!(files = %files.join(", "), "{what}");
    for warning in &loaded.warnings {
        tracing::warn!(%warning, "configuration warning");
    }
    for line in loaded.config.summary().lines() {
        tracing::info!("{line}");
    }
}

fn install(
    kind: SignalKind,
    name: &'static str,
) -> Result<tokio::signal::unix::Signal, DaemonError> {
    signal(kind).map_err(|source| DaemonError::Signal {
        signal: name,
        source,
    })
}
