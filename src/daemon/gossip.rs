//! The daemon's side of gossip membership ([`crate::membership`]): started once the Nodes
//! are known (the join list and, with an unspecified `cluster.bind`, the address others
//! reach us at come from them); what the plan reads from the view; what this node publishes;
//! and the handover of a planned stop.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{Config, Failback, JoinAddress};
use crate::kube::events::{EventRecorder, EventType, ObjectEvent};
use crate::kube::objects::NodeInfo;
use crate::kube::store::Store;
use crate::membership::meta::fingerprint_hex;
use crate::membership::{Fingerprint, Membership, MembershipView, Settings};

use super::DaemonError;

/// What the plan reads from gossip (owned, so the view's lock is not held while planning).
#[derive(Debug, Clone, Default)]
pub(super) struct GossipInput {
    /// Alive (or suspect) members; this node is left out once it has left (drain, stop).
    pub alive: BTreeSet<String>,
    /// Address → the members claiming it.
    pub claims: BTreeMap<IpAddr, BTreeSet<String>>,
    /// Member → the pools it can announce (members whose metadata arrived).
    pub announceable: BTreeMap<String, BTreeSet<String>>,
    /// `l2.failback`.
    pub failback: Failback,
    /// Members this node sees alive (itself included) and members it knows of that have not
    /// left (alive, suspect or down): quorum is a majority of the latter.
    pub quorum: Quorum,
}

/// The counts `l2.require_quorum` decides on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Quorum {
    /// Alive or suspect, this node included.
    pub alive: usize,
    /// Not left: alive, suspect or down (down members are forgotten after an hour).
    pub known: usize,
    /// Alive or suspect members whose metadata (claims) has not arrived yet: after a
    /// partition heals, the others rejoin with new boot ids and claim nothing until theirs
    /// arrives.
    pub unsynced: usize,
}

impl Quorum {
    /// A strict majority of the known members is alive: of two sides of a partition at most
    /// one has it, so at most one side keeps announcing.
    pub fn held(&self) -> bool {
        self.alive * 2 > self.known
    }

    /// Every member not left is alive and its metadata (claims) known.
    pub fn settled(&self) -> bool {
        self.alive == self.known && self.unsynced == 0
    }

    /// Whether a node fenced until now (`fenced`) stays fenced: without a majority; and, once
    /// it has one again, until the view has settled or the hold is over (`hold_over`, a
    /// bound for members that really are down). A partition heals member by member, each
    /// rejoining with a new boot id and claiming nothing until its metadata arrives: a node
    /// that announced at once would see no claims and take back, as the best-ranked node, the
    /// addresses the majority side moved meanwhile — against sticky failback, moving them twice.
    pub fn fences(&self, fenced: bool, hold_over: bool) -> bool {
        !self.held() || (fenced && !self.settled() && !hold_over)
    }
}

/// Live members configured with other pools than this node: owners would be computed from
/// different inputs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Mismatch {
    /// This node's pool fingerprint.
    mine: Option<Fingerprint>,
    /// Member → its differing fingerprint.
    others: BTreeMap<String, Fingerprint>,
}

impl Mismatch {
    /// The mismatch `view` shows.
    fn of(view: &MembershipView) -> Mismatch {
        let fingerprint = |node: &str| view.members.get(node).and_then(|m| m.fingerprint);
        Mismatch {
            mine: fingerprint(&view.me),
            others: view
                .fingerprint_mismatches()
                .into_iter()
                .filter_map(|n| Some((n.to_string(), fingerprint(n)?)))
                .collect(),
        }
    }

    /// The members, comma-separated.
    fn members(&self) -> String {
        self.others.keys().cloned().collect::<Vec<_>>().join(",")
    }

    /// The Event's message: who differs, with both fingerprints.
    fn message(&self) -> String {
        let mine = self.mine.as_ref().map_or("unknown".into(), fingerprint_hex);
        let others: Vec<String> = self
            .others
            .iter()
            .map(|(n, fp)| format!("{n} ({})", fingerprint_hex(fp)))
            .collect();
        format!(
            "pool configuration differs from this node's ({mine}) on {}; owners may disagree until it is the same everywhere",
            others.join(", ")
        )
    }
}

