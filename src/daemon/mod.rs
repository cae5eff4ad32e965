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
//! drains: withdraw, keep answering for [`DRAIN_GRACE`], then stop answering (the daemon
//! stays up, a member, until SIGTERM).

mod gossip;
mod speaker;
mod writer;

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};

use crate::allocator::{self, Action};
use crate::config::{self, Config, LoadOptions, Loaded};
use crate::host::notify;
use crate::ipam;
use crate::kube::events::EventRecorder;
use crate::kube::lease::{self, ElectionSettings, Elector};
use crate::kube::objects::{EndpointSliceInfo, NodeInfo, ServiceInfo};
use crate::kube::reflector::{self, ReflectorSettings, Update};
use crate::kube::store::Store;
use crate::kube::{kubeconfig, Client, Connection};

/// Name of the allocator Lease.
pub const LEASE_NAME: &str = "ferrolb-allocator";
/// Where the kubeconfig is looked for when ferrolb.toml names neither a kubeconfig nor a server.
pub const DEFAULT_KUBECONFIG: &str = "/etc/ferrolb/kubeconfig";
/// How long a stopping daemon waits for the Lease release.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a stopping daemon keeps answering while waiting for others to claim its
/// addresses (gossip on).
pub const HANDOVER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a draining daemon (SIGUSR1) keeps answering after leaving the cluster.
pub const DRAIN_GRACE: Duration = Duration::from_secs(30);

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
    /// The ARP/NDP responders could not start.
    #[error("cannot start the ARP/NDP responders for the l2 pools: {0}")]
    L2(#[from] crate::l2::L2Error),
}

