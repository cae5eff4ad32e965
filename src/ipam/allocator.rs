//! The allocator: who holds which address, and the decision for one Service or a whole batch.
//!
//! State is kept so that one more Service costs `O(log n)` however many are allocated:
//! - per pool and family, the taken addresses as maximal runs (module `space`), so the lowest
//!   free address is one or two B-tree look-ups away;
//! - an index address → holders (sorted keys), for sharing and for "in use by `ns/name`";
//! - per address, the ports used on it and by whom, so sharing is checked in `O(log n)`
//!   however many Services share it;
//! - an index of shared addresses by sharing group (key and backends), then by a hash of the
//!   set of ports used on them, so a Service that may share finds an address to join by
//!   looking at one candidate per distinct port set — not at every address of its group, and
//!   never at other Services;
//! - per Service, a small record: its addresses, pool, sharing terms, pinned pool.
//!
//! Nothing here reads a clock or does IO; the same calls in the same order give the same
//! answers.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::pool::{Pool, PoolTable, PoolUsage};
use super::range::{to_u128, Family};
use super::reason::{AllocError, Exhausted};
use super::service::{IpFamilyPolicy, Port, ServiceKey, ServiceSpec};
use super::sharing::{self, Group, Sharing};
use super::smallmap::SmallMap;

/// The addresses a Service gets and the pool they come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Assignment {
    /// One address per family, in the order of the Service's `ipFamilies`.
    pub addresses: Vec<IpAddr>,
    /// The pool, for the `ferrolb.io/ip-allocated-from-pool` annotation.
    pub pool: String,
}

/// What [`Allocator::set_pools`] changed for Services already holding addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PoolChange {
    /// Services that lost at least one address (it left every pool, or its pool may no longer
    /// give it to them). They keep their still-valid addresses until re-assigned: call
    /// [`Allocator::assign`] for each.
    pub invalidated: Vec<ServiceKey>,
    /// Services whose addresses are all still valid but now belong to a differently named pool.
    pub repooled: Vec<ServiceKey>,
}

/// One Service's holding.
#[derive(Debug, Clone)]
struct Record {
    /// In the order of the Service's families.
    addresses: Vec<IpAddr>,
    pool: usize,
    /// Present only for Services that allow sharing.
    sharing: Option<Box<Sharing>>,
    /// The pool annotation.
    pin: Option<String>,
    /// Whether the addresses were requested (they may then come from a pool without
    /// `auto_assign`).
    requested: bool,
}

/// A decision not yet applied.
#[derive(Debug, Clone)]
struct Plan {
    pool: usize,
    addresses: Vec<IpAddr>,
}

/// Holders of one address.
#[derive(Debug, Clone)]
struct Holders {
    pool: usize,
    keys: SmallMap<ServiceKey, ()>,
    /// The ports the sharing holders use on it, each with the holder using it.
    ports: SmallMap<Port, ServiceKey>,
    /// [`sharing::signature`] of `ports`: the address's bucket in the sharing index.
    signature: u64,
}

/// Shared addresses of one sharing group, by the signature of the ports used on them.
type BySignature = BTreeMap<u64, BTreeSet<(usize, IpAddr)>>;

/// Hands out addresses from pools to Services and remembers who holds what.
///
/// Use [`Allocator::assign_all`] (or [`allocate_all`]) when starting from the Services' status,
/// then [`Allocator::assign`] / [`Allocator::release`] as Services change.
#[derive(Debug, Clone, Default)]
pub struct Allocator {
    pools: PoolTable,
    services: BTreeMap<ServiceKey, Record>,
    addresses: BTreeMap<IpAddr, Holders>,
    shared: BTreeMap<Group, BySignature>,
}

/// Decides every Service at once, as the allocator does when it takes the Lease: first every
/// Service keeps its still-valid current addresses (key order), then the others are decided in
/// key order. If `services` names a key twice, the last one counts.
pub fn allocate_all(
    pools: &[Pool],
    services: &[ServiceSpec],
) -> BTreeMap<ServiceKey, Result<Assignment, AllocError>> {
    Allocator::new(pools).assign_all(services)
}

impl Allocator {
    /// An allocator over `pools` (configuration order), holding nothing.
    pub fn new(pools: &[Pool]) -> Allocator {
        Allocator {
            pools: PoolTable::new(pools),
            ..Allocator::default()
        }
    }

