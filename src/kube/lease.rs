//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics: the holder
//! renews every `retry_period`; a candidate takes over when it has seen the same record unchanged
//! for `leaseDurationSeconds` by its *own* clock (so clock skew between nodes does not matter);
//! every write carries the `resourceVersion` it was decided on, so of two racing candidates one
//! gets 409 and stays a follower; a holder that cannot renew within `renew_deadline` stops
//! leading; a clean shutdown releases the Lease (empty holder) so a peer takes it at once.
//!
//! [`Elector`] is the pure decision; [`run`] does the IO.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use tokio::sync::watch;
use tokio::time::Instant;

use super::client::Client;
use super::error::KubeError;

/// The fields of a Lease that leader election reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    /// `spec.holderIdentity` (empty when released).
    pub holder: String,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
    /// `spec.acquireTime`.
    pub acquire_time: Option<Timestamp>,
    /// `spec.leaseTransitions`.
    pub transitions: i32,
    /// `metadata.resourceVersion`: the precondition of our next write.
    pub resource_version: String,
}

impl LeaseRecord {
    /// Reads the record out of a Lease.
    pub fn from_lease(lease: &Lease) -> LeaseRecord {
        let spec = lease.spec.clone().unwrap_or_default();
        LeaseRecord {
            holder: spec.holder_identity.unwrap_or_default(),
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ),
            acquire_time: spec.acquire_time.map(|t| t.0),
            transitions: spec.lease_transitions.unwrap_or(0),
            resource_version: lease.metadata.resource_version.clone().unwrap_or_default(),
        }
    }
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// No Lease exists: create this one.
    Create(LeaseSpec),
    /// Write this spec over the Lease at `resource_version` (renew, take over, or release).
    Update {
        /// Precondition.
        resource_version: String,
        /// The new spec.
        spec: LeaseSpec,
    },
    /// Someone else holds a live Lease.
    Follow {
        /// Who.
        holder: String,
    },
}

impl Step {
    /// The write this step asks for: the precondition (`None`: create) and the spec.
    fn into_write(self) -> Option<(Option<String>, LeaseSpec)> {
        match self {
            Step::Create(spec) => Some((None, spec)),
            Step::Update {
                resource_version,
                spec,
            } => Some((Some(resource_version), spec)),
            Step::Follow { .. } => None,
        }
    }
}

/// The pure leader-election decision for one candidate.
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    lease_duration: Duration,
    /// The last record seen and when (by our monotonic clock) it was first seen.
    observed: Option<(String, Instant)>,
}

impl Elector {
    /// A candidate named `identity` (the node name) asking for leases of `lease_duration`.
    pub fn new(identity: impl Into<String>, lease_duration: Duration) -> Elector {
        Elector {
            identity: identity.into(),
            lease_duration,
            observed: None,
        }
    }

    /// This candidate's identity.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// Decides, given the Lease as just read (`None`: it does not exist).
    pub fn step(&mut self, current: Option<&LeaseRecord>, now: Instant, wall: Timestamp) -> Step {
        let Some(rec) = current else {
            return Step::Create(self.spec(wall, Some(wall), 0));
        };
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|(rv, _)| *rv != rec.resource_version);
        if changed {
            self.observed = Some((rec.resource_version.clone(), now));
        }
        let update = |spec| Step::Update {
            resource_version: rec.resource_version.clone(),
            spec,
        };
        if rec.holder == self.identity {
            return update(self.spec(wall, rec.acquire_time, rec.transitions));
        }
        let seen_at = self.observed.as_ref().map_or(now, |(_, at)| *at);
        let expired = now.saturating_duration_since(seen_at) >= rec.duration;
        if rec.holder.is_empty() || expired {
            return update(self.spec(wall, Some(wall), rec.transitions.saturating_add(1)));
        }
        Step::Follow {
            holder: rec.holder.clone(),
        }
    }

    /// The spec that gives the Lease up: empty holder, so any candidate takes it at once.
    pub fn release(&self, rec: &LeaseRecord, wall: Timestamp) -> Option<Step> {
        (rec.holder == self.identity).then(|| Step::Update {
            resource_version: rec.resource_version.clone(),
            spec: LeaseSpec {
                holder_identity: None,
                lease_duration_seconds: Some(1),
                acquire_time: Some(MicroTime(wall)),
                renew_time: Some(MicroTime(wall)),
                lease_transitions: Some(rec.transitions),
                ..LeaseSpec::default()
            },
        })
    }

    fn spec(&self, wall: Timestamp, acquired: Option<Timestamp>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: acquired.map(MicroTime),
            renew_time: Some(MicroTime(wall)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }
}