/// The running membership and what was last published to or reported from it.
pub(super) struct Gossip {
    membership: Membership,
    view: watch::Receiver<MembershipView>,
    port: u16,
    join: Vec<JoinAddress>,
    claims: BTreeSet<IpAddr>,
    pools: Option<BTreeSet<String>>,
    /// The mismatch last reported.
    mismatch: Mismatch,
    /// Gauge for the metrics: members running another pool configuration.
    config_mismatch_members: usize,
    /// Records the `ConfigMismatch` Events on this node's Node.
    events: EventRecorder,
    /// Withdrawn from candidacy (planned stop, drain): announceable pools published empty.
    withdrawn: bool,
}

impl Gossip {
    /// What a metrics scrape reads: the membership's counters and view.
    pub(super) fn metric_handles(&self) -> super::report::GossipHandles {
        super::report::GossipHandles {
            counters: self.membership.counters().clone(),
            view: self.membership.view(),
        }
    }

    /// Members running another pool configuration (for the metrics).
    pub(super) fn config_mismatch_members(&self) -> usize {
        self.config_mismatch_members
    }

    /// Starts membership for `node`, joining `cluster.join` or every other Node's InternalIP;
    /// `events` records what concerns the Node `node`.
    pub(super) async fn start(
        config: &Config,
        node: &str,
        nodes: &Store<NodeInfo>,
        events: EventRecorder,
    ) -> Result<Gossip, DaemonError> {
        let mut settings = Settings::from_config(config, node)
            .map_err(|e| DaemonError::Gossip(format!("cluster.secret_file: {e}")))?;
        if settings.bind.ip().is_unspecified() {
            // Others reach us at our InternalIP (same family as the bind address preferred).
            let ips = nodes
                .iter()
                .find(|n| n.name == node)
                .map(|n| n.internal_ips.clone())
                .unwrap_or_default();
            let ip = ips
                .iter()
                .find(|ip| ip.is_ipv4() == settings.bind.is_ipv4())
                .or(ips.first())
                .ok_or_else(|| {
                    DaemonError::Gossip(format!(
                        "cluster.bind {} is unspecified and Node {node:?} has no InternalIP to advertise; bind to this node's address",
                        settings.bind
                    ))
                })?;
            settings.advertise = Some(SocketAddr::new(*ip, 0));
        }
        let port = settings.bind.port();
        let join = join_list(config, node, nodes, port);
        settings.join = join.clone();
        let membership = Membership::start(settings)
            .await
            .map_err(|e| DaemonError::Gossip(e.to_string()))?;
        tracing::info!(
            addr = %membership.identity().addr,
            join = %join.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
            "gossip membership started"
        );
        Ok(Gossip {
            view: membership.view(),
            membership,
            port,
            join,
            claims: BTreeSet::new(),
            pools: None,
            mismatch: Mismatch::default(),
            config_mismatch_members: 0,
            events,
            withdrawn: false,
        })
    }

    /// The startup gate: joined and holding the reachable members' state, or the sync timeout
    /// passed.
    pub(super) fn synced(&self) -> bool {
        self.view.borrow().synced
    }

    /// Waits for the next change of the view (forever if the membership task is gone, which
    /// is logged).
    pub(super) async fn changed(&mut self) {
        if self.view.changed().await.is_err() {
            tracing::error!("the gossip task stopped; membership is frozen");
            std::future::pending::<()>().await;
        }
    }

    /// After a view change: warns about members configured with other pools, with a
    /// `ConfigMismatch` Event on this node's Node — once per change of who differs and how.
    pub(super) fn check_view(&mut self) {
        let view = self.view.borrow_and_update();
        let mismatch = Mismatch::of(&view);
        if mismatch == self.mismatch {
            return;
        }
        let node = view.me.clone();
        drop(view);
        self.config_mismatch_members = mismatch.others.len();
        if mismatch.others.is_empty() {
            tracing::info!("every member runs this node's pool configuration again");
        } else {
            tracing::warn!(
                members = %mismatch.members(),
                count = self.config_mismatch_members,
                "these members run a different pool configuration; owners may disagree until it is the same everywhere"
            );
            self.events.record(ObjectEvent::node(
                &node,
                EventType::Warning,
                "ConfigMismatch",
                mismatch.message(),
            ));
        }
        self.mismatch = mismatch;
    }

    /// The plan's gossip inputs from the current view.
    pub(super) fn input(&self, failback: Failback) -> GossipInput {
        input_of(&self.view.borrow(), failback)
    }

    /// Publishes this node's pool fingerprint after a configuration reload.
    pub(super) fn reconfigure(&self, config: &Config) {
        self.membership
            .set_fingerprint(crate::membership::pool_fingerprint(config));
    }