    /// Decides one Service and records the result.
    ///
    /// The Service keeps what it holds (what this allocator gave it, or else its status) while
    /// that stays valid; otherwise it gets new addresses, and its old ones are released. On
    /// error it holds nothing.
    pub fn assign(&mut self, spec: &ServiceSpec) -> Result<Assignment, AllocError> {
        self.assign_with(spec, None)
    }

    /// Decides a batch: first every Service that holds still-valid addresses keeps them (key
    /// order), so that no request and no new Service can take an address another Service
    /// validly holds; then every Service is decided in key order (new Services get addresses,
    /// `PreferDualStack` ones may gain their second family); finally the reasons of refused
    /// Services are stated against the final state. If `specs` names a key twice, the last
    /// one counts. Services this allocator holds but `specs` does not name are left alone.
    pub fn assign_all(
        &mut self,
        specs: &[ServiceSpec],
    ) -> BTreeMap<ServiceKey, Result<Assignment, AllocError>> {
        let by_key: BTreeMap<&ServiceKey, &ServiceSpec> =
            specs.iter().map(|s| (s.key(), s)).collect();
        let mut stash: BTreeMap<&ServiceKey, Vec<IpAddr>> = BTreeMap::new();
        for (&key, &spec) in &by_key {
            let previous = self.take(key);
            let current = previous
                .as_ref()
                .map_or(spec.current(), |r| &r.addresses[..]);
            match self.keep_as_is(spec, current) {
                Some(plan) => {
                    self.put(spec, plan);
                }
                None => {
                    if let Some(previous) = previous {
                        stash.insert(key, previous.addresses);
                    }
                }
            }
        }
        let mut results: BTreeMap<ServiceKey, Result<Assignment, AllocError>> = by_key
            .iter()
            .map(|(&key, &spec)| {
                let fallback = stash.get(key).map(Vec::as_slice);
                (key.clone(), self.assign_with(spec, fallback))
            })
            .collect();
        // A refusal was decided against the state at its turn; say why against the final
        // state, so the same batch run again gives the same reasons, not just the same
        // addresses. (Batches only add holders, so a refused Service stays refused.)
        for (key, result) in results.iter_mut() {
            if result.is_err() {
                if let Some(&spec) = by_key.get(key) {
                    let fallback = stash.get(key).map(Vec::as_slice);
                    *result = self.assign_with(spec, fallback);
                }
            }
        }
        results
    }

    /// Releases a Service's addresses; returns what it held.
    pub fn release(&mut self, key: &ServiceKey) -> Option<Assignment> {
        let record = self.take(key)?;
        Some(self.assignment_of(&record))
    }

