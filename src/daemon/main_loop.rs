//! The daemon's main loop: one owner of all state, receiving everything as messages —
//! reflector updates, the Lease's verdict, re-reads from the writer, gossip view changes,
//! signals — so decisions never race each other. [`MainLoop::step`] waits for one message
//! and hands it to the method named after it; [`MainLoop::shutdown`] is the planned stop.

use std::collections::BTreeSet;

use tokio::signal::unix::Signal;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::report::{LoopReport, Reporting};
use super::{gossip, ipam_pools, reload, speaker, DaemonError, State};
use super::{HANDOVER_TIMEOUT, RELEASE_TIMEOUT, REPLAN_EVERY};
use crate::allocator::{self, Action};
use crate::bgp::session::Stop;
use crate::config::{LoadOptions, Loaded};
use crate::host::dbus::{Action as DbusAction, Request};
use crate::host::metrics::PoolStat;
use crate::host::notify;
use crate::kube::events::EventRecorder;
use crate::kube::objects::{EndpointSliceInfo, NodeInfo, ServiceInfo};
use crate::kube::reflector::Update;
use crate::l2::L2Event;

/// The signals the daemon handles.
pub(super) struct Signals {
    pub term: Signal,
    pub int: Signal,
    pub hup: Signal,
    pub usr1: Signal,
    /// Restart: exit without withdrawing BGP routes (graceful restart).
    pub usr2: Signal,
}

/// What the main loop waits on besides its own timers.
pub(super) struct Inputs {
    pub signals: Signals,
    pub services: mpsc::Receiver<Update<ServiceInfo>>,
    pub nodes: mpsc::Receiver<Update<NodeInfo>>,
    pub slices: mpsc::Receiver<Update<EndpointSliceInfo>>,
    pub l2: mpsc::UnboundedReceiver<L2Event>,
    /// Whether this node holds the allocator Lease.
    pub leading: watch::Receiver<bool>,
    /// Method calls from D-Bus (`ferrolb drain`, `reload`, …).
    pub requests: mpsc::Receiver<Request>,
}

/// Where a drain (SIGUSR1) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drain {
    /// Not draining.
    Off,
    /// Withdrawn; answering until then.
    Until(Instant),
    /// Grace period over: answering nothing, planning nothing.
    Done,
}

impl Drain {
    fn deadline(self) -> Option<Instant> {
        match self {
            Drain::Until(t) => Some(t),
            Drain::Off | Drain::Done => None,
        }
    }
}

/// Whether the loop goes on after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Stop,
}

/// Everything the main loop owns.
pub(super) struct MainLoop {
    opts: LoadOptions,
    current: Loaded,
    node: String,
    state: State,
    speaker: speaker::Speaker,
    controller: Option<allocator::Controller>,
    gossip: Option<gossip::Gossip>,
    actions: mpsc::UnboundedSender<Action>,
    /// Records Events on this node's Node (gossip's `ConfigMismatch`).
    node_events: EventRecorder,
    /// Initial sync reported to systemd.
    ready: bool,
    /// Set by every change the plan depends on; cleared by re-planning, which waits until no
    /// message is queued (or [`REPLAN_EVERY`] messages went by) so a burst costs one plan.
    replan: bool,
    since_plan: u32,
    drain: Drain,
    /// What the metrics read, published after every message.
    reporting: Reporting,
    reloads_ok: u64,
    reloads_failed: u64,
    /// The status rows need rebuilding (a plan, a view change, a drain).
    status_dirty: bool,
    /// A restart was asked for over D-Bus (the loop stopped for it).
    pub(super) restart: bool,
    /// systemd's watchdog: the interval, and when the loop pings next.
    watchdog: Option<(std::time::Duration, Instant)>,
    /// When the report (metrics, D-Bus, `STATUS=`) is next published: at most every
    /// [`REPORT_EVERY`], so a burst of messages costs one report, not one per message.
    report_due: Option<Instant>,
}

/// How stale the published report may be.
const REPORT_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

