//! The allocator role's decisions: for each Service event, what to write to the API. Pure —
//! values in, [`Action`]s out; the daemon performs them while it holds the allocator Lease.
//!
//! - On taking the Lease, [`Controller::start`] decides every Service at once from their
//!   current status (the status is the database): nothing that is still valid moves, and only
//!   then do pending Services get addresses.
//! - Afterwards each change of a Service goes through [`Controller::service_changed`]; a
//!   deletion (or a Service that stops being ours) frees its addresses and retries the Services
//!   that are waiting for one.
//! - A Service is *ours* when it is `type: LoadBalancer` and its `spec.loadBalancerClass`
//!   equals `kubernetes.load_balancer_class` (both unset counts as equal). A Service that stops
//!   being ours has its status cleared only if we wrote it (our pool annotation is on it); a
//!   Service of another class is never touched.
//! - Events follow MetalLB's reasons and wording: `IPAllocated` ("Assigned IP [...]"),
//!   `AllocationFailed` ("Failed to allocate IP for "ns/name": ..."), `ClearAssignment`.
//!   A failure is reported once per distinct reason, not on every retry.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::ipam::{self, AllocError, PortInput, ServiceInput, ServiceKey, ServiceSpec};
use crate::kube::objects::{ObjectKey, ServiceInfo};
use crate::kube::status::POOL_ANNOTATION;

/// `Normal` or `Warning`, as Kubernetes Events have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something worked.
    Normal,
    /// Something the user should look at.
    Warning,
}

/// An Event to record on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Normal or Warning.
    pub severity: Severity,
    /// The Event reason.
    pub reason: &'static str,
    /// The Event message.
    pub message: String,
}

/// One thing to do against the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Set the Service's ingress addresses and pool annotation.
    Write {
        /// The Service.
        key: ObjectKey,
        /// Precondition for the status write.
        resource_version: String,
        /// The addresses, in the Service's family order.
        addresses: Vec<IpAddr>,
        /// The pool they came from.
        pool: String,
        /// Whether the addresses differ from the status (else only the annotation is fixed).
        status_changed: bool,
        /// An Event to record.
        note: Option<Note>,
    },
    /// Clear the Service's ingress addresses and pool annotation.
    Clear {
        /// The Service.
        key: ObjectKey,
        /// Precondition for the status write.
        resource_version: String,
        /// An Event to record.
        note: Option<Note>,
    },
    /// Only record an Event.
    Report {
        /// The Service.
        key: ObjectKey,
        /// Its uid (Events refer to it).
        uid: String,
        /// The Event.
        note: Note,
    },
}

impl Action {
    /// The Service this action is about.
    pub fn key(&self) -> &ObjectKey {
        match self {
            Action::Write { key, .. } | Action::Clear { key, .. } | Action::Report { key, .. } => {
                key
            }
        }
    }
}

/// The allocator's memory while it holds the Lease.
#[derive(Debug, Clone)]
pub struct Controller {
    ipam: ipam::Allocator,
    class: Option<String>,
    /// Services waiting for an address: the last reason reported, its kind, and the Service as
    /// last seen (to retry it when addresses are freed).
    pending: BTreeMap<ObjectKey, (String, &'static str, ServiceInfo)>,
}

impl Controller {
    /// A controller over `pools` for Services of `class`.
    pub fn new(pools: &[ipam::Pool], class: Option<String>) -> Controller {
        Controller {
            ipam: ipam::Allocator::new(pools),
            class,
            pending: BTreeMap::new(),
        }
    }

    /// Number of Services holding addresses (for status lines and metrics).
    pub fn allocated(&self) -> usize {
        self.ipam.len()
    }

    /// Number of Services waiting for an address.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Services waiting for an address, by the kind of their last refusal
    /// ([`AllocError::kind`]).
    pub fn pending_by_kind(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (_, kind, _) in self.pending.values() {
            *out.entry(*kind).or_insert(0) += 1;
        }
        out
    }

    /// Size and use of each pool.
    pub fn usage(&self) -> Vec<(String, ipam::PoolUsage)> {
        self.ipam.usage()
    }

    /// Whether `svc` is handled by this allocator.
    pub fn is_ours(&self, svc: &ServiceInfo) -> bool {
        svc.is_load_balancer() && svc.load_balancer_class == self.class
    }

