//! MetalLB's ConfigMap generation (v0.9 to v0.12): the `config` key of the `metallb-system/config`
//! ConfigMap holds YAML with `peers`, `bgp-communities`, `address-pools` (and `bfd-profiles`).

use std::collections::BTreeMap;

use serde_json::Value;

use super::fields::{addresses, duration, node_selector, Fields};
use super::model::{password_path, Converted, Mode, Peer, Pool};
use super::notes::Notes;

/// Converts one legacy `config` document; `origin` says where it was (for comments).
pub(crate) fn convert(config: Value, origin: &str, out: &mut Converted, notes: &mut Notes) {
    let Some(mut top) = Fields::new("", config, notes) else {
        return;
    };
    let mut aliases = BTreeMap::new();
    for (name, value) in top.string_map("bgp-communities", notes) {
        aliases.insert(name, value);
    }
    for (i, p) in top.list("peers", notes).into_iter().enumerate() {
        if let Some(peer) = peer(i, p, origin, notes) {
            out.peers.push(peer);
        }
    }
    for (i, p) in top.list("address-pools", notes).into_iter().enumerate() {
        if let Some(pool) = pool(i, p, origin, &aliases, notes) {
            out.pools.push(pool);
        }
    }
    top.unsupported(
        "bfd-profiles",
        "ferrolb has no BFD yet: its BGP sessions detect a dead peer by the hold time (and gossip detects dead nodes)",
        notes,
    );
    top.rest(notes);
}

fn peer(i: usize, mut f: Fields, origin: &str, notes: &mut Notes) -> Option<Peer> {
    let at = format!("peers[{i}]");
    let Some(address) = f.str("peer-address", notes) else {
        notes.add(&at, "has no peer-address; peer skipped");
        f.rest(notes);
        return None;
    };
    // Legacy peers have no name: ferrolb names a peer by its address by default.
    let mut p = Peer {
        name: address.clone(),
        address,
        ..Peer::default()
    };
    p.comments.push(format!("From {origin}, {at}."));
    p.asn = f.int("peer-asn", notes);
    p.my_asn = f.int("my-asn", notes);
    p.port = f.int("peer-port", notes);
    if let Some(h) = f.str("hold-time", notes) {
        p.hold_time = duration(&f.key("hold-time"), &h, notes);
    }
    if let Some(k) = f.str("keepalive-time", notes) {
        p.keepalive_time = duration(&f.key("keepalive-time"), &k, notes);
    }
    p.router_id = f.str("router-id", notes);
    p.source_address = f.str("source-address", notes);
    if f.str("password", notes).is_some() {
        let file = password_path(&p.name);
        notes.add(
            f.key("password"),
            format!("ferrolb reads the TCP MD5 password from a file: copy the password from the ConfigMap into {file} (the password alone, no newline needed), owned by the ferrolb user, mode 0600: install -m 600 -o ferrolb /dev/null {file}, then write it"),
        );
        p.password_file = Some(file);
    }
    if f.bool("ebgp-multihop", notes) == Some(true) {
        // MetalLB's FRR mode sets TTL 255 for a multi-hop eBGP session.
        p.ebgp_multihop = Some(255);
    }
    let selectors = f.list("node-selectors", notes);
    p.node_selector = node_selector(selectors, "match-labels", "match-expressions", notes);
    f.unsupported(
        "bfd-profile",
        "ferrolb has no BFD yet; the session relies on its hold time",
        notes,
    );
    f.unsupported(
        "vrf",
        "not supported: ferrolb peers from the default VRF",
        notes,
    );
    f.rest(notes);
    Some(p)
}

fn pool(
    i: usize,
    mut f: Fields,
    origin: &str,
    aliases: &BTreeMap<String, String>,
    notes: &mut Notes,
) -> Option<Pool> {
    let at = format!("address-pools[{i}]");
    let Some(name) = f.str("name", notes) else {
        notes.add(&at, "has no name; pool skipped");
        f.rest(notes);
        return None;
    };
    let mut p = Pool {
        name,
        auto_assign: true,
        ..Pool::default()
    };
    p.comments.push(format!("From {origin}, {at}."));
    p.mode = match f.str("protocol", notes).as_deref() {
        Some("layer2") => Some(Mode::L2),
        Some("bgp") => Some(Mode::Bgp),
        other => {
            notes.add(
                f.key("protocol"),
                format!(
                    "{:?} is not layer2 or bgp; pool skipped",
                    other.unwrap_or("")
                ),
            );
            f.rest(notes);
            return None;
        }
    };
    p.addresses = addresses(f.strs("addresses", notes));
    p.avoid_buggy_ips = f.bool("avoid-buggy-ips", notes).unwrap_or(false);
    p.auto_assign = f.bool("auto-assign", notes).unwrap_or(true);
    let ads = f.list("bgp-advertisements", notes);
    if p.mode == Some(Mode::L2) {
        if !ads.is_empty() {
            notes.add(
                f.key("bgp-advertisements"),
                "ignored: the pool's protocol is layer2 (MetalLB ignores them too)",
            );
        }
    } else {
        for (j, mut ad) in ads.into_iter().enumerate() {
            if j > 0 {
                notes.add(
                    format!("{at}.bgp-advertisements[{j}]"),
                    "a ferrolb pool has one advertisement: only bgp-advertisements[0] was carried over; put these addresses in a second pool for a second one",
                );
                continue;
            }
            p.bgp.aggregation_length = ad.int("aggregation-length", notes);
            p.bgp.aggregation_length_v6 = ad.int("aggregation-length-v6", notes);
            p.bgp.local_pref = ad.int("localpref", notes);
            p.bgp.communities = ad.communities("communities", aliases, notes);
            ad.rest(notes);
        }
    }
    f.rest(notes);
    Some(p)
}
