//! The converted configuration before it is written: ferrolb's pools and peers, with the
//! values still as text where check-config is the judge.

use std::collections::BTreeMap;

/// A pool's announcement mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    L2,
    Bgp,
}

/// One `[[pool]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Pool {
    pub name: String,
    pub mode: Option<Mode>,
    pub addresses: Vec<String>,
    pub avoid_buggy_ips: bool,
    pub auto_assign: bool,
    pub node_selector: BTreeMap<String, String>,
    pub interfaces: Vec<String>,
    pub bgp: Bgp,
    /// Comment lines written above the pool (where it came from, choices made).
    pub comments: Vec<String>,
}

/// `[pool.bgp]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Bgp {
    pub peers: Vec<String>,
    pub communities: Vec<String>,
    pub local_pref: Option<i64>,
    pub aggregation_length: Option<i64>,
    pub aggregation_length_v6: Option<i64>,
}

/// One `[[bgp.peer]]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Peer {
    pub name: String,
    pub address: String,
    pub asn: Option<i64>,
    pub my_asn: Option<i64>,
    pub port: Option<i64>,
    pub hold_time: Option<String>,
    pub keepalive_time: Option<String>,
    pub connect_time: Option<String>,
    pub password_file: Option<String>,
    pub ebgp_multihop: Option<i64>,
    pub source_address: Option<String>,
    pub router_id: Option<String>,
    pub node_selector: BTreeMap<String, String>,
    pub graceful_restart: Option<bool>,
    pub comments: Vec<String>,
}

/// Everything converted.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Converted {
    pub pools: Vec<Pool>,
    pub peers: Vec<Peer>,
}

/// Where a peer's password file goes: one per peer, named after it (characters a file name
/// should not hold become `-`).
pub(crate) fn password_path(peer: &str) -> String {
    let safe: String = peer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("/etc/ferrolb/bgp-{safe}.password")
}
