//! The set-up shared by the gossip end-to-end tests and the failover benchmark: wait until
//! every daemon of an [`L2Lab`] sees the other members up in gossip, then create the Service
//! `web` with a ready endpoint on every node.

use std::net::IpAddr;
use std::time::Duration;

use super::e2e::wait_allocated;
use super::l2::{apply_objects, endpoint_slice, l2_service, Ep, L2Lab, NODES};
use super::netlab::{wait_for, Daemon};

/// How long a daemon may take to see the others after it started.
const MEMBERS_UP: Duration = Duration::from_secs(20);

/// Waits until `daemon` (node `name`) logged every other node of the lab up in gossip.
pub fn wait_members_up(daemon: &Daemon, name: &str) {
    let others = NODES.len() - 1;
    wait_for(
        &format!("{name} to see the {others} other members"),
        MEMBERS_UP,
        || {
            let up = daemon.log_text().matches("gossip member up").count();
            if up >= others {
                Ok(())
            } else {
                Err(format!("{up} members up"))
            }
        },
    );
}

/// Waits until every daemon of the lab sees all the others up.
pub fn wait_all_members_up(l: &L2Lab) {
    for n in &l.nodes {
        wait_members_up(&n.daemon, &n.name);
    }
}

/// Creates (or re-applies) the Service `web` with a ready endpoint on every node; its
/// allocated address.
pub fn apply_web(l: &L2Lab) -> IpAddr {
    let endpoints: Vec<Ep<'_>> = NODES
        .iter()
        .map(|n| Ep {
            node: n,
            ready: true,
        })
        .collect();
    apply_objects(
        &l.api,
        &[
            l2_service("web", false, &[]),
            endpoint_slice("web", false, &endpoints),
        ],
    );
    wait_allocated(&l.api, &["web"], Duration::from_secs(30))["web"].ingress[0]
}

/// Both steps: the members see each other, then `web` exists; its address.
pub fn gossip_web(l: &L2Lab) -> IpAddr {
    wait_all_members_up(l);
    apply_web(l)
}
