//! The speaker role, which every daemon plays: from the Services' *status* (never the
//! allocator's memory), their EndpointSlices, the Nodes and the configured pools it works out
//! what this node must announce ([`crate::plan`]) and hands the L2 part to the ARP/NDP
//! [`l2::Speaker`] and the BGP part to the sessions ([`super::bgp::Bgp`]). Re-planning is cheap and idempotent, so the main loop calls [`Speaker::update`]
//! after every batch of changes and only differences reach the responders.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use tokio::sync::mpsc;

use super::bgp::Bgp;
use super::gossip::GossipInput;
use crate::bgp::session::Stop;
use crate::config::{Config, Mode, PoolMode};
use crate::kube::events::{EventRecorder, EventType, ObjectEvent};
use crate::kube::objects::{EndpointSliceInfo, NodeInfo, ObjectKey, ServiceInfo};
use crate::kube::store::Store;
use crate::l2::{self, L2Event, SpeakerSettings};
use crate::plan::{
    self, Decision, Entry, PlanInput, PlanMode, PlanNode, PlanPool, PlanService, Reason,
};

/// The speaker's inputs that come from the configuration.
struct Settings {
    node: String,
    class: Option<String>,
    pools: Vec<PlanPool>,
    has_l2: bool,
    require_quorum: bool,
    /// How long a node that regains quorum waits at most for the view to settle
    /// (`cluster.sync_timeout`, as a starting node does).
    quorum_hold: std::time::Duration,
    l2: SpeakerSettings,
}

impl Settings {
    fn new(node: &str, config: &Config) -> Settings {
        Settings {
            node: node.to_string(),
            class: config.kubernetes.load_balancer_class.clone(),
            pools: plan_pools(config),
            has_l2: config.pools.iter().any(|p| p.mode_kind() == Mode::L2),
            require_quorum: config.l2.require_quorum,
            quorum_hold: config.cluster.timing.sync_timeout,
            l2: SpeakerSettings {
                refresh: config.l2.gratuitous_refresh,
            },
        }
    }
}

/// This node's announcements and how they came about.
pub(super) struct Speaker {
    settings: Settings,
    l2: Option<l2::Speaker>,
    l2_events: mpsc::UnboundedSender<L2Event>,
    /// BGP sessions and the routes they advertise.
    bgp: Bgp,
    /// Remembers the best-ranked nodes per address, so a re-plan costs milliseconds even with
    /// 10,000 Services on 100 nodes.
    planner: plan::Planner,
    /// The last plan's entries, to log and report only what changed.
    entries: BTreeMap<(String, IpAddr), Entry>,
    /// The address set last handed to the L2 speaker.
    announced_l2: BTreeMap<IpAddr, Vec<String>>,
    /// Announcing nothing for lack of quorum (`l2.require_quorum`).
    fenced: bool,
    /// Fenced with quorum regained: the end of the wait for the view to settle.
    hold_until: Option<tokio::time::Instant>,
    events: EventRecorder,
}

