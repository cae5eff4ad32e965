//! Why a Service gets no address: reasons a user can act on, worded like MetalLB's events so
//! `kubectl describe svc` reads the same (`"10.0.0.1" is not allowed in config`, `port TCP/80 is
//! already in use on …`, `no available IPs in pool "default"`), with what to change added.

use std::fmt;
use std::net::IpAddr;

use super::annotations::InvalidService;
use super::range::Family;
use super::service::{Port, ServiceKey, TrafficPolicy};

/// Why a Service was refused. A refused Service holds no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// An annotation or spec field IPAM reads is malformed.
    #[error("{0}")]
    Invalid(#[from] InvalidService),
    /// The address-pool annotation names a pool that does not exist.
    #[error("unknown pool {pool:?}; configured pools: {}", list_names(known))]
    UnknownPool {
        /// The name given.
        pool: String,
        /// The configured pools, in configuration order.
        known: Vec<String>,
    },
    /// A requested address lies in no pool.
    #[error("\"{ip}\" is not allowed in config: it lies in no address pool")]
    NotInAnyPool {
        /// The requested address.
        ip: IpAddr,
    },
    /// A requested address lies outside the pool the Service is pinned to.
    #[error("requested address {ip} is not in pool {pool:?}, which the Service's address-pool annotation names")]
    NotInPinnedPool {
        /// The requested address.
        ip: IpAddr,
        /// The pinned pool.
        pool: String,
    },
    /// A requested IPv4 address ends in `.0` or `.255` and its pool avoids those.
    #[error("requested address {ip} ends in .0 or .255, which pool {pool:?} never hands out (avoid_buggy_ips)")]
    BuggyAddress {
        /// The requested address.
        ip: IpAddr,
        /// Its pool.
        pool: String,
    },
    /// Requested addresses in two pools (a Service's addresses come from one pool).
    #[error("requested addresses must come from one pool: {first} is in pool {first_pool:?}, {second} in pool {second_pool:?}")]
    DifferentPools {
        /// One address.
        first: IpAddr,
        /// Its pool.
        first_pool: String,
        /// The other address.
        second: IpAddr,
        /// Its pool.
        second_pool: String,
    },
    /// A requested address of a family the Service does not use.
    #[error("requested address {ip} is {} but the Service's IP families are {}", Family::of(*ip), list_families(families))]
    FamilyMismatch {
        /// The requested address.
        ip: IpAddr,
        /// The Service's families.
        families: Vec<Family>,
    },
    /// A `RequireDualStack` Service requests an address of one family only.
    #[error("the Service requires dual-stack (RequireDualStack) but requests no {missing} address; request one address per family, or none")]
    MissingFamily {
        /// The family no address is requested for.
        missing: Family,
    },
    /// The address is held by a Service that does not share it (or this one does not).
    #[error("address {ip} is already in use by {by}; to share it, give both Services the same allow-shared-ip annotation")]
    InUse {
        /// The address.
        ip: IpAddr,
        /// Its holder.
        by: ServiceKey,
    },
    /// Both allow sharing, with different keys.
    #[error(
        "can't share {ip} with {by}: sharing key {key:?} does not match its sharing key {theirs:?}"
    )]
    SharingKeyMismatch {
        /// The address.
        ip: IpAddr,
        /// Its holder.
        by: ServiceKey,
        /// This Service's key.
        key: String,
        /// The holder's key.
        theirs: String,
    },
    /// Shared Services must send traffic to the same backends.
    #[error("can't share {ip} with {by}: externalTrafficPolicy {ours} differs from its {theirs}; Services sharing an address must have the same externalTrafficPolicy")]
    TrafficPolicyMismatch {
        /// The address.
        ip: IpAddr,
        /// Its holder.
        by: ServiceKey,
        /// This Service's policy.
        ours: TrafficPolicy,
        /// The holder's policy.
        theirs: TrafficPolicy,
    },
    /// Two `Local` Services may share only with identical selectors (same endpoints).
    #[error("can't share {ip} with {by}: both have externalTrafficPolicy Local but different selectors; they must select the same pods")]
    SelectorMismatch {
        /// The address.
        ip: IpAddr,
        /// Its holder.
        by: ServiceKey,
    },
    /// A `(protocol, port)` already used on the shared address.
    #[error("port {port} is already in use on {ip} by {by}")]
    PortCollision {
        /// The address.
        ip: IpAddr,
        /// The colliding port.
        port: Port,
        /// The Service using it.
        by: ServiceKey,
    },
    /// No eligible pool has addresses of a family the Service needs.
    #[error("{}", no_family(*family, pool.as_deref()))]
    NoPoolForFamily {
        /// The family.
        family: Family,
        /// The pinned pool, if any.
        pool: Option<String>,
    },
    /// No eligible pool has both families, for a `RequireDualStack` Service.
    #[error("{}", no_dual(pool.as_deref()))]
    NoDualStackPool {
        /// The pinned pool, if any.
        pool: Option<String>,
    },
    /// Every eligible pool is full.
    #[error("{}", exhausted(pools))]
    PoolExhausted {
        /// The full pools, in configuration order, each with the family it lacks.
        pools: Vec<Exhausted>,
    },
}

