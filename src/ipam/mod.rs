//! IPAM: which addresses each LoadBalancer Service gets. Pure — no IO, no clocks, no tokio.
//!
//! Inputs are values: the [`Pool`]s in configuration order and the Services as [`ServiceSpec`]s
//! (parsed from the API object by [`ServiceSpec::parse`]). Output: each Service's
//! [`Assignment`] or an [`AllocError`] saying what the user can change. [`allocate_all`] decides
//! a whole batch (the allocator does that when it takes the Lease); an [`Allocator`] keeps the
//! state and decides one Service at a time in `O(log n)`.
//!
//! # Rules
//!
//! - **The status is the database.** A Service keeps its current addresses (what it holds in
//!   the allocator, else its `status.loadBalancer.ingress`) while they stay valid for it: in a
//!   pool it may use (the pinned pool if it names one; else a pool with `auto_assign`, or any
//!   pool if it requested the address), of one of its families, not a `.0`/`.255` its pool
//!   avoids, still requested if it requests addresses, and still shareable with the other
//!   holders. A batch first lets every Service keep its valid addresses (in key order), then
//!   decides everything else in key order, so a restart or a handover moves nothing.
//! - **Requests** (`spec.loadBalancerIP`, or the `loadBalancerIPs` annotation in ferrolb's or
//!   MetalLB's spellings: at most one address per family) are honoured exactly or refused with
//!   a reason: in no pool, outside the pinned pool, avoided `.0`/`.255`, of a family the Service
//!   does not use, in two pools, in use by `ns/name` without compatible sharing.
//! - **Pools.** The `address-pool` annotation pins the pool (an unknown name is refused).
//!   Pools with `auto_assign = false` are used only when pinned or when a requested address
//!   lies in them. `avoid_buggy_ips` pools never hand out IPv4 `.0`/`.255`, not even on request.
//! - **Dual-stack.** `RequireDualStack`, and `PreferDualStack` with two `ipFamilies`, get one
//!   address per family from one pool. `PreferDualStack` falls back to its first family (then
//!   its second) only if no eligible pool can give both; a `PreferDualStack` Service holding
//!   one family gains the other when its pool can give it. `RequireDualStack` without a pool
//!   giving both is refused.
//! - **Sharing** (`allow-shared-ip`): see [`sharing`] — same non-empty key, same
//!   backends, no `(protocol, port)` collision. A Service that may share and asks for nothing
//!   specific joins an address already shared under its key (first eligible pool, lowest
//!   address) before taking a new one.
//! - **Deterministic.** New addresses are the lowest free address of the first eligible pool
//!   in configuration order (MetalLB picks among pools in map order — ferrolb does not). Same
//!   input, same output.
//! - **Minimal movement.** When pools change or a request changes, only Services whose
//!   addresses became invalid move ([`Allocator::set_pools`] says which).
//!
//! A Service that is refused holds nothing (as in MetalLB, which clears the assignment of a
//! Service it cannot converge); the caller keeps reporting the reason until it is fixed.

pub mod allocator;
pub mod annotations;
pub mod pool;
pub mod range;
pub mod reason;
pub mod service;
pub mod sharing;
mod smallmap;
mod space;

pub use allocator::{allocate_all, Allocator, Assignment, PoolChange};
pub use annotations::{InvalidService, Requests};
pub use pool::{is_buggy_ip, FamilyUsage, Pool, PoolUsage};
pub use range::{Family, IpRange, RangeError};
pub use reason::{AllocError, Exhausted};
pub use service::{
    IpFamilyPolicy, Port, PortInput, Protocol, ServiceInput, ServiceKey, ServiceSpec, TrafficPolicy,
};

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