impl Speaker {
    /// A speaker for `node`; the L2 responders start when the configuration has an l2 pool.
    /// Returns the receiver of the L2 speaker's reports, for the main loop.
    pub(super) async fn start(
        node: &str,
        config: &Config,
        events: EventRecorder,
    ) -> Result<(Speaker, mpsc::UnboundedReceiver<L2Event>), l2::L2Error> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut speaker = Speaker {
            settings: Settings::new(node, config),
            l2: None,
            l2_events: tx,
            bgp: Bgp::new(config),
            planner: plan::Planner::new(),
            entries: BTreeMap::new(),
            announced_l2: BTreeMap::new(),
            fenced: false,
            hold_until: None,
            events,
        };
        speaker.ensure_l2().await?;
        Ok((speaker, rx))
    }

    async fn ensure_l2(&mut self) -> Result<(), l2::L2Error> {
        if self.settings.has_l2 && self.l2.is_none() {
            let l2 = l2::Speaker::start(self.settings.l2.clone(), self.l2_events.clone()).await?;
            tracing::info!("ARP/NDP responders ready");
            self.l2 = Some(l2);
        }
        Ok(())
    }

    /// While fenced with quorum regained: when to plan again even if nothing changes (the
    /// hold for the view to settle ends).
    pub(super) fn hold_until(&self) -> Option<tokio::time::Instant> {
        self.hold_until
    }

    /// Applies a reloaded configuration (pools, class, refresh); the caller re-plans.
    pub(super) async fn reconfigure(&mut self, config: &Config) {
        let node = self.settings.node.clone();
        let refresh_changed = self.settings.l2.refresh != config.l2.gratuitous_refresh;
        self.settings = Settings::new(&node, config);
        self.bgp.reconfigure(config);
        if refresh_changed {
            if let Some(l2) = self.l2.take() {
                // The refresh interval is fixed at start; restart the responders with the same
                // set, which re-sends one takeover burst — acceptable for a setting change.
                l2.stop().await;
                self.announced_l2.clear();
            }
        }
        if let Err(error) = self.ensure_l2().await {
            tracing::error!(%error, "cannot start the ARP/NDP responders; l2 addresses are not announced");
        }
    }

    /// Re-plans from the current state (and gossip's, when on) and applies the difference.
    pub(super) fn update(
        &mut self,
        services: &Store<ServiceInfo>,
        nodes: &Store<NodeInfo>,
        slices: &Store<EndpointSliceInfo>,
        gossip: Option<GossipInput>,
    ) {
        let plan_services = plan_services(services, slices, self.settings.class.as_deref());
        let plan_nodes: Vec<PlanNode> = nodes.iter().map(plan_node).collect();
        if let Some(me) = nodes.iter().find(|n| n.name == self.settings.node) {
            self.bgp.set_labels(&me.labels);
        }
        let gossip = gossip.map(|mut g| {
            // Our own pools as of now, not as last gossiped back to us.
            g.announceable
                .insert(self.settings.node.clone(), self.announceable_pools());
            g
        });
        let mut plan = self.planner.plan(&PlanInput {
            node: &self.settings.node,
            pools: &self.settings.pools,
            nodes: &plan_nodes,
            services: &plan_services,
            alive: gossip.as_ref().map(|g| &g.alive),
            claims: gossip.as_ref().map(|g| &g.claims),
            announceable: gossip.as_ref().map(|g| &g.announceable),
            failback: gossip
                .as_ref()
                .map_or(crate::config::Failback::Immediate, |g| g.failback),
        });
        let quorum = gossip.as_ref().map(|g| g.quorum);
        let fenced = self.settings.require_quorum
            && quorum.is_some_and(|q| {
                let hold_over = match (q.held() && self.fenced && !q.settled(), self.hold_until) {
                    (false, _) => false,
                    (true, Some(until)) => tokio::time::Instant::now() >= until,
                    (true, None) => {
                        let until = tokio::time::Instant::now() + self.settings.quorum_hold;
                        tracing::info!(
                            alive = q.alive,
                            known = q.known,
                            unsynced = q.unsynced,
                            "majority regained; waiting for the others' claims before announcing"
                        );
                        self.hold_until = Some(until);
                        false
                    }
                };
                q.fences(self.fenced, hold_over)
            });
        if !fenced || quorum.is_some_and(|q| !q.held()) {
            self.hold_until = None;
        }
        if fenced != self.fenced {
            if let Some(q) = quorum.filter(|_| fenced) {
                tracing::warn!(
                    alive = q.alive,
                    known = q.known,
                    "no quorum: this node sees no majority of the gossip members; l2 addresses are not announced (l2.require_quorum)"
                );
            } else {
                tracing::info!("quorum regained (or no longer required); announcing again");
            }
            self.fenced = fenced;
        }
        if fenced {
            for entry in &mut plan.entries {
                if entry.mode == Some(Mode::L2) && announces(entry) {
                    entry.decision = Decision::Skip(Reason::NoQuorum);
                }
            }
        }
        let l2_set = plan.l2();
        self.bgp.set(
            plan.entries
                .iter()
                .filter(|e| e.mode == Some(Mode::Bgp) && announces(e))
                .filter_map(|e| Some((e.address, e.pool.clone()?)))
                .collect(),
        );
        let mut entries = BTreeMap::new();
        for entry in plan.entries {
            let key = (entry.service.clone(), entry.address);
            let before = self.entries.remove(&key);
            self.report_transition(before.as_ref(), &entry, services);
            entries.insert(key, entry);
        }
        for ((service, address), gone) in std::mem::take(&mut self.entries) {
            if announces(&gone) {
                tracing::info!(service = %service, %address, "address gone from the Service; no longer announced");
            }
        }
        self.entries = entries;
        if l2_set != self.announced_l2 {
            if let Some(l2) = self.l2.as_mut() {
                l2.set(l2_set.clone());
            } else if !l2_set.is_empty() {
                tracing::error!(
                    addresses = l2_set.len(),
                    "l2 addresses to announce, but the ARP/NDP responders are not running"
                );
            }
            self.announced_l2 = l2_set;
        }
    }

    fn report_transition(
        &self,
        before: Option<&Entry>,
        after: &Entry,
        services: &Store<ServiceInfo>,
    ) {
        if before.map(|b| &b.decision) == Some(&after.decision)
            && before.map(|b| &b.owner) == Some(&after.owner)
        {
            return;
        }
        let service = after.service.as_str();
        let address = after.address;
        match &after.decision {
            Decision::Announce { .. } => {
                tracing::info!(service, %address, mode = ?after.mode, "announcing");
                let was_announcing = before.is_some_and(announces);
                if !was_announcing && after.mode == Some(Mode::L2) {
                    // MetalLB's event, so `kubectl describe svc` reads the same.
                    self.record(
                        services,
                        service,
                        EventType::Normal,
                        "nodeAssigned",
                        format!(
                            "announcing from node {:?} with protocol \"layer2\"",
                            self.settings.node
                        ),
                    );
                }
            }
            Decision::Skip(reason) => {
                let was_announcing = before.is_some_and(announces);
                let owner = after.owner.as_deref().unwrap_or("none");
                if was_announcing {
                    tracing::info!(service, %address, %reason, owner, "no longer announcing");
                } else if cluster_wide(reason) {
                    // Every node sees the same; say it once per change, not per node rank.
                    tracing::info!(service, %address, %reason, "not announced by any node");
                } else {
                    tracing::debug!(service, %address, %reason, owner, "not announcing");
                }
            }
        }
    }

    /// Turns an L2 speaker report into a log line and, where a Service is concerned, an Event.
    pub(super) fn l2_event(&self, event: L2Event, services: &Store<ServiceInfo>) {
        match event {
            L2Event::Announcing {
                address,
                interfaces,
            } => {
                tracing::info!(%address, interfaces = %interfaces.join(","), "answering ARP/NDP");
            }
            // The main loop re-plans, which re-publishes the pools this node can announce.
            L2Event::InterfacesChanged => {}
            L2Event::NoInterface { address } => {
                tracing::warn!(%address, "no usable interface to announce the address on");
                for service in self.services_with(address) {
                    self.record(
                        services,
                        &service,
                        EventType::Warning,
                        "NoInterface",
                        format!(
                            "node {:?} cannot announce {address}: no interface is up with a subnet containing it (set the pool's interfaces)",
                            self.settings.node
                        ),
                    );
                }
            }
            L2Event::KernelWouldAnswer {
                address,
                interface,
                detail,
            } => {
                tracing::warn!(%address, interface, detail, "the kernel would answer ARP for this address too");
                for service in self.services_with(address) {
                    self.record(
                        services,
                        &service,
                        EventType::Warning,
                        "KernelWouldAnswer",
                        format!(
                            "node {:?}: the kernel would also answer ARP for {address} on {interface}: {detail}",
                            self.settings.node
                        ),
                    );
                }
            }
        }
    }

    fn services_with(&self, address: IpAddr) -> BTreeSet<String> {
        self.entries
            .keys()
            .filter(|(_, a)| *a == address)
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn record(
        &self,
        services: &Store<ServiceInfo>,
        service: &str,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        let Some((namespace, name)) = service.split_once('/') else {
            return;
        };
        let key = ObjectKey {
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        if let Some(svc) = services.get(&key) {
            self.events
                .record(ObjectEvent::service(svc, kind, reason, message));
        }
    }

    /// Number of addresses this node announces.
    /// The last plan as the status shows it: one row per (Service, address).
    pub(super) fn service_rows(&self) -> Vec<crate::host::dbus::ServiceRow> {
        self.entries
            .values()
            .map(|e| crate::host::dbus::ServiceRow {
                service: e.service.clone(),
                address: e.address.to_string(),
                pool: e.pool.clone().unwrap_or_default(),
                mode: match e.mode {
                    Some(Mode::L2) => "l2".into(),
                    Some(Mode::Bgp) => "bgp".into(),
                    None => String::new(),
                },
                nodes: match (&e.owner, &e.decision) {
                    (Some(owner), _) => vec![owner.clone()],
                    (None, Decision::Announce { .. }) => vec![self.settings.node.clone()],
                    (None, Decision::Skip(_)) => Vec::new(),
                },
                reason: match &e.decision {
                    Decision::Announce { .. } => String::new(),
                    Decision::Skip(r) => r.as_str().to_string(),
                },
            })
            .collect()
    }

    pub(super) fn l2_counters(&self) -> Option<l2::CounterHandle> {
        self.l2.as_ref().map(l2::Speaker::counter_handle)
    }

    pub(super) fn announced(&self) -> usize {
        self.announced_l2.len()
    }

    /// Addresses advertised over BGP.
    pub(super) fn announced_bgp(&self) -> usize {
        self.bgp.announced()
    }

    /// The BGP sessions.
    pub(super) fn bgp(&self) -> &Bgp {
        &self.bgp
    }

    /// The l2 addresses this node announces (its gossip claims).
    pub(super) fn claims(&self) -> BTreeSet<IpAddr> {
        self.announced_l2.keys().copied().collect()
    }

    /// The pools this node could announce: every bgp pool; an l2 pool when some interface
    /// would carry the first address of one of its ranges. That is an approximation (a pool
    /// spanning subnets may be usable for some of its addresses only), but it needs no
    /// address of the pool to be announced first, so it is known before this node owns one.
    pub(super) fn announceable_pools(&self) -> BTreeSet<String> {
        self.settings
            .pools
            .iter()
            .filter(|p| match &p.mode {
                PlanMode::Bgp => true,
                PlanMode::L2 { interfaces } => self.l2.as_ref().is_some_and(|l2| {
                    p.ranges
                        .iter()
                        .any(|r| l2.can_announce(r.start(), interfaces))
                }),
            })
            .map(|p| p.name.clone())
            .collect()
    }

    /// Stops answering ARP/NDP while staying up (the end of a drain).
    pub(super) fn silence(&mut self) {
        if let Some(l2) = self.l2.as_mut() {
            l2.set(BTreeMap::new());
        }
        self.announced_l2.clear();
    }

    /// Withdraws every BGP route, keeping the sessions up (a drain begins: the routers move
    /// traffic to the other nodes at once; unlike L2 nobody needs to take an address over).
    pub(super) fn withdraw_bgp(&mut self) {
        self.bgp.silence();
    }

    /// Stops answering everything; BGP sessions end as `how` says.
    pub(super) async fn stop(self, how: Stop) {
        if let Some(l2) = self.l2 {
            l2.stop().await;
        }
        self.bgp.stop(how).await;
    }
}

fn announces(entry: &Entry) -> bool {
    matches!(entry.decision, Decision::Announce { .. })
}

/// Reasons that hold on every node alike.
fn cluster_wide(reason: &Reason) -> bool {
    matches!(
        reason,
        Reason::NoEndpoints | Reason::NoEligibleNode | Reason::NoPool
    )
}

/// The configured pools as the planner sees them.
fn plan_pools(config: &Config) -> Vec<PlanPool> {
    config
        .pools
        .iter()
        .map(|p| PlanPool {
            name: p.name.clone(),
            ranges: p.addresses.clone(),
            mode: match &p.mode {
                PoolMode::L2 { interfaces } => PlanMode::L2 {
                    interfaces: interfaces.clone(),
                },
                PoolMode::Bgp(_) => PlanMode::Bgp,
            },
            node_selector: p.node_selector.clone(),
        })
        .collect()
}

fn plan_node(node: &NodeInfo) -> PlanNode {
    PlanNode {
        name: node.name.clone(),
        labels: node.labels.clone(),
        ready: node.ready,
        network_unavailable: node.network_unavailable,
    }
}

/// The LoadBalancer Services this daemon handles that have addresses, with the nodes holding
/// a ready (or still serving) endpoint of each.
fn plan_services(
    services: &Store<ServiceInfo>,
    slices: &Store<EndpointSliceInfo>,
    class: Option<&str>,
) -> Vec<PlanService> {
    let mut endpoint_nodes: HashMap<ObjectKey, BTreeSet<String>> = HashMap::new();
    for slice in slices.iter() {
        let Some(service) = &slice.service else {
            continue;
        };
        let key = ObjectKey {
            namespace: slice.key.namespace.clone(),
            name: service.clone(),
        };
        let nodes = endpoint_nodes.entry(key).or_default();
        for endpoint in &slice.endpoints {
            if let (Some(node), true) = (&endpoint.node_name, endpoint.ready || endpoint.serving) {
                nodes.insert(node.clone());
            }
        }
    }
    services
        .iter()
        .filter(|s| {
            s.is_load_balancer()
                && s.load_balancer_class.as_deref() == class
                && !s.ingress.is_empty()
        })
        .map(|s| PlanService {
            key: s.key.to_string(),
            addresses: s.ingress.clone(),
            local_traffic: s.external_traffic_policy == "Local",
            endpoint_nodes: endpoint_nodes.remove(&s.key).unwrap_or_default(),
        })
        .collect()
}