/// Re-plan at least once per this many messages, even while more are queued, so a steady
/// stream of changes cannot hold announcements back.
const REPLAN_EVERY: u32 = 256;

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(opts: LoadOptions, loaded: Loaded) -> Result<(), DaemonError> {
    refuse_blockers(&loaded)?;
    let mut current = loaded;
    log_config(&current, "configuration loaded");
    let node = node_name(&current.config)?;
    let client = api_client(&current.config)?;
    tracing::info!(node = %node, server = %client.server(), "connecting to the Kubernetes API");

    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let mut hup = install(SignalKind::hangup(), "SIGHUP")?;
    let mut usr1 = install(SignalKind::user_defined1(), "SIGUSR1")?;

    let k = &current.config.kubernetes;
    let settings = ReflectorSettings {
        watch: k.watch,
        poll_interval: k.poll_interval,
        resync_interval: k.resync_interval,
        ..ReflectorSettings::default()
    };
    let (svc_tx, mut svc_rx) = mpsc::channel::<Update<ServiceInfo>>(1024);
    let (node_tx, mut node_rx) = mpsc::channel::<Update<NodeInfo>>(256);
    let (slice_tx, mut slice_rx) = mpsc::channel::<Update<EndpointSliceInfo>>(1024);
    tokio::spawn(reflector::run(
        client.clone(),
        settings.clone(),
        svc_tx.clone(),
    ));
    tokio::spawn(reflector::run(client.clone(), settings.clone(), node_tx));
    tokio::spawn(reflector::run(client.clone(), settings, slice_tx));

    let (leading_tx, mut leading_rx) = watch::channel(false);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let election = tokio::spawn(lease::run(
        client.clone(),
        ElectionSettings {
            namespace: k.lease_namespace.clone(),
            name: LEASE_NAME.to_string(),
            lease_duration: k.lease_duration,
            renew_deadline: k.renew_deadline,
            retry_period: k.retry_period,
        },
        Elector::new(node.clone(), k.lease_duration),
        leading_tx,
        shutdown_rx,
    ));

    let events = EventRecorder::spawn(client.clone(), "ferrolb-allocator".into(), node.clone());
    let speaker_events =
        EventRecorder::spawn(client.clone(), "ferrolb-speaker".into(), node.clone());
    let (mut speaker, mut l2_rx) =
        speaker::Speaker::start(&node, &current.config, speaker_events).await?;
    let (action_tx, action_rx) = mpsc::unbounded_channel::<Action>();
    tokio::spawn(writer::run(
        client.clone(),
        events,
        leading_rx.clone(),
        action_rx,
        svc_tx,
    ));

    let mut state = State::default();
    let mut controller: Option<allocator::Controller> = None;
    let mut ready = false;
    // Set by every change the plan depends on; cleared by re-planning, which waits until no
    // message is queued (or REPLAN_EVERY messages went by) so a burst costs one plan.
    let mut replan = true;
    let mut since_plan: u32 = 0;
    let mut gossip: Option<gossip::Gossip> = None;
    // SIGUSR1: when to stop answering; then `drained`.
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut drained = false;

    loop {
        let mut actions: Vec<Action> = Vec::new();
        let gate_open =
            !current.config.cluster.enabled || gossip.as_ref().is_some_and(|g| g.synced());
        // While draining the announcements are frozen (a re-plan after leaving would stop
        // answering at once), and after it nothing is planned any more.
        let plan_now = replan && state.synced() && gate_open && drain_until.is_none() && !drained;
        tokio::select! {
            biased;
            _ = term.recv() => { tracing::info!("SIGTERM received; stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT received; stopping"); break; }
            _ = usr1.recv(), if drain_until.is_none() && !drained => {
                tracing::info!(grace_secs = DRAIN_GRACE.as_secs(), announced = speaker.announced(), "SIGUSR1: draining; other nodes take the addresses over, this one answers until the grace period ends");
                match gossip.as_mut() {
                    Some(g) => g.withdraw(),
                    None => tracing::warn!("draining without gossip: other nodes cannot know, so nobody takes the addresses over"),
                }
                drain_until = Some(tokio::time::Instant::now() + DRAIN_GRACE);
            }
            () = sleep_until(drain_until) => {
                tracing::info!(announced = speaker.announced(), "drain grace period over; no longer answering ARP/NDP");
                speaker.silence();
                if let Some(g) = gossip.as_mut() {
                    g.publish(speaker.claims(), std::collections::BTreeSet::new());
                }
                drain_until = None;
                drained = true;
            }
            // The hold after regaining quorum ends: plan again (once; the plan clears it).
            () = sleep_until(speaker.hold_until()), if !replan => { replan = true; }
            () = std::future::ready(()), if plan_now && since_plan >= REPLAN_EVERY => {
                plan(&mut speaker, &state, &current.config, gossip.as_mut(), &mut replan, &mut since_plan);
            }
            Some(update) = svc_rx.recv() => {
                let changed = state.services.apply(update);
                replan |= !changed.is_empty();
                if let Some(c) = controller.as_mut() {
                    for key in &changed {
                        actions.extend(c.service_changed(key, state.services.get(key)));
                    }
                }
            }
            Some(update) = node_rx.recv() => {
                if !state.nodes.apply(update).is_empty() {
                    replan = true;
                    if let Some(g) = gossip.as_mut() {
                        g.nodes_changed(&current.config, &state.nodes);
                    }
                }
            }
            () = view_changed(gossip.as_mut()) => {
                if let Some(g) = gossip.as_mut() {
                    g.check_view();
                }
                replan = true;
            }
            Some(update) = slice_rx.recv() => { replan |= !state.slices.apply(update).is_empty(); }
            Some(event) = l2_rx.recv() => { speaker.l2_event(event, &state.services); }
            Ok(()) = leading_rx.changed() => {
                if !*leading_rx.borrow_and_update() && controller.take().is_some() {
                    tracing::warn!("no longer the allocator");
                }
            }
            _ = hup.recv() => {
                notify::reloading();
                current = reload(&opts, current);
                speaker.reconfigure(&current.config).await;
                if let Some(g) = gossip.as_ref() {
                    g.reconfigure(&current.config);
                }
                replan = true;
                if let Some(c) = controller.as_mut() {
                    let pools = ipam_pools(&current.config);
                    actions.extend(c.set_pools(&pools, |k| state.services.get(k)));
                }
            }
            () = std::future::ready(()), if plan_now => {
                plan(&mut speaker, &state, &current.config, gossip.as_mut(), &mut replan, &mut since_plan);
            }
        }
        if gossip.is_none() && current.config.cluster.enabled && state.nodes.synced() {
            gossip = Some(gossip::Gossip::start(&current.config, &node, &state.nodes).await?);
        }
        if replan {
            since_plan = since_plan.saturating_add(1);
        }
        // Start allocating once leading and the Services are known: a fresh allocator first
        // loads every Service's status, so a handover never moves an address.
        if controller.is_none() && *leading_rx.borrow() && state.services.synced() {
            let mut c = allocator::Controller::new(
                &ipam_pools(&current.config),
                current.config.kubernetes.load_balancer_class.clone(),
            );
            actions.extend(c.start(state.services.iter()));
            tracing::info!(
                allocated = c.allocated(),
                pending = c.pending(),
                "allocator started"
            );
            controller = Some(c);
        }
        for action in actions {
            let _ = action_tx.send(action);
        }
        if !ready && state.synced() {
            ready = true;
            tracing::info!(
                services = state.services.len(),
                nodes = state.nodes.len(),
                endpointslices = state.slices.len(),
                "initial sync complete"
            );
            notify::ready(&status_line(&state, controller.as_ref(), &speaker));
        }
    }
    notify::stopping();
    if let Some(g) = gossip.as_mut() {
        // Planned stop: withdraw, keep answering until others claim our addresses, then leave.
        let announced = speaker.claims();
        if !announced.is_empty() {
            let started = tokio::time::Instant::now();
            g.withdraw();
            let left_over = g.wait_handover(&announced, HANDOVER_TIMEOUT).await;
            tracing::info!(
                announced = announced.len(),
                not_taken_over = left_over.len(),
                waited_ms = started.elapsed().as_millis() as u64,
                "handed the addresses over; stopping"
            );
        }
        g.leave().await;
    }
    speaker.stop().await;
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(RELEASE_TIMEOUT, election)
        .await
        .is_err()
    {
        tracing::warn!("the Lease release did not finish in time; it expires by itself");
    }
    Ok(())
}

fn plan(
    speaker: &mut speaker::Speaker,
    state: &State,
    config: &Config,
    gossip: Option<&mut gossip::Gossip>,
    replan: &mut bool,
    since: &mut u32,
) {
    let input = gossip.as_ref().map(|g| g.input(config.l2.failback));
    speaker.update(&state.services, &state.nodes, &state.slices, input);
    if let Some(g) = gossip {
        g.publish(speaker.claims(), speaker.announceable_pools());
    }
    *replan = false;
    *since = 0;
}

/// The next change of the gossip view; never, without gossip.
async fn view_changed(gossip: Option<&mut gossip::Gossip>) {
    match gossip {
        Some(g) => g.changed().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never, without one.
async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
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
    format!("{role}; announcing {} l2 addresses", speaker.announced())
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

/// Re-reads the configuration; on any error keeps the running one (rule of the house: a bad
/// reload changes nothing) and says so.
fn reload(opts: &LoadOptions, current: Loaded) -> Loaded {
    let result = match config::load(opts) {
        Ok(new) => match refuse_blockers(&new) {
            Ok(()) => {
                log_config(&new, "configuration reloaded");
                notify::ready("configuration reloaded");
                return new;
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
    current
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
