//! ferrolb: Services of `type: LoadBalancer` for bare-metal Kubernetes, as one host daemon per
//! node. See `DESIGN.md` (shared with the project) for the map; each module's doc says what it
//! holds.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod allocator;
/// BGP mode: the wire codec, the session state machine, sessions and the speaker.
pub mod bgp;
pub mod config;
pub mod daemon;
pub mod host;
pub mod import;
pub mod ipam;
pub mod kube;
pub mod l2;
#[cfg(feature = "lab")]
pub mod lab;
pub mod membership;
pub mod plan;