impl MainLoop {
    /// The loop's state at start: nothing known yet, a plan due.
    pub(super) fn new(
        opts: LoadOptions,
        current: Loaded,
        node: String,
        speaker: speaker::Speaker,
        actions: mpsc::UnboundedSender<Action>,
        node_events: EventRecorder,
        reporting: Reporting,
    ) -> MainLoop {
        MainLoop {
            opts,
            current,
            node,
            state: State::default(),
            speaker,
            controller: None,
            gossip: None,
            actions,
            node_events,
            ready: false,
            replan: true,
            since_plan: 0,
            drain: Drain::Off,
            reporting,
            reloads_ok: 0,
            reloads_failed: 0,
            status_dirty: true,
            restart: false,
            watchdog: notify::watchdog_interval().map(|every| (every, Instant::now())),
            report_due: None,
        }
    }

    /// Waits for one message, handles it, then does what became possible (start gossip, the
    /// allocator, report readiness).
    pub(super) async fn step(&mut self, inputs: &mut Inputs) -> Result<Flow, DaemonError> {
        let plan_now = self.plan_due();
        tokio::select! {
            biased;
            _ = inputs.signals.term.recv() => { tracing::info!("SIGTERM received; stopping"); return Ok(Flow::Stop); }
            _ = inputs.signals.int.recv() => { tracing::info!("SIGINT received; stopping"); return Ok(Flow::Stop); }
            () = sleep_until(self.report_due) => {
                self.report_due = None;
                self.publish_report();
                return Ok(Flow::Continue);
            }
            // From this loop, not a task of its own: if the loop wedges, the pings stop.
            () = sleep_until(self.watchdog.map(|(_, next)| next)) => {
                notify::watchdog();
                if let Some((every, next)) = self.watchdog.as_mut() {
                    *next = Instant::now() + *every;
                }
            }
            _ = inputs.signals.usr1.recv(), if self.drain == Drain::Off => self.start_drain(self.current.config.l2.drain_grace),
            _ = inputs.signals.usr2.recv() => {
                tracing::info!("SIGUSR2 received; stopping for a restart: BGP routes are not withdrawn, routers with graceful restart keep them until the daemon is back");
                self.restart = true;
                return Ok(Flow::Stop);
            }
            () = self.speaker.bgp().changed() => self.status_dirty = true,
            Some(request) = inputs.requests.recv() => {
                if self.on_request(request).await == Flow::Stop {
                    return Ok(Flow::Stop);
                }
            }
            () = sleep_until(self.drain.deadline()) => self.end_drain(),
            // The hold after regaining quorum ends: plan again (once; the plan clears it).
            () = sleep_until(self.speaker.hold_until()), if !self.replan => self.replan = true,
            () = std::future::ready(()), if plan_now && self.since_plan >= REPLAN_EVERY => self.plan(),
            Some(update) = inputs.services.recv() => self.on_service(update),
            Some(update) = inputs.nodes.recv() => self.on_node(update),
            () = view_changed(self.gossip.as_mut()) => self.on_view_changed(),
            Some(update) = inputs.slices.recv() => self.replan |= !self.state.slices.apply(update).is_empty(),
            Some(event) = inputs.l2.recv() => {
                // Candidacy follows the interfaces: re-plan, so gossip hears at once which
                // pools this node can (no longer) announce.
                self.replan |= event == L2Event::InterfacesChanged;
                self.speaker.l2_event(event, &self.state.services);
            }
            Ok(()) = inputs.leading.changed() => self.on_leading_changed(&mut inputs.leading),
            _ = inputs.signals.hup.recv() => self.on_reload().await,
            () = std::future::ready(()), if plan_now => self.plan(),
        }
        self.start_gossip_when_nodes_known().await?;
        if self.replan {
            self.since_plan = self.since_plan.saturating_add(1);
        }
        self.start_allocator_when_leading(*inputs.leading.borrow());
        self.report_initial_sync();
        self.report_due
            .get_or_insert_with(|| Instant::now() + REPORT_EVERY);
        Ok(Flow::Continue)
    }