    /// Decides every Service at once, from their current status: the first thing done after
    /// taking the Lease.
    pub fn start<'a>(
        &mut self,
        services: impl IntoIterator<Item = &'a ServiceInfo>,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut ours: BTreeMap<ObjectKey, &ServiceInfo> = BTreeMap::new();
        for svc in services {
            if self.is_ours(svc) {
                ours.insert(svc.key.clone(), svc);
            } else if let Some(a) = self.clear_foreign(svc) {
                actions.push(a);
            }
        }
        let specs: Vec<ServiceSpec> = ours.values().map(|s| spec_of(s)).collect();
        for (ikey, result) in self.ipam.assign_all(&specs) {
            let key = ObjectKey {
                namespace: ikey.namespace().to_string(),
                name: ikey.name().to_string(),
            };
            if let Some(svc) = ours.get(&key) {
                actions.extend(self.outcome(svc, result));
            }
        }
        actions
    }

    /// Decides after a change: `svc` is the Service as now known, `None` if it was deleted.
    pub fn service_changed(&mut self, key: &ObjectKey, svc: Option<&ServiceInfo>) -> Vec<Action> {
        match svc {
            Some(svc) if self.is_ours(svc) => {
                let result = self.ipam.assign(&spec_of(svc));
                let freed = result.is_err();
                let mut actions = self.outcome(svc, result);
                if freed {
                    // A refused Service holds nothing: what it held may serve a waiting one.
                    actions.extend(self.retry_pending(key));
                }
                actions
            }
            Some(svc) => {
                let released = self.release(key);
                let mut actions: Vec<Action> = self.clear_foreign(svc).into_iter().collect();
                if released {
                    actions.extend(self.retry_pending(key));
                }
                actions
            }
            None => {
                if self.release(key) {
                    self.retry_pending(key)
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Applies new pools (a configuration reload): Services whose addresses are no longer valid
    /// are decided again; all others keep theirs.
    pub fn set_pools<'a>(
        &mut self,
        pools: &[ipam::Pool],
        lookup: impl Fn(&ObjectKey) -> Option<&'a ServiceInfo>,
    ) -> Vec<Action> {
        let change = self.ipam.set_pools(pools);
        let mut keys: BTreeSet<ObjectKey> = change
            .invalidated
            .iter()
            .chain(&change.repooled)
            .map(|k| ObjectKey {
                namespace: k.namespace().to_string(),
                name: k.name().to_string(),
            })
            .collect();
        keys.extend(self.pending.keys().cloned());
        let mut actions = Vec::new();
        for key in keys {
            if let Some(svc) = lookup(&key) {
                actions.extend(self.service_changed(&key, Some(svc)));
            }
        }
        actions
    }

    fn release(&mut self, key: &ObjectKey) -> bool {
        self.pending.remove(key);
        self.ipam
            .release(&ServiceKey::new(&key.namespace, &key.name))
            .is_some()
    }

    /// Addresses were freed: give pending Services another chance (all but `except`, which
    /// was just decided), in key order.
    fn retry_pending(&mut self, except: &ObjectKey) -> Vec<Action> {
        let waiting: Vec<ServiceInfo> = self
            .pending
            .iter()
            .filter(|(k, _)| *k != except)
            .map(|(_, (_, _, svc))| svc.clone())
            .collect();
        let mut actions = Vec::new();
        for svc in waiting {
            let result = self.ipam.assign(&spec_of(&svc));
            actions.extend(self.outcome(&svc, result));
        }
        actions
    }

    /// A Service that is not ours but carries our status: clear it, once.
    fn clear_foreign(&self, svc: &ServiceInfo) -> Option<Action> {
        let ours_before = svc.annotations.contains_key(POOL_ANNOTATION);
        ours_before.then(|| Action::Clear {
            key: svc.key.clone(),
            resource_version: svc.resource_version.clone(),
            note: None,
        })
    }

    fn outcome(
        &mut self,
        svc: &ServiceInfo,
        result: Result<ipam::Assignment, AllocError>,
    ) -> Vec<Action> {
        let key = svc.key.clone();
        match result {
            Ok(assignment) => {
                self.pending.remove(&key);
                let status_changed = !same_addresses(&svc.ingress, &assignment.addresses);
                let annotated = svc.annotations.get(POOL_ANNOTATION) == Some(&assignment.pool);
                if !status_changed && annotated {
                    return Vec::new();
                }
                let note = status_changed.then(|| Note {
                    severity: Severity::Normal,
                    reason: "IPAllocated",
                    message: format!("Assigned IP {}", go_quoted(&assignment.addresses)),
                });
                vec![Action::Write {
                    key,
                    resource_version: svc.resource_version.clone(),
                    addresses: assignment.addresses,
                    pool: assignment.pool,
                    status_changed,
                    note,
                }]
            }
            Err(error) => {
                let reason = error.to_string();
                let repeated = self.pending.get(&key).is_some_and(|(r, _, _)| *r == reason);
                self.pending
                    .insert(key.clone(), (reason.clone(), error.kind(), svc.clone()));
                let note = (!repeated).then(|| Note {
                    severity: Severity::Warning,
                    reason: "AllocationFailed",
                    message: format!("Failed to allocate IP for \"{key}\": {reason}"),
                });
                if svc.ingress.is_empty() && !svc.annotations.contains_key(POOL_ANNOTATION) {
                    return note
                        .map(|note| Action::Report {
                            key,
                            uid: svc.uid.clone(),
                            note,
                        })
                        .into_iter()
                        .collect();
                }
                vec![Action::Clear {
                    key,
                    resource_version: svc.resource_version.clone(),
                    note,
                }]
            }
        }
    }
}

/// Whether two address lists hold the same addresses (order aside).
fn same_addresses(a: &[IpAddr], b: &[IpAddr]) -> bool {
    let a: BTreeSet<&IpAddr> = a.iter().collect();
    let b: BTreeSet<&IpAddr> = b.iter().collect();
    a == b
}

/// `["192.168.10.10" "fd00::1"]`, as Go's `%q` prints a slice (MetalLB's event wording).
fn go_quoted(addresses: &[IpAddr]) -> String {
    let parts: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!("[{}]", parts.join(" "))
}

/// The IPAM view of a Service.
pub fn spec_of(svc: &ServiceInfo) -> ServiceSpec {
    let ingress: Vec<String> = svc.ingress.iter().map(ToString::to_string).collect();
    let ingress: Vec<&str> = ingress.iter().map(String::as_str).collect();
    let families: Vec<&str> = svc.ip_families.iter().map(String::as_str).collect();
    let ports: Vec<PortInput<'_>> = svc
        .ports
        .iter()
        .map(|p| PortInput {
            protocol: Some(p.protocol.as_str()),
            port: i32::from(p.port),
        })
        .collect();
    ServiceSpec::parse(&ServiceInput {
        namespace: &svc.key.namespace,
        name: &svc.key.name,
        annotations: Some(&svc.annotations),
        load_balancer_ip: svc.load_balancer_ip.as_deref(),
        ingress_ips: &ingress,
        ip_families: &families,
        ip_family_policy: svc.ip_family_policy.as_deref(),
        ports: &ports,
        external_traffic_policy: Some(svc.external_traffic_policy.as_str()),
        selector: Some(&svc.selector),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::{IpRange, Pool};
    use crate::kube::objects::ServicePort;

    fn pool(name: &str, range: &str) -> Pool {
        Pool::new(name, vec![range.parse::<IpRange>().unwrap()])
    }

    fn svc(name: &str, rv: &str) -> ServiceInfo {
        ServiceInfo {
            key: ObjectKey {
                namespace: "default".into(),
                name: name.into(),
            },
            uid: format!("uid-{name}"),
            resource_version: rv.into(),
            service_type: "LoadBalancer".into(),
            load_balancer_class: None,
            annotations: BTreeMap::new(),
            load_balancer_ip: None,
            ip_families: vec!["IPv4".into()],
            ip_family_policy: None,
            ports: vec![ServicePort {
                protocol: "TCP".into(),
                port: 80,
            }],
            external_traffic_policy: "Cluster".into(),
            selector: BTreeMap::new(),
            ingress: vec![],
        }
    }

    /// The Service as the API has it after `action` was written.
    fn written(mut s: ServiceInfo, action: &Action) -> ServiceInfo {
        match action {
            Action::Write {
                addresses, pool, ..
            } => {
                s.ingress = addresses.clone();
                s.annotations.insert(POOL_ANNOTATION.into(), pool.clone());
            }
            Action::Clear { .. } => {
                s.ingress.clear();
                s.annotations.remove(POOL_ANNOTATION);
            }
            Action::Report { .. } => {}
        }
        s
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn start_keeps_status_and_allocates_pending_after() {
        let mut c = Controller::new(&[pool("p", "10.0.0.1-10.0.0.3")], None);
        // b already holds .3 (from before a restart); a is new. a must not get .3.
        let mut b = svc("b", "1");
        b.ingress = vec![ip("10.0.0.3")];
        b.annotations.insert(POOL_ANNOTATION.into(), "p".into());
        let a = svc("a", "2");
        let actions = c.start([&b, &a]);
        assert_eq!(actions.len(), 1, "{actions:?}");
        match &actions[0] {
            Action::Write {
                key,
                addresses,
                pool,
                status_changed,
                note,
                ..
            } => {
                assert_eq!(key.name, "a");
                assert_eq!(addresses, &vec![ip("10.0.0.1")]);
                assert_eq!(pool, "p");
                assert!(status_changed);
                let note = note.as_ref().unwrap();
                assert_eq!(note.reason, "IPAllocated");
                assert_eq!(note.message, "Assigned IP [\"10.0.0.1\"]");
            }
            other => panic!("{other:?}"),
        }
        // The write comes back through the watch: nothing more to do.
        let a2 = written(a, &actions[0]);
        assert!(c.service_changed(&a2.key, Some(&a2)).is_empty());
        assert_eq!(c.allocated(), 2);
    }

    #[test]
    fn exhausted_pool_reports_once_and_serves_the_waiter_when_freed() {
        let mut c = Controller::new(&[pool("tiny", "10.0.0.1/32")], None);
        let a = svc("a", "1");
        let b = svc("b", "2");
        let wa = c.service_changed(&a.key, Some(&a));
        let a = written(a, &wa[0]);
        let wb = c.service_changed(&b.key, Some(&b));
        match &wb[..] {
            [Action::Report { note, .. }] => {
                assert_eq!(note.reason, "AllocationFailed");
                assert_eq!(note.severity, Severity::Warning);
                assert!(note.message.contains("\"default/b\""), "{}", note.message);
                assert!(note.message.contains("tiny"), "{}", note.message);
            }
            other => panic!("{other:?}"),
        }
        // The same failure again (e.g. a resync) is not reported twice.
        assert!(c.service_changed(&b.key, Some(&b)).is_empty());
        assert_eq!(c.pending(), 1);
        // a is deleted: b gets its address.
        let freed = c.service_changed(&a.key, None);
        match &freed[..] {
            [Action::Write { key, addresses, .. }] => {
                assert_eq!(key.name, "b");
                assert_eq!(addresses, &vec![ip("10.0.0.1")]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn leaving_load_balancer_clears_only_what_we_wrote() {
        let mut c = Controller::new(&[pool("p", "10.0.0.0/30")], None);
        let a = svc("a", "1");
        let w = c.service_changed(&a.key, Some(&a));
        let mut a = written(a, &w[0]);
        a.service_type = "ClusterIP".into();
        match &c.service_changed(&a.key, Some(&a))[..] {
            [Action::Clear { key, .. }] => assert_eq!(key.name, "a"),
            other => panic!("{other:?}"),
        }
        let clear = Action::Clear {
            key: a.key.clone(),
            resource_version: String::new(),
            note: None,
        };
        let a = written(a, &clear);
        assert!(c.service_changed(&a.key, Some(&a)).is_empty());
        assert_eq!(c.allocated(), 0);
    }

    #[test]
    fn other_classes_are_never_touched() {
        let mut c = Controller::new(&[pool("p", "10.0.0.0/30")], Some("ferrolb.io/lb".into()));
        let mut other = svc("x", "1");
        other.load_balancer_class = Some("other.io/lb".into());
        other.ingress = vec![ip("192.0.2.1")];
        assert!(c.service_changed(&other.key, Some(&other)).is_empty());
        assert!(c.start([&other]).is_empty());
        let unset = svc("y", "1");
        assert!(c.service_changed(&unset.key, Some(&unset)).is_empty());
        let mut mine = svc("z", "1");
        mine.load_balancer_class = Some("ferrolb.io/lb".into());
        assert_eq!(c.service_changed(&mine.key, Some(&mine)).len(), 1);
    }

    #[test]
    fn pool_shrink_moves_only_invalidated_services() {
        let mut c = Controller::new(&[pool("p", "10.0.0.1-10.0.0.4")], None);
        let mut store = BTreeMap::new();
        for name in ["a", "b", "c"] {
            let s = svc(name, "1");
            let w = c.service_changed(&s.key, Some(&s));
            store.insert(s.key.clone(), written(s, &w[0]));
        }
        // .3 (held by c) leaves the pool.
        let actions = c.set_pools(
            &[pool("p", "10.0.0.1-10.0.0.2"), pool("q", "10.0.1.0/30")],
            |k| store.get(k),
        );
        match &actions[..] {
            [Action::Write { key, addresses, .. }] => {
                assert_eq!(key.name, "c");
                assert_eq!(addresses, &vec![ip("10.0.1.0")]);
            }
            other => panic!("{other:?}"),
        }
    }
}
