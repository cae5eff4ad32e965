//! BGP routers in the namespace lab ([`super::netlab`]): FRR (`zebra` + `bgpd`, [`frr`]) or
//! GoBGP (`gobgpd`, [`gobgp`]) as the router, GoBGP as a stand-in node speaker that injects
//! routes, and a topology of three nodes and a router on a LAN with a client behind the router
//! ([`topology`]).
//!
//! ```ignore
//! let lab = Lab::new("fbr1");
//! let topo = BgpTopology::build(&lab, 1, &[SERVICE_V4]);
//! let frr = FrrRouter::start(&lab, &topo.router, &FrrConfig::new(64001).neighbors(&topo.node_ips(), 64500));
//! frr.wait_established(topo.nodes[0].ipv4.into(), WAIT);
//! frr.paths("10.96.0.10/32");              // next hops of every path FRR holds
//! frr.routes("10.96.0.10/32");             // … with communities, local_pref, AS path
//! frr.fib_nexthops("10.96.0.10/32");       // next hops of the kernel route (multipath)
//! topo.client_names(&lab, SERVICE_V4, 30); // which node answered each of 30 connections
//! ```
//!
//! Every router and speaker is a process of the [`Lab`](super::netlab::Lab): killed when the
//! lab is dropped (the FRR guard also flushes the nexthop objects zebra leaves in the kernel).

pub mod frr;
pub mod gobgp;
pub mod topology;

use std::time::Duration;

// Test binaries that do not use the BGP lab see these re-exports unused.
#[allow(unused_imports)]
pub use frr::*;
#[allow(unused_imports)]
pub use gobgp::*;
#[allow(unused_imports)]
pub use topology::*;

use super::netlab::require_program;

/// How long a daemon may take to answer on its control socket after start.
const STARTUP: Duration = Duration::from_secs(20);
/// Where FRR's daemons are installed (Debian's layout).
pub const FRR_LIBEXEC: &str = "/usr/lib/frr";

/// Panics (the test fails, it is never skipped) unless FRR is installed.
pub fn require_frr() {
    require_program(&format!("{FRR_LIBEXEC}/zebra"));
    require_program(&format!("{FRR_LIBEXEC}/bgpd"));
    require_program("vtysh");
}

/// Panics unless GoBGP (`gobgpd` and its CLI `gobgp`) is installed.
pub fn require_gobgp() {
    require_program("gobgpd");
    require_program("gobgp");
}