    /// What the metrics read: pool use, pending Services, announcements, reloads, readiness.
    fn publish_report(&mut self) {
        let report = LoopReport {
            l2: self.speaker.l2_counters(),
            pools: self
                .controller
                .as_ref()
                .map(|c| {
                    c.usage()
                        .into_iter()
                        .map(|(name, u)| PoolStat {
                            name,
                            capacity: u.size,
                            in_use: u.used,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            services_allocated: self.controller.as_ref().map_or(0, |c| c.allocated() as u64),
            pending: self
                .controller
                .as_ref()
                .map(allocator::Controller::pending_by_kind)
                .unwrap_or_default(),
            announced_l2: self.speaker.announced() as u64,
            announced_bgp: self.speaker.announced_bgp() as u64,
            bgp: self.speaker.bgp().status_receivers(),
            config_mismatch_members: self
                .gossip
                .as_ref()
                .map_or(0, |g| g.config_mismatch_members() as u64),
            reloads_ok: self.reloads_ok,
            reloads_failed: self.reloads_failed,
            ready: self.ready,
        };
        self.reporting.report.send_replace(report);
        self.publish_status();
    }

    /// What `ferrolb status` shows: the summary line always, the rows when they may have
    /// changed (rebuilding 10,000 rows per message would cost more than the message).
    fn publish_status(&mut self) {
        let summary = self.summary();
        let rebuild = std::mem::take(&mut self.status_dirty);
        let (services, members, bgp_sessions) = if rebuild {
            (
                self.speaker.service_rows(),
                self.gossip
                    .as_ref()
                    .map(gossip::Gossip::member_rows)
                    .unwrap_or_default(),
                self.speaker.bgp().rows(),
            )
        } else {
            (Vec::new(), Vec::new(), Vec::new())
        };
        self.reporting.status.send_if_modified(|s| {
            let mut changed = s.summary != summary;
            if changed && self.ready {
                // systemd's one line follows D-Bus's (after READY=1, which carries the first).
                notify::status(&summary);
            }
            s.summary = summary;
            if rebuild
                && (s.services != services
                    || s.members != members
                    || s.bgp_sessions != bgp_sessions)
            {
                s.services = services;
                s.members = members;
                s.bgp_sessions = bgp_sessions;
                changed = true;
            }
            changed
        });
    }

    /// The one-line status (systemd's STATUS= and D-Bus `Status`).
    fn summary(&self) -> String {
        let mut line = super::status_line(&self.state, self.controller.as_ref(), &self.speaker);
        if let Some(g) = self.gossip.as_ref() {
            let rows = g.member_count();
            line.push_str(&format!("; {}/{} members", rows.0, rows.1));
        }
        let (up, configured) = self.speaker.bgp().counts();
        if configured > 0 {
            line.push_str(&format!("; {up}/{configured} BGP sessions up"));
        }
        match self.drain {
            Drain::Off => {}
            Drain::Until(_) => line.push_str("; draining"),
            Drain::Done => line.push_str("; drained"),
        }
        line
    }

    /// A plan is wanted and allowed: the caches and (with gossip) the membership are synced,
    /// and no drain froze the announcements (a re-plan after leaving would stop answering at
    /// once; after the drain nothing is planned any more).
    fn plan_due(&self) -> bool {
        let gate_open = !self.current.config.cluster.enabled
            || self.gossip.as_ref().is_some_and(|g| g.synced());
        self.replan && self.state.synced() && gate_open && self.drain == Drain::Off
    }

    /// Re-plans and publishes the result to gossip.
    fn plan(&mut self) {
        let config = &self.current.config;
        let input = self.gossip.as_ref().map(|g| g.input(config.l2.failback));
        let s = &self.state;
        self.speaker.update(&s.services, &s.nodes, &s.slices, input);
        if let Some(g) = self.gossip.as_mut() {
            g.publish(self.speaker.claims(), self.speaker.announceable_pools());
        }
        self.replan = false;
        self.since_plan = 0;
        self.status_dirty = true;
    }

    /// A D-Bus method call: do it, then answer.
    async fn on_request(&mut self, request: Request) -> Flow {
        let (answer, flow) = match request.action {
            DbusAction::Reload => {
                let failed = self.reloads_failed;
                self.on_reload().await;
                let answer = if self.reloads_failed > failed {
                    Err("the configuration has errors; running on the previous one (see the log or ferrolb check-config)".to_string())
                } else {
                    Ok(())
                };
                (answer, Flow::Continue)
            }
            DbusAction::Drain { grace } if self.drain == Drain::Off => {
                self.start_drain(grace);
                (Ok(()), Flow::Continue)
            }
            DbusAction::Drain { .. } => (Err("already drained or draining".into()), Flow::Continue),
            DbusAction::Undrain => (self.undrain(), Flow::Continue),
            DbusAction::Restart => {
                tracing::info!(
                    "restart requested over D-Bus; stopping (systemd starts the daemon again)"
                );
                self.restart = true;
                (Ok(()), Flow::Stop)
            }
        };
        let _ = request.reply.send(answer);
        self.status_dirty = true;
        flow
    }

    /// Ends a drain: a candidate again, planning again.
    fn undrain(&mut self) -> Result<(), String> {
        if self.drain == Drain::Off {
            return Err("not drained".into());
        }
        if let Some(g) = self.gossip.as_mut() {
            g.rejoin_candidacy();
        }
        self.drain = Drain::Off;
        self.replan = true;
        tracing::info!("undrained: a candidate for addresses again");
        Ok(())
    }

    /// SIGUSR1 or `ferrolb drain`: withdraw from candidacy and keep answering for `grace`
    /// (SIGUSR1: `l2.drain_grace`, as configured now).
    fn start_drain(&mut self, grace: std::time::Duration) {
        tracing::info!(grace = %humantime::format_duration(grace), announced = self.speaker.announced(), "SIGUSR1: draining; other nodes take the addresses over, this one answers until the grace period ends");
        match self.gossip.as_mut() {
            Some(g) => g.withdraw(),
            None => tracing::warn!("draining without gossip: other nodes cannot know, so nobody takes the addresses over"),
        }
        // Routers move BGP traffic at once; the other nodes advertise the same routes.
        self.speaker.withdraw_bgp();
        self.drain = Drain::Until(Instant::now() + grace);
    }

    /// The drain's grace period is over: stop answering, claim nothing.
    fn end_drain(&mut self) {
        tracing::info!(
            announced = self.speaker.announced(),
            "drain grace period over; no longer answering ARP/NDP"
        );
        self.speaker.silence();
        if let Some(g) = self.gossip.as_mut() {
            g.publish(self.speaker.claims(), BTreeSet::new());
        }
        self.drain = Drain::Done;
    }

    fn on_service(&mut self, update: Update<ServiceInfo>) {
        let changed = self.state.services.apply(update);
        self.replan |= !changed.is_empty();
        if let Some(c) = self.controller.as_mut() {
            let mut actions = Vec::new();
            for key in &changed {
                actions.extend(c.service_changed(key, self.state.services.get(key)));
            }
            self.dispatch(actions);
        }
    }

    fn on_node(&mut self, update: Update<NodeInfo>) {
        if !self.state.nodes.apply(update).is_empty() {
            self.replan = true;
            if let Some(g) = self.gossip.as_mut() {
                g.nodes_changed(&self.current.config, &self.state.nodes);
            }
        }
    }

    fn on_view_changed(&mut self) {
        if let Some(g) = self.gossip.as_mut() {
            g.check_view();
        }
        self.replan = true;
        self.status_dirty = true;
    }

    fn on_leading_changed(&mut self, leading: &mut watch::Receiver<bool>) {
        if !*leading.borrow_and_update() && self.controller.take().is_some() {
            tracing::warn!("no longer the allocator");
        }
    }

    /// SIGHUP: re-read the configuration and apply it (a bad file changes nothing).
    async fn on_reload(&mut self) {
        notify::reloading();
        match reload(&self.opts) {
            Some(new) => {
                self.current = new;
                self.reloads_ok += 1;
            }
            None => self.reloads_failed += 1,
        }
        self.speaker.reconfigure(&self.current.config).await;
        if let Some(g) = self.gossip.as_ref() {
            g.reconfigure(&self.current.config);
        }
        self.replan = true;
        if let Some(c) = self.controller.as_mut() {
            let pools = ipam_pools(&self.current.config);
            let actions = c.set_pools(&pools, |k| self.state.services.get(k));
            self.dispatch(actions);
        }
    }

    /// With `cluster.enabled`, membership starts once the Nodes are known (the join list
    /// and the address to advertise come from them).
    async fn start_gossip_when_nodes_known(&mut self) -> Result<(), DaemonError> {
        let config = &self.current.config;
        if self.gossip.is_none() && config.cluster.enabled && self.state.nodes.synced() {
            let events = self.node_events.clone();
            let g = gossip::Gossip::start(config, &self.node, &self.state.nodes, events).await?;
            let _ = self.reporting.gossip.set(g.metric_handles());
            self.gossip = Some(g);
        }
        Ok(())
    }

    /// Starts allocating once leading and the Services are known: a fresh allocator first
    /// loads every Service's status, so a handover never moves an address.
    fn start_allocator_when_leading(&mut self, leading: bool) {
        if self.controller.is_some() || !leading || !self.state.services.synced() {
            return;
        }
        let config = &self.current.config;
        let mut c = allocator::Controller::new(
            &ipam_pools(config),
            config.kubernetes.load_balancer_class.clone(),
        );
        let actions = c.start(self.state.services.iter());
        tracing::info!(
            allocated = c.allocated(),
            pending = c.pending(),
            "allocator started"
        );
        self.controller = Some(c);
        self.dispatch(actions);
    }

    fn report_initial_sync(&mut self) {
        if self.ready || !self.state.synced() {
            return;
        }
        self.ready = true;
        tracing::info!(
            services = self.state.services.len(),
            nodes = self.state.nodes.len(),
            endpointslices = self.state.slices.len(),
            "initial sync complete"
        );
        notify::ready(&super::status_line(
            &self.state,
            self.controller.as_ref(),
            &self.speaker,
        ));
    }

    /// Hands the allocator's actions to the writer.
    fn dispatch(&self, actions: Vec<Action>) {
        for action in actions {
            let _ = self.actions.send(action);
        }
    }

    /// The planned stop: with gossip, withdraw, keep answering until others claim our
    /// addresses (at most [`HANDOVER_TIMEOUT`]) and leave; then stop the responders and
    /// release the Lease.
    pub(super) async fn shutdown(self, election: JoinHandle<()>, release: watch::Sender<bool>) {
        notify::stopping();
        let MainLoop {
            mut gossip,
            mut speaker,
            restart,
            ..
        } = self;
        if !restart {
            // Withdraw first, so routers move traffic while the L2 hand-over runs.
            speaker.withdraw_bgp();
        }
        if let Some(g) = gossip.as_mut() {
            hand_over(g, &speaker).await;
            g.leave().await;
        }
        speaker
            .stop(if restart {
                Stop::Restart
            } else {
                Stop::Withdraw
            })
            .await;
        let _ = release.send(true);
        if tokio::time::timeout(RELEASE_TIMEOUT, election)
            .await
            .is_err()
        {
            tracing::warn!("the Lease release did not finish in time; it expires by itself");
        }
    }
}

/// Withdraws and waits until other members claim what this node announces.
async fn hand_over(g: &mut gossip::Gossip, speaker: &speaker::Speaker) {
    let announced = speaker.claims();
    if announced.is_empty() {
        return;
    }
    let started = Instant::now();
    g.withdraw();
    let left_over = g.wait_handover(&announced, HANDOVER_TIMEOUT).await;
    tracing::info!(
        announced = announced.len(),
        not_taken_over = left_over.len(),
        waited_ms = started.elapsed().as_millis() as u64,
        "handed the addresses over; stopping"
    );
}

/// The next change of the gossip view; never, without gossip.
async fn view_changed(gossip: Option<&mut gossip::Gossip>) {
    match gossip {
        Some(g) => g.changed().await,
        None => std::future::pending().await,
    }
}

/// Sleeps until `deadline`; never, without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