    /// Re-computes the join list after a change of the Nodes.
    pub(super) fn nodes_changed(&mut self, config: &Config, nodes: &Store<NodeInfo>) {
        let join = join_list(config, &self.view.borrow().me, nodes, self.port);
        if join != self.join {
            self.membership.set_join(join.clone());
            self.join = join;
        }
    }

    /// Publishes this node's claims (the l2 addresses it announces) and announceable pools,
    /// when they changed.
    pub(super) fn publish(&mut self, claims: BTreeSet<IpAddr>, pools: BTreeSet<String>) {
        if claims != self.claims {
            self.membership.set_claims(claims.clone());
            self.claims = claims;
        }
        let pools = if self.withdrawn {
            BTreeSet::new()
        } else {
            pools
        };
        if self.pools.as_ref() != Some(&pools) {
            self.membership.set_pools(pools.clone());
            self.pools = Some(pools);
        }
    }

    /// Withdraws this node from candidacy while it stays a member: it publishes that it can
    /// announce no pool, so every other node's plan passes it over
    /// ([`Reason::NoUsableInterface`](crate::plan::Reason::NoUsableInterface)) and the
    /// next-ranked takes its addresses — while this node still sees the gossip that says so
    /// (after [`Gossip::leave`] it hears nothing more). [`Gossip::rejoin_candidacy`] undoes it.
    pub(super) fn withdraw(&mut self) {
        self.withdrawn = true;
        self.membership.set_pools(BTreeSet::new());
        self.pools = Some(BTreeSet::new());
    }

    /// Undoes [`Gossip::withdraw`] (an undrain): the next plan publishes the pools again.
    pub(super) fn rejoin_candidacy(&mut self) {
        self.withdrawn = false;
        self.pools = None;
    }

    /// Members alive, of all known.
    pub(super) fn member_count(&self) -> (usize, usize) {
        let view = self.view.borrow();
        (
            view.members.values().filter(|m| m.state.is_alive()).count(),
            view.members.len(),
        )
    }

    /// The members as the status shows them: name, gossip address, state.
    pub(super) fn member_rows(&self) -> Vec<crate::host::dbus::MemberRow> {
        let view = self.view.borrow();
        view.members
            .iter()
            .map(|(name, m)| crate::host::dbus::MemberRow {
                name: name.clone(),
                address: m.addr.to_string(),
                state: m.state.as_str().to_string(),
            })
            .collect()
    }

    /// Leaves the cluster: every member sees this node as left at once, so it is no longer a
    /// candidate anywhere. It hears no gossip afterwards.
    pub(super) async fn leave(&self) {
        if let Err(error) = self.membership.leave().await {
            tracing::warn!(%error, "leaving the gossip cluster");
        }
    }

    /// After [`Gossip::withdraw`]: waits until every address in `announced` is claimed by another
    /// live member, nobody else is alive, or `timeout` passed. Returns the addresses not taken
    /// over.
    pub(super) async fn wait_handover(
        &mut self,
        announced: &BTreeSet<IpAddr>,
        timeout: Duration,
    ) -> BTreeSet<IpAddr> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let pending = self.not_taken_over(announced);
            if pending.is_empty() {
                return pending;
            }
            if tokio::time::timeout_at(deadline, self.view.changed())
                .await
                .map_or(true, |r| r.is_err())
            {
                return self.not_taken_over(announced);
            }
        }
    }

    fn not_taken_over(&self, announced: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
        not_taken_over(&self.view.borrow(), announced)
    }
}

/// The plan's gossip inputs from `view`: members whose metadata has not arrived count as
/// alive but claim nothing and are not restricted to some pools.
fn input_of(view: &MembershipView, failback: Failback) -> GossipInput {
    let mut alive: BTreeSet<String> = view.alive().map(String::from).collect();
    if view.left {
        alive.remove(&view.me);
    }
    let mut claims: BTreeMap<IpAddr, BTreeSet<String>> = BTreeMap::new();
    let mut announceable = BTreeMap::new();
    for (name, m) in &view.members {
        if !m.meta_known {
            continue;
        }
        for a in &m.claims {
            claims.entry(*a).or_default().insert(name.clone());
        }
        announceable.insert(name.clone(), m.pools.clone());
    }
    let quorum = Quorum {
        alive: view.alive().count(),
        known: view
            .members
            .values()
            .filter(|m| m.state != crate::membership::MemberState::Left)
            .count(),
        unsynced: view
            .members
            .values()
            .filter(|m| m.state.is_alive() && !m.meta_known)
            .count(),
    };
    GossipInput {
        alive,
        claims,
        announceable,
        failback,
        quorum,
    }
}