impl AllocError {
    /// A stable camelCase name of the kind of refusal (a metric label: no addresses or names).
    pub fn kind(&self) -> &'static str {
        match self {
            AllocError::Invalid(_) => "invalidService",
            AllocError::UnknownPool { .. } => "unknownPool",
            AllocError::NotInAnyPool { .. } => "notInAnyPool",
            AllocError::NotInPinnedPool { .. } => "notInPinnedPool",
            AllocError::BuggyAddress { .. } => "buggyAddress",
            AllocError::DifferentPools { .. } => "differentPools",
            AllocError::FamilyMismatch { .. } => "familyMismatch",
            AllocError::MissingFamily { .. } => "missingFamily",
            AllocError::InUse { .. } => "inUse",
            AllocError::SharingKeyMismatch { .. } => "sharingKeyMismatch",
            AllocError::TrafficPolicyMismatch { .. } => "trafficPolicyMismatch",
            AllocError::SelectorMismatch { .. } => "selectorMismatch",
            AllocError::PortCollision { .. } => "portCollision",
            AllocError::NoPoolForFamily { .. } => "noPoolForFamily",
            AllocError::NoDualStackPool { .. } => "noDualStackPool",
            AllocError::PoolExhausted { .. } => "poolExhausted",
        }
    }
}

/// One full pool in [`AllocError::PoolExhausted`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exhausted {
    /// The pool.
    pub pool: String,
    /// The family it has no free address of.
    pub family: Family,
    /// Its number of assignable addresses of that family.
    pub size: u128,
}

impl fmt::Display for Exhausted {
    /// What is full, without the pool's name (the error groups entries by pool).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.size {
            0 => write!(f, "it has no assignable {} address", self.family),
            1 => write!(f, "its only {} address is in use", self.family),
            n => write!(f, "all {n} {} addresses are in use", self.family),
        }
    }
}

/// `no available IPs in pool "a": …` for one pool, `no available IPs: pool "a": …; pool "b":
/// …` for several (entries of one pool are adjacent: they come in configuration order).
fn exhausted(entries: &[Exhausted]) -> String {
    let mut groups: Vec<(&str, Vec<String>)> = Vec::new();
    for e in entries {
        match groups.last_mut() {
            Some((pool, parts)) if *pool == e.pool => parts.push(e.to_string()),
            _ => groups.push((&e.pool, vec![e.to_string()])),
        }
    }
    match groups.as_slice() {
        [] => "no available IPs".to_string(),
        [(pool, parts)] => format!("no available IPs in pool {pool:?}: {}", parts.join("; ")),
        many => {
            let parts: Vec<String> = many
                .iter()
                .map(|(pool, parts)| format!("pool {pool:?}: {}", parts.join("; ")))
                .collect();
            format!("no available IPs: {}", parts.join("; "))
        }
    }
}

fn no_family(family: Family, pool: Option<&str>) -> String {
    match pool {
        Some(p) => format!("pool {p:?} has no {family} addresses"),
        None => format!(
            "no address pool that assigns automatically has {family} addresses \
             (pools with auto_assign = false are used only when named or requested)"
        ),
    }
}

fn no_dual(pool: Option<&str>) -> String {
    match pool {
        Some(p) => format!(
            "pool {p:?} does not have both IPv4 and IPv6 addresses, which a RequireDualStack \
             Service needs from one pool"
        ),
        None => "no address pool that assigns automatically has both IPv4 and IPv6 addresses, \
                 which a RequireDualStack Service needs from one pool"
            .to_string(),
    }
}

fn list_names(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_string();
    }
    names
        .iter()
        .map(|n| format!("{n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_families(families: &[Family]) -> String {
    let names: Vec<String> = families.iter().map(|f| f.to_string()).collect();
    format!("[{}]", names.join(", "))
}