/// Timings of an election, as in client-go (`LeaseDuration`, `RenewDeadline`, `RetryPeriod`).
#[derive(Debug, Clone)]
pub struct ElectionSettings {
    /// Namespace of the Lease.
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// How long a silent holder keeps the Lease.
    pub lease_duration: Duration,
    /// A holder that has not renewed for this long stops leading.
    pub renew_deadline: Duration,
    /// Interval between attempts.
    pub retry_period: Duration,
}

/// Runs the election until `shutdown` turns true; `leading` tells the daemon whether this node
/// holds the Lease. On shutdown a held Lease is released.
pub async fn run(
    client: Client,
    settings: ElectionSettings,
    mut elector: Elector,
    leading: watch::Sender<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases/{}",
        settings.namespace, settings.name
    );
    let collection = format!(
        "/apis/coordination.k8s.io/v1/namespaces/{}/leases",
        settings.namespace
    );
    let mut last_renew: Option<Instant> = None;
    let mut last_record: Option<LeaseRecord> = None;
    loop {
        // A holder stops leading once renew_deadline has passed since its last renewal, also
        // while a request hangs (a cut cable answers nothing until the 30 s request timeout):
        // each attempt gets only what is left of the deadline.
        let budget = match last_renew {
            Some(at) if *leading.borrow() => {
                (at + settings.renew_deadline).saturating_duration_since(Instant::now())
            }
            _ => settings.renew_deadline,
        };
        let attempted = attempt(&client, &path, &collection, &settings, &mut elector);
        let result = tokio::time::timeout(budget, attempted).await;
        let now = Instant::now();
        match result {
            Ok(Ok((record, true))) => {
                if !*leading.borrow() {
                    tracing::info!(lease = %settings.name, identity = elector.identity(), transitions = record.transitions, "acquired the allocator lease");
                }
                last_renew = Some(now);
                last_record = Some(record);
                leading.send_replace(true);
            }
            Ok(Ok((record, false))) => {
                if *leading.borrow() {
                    tracing::warn!(lease = %settings.name, holder = %record.holder, "lost the allocator lease");
                }
                last_record = Some(record);
                leading.send_replace(false);
            }
            failed => {
                match failed {
                    Ok(Err(error)) => {
                        tracing::warn!(lease = %settings.name, %error, "lease attempt failed")
                    }
                    _ => {
                        tracing::warn!(lease = %settings.name, timeout = ?budget, "lease attempt timed out")
                    }
                }
                let overdue = last_renew
                    .is_none_or(|at| now.saturating_duration_since(at) >= settings.renew_deadline);
                if *leading.borrow() && overdue {
                    tracing::error!(lease = %settings.name, "could not renew the allocator lease in time; stepping down");
                    leading.send_replace(false);
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry_period) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    if *leading.borrow() {
        leading.send_replace(false);
        let release = last_record
            .and_then(|r| elector.release(&r, Timestamp::now()))
            .and_then(Step::into_write);
        if let Some((rv, spec)) = release {
            match write(&client, &path, &collection, &settings, rv, spec).await {
                Ok(_) => tracing::info!(lease = %settings.name, "released the allocator lease"),
                Err(error) => {
                    tracing::warn!(lease = %settings.name, %error, "could not release the allocator lease; it expires by itself")
                }
            }
        }
    }
}

/// One round: read, decide, write. Returns the record now in force and whether we hold it.
async fn attempt(
    client: &Client,
    path: &str,
    collection: &str,
    settings: &ElectionSettings,
    elector: &mut Elector,
) -> Result<(LeaseRecord, bool), KubeError> {
    let current = match client.get::<Lease>(path, &[]).await {
        Ok(lease) => Some(LeaseRecord::from_lease(&lease)),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let step = elector.step(current.as_ref(), Instant::now(), Timestamp::now());
    let Some((rv, spec)) = step.into_write() else {
        // Following: someone else holds the record we just read.
        return Ok((current.unwrap_or_else(empty_record), false));
    };
    match write(client, path, collection, settings, rv, spec).await {
        Ok(lease) => Ok((LeaseRecord::from_lease(&lease), true)),
        // Another candidate wrote first: it leads; we will read its record next round.
        Err(e) if e.is_conflict() => Ok((current.unwrap_or_else(empty_record), false)),
        Err(e) => Err(e),
    }
}

fn empty_record() -> LeaseRecord {
    LeaseRecord {
        holder: String::new(),
        duration: Duration::ZERO,
        acquire_time: None,
        transitions: 0,
        resource_version: String::new(),
    }
}

/// Creates the Lease (`resource_version` `None`) or replaces it at `resource_version`.
async fn write(
    client: &Client,
    path: &str,
    collection: &str,
    settings: &ElectionSettings,
    resource_version: Option<String>,
    spec: LeaseSpec,
) -> Result<Lease, KubeError> {
    let create = resource_version.is_none();
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some(settings.name.clone()),
            namespace: Some(settings.namespace.clone()),
            resource_version,
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    };
    if create {
        client.create(collection, &lease).await
    } else {
        client.replace(path, &lease).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(holder: &str, rv: &str, transitions: i32) -> LeaseRecord {
        LeaseRecord {
            holder: holder.into(),
            duration: Duration::from_secs(15),
            acquire_time: None,
            transitions,
            resource_version: rv.into(),
        }
    }

    fn holder_of(step: &Step) -> Option<String> {
        match step {
            Step::Create(spec) | Step::Update { spec, .. } => spec.holder_identity.clone(),
            Step::Follow { .. } => None,
        }
    }

    #[test]
    fn creates_a_missing_lease() {
        let mut e = Elector::new("a", Duration::from_secs(15));
        let step = e.step(None, Instant::now(), Timestamp::UNIX_EPOCH);
        match step {
            Step::Create(spec) => {
                assert_eq!(spec.holder_identity.as_deref(), Some("a"));
                assert_eq!(spec.lease_duration_seconds, Some(15));
                assert_eq!(spec.lease_transitions, Some(0));
                assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn follows_a_live_holder_and_takes_over_after_expiry_by_own_clock() {
        let mut e = Elector::new("b", Duration::from_secs(15));
        let t0 = Instant::now();
        let r = rec("a", "10", 3);
        assert_eq!(
            e.step(Some(&r), t0, Timestamp::UNIX_EPOCH),
            Step::Follow { holder: "a".into() }
        );
        // Same record 14 s later: still live.
        let t1 = t0 + Duration::from_secs(14);
        assert!(matches!(
            e.step(Some(&r), t1, Timestamp::UNIX_EPOCH),
            Step::Follow { .. }
        ));
        // The holder renewed (new rv): the clock restarts.
        let r2 = rec("a", "11", 3);
        let t2 = t0 + Duration::from_secs(16);
        assert!(matches!(
            e.step(Some(&r2), t2, Timestamp::UNIX_EPOCH),
            Step::Follow { .. }
        ));
        // Unchanged for a full lease duration: take over, one more transition.
        let t3 = t2 + Duration::from_secs(15);
        let step = e.step(Some(&r2), t3, Timestamp::UNIX_EPOCH);
        assert_eq!(holder_of(&step).as_deref(), Some("b"));
        match step {
            Step::Update {
                resource_version,
                spec,
            } => {
                assert_eq!(resource_version, "11");
                assert_eq!(spec.lease_transitions, Some(4));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn renews_own_lease_keeping_acquire_time_and_transitions() {
        let mut e = Elector::new("a", Duration::from_secs(15));
        let mut r = rec("a", "5", 2);
        r.acquire_time = Some(Timestamp::UNIX_EPOCH);
        match e.step(
            Some(&r),
            Instant::now(),
            Timestamp::from_second(100).unwrap(),
        ) {
            Step::Update { spec, .. } => {
                assert_eq!(spec.acquire_time, Some(MicroTime(Timestamp::UNIX_EPOCH)));
                assert_eq!(
                    spec.renew_time,
                    Some(MicroTime(Timestamp::from_second(100).unwrap()))
                );
                assert_eq!(spec.lease_transitions, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn released_lease_is_taken_at_once_and_only_the_holder_releases() {
        let mut e = Elector::new("b", Duration::from_secs(15));
        let released = rec("", "7", 1);
        assert_eq!(
            holder_of(&e.step(Some(&released), Instant::now(), Timestamp::UNIX_EPOCH)).as_deref(),
            Some("b")
        );
        let a = Elector::new("a", Duration::from_secs(15));
        assert!(a
            .release(&rec("b", "8", 2), Timestamp::UNIX_EPOCH)
            .is_none());
        let step = a.release(&rec("a", "8", 2), Timestamp::UNIX_EPOCH).unwrap();
        assert_eq!(holder_of(&step), None);
    }
}