/// The addresses of `announced` no other live member claims; empty when no other member is
/// alive (nobody can take them over: waiting is pointless).
fn not_taken_over(view: &MembershipView, announced: &BTreeSet<IpAddr>) -> BTreeSet<IpAddr> {
    let others: Vec<_> = view
        .members
        .iter()
        .filter(|(n, m)| **n != view.me && m.state.is_alive())
        .map(|(_, m)| m)
        .collect();
    if others.is_empty() {
        return BTreeSet::new();
    }
    announced
        .iter()
        .filter(|a| !others.iter().any(|m| m.claims.contains(a)))
        .copied()
        .collect()
}

/// Whom to join: `cluster.join`, or every other Node's InternalIPs on the gossip port.
fn join_list(config: &Config, me: &str, nodes: &Store<NodeInfo>, port: u16) -> Vec<JoinAddress> {
    if !config.cluster.join.is_empty() {
        return config.cluster.join.clone();
    }
    let mut out: Vec<JoinAddress> = nodes
        .iter()
        .filter(|n| n.name != me)
        .flat_map(|n| n.internal_ips.iter())
        .map(|ip| JoinAddress {
            host: ip.to_string(),
            port,
        })
        .collect();
    out.sort_by(|a, b| (&a.host, a.port).cmp(&(&b.host, b.port)));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::{MemberInfo, MemberState};

    fn member(state: MemberState, pools: &[&str], claims: &[&str]) -> MemberInfo {
        MemberInfo {
            addr: "10.0.0.1:7946".parse().unwrap(),
            state,
            boot: 1,
            incarnation: 0,
            meta_known: true,
            fingerprint: None,
            pools: pools.iter().map(|p| p.to_string()).collect(),
            claims: claims.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    fn view() -> MembershipView {
        let mut unknown = member(MemberState::Alive, &[], &["10.0.0.9"]);
        unknown.meta_known = false;
        MembershipView {
            me: "n1".into(),
            members: BTreeMap::from([
                (
                    "n1".into(),
                    member(MemberState::Alive, &["a"], &["10.0.0.1"]),
                ),
                (
                    "n2".into(),
                    member(MemberState::Suspect, &["a", "b"], &["10.0.0.2"]),
                ),
                (
                    "n3".into(),
                    member(MemberState::Down, &["a"], &["10.0.0.1"]),
                ),
                ("n4".into(), unknown),
            ]),
            synced: true,
            ..MembershipView::default()
        }
    }

    #[test]
    fn input_from_the_view() {
        let g = input_of(&view(), Failback::Sticky);
        assert_eq!(g.alive, ["n1", "n2", "n4"].map(String::from).into());
        // A down member's claims are passed on (the plan ignores claimants that are not
        // alive); a member without metadata claims nothing and is not restricted.
        assert_eq!(
            g.claims[&"10.0.0.1".parse::<IpAddr>().unwrap()],
            ["n1", "n3"].map(String::from).into()
        );
        assert!(!g
            .claims
            .contains_key(&"10.0.0.9".parse::<IpAddr>().unwrap()));
        assert!(!g.announceable.contains_key("n4"));
        assert_eq!(g.announceable["n2"], ["a", "b"].map(String::from).into());

        let mut left = view();
        left.left = true;
        assert!(!input_of(&left, Failback::Sticky).alive.contains("n1"));
    }

    #[test]
    fn quorum_is_a_strict_majority_of_the_members_not_left() {
        // n1, n2, n4 alive; n3 down: 3 of 4.
        let q = input_of(&view(), Failback::Sticky).quorum;
        assert_eq!(
            q,
            Quorum {
                alive: 3,
                known: 4,
                unsynced: 1
            }
        );
        assert!(q.held());
        let q = |alive, known| Quorum {
            alive,
            known,
            unsynced: 0,
        };
        // Two sides of an even split: neither holds it, so neither keeps announcing.
        assert!(!q(2, 4).held());
        assert!(!q(1, 3).held());
        assert!(q(2, 3).held());
        // A member that left on purpose no longer counts against the rest.
        let mut v = view();
        for m in v.members.values_mut() {
            if m.state == crate::membership::MemberState::Down {
                m.state = crate::membership::MemberState::Left;
            }
        }
        assert_eq!(
            input_of(&v, Failback::Sticky).quorum,
            Quorum {
                alive: 3,
                known: 3,
                unsynced: 1
            }
        );
    }

    #[test]
    fn a_fenced_node_waits_for_the_view_to_settle() {
        let q = |alive, unsynced| Quorum {
            alive,
            known: 3,
            unsynced,
        };
        // No majority: fenced, whatever it was, hold or not.
        assert!(q(1, 0).fences(false, false));
        assert!(q(1, 0).fences(true, true));
        // Majority regained, but a member is still down or its claims unknown: stays
        // fenced until they are known or the hold is over...
        assert!(q(2, 0).fences(true, false));
        assert!(q(3, 1).fences(true, false));
        assert!(!q(2, 0).fences(true, true));
        // ...or at once when everyone is back and known.
        assert!(q(3, 0).settled());
        assert!(!q(3, 0).fences(true, false));
        // A node that was not fenced is not fenced by an unsettled view (a member down for
        // good, one that just joined).
        assert!(!q(2, 1).fences(false, false));
    }

    #[test]
    fn a_mismatch_names_the_live_members_with_other_fingerprints() {
        let mut v = view();
        let fp = |b: u8| Some([b; 8]);
        let set = |v: &mut MembershipView, node: &str, f| {
            if let Some(m) = v.members.get_mut(node) {
                m.fingerprint = f;
            }
        };
        set(&mut v, "n1", fp(1));
        set(&mut v, "n2", fp(1));
        assert_eq!(Mismatch::of(&v).others, BTreeMap::new());
        // n2 differs; n3 too but is down; n4's is unknown.
        set(&mut v, "n2", fp(2));
        set(&mut v, "n3", fp(3));
        let m = Mismatch::of(&v);
        assert_eq!(m.others, BTreeMap::from([("n2".to_string(), [2; 8])]));
        assert_eq!(m.members(), "n2");
        assert_eq!(
            m.message(),
            "pool configuration differs from this node's (0101010101010101) on n2 (0202020202020202); owners may disagree until it is the same everywhere"
        );
        // Another fingerprint on the same member is another mismatch (a new Event).
        set(&mut v, "n2", fp(4));
        assert_ne!(Mismatch::of(&v), m);
    }

    #[test]
    fn handover_waits_for_a_live_member_to_claim() {
        let announced: BTreeSet<IpAddr> =
            ["10.0.0.1", "10.0.0.2"].map(|a| a.parse().unwrap()).into();
        // 10.0.0.2 is claimed by n2 (suspect counts as alive); 10.0.0.1 only by a down member.
        assert_eq!(
            not_taken_over(&view(), &announced),
            ["10.0.0.1".parse().unwrap()].into()
        );
        // Nobody else alive: nothing to wait for.
        let mut alone = view();
        alone.members.retain(|n, _| n == "n1" || n == "n3");
        assert!(not_taken_over(&alone, &announced).is_empty());
    }

    #[test]
    fn join_list_is_the_other_nodes_internal_ips() {
        use crate::kube::store::Store;
        let config =
            crate::config::load_str("/etc/ferrolb/ferrolb.toml", "[cluster]\ninsecure = true\n")
                .unwrap()
                .config;
        let mut store: Store<NodeInfo> = Store::default();
        let node = |name: &str, ips: &[&str]| NodeInfo {
            name: name.into(),
            labels: BTreeMap::new(),
            ready: Some(true),
            network_unavailable: false,
            internal_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
        };
        store.apply(crate::kube::reflector::Update::Replaced(vec![
            node("n1", &["10.0.0.1"]),
            node("n2", &["10.0.0.2", "fd00::2"]),
            node("n3", &[]),
        ]));
        let j = join_list(&config, "n1", &store, 7946);
        assert_eq!(
            j.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.2:7946", "[fd00::2]:7946"]
        );
        let explicit = crate::config::load_str(
            "/etc/ferrolb/ferrolb.toml",
            "[cluster]\ninsecure = true\njoin = [\"10.0.0.5\"]\n",
        )
        .unwrap()
        .config;
        // `cluster.join` wins over the Nodes.
        let j = join_list(&explicit, "n1", &store, 7946);
        assert_eq!(
            j.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["10.0.0.5:7946"]
        );
    }
}