    /// What a Service holds.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Assignment> {
        self.services.get(key).map(|r| self.assignment_of(r))
    }

    /// Every Service's holding, in key order.
    pub fn assignments(&self) -> impl Iterator<Item = (&ServiceKey, Assignment)> + '_ {
        self.services
            .iter()
            .map(|(k, r)| (k, self.assignment_of(r)))
    }

    /// Number of Services holding addresses.
    pub fn len(&self) -> usize {
        self.services.len()
    }

    /// Whether no Service holds an address.
    pub fn is_empty(&self) -> bool {
        self.services.is_empty()
    }

    /// The Services holding `ip`, in key order.
    pub fn holders(&self, ip: IpAddr) -> impl Iterator<Item = &ServiceKey> + '_ {
        self.addresses
            .get(&ip)
            .into_iter()
            .flat_map(|h| h.keys.keys())
    }

    /// The pool `ip` belongs to.
    pub fn pool_of(&self, ip: IpAddr) -> Option<&str> {
        let idx = self.pools.locate(ip)?;
        self.pools.get(idx).map(|p| p.name.as_str())
    }

    /// Size and use of the pool called `name`.
    pub fn pool_usage(&self, name: &str) -> Option<PoolUsage> {
        let idx = self.pools.by_name(name)?;
        self.pools.get(idx).map(|p| p.usage())
    }

    /// Size and use of every pool, in configuration order.
    pub fn usage(&self) -> Vec<(String, PoolUsage)> {
        self.pools
            .pools()
            .iter()
            .map(|p| (p.name.clone(), p.usage()))
            .collect()
    }

    /// Replaces the pools. Every Service keeps each address that is still valid for it (in a
    /// pool it may use, not a `.0`/`.255` its pool now avoids); the returned
    /// [`PoolChange::invalidated`] Services lost at least one and must be re-assigned.
    pub fn set_pools(&mut self, pools: &[Pool]) -> PoolChange {
        let old_pools = std::mem::replace(&mut self.pools, PoolTable::new(pools));
        let old = std::mem::take(&mut self.services);
        self.addresses.clear();
        self.shared.clear();
        let mut change = PoolChange::default();
        for (key, mut record) in old {
            let old_name = old_pools.get(record.pool).map(|p| p.name.clone());
            let pin = match &record.pin {
                Some(name) => match self.pools.by_name(name) {
                    Some(idx) => Some(idx),
                    None => {
                        change.invalidated.push(key);
                        continue;
                    }
                },
                None => None,
            };
            let view = RecordView {
                pin,
                requested: record.requested,
            };
            let mut pool = None;
            let total = record.addresses.len();
            record
                .addresses
                .retain(|&ip| match self.still_valid(&view, ip) {
                    Some(p) if pool.is_none_or(|q| q == p) => {
                        pool = Some(p);
                        true
                    }
                    _ => false,
                });
            let Some(pool) = pool else {
                change.invalidated.push(key);
                continue;
            };
            record.pool = pool;
            let name = self.pools.get(pool).map(|p| p.name.clone());
            if record.addresses.len() < total {
                change.invalidated.push(key.clone());
            } else if name != old_name {
                change.repooled.push(key.clone());
            }
            self.insert(key, record);
        }
        change
    }

    // --- deciding ---

    fn assign_with(
        &mut self,
        spec: &ServiceSpec,
        fallback: Option<&[IpAddr]>,
    ) -> Result<Assignment, AllocError> {
        let previous = self.take(spec.key());
        let current = match &previous {
            Some(r) => &r.addresses[..],
            None => fallback.unwrap_or(spec.current()),
        };
        let plan = self.decide(spec, current)?;
        Ok(self.put(spec, plan))
    }

    /// The decision for `spec`, which holds nothing in the allocator right now; `current` is
    /// what it held.
    fn decide(&self, spec: &ServiceSpec, current: &[IpAddr]) -> Result<Plan, AllocError> {
        if let Some(invalid) = spec.invalid() {
            return Err(invalid.clone().into());
        }
        let pin = self.pin(spec)?;
        let terms = Sharing::of(spec);
        let terms = terms.as_ref();
        if !spec.requested().is_empty() {
            return self.decide_requested(spec, pin, terms);
        }
        if let Some(kept) = self.keep(spec, pin, terms, current) {
            if let Some(plan) = self.complete(spec, terms, kept) {
                return Ok(plan);
            }
        }
        self.decide_fresh(spec, pin, terms)
    }

    /// The pinned pool's index; an error if it does not exist.
    fn pin(&self, spec: &ServiceSpec) -> Result<Option<usize>, AllocError> {
        spec.pool()
            .map(|name| {
                self.pools
                    .by_name(name)
                    .ok_or_else(|| AllocError::UnknownPool {
                        pool: name.to_string(),
                        known: self.pools.names(),
                    })
            })
            .transpose()
    }

    /// Exactly the requested addresses, or why not.
    fn decide_requested(
        &self,
        spec: &ServiceSpec,
        pin: Option<usize>,
        terms: Option<&Sharing>,
    ) -> Result<Plan, AllocError> {
        let requested = spec.requested();
        for &ip in requested {
            if !spec.families().contains(&Family::of(ip)) {
                return Err(AllocError::FamilyMismatch {
                    ip,
                    families: spec.families().to_vec(),
                });
            }
        }
        if spec.ip_family_policy() == IpFamilyPolicy::RequireDualStack {
            if let Some(&missing) = spec
                .families()
                .iter()
                .find(|f| !requested.iter().any(|ip| Family::of(*ip) == **f))
            {
                return Err(AllocError::MissingFamily { missing });
            }
        }
        let mut pools = Vec::with_capacity(requested.len());
        for &ip in requested {
            let idx = self
                .pools
                .locate(ip)
                .ok_or(AllocError::NotInAnyPool { ip })?;
            pools.push((ip, idx));
        }
        for &(ip, idx) in &pools {
            if let Some(pin) = pin.filter(|p| *p != idx) {
                return Err(AllocError::NotInPinnedPool {
                    ip,
                    pool: self.pool_name(pin),
                });
            }
            if self.pools.get(idx).is_some_and(|p| p.skips(ip)) {
                return Err(AllocError::BuggyAddress {
                    ip,
                    pool: self.pool_name(idx),
                });
            }
        }
        let Some(&(first, first_pool)) = pools.first() else {
            // Nothing requested after all: an ordinary decision.
            return self.decide_fresh(spec, pin, terms);
        };
        if let Some(&(second, second_pool)) = pools.iter().find(|(_, p)| *p != first_pool) {
            return Err(AllocError::DifferentPools {
                first,
                first_pool: self.pool_name(first_pool),
                second,
                second_pool: self.pool_name(second_pool),
            });
        }
        for &ip in requested {
            self.may_join(ip, spec.key(), terms)?;
        }
        let mut addresses = requested.to_vec();
        order(spec, &mut addresses);
        Ok(Plan {
            pool: first_pool,
            addresses,
        })
    }

    /// The still-valid addresses among `current` of a Service that requests nothing: for each
    /// of its families the first valid one, all from the pool of the first kept.
    fn keep(
        &self,
        spec: &ServiceSpec,
        pin: Option<usize>,
        terms: Option<&Sharing>,
        current: &[IpAddr],
    ) -> Option<Plan> {
        let view = RecordView {
            pin,
            requested: false,
        };
        let mut pool: Option<usize> = None;
        let mut addresses = Vec::with_capacity(2);
        for &family in spec.families() {
            let found = current
                .iter()
                .filter(|ip| Family::of(**ip) == family)
                .find_map(|&ip| {
                    let idx = self.still_valid(&view, ip)?;
                    let ok = pool.is_none_or(|p| p == idx)
                        && self.may_join(ip, spec.key(), terms).is_ok();
                    ok.then_some((ip, idx))
                });
            if let Some((ip, idx)) = found {
                pool = Some(idx);
                addresses.push(ip);
            }
        }
        pool.map(|pool| Plan { pool, addresses })
    }

    /// `kept` as is when it satisfies the Service without adding anything (the first pass of
    /// [`Allocator::assign_all`]).
    fn keep_as_is(&self, spec: &ServiceSpec, current: &[IpAddr]) -> Option<Plan> {
        if spec.invalid().is_some() || current.is_empty() {
            return None;
        }
        let pin = self.pin(spec).ok()?;
        let terms = Sharing::of(spec);
        if !spec.requested().is_empty() {
            // Held exactly as requested, and the request as a whole is honoured: a refused
            // request must not reserve anything, or the batch would free it later.
            let plan = self.decide_requested(spec, pin, terms.as_ref()).ok()?;
            return plan
                .addresses
                .iter()
                .all(|ip| current.contains(ip))
                .then_some(plan);
        }
        let kept = self.keep(spec, pin, terms.as_ref(), current)?;
        let enough = match spec.ip_family_policy() {
            IpFamilyPolicy::PreferDualStack => !kept.addresses.is_empty(),
            _ => kept.addresses.len() == spec.families().len(),
        };
        enough.then_some(kept)
    }

    /// `kept` plus an address of each missing family from the same pool; `kept` alone for
    /// `PreferDualStack` when the pool has none; `None` when the Service must start afresh.
    fn complete(&self, spec: &ServiceSpec, terms: Option<&Sharing>, kept: Plan) -> Option<Plan> {
        let mut addresses = kept.addresses.clone();
        for &family in spec.families() {
            if addresses.iter().any(|ip| Family::of(*ip) == family) {
                continue;
            }
            match self.join_or_free(kept.pool, family, spec.key(), terms) {
                Some(ip) => addresses.push(ip),
                None if spec.ip_family_policy() == IpFamilyPolicy::PreferDualStack => {
                    return Some(kept);
                }
                None => return None,
            }
        }
        order(spec, &mut addresses);
        Some(Plan {
            pool: kept.pool,
            addresses,
        })
    }

    /// New addresses: from the pinned pool, or the first pool with `auto_assign` that can give
    /// every family (joining an address shared under the Service's key first).
    fn decide_fresh(
        &self,
        spec: &ServiceSpec,
        pin: Option<usize>,
        terms: Option<&Sharing>,
    ) -> Result<Plan, AllocError> {
        let candidates: Vec<usize> = match pin {
            Some(p) => vec![p],
            None => (0..self.pools.pools().len())
                .filter(|&i| self.pools.get(i).is_some_and(|p| p.auto_assign))
                .collect(),
        };
        let families = spec.families();
        if let Some(plan) = self.find(&candidates, families, spec.key(), terms) {
            return Ok(plan);
        }
        if families.len() > 1 && spec.ip_family_policy() == IpFamilyPolicy::PreferDualStack {
            for &family in families {
                if let Some(plan) = self.find(&candidates, &[family], spec.key(), terms) {
                    return Ok(plan);
                }
            }
            return Err(self.failure(&candidates, families, false, pin, spec.key(), terms));
        }
        Err(self.failure(&candidates, families, true, pin, spec.key(), terms))
    }

    /// The first candidate pool giving an address of every family: one where all can be
    /// joined, else one where each can be joined or is free.
    fn find(
        &self,
        candidates: &[usize],
        families: &[Family],
        key: &ServiceKey,
        terms: Option<&Sharing>,
    ) -> Option<Plan> {
        let attempt = |pool: usize, pick: &dyn Fn(Family) -> Option<IpAddr>| {
            let addresses = families
                .iter()
                .map(|f| pick(*f))
                .collect::<Option<Vec<IpAddr>>>()?;
            Some(Plan { pool, addresses })
        };
        if terms.is_some() {
            for &pool in candidates {
                if let Some(plan) = attempt(pool, &|f| self.joinable(pool, f, key, terms)) {
                    return Some(plan);
                }
            }
        }
        candidates
            .iter()
            .find_map(|&pool| attempt(pool, &|f| self.join_or_free(pool, f, key, terms)))
    }

    /// Why `find` found nothing: no candidate pool has the families, or they are all full.
    fn failure(
        &self,
        candidates: &[usize],
        families: &[Family],
        all_required: bool,
        pin: Option<usize>,
        key: &ServiceKey,
        terms: Option<&Sharing>,
    ) -> AllocError {
        let pinned = pin.map(|p| self.pool_name(p));
        let relevant: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                self.pools.get(i).is_some_and(|p| {
                    if all_required {
                        families.iter().all(|f| p.has_family(*f))
                    } else {
                        families.iter().any(|f| p.has_family(*f))
                    }
                })
            })
            .collect();
        if relevant.is_empty() {
            if all_required && families.len() > 1 {
                return AllocError::NoDualStackPool { pool: pinned };
            }
            return AllocError::NoPoolForFamily {
                family: families.first().copied().unwrap_or(Family::V4),
                pool: pinned,
            };
        }
        let mut pools = Vec::new();
        for i in relevant {
            let Some(p) = self.pools.get(i) else { continue };
            for &family in families {
                if p.has_family(family) && self.join_or_free(i, family, key, terms).is_none() {
                    pools.push(Exhausted {
                        pool: p.name.clone(),
                        family,
                        size: p.space(family).size(),
                    });
                }
            }
        }
        AllocError::PoolExhausted { pools }
    }

    // --- looking things up ---

    /// The pool of `ip` if a Service with these terms may keep it: in a pool, the pinned pool
    /// if pinned, else a pool with `auto_assign` unless requested, and not avoided.
    fn still_valid(&self, view: &RecordView, ip: IpAddr) -> Option<usize> {
        let idx = self.pools.locate(ip)?;
        let pool = self.pools.get(idx)?;
        let allowed = match view.pin {
            Some(pin) => pin == idx,
            None => view.requested || pool.auto_assign,
        };
        (allowed && !pool.skips(ip)).then_some(idx)
    }

    /// Whether a Service with these terms may hold `ip` next to its current holders.
    ///
    /// All holders of an address are in one sharing group and use disjoint ports, which the
    /// address maps to their holders; so one holder's terms and that map decide in
    /// `O(log n)`, however many Services share the address.
    fn may_join(
        &self,
        ip: IpAddr,
        key: &ServiceKey,
        terms: Option<&Sharing>,
    ) -> Result<(), AllocError> {
        let Some(holders) = self.addresses.get(&ip) else {
            return Ok(());
        };
        let terms_of = |k: &ServiceKey| self.services.get(k).and_then(|r| r.sharing.as_deref());
        if holders.keys.contains_key(key) {
            // Not reached by the decisions (a Service's record is removed before it is
            // decided): the exact check against every other holder.
            for holder in holders.keys.keys().filter(|h| *h != key) {
                sharing::check(ip, terms, holder, terms_of(holder))?;
            }
            return Ok(());
        }
        let Some(first) = holders.keys.first_key() else {
            return Ok(());
        };
        sharing::check_group(ip, terms, first, terms_of(first))?;
        for port in terms.map_or(&[][..], |t| &t.ports[..]) {
            if let Some(by) = holders.ports.get(port) {
                return Err(AllocError::PortCollision {
                    ip,
                    port: *port,
                    by: by.clone(),
                });
            }
        }
        Ok(())
    }

    /// The lowest address of `family` in `pool` shared in the Service's group that it may join:
    /// the lowest joinable one of each port signature, in `O(signatures × log n)`.
    fn joinable(
        &self,
        pool: usize,
        family: Family,
        key: &ServiceKey,
        terms: Option<&Sharing>,
    ) -> Option<IpAddr> {
        let terms = terms?;
        let buckets = self.shared.get(&terms.group)?;
        let (lo, hi) = match family {
            Family::V4 => (
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V4(Ipv4Addr::BROADCAST),
            ),
            Family::V6 => (
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::from(u128::MAX)),
            ),
        };
        let p = self.pools.get(pool)?;
        // Addresses in one bucket use the same ports (barring a 64-bit hash collision, which
        // could only make a joinable address be missed, never a wrong one be joined): if the
        // lowest of a bucket cannot be joined, none of it can.
        buckets
            .values()
            .filter_map(|set| {
                let (_, ip) = *set.range((pool, lo)..=(pool, hi)).next()?;
                (!p.skips(ip) && self.may_join(ip, key, Some(terms)).is_ok()).then_some(ip)
            })
            .min()
    }

    /// An address to join, else the lowest free one.
    fn join_or_free(
        &self,
        pool: usize,
        family: Family,
        key: &ServiceKey,
        terms: Option<&Sharing>,
    ) -> Option<IpAddr> {
        self.joinable(pool, family, key, terms)
            .or_else(|| self.pools.get(pool)?.lowest_free(family))
    }

    fn pool_name(&self, idx: usize) -> String {
        self.pools
            .get(idx)
            .map(|p| p.name.clone())
            .unwrap_or_default()
    }

    fn assignment_of(&self, record: &Record) -> Assignment {
        Assignment {
            addresses: record.addresses.clone(),
            pool: self.pool_name(record.pool),
        }
    }

    // --- changing state ---

    /// Records `plan` for `spec`, which holds nothing right now.
    fn put(&mut self, spec: &ServiceSpec, plan: Plan) -> Assignment {
        let record = Record {
            addresses: plan.addresses,
            pool: plan.pool,
            sharing: Sharing::of(spec).map(Box::new),
            pin: spec.pool().map(str::to_string),
            requested: !spec.requested().is_empty(),
        };
        let assignment = self.assignment_of(&record);
        self.insert(spec.key().clone(), record);
        assignment
    }

    fn insert(&mut self, key: ServiceKey, record: Record) {
        for &ip in &record.addresses {
            let holders = self.addresses.entry(ip).or_insert_with(|| Holders {
                pool: record.pool,
                keys: SmallMap::default(),
                ports: SmallMap::default(),
                signature: 0,
            });
            let first = holders.keys.is_empty();
            if first {
                if let Some(pool) = self.pools.get_mut(record.pool) {
                    pool.space_mut(Family::of(ip)).mark(to_u128(ip));
                }
            }
            holders.keys.insert_new(key.clone(), ());
            if let Some(terms) = &record.sharing {
                let old = holders.signature;
                for port in &terms.ports {
                    if holders.ports.insert_new(*port, key.clone()) {
                        holders.signature ^= sharing::port_hash(*port);
                    }
                }
                let entry = (holders.pool, ip);
                let buckets = self.shared.entry(terms.group.clone()).or_default();
                if !first {
                    remove_from(buckets, old, &entry);
                }
                buckets.entry(holders.signature).or_default().insert(entry);
            }
        }
        self.services.insert(key, record);
    }

    /// Removes a Service's record and frees what only it held.
    fn take(&mut self, key: &ServiceKey) -> Option<Record> {
        let record = self.services.remove(key)?;
        for &ip in &record.addresses {
            let Some(holders) = self.addresses.get_mut(&ip) else {
                continue;
            };
            holders.keys.remove(key);
            let pool = holders.pool;
            if let Some(terms) = &record.sharing {
                let old = holders.signature;
                for port in &terms.ports {
                    if holders.ports.get(port) == Some(key) {
                        holders.ports.remove(port);
                        holders.signature ^= sharing::port_hash(*port);
                    }
                }
                let entry = (pool, ip);
                if let Some(buckets) = self.shared.get_mut(&terms.group) {
                    remove_from(buckets, old, &entry);
                    if !holders.keys.is_empty() {
                        buckets.entry(holders.signature).or_default().insert(entry);
                    }
                    if buckets.is_empty() {
                        self.shared.remove(&terms.group);
                    }
                }
            }
            if holders.keys.is_empty() {
                self.addresses.remove(&ip);
                if let Some(p) = self.pools.get_mut(pool) {
                    p.space_mut(Family::of(ip)).unmark(to_u128(ip));
                }
            }
        }
        Some(record)
    }

    /// Checks the indexes against the records (tests only).
    #[cfg(test)]
    pub(crate) fn check_consistency(&self) {
        let mut expected: BTreeMap<IpAddr, Vec<ServiceKey>> = BTreeMap::new();
        for (key, record) in &self.services {
            for ip in &record.addresses {
                expected.entry(*ip).or_default().push(key.clone());
                assert_eq!(self.pools.locate(*ip), Some(record.pool), "{key} {ip}");
            }
        }
        let actual: BTreeMap<IpAddr, Vec<ServiceKey>> = self
            .addresses
            .iter()
            .map(|(ip, h)| (*ip, h.keys.keys().cloned().collect()))
            .collect();
        assert_eq!(actual, expected);
        // The ports, signatures and sharing index, recomputed from the records.
        let mut index: BTreeMap<Group, BySignature> = BTreeMap::new();
        for (ip, h) in &self.addresses {
            let mut ports = BTreeMap::new();
            let mut group = None;
            for k in h.keys.keys() {
                if let Some(t) = self.services.get(k).and_then(|r| r.sharing.as_deref()) {
                    group.get_or_insert(t.group.clone());
                    for p in &t.ports {
                        ports.insert(*p, k.clone());
                    }
                }
            }
            let held: BTreeMap<Port, ServiceKey> =
                h.ports.iter().map(|(p, k)| (*p, k.clone())).collect();
            assert_eq!(held, ports, "{ip}");
            let signature = ports.keys().fold(0, |acc, p| acc ^ sharing::port_hash(*p));
            assert_eq!(h.signature, signature, "{ip}");
            if let Some(group) = group {
                index
                    .entry(group)
                    .or_default()
                    .entry(signature)
                    .or_default()
                    .insert((h.pool, *ip));
            }
        }
        assert_eq!(self.shared, index);
        // Holders of an address may all share it with one another.
        for (ip, h) in &self.addresses {
            for (i, a) in h.keys.keys().enumerate() {
                for b in h.keys.keys().skip(i + 1) {
                    let ta = self.services.get(a).and_then(|r| r.sharing.as_deref());
                    let tb = self.services.get(b).and_then(|r| r.sharing.as_deref());
                    assert_eq!(sharing::check(*ip, ta, b, tb), Ok(()), "{ip}: {a} and {b}");
                }
            }
        }
        for (i, pool) in self.pools.pools().iter().enumerate() {
            for family in [Family::V4, Family::V6] {
                let n = self
                    .addresses
                    .iter()
                    .filter(|(ip, h)| h.pool == i && Family::of(**ip) == family)
                    .count();
                assert_eq!(
                    pool.space(family).used(),
                    n as u128,
                    "{} {family}",
                    pool.name
                );
            }
        }
    }
}

/// What validity of a held address depends on.
struct RecordView {
    pin: Option<usize>,
    requested: bool,
}

/// Puts addresses in the order of the Service's families.
fn order(spec: &ServiceSpec, addresses: &mut [IpAddr]) {
    addresses.sort_by_key(|ip| {
        spec.families()
            .iter()
            .position(|f| *f == Family::of(*ip))
            .unwrap_or(usize::MAX)
    });
}

/// Removes `entry` from the bucket of `signature`, dropping the bucket when it empties.
fn remove_from(buckets: &mut BySignature, signature: u64, entry: &(usize, IpAddr)) {
    if let Some(set) = buckets.get_mut(&signature) {
        set.remove(entry);
        if set.is_empty() {
            buckets.remove(&signature);
        }
    }
}
