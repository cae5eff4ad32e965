//! MetalLB's CRD generation (`metallb.io/v1beta1`, `v1beta2`): `IPAddressPool`,
//! `L2Advertisement`, `BGPAdvertisement`, `BGPPeer`, `Community`. Pools get their mode from the
//! advertisements that select them, so all objects are gathered before any is converted.

use std::collections::BTreeMap;

use super::fields::{addresses, duration, node_selector, Fields};
use super::model::{password_path, Converted, Mode, Peer, Pool};
use super::notes::Notes;

/// One MetalLB object: its kind, name, labels and `spec`.
pub(crate) struct Object {
    pub kind: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: Fields,
    /// Where it was read, for comments.
    pub origin: String,
}

/// The kinds this module converts.
pub(crate) const KINDS: [&str; 5] = [
    "IPAddressPool",
    "L2Advertisement",
    "BGPAdvertisement",
    "BGPPeer",
    "Community",
];

/// Converts the gathered objects.
pub(crate) fn convert(objects: Vec<Object>, out: &mut Converted, notes: &mut Notes) {
    let mut by_kind: BTreeMap<&str, Vec<Object>> = BTreeMap::new();
    for o in objects {
        let k = KINDS.iter().find(|k| **k == o.kind).copied().unwrap_or("");
        by_kind.entry(k).or_default().push(o);
    }
    let mut take = |k: &str| by_kind.remove(k).unwrap_or_default();
    let mut aliases = BTreeMap::new();
    for c in take("Community") {
        community_aliases(c, &mut aliases, notes);
    }
    let mut pools: Vec<(Pool, BTreeMap<String, String>, Vec<String>)> = Vec::new();
    for o in take("IPAddressPool") {
        pools.push((
            pool(o.name.clone(), o.spec, &o.origin, notes),
            o.labels,
            Vec::new(),
        ));
    }
    for o in take("BGPPeer") {
        let p = peer(o, notes);
        if p.address.is_empty() {
            notes.add(
                format!("BGPPeer {}", p.name),
                "has no spec.peerAddress; peer skipped",
            );
        } else {
            out.peers.push(p);
        }
    }
    // BGP first: a pool advertised both ways becomes a bgp pool (see `advertise`).
    for o in take("BGPAdvertisement") {
        advertise(o, Mode::Bgp, &mut pools, &aliases, notes);
    }
    for o in take("L2Advertisement") {
        advertise(o, Mode::L2, &mut pools, &aliases, notes);
    }
    for (mut p, _, _) in pools {
        if p.mode.is_none() {
            notes.add(
                format!("IPAddressPool {}", p.name),
                "no L2Advertisement or BGPAdvertisement selects it, so MetalLB assigns its addresses without announcing them; ferrolb announces every pool: written as mode = \"l2\", change the mode or remove the pool",
            );
            p.mode = Some(Mode::L2);
        }
        out.pools.push(p);
    }
}

fn community_aliases(o: Object, aliases: &mut BTreeMap<String, String>, notes: &mut Notes) {
    let mut spec = o.spec;
    for mut c in spec.list("communities", notes) {
        match (c.str("name", notes), c.str("value", notes)) {
            (Some(n), Some(v)) => {
                aliases.insert(n, v);
            }
            _ => notes.add(
                format!("Community {} spec.communities", o.name),
                "an entry without name or value; skipped",
            ),
        }
        c.rest(notes);
    }
    spec.rest(notes);
}

fn pool(name: String, mut f: Fields, origin: &str, notes: &mut Notes) -> Pool {
    let mut p = Pool {
        name,
        auto_assign: true,
        ..Pool::default()
    };
    p.comments
        .push(format!("From {origin}, IPAddressPool {}.", p.name));
    p.addresses = addresses(f.strs("addresses", notes));
    p.auto_assign = f.bool("autoAssign", notes).unwrap_or(true);
    p.avoid_buggy_ips = f.bool("avoidBuggyIPs", notes).unwrap_or(false);
    f.unsupported(
        "serviceAllocation",
        "not supported: ferrolb pools cannot be reserved for namespaces or Service selectors or given priorities; Services pick a pool with the ferrolb.io/address-pool annotation",
        notes,
    );
    f.rest(notes);
    p
}

fn peer(o: Object, notes: &mut Notes) -> Peer {
    let mut f = o.spec;
    let mut p = Peer {
        name: o.name.clone(),
        ..Peer::default()
    };
    p.comments
        .push(format!("From {}, BGPPeer {}.", o.origin, o.name));
    p.address = f.str("peerAddress", notes).unwrap_or_default();
    p.asn = f.int("peerASN", notes);
    p.my_asn = f.int("myASN", notes);
    p.port = f.int("peerPort", notes);
    for (key, slot) in [
        ("holdTime", &mut p.hold_time),
        ("keepaliveTime", &mut p.keepalive_time),
        ("connectTime", &mut p.connect_time),
    ] {
        if let Some(t) = f.str(key, notes) {
            *slot = duration(&f.key(key), &t, notes);
        }
    }
    p.router_id = f.str("routerID", notes);
    p.source_address = f.str("sourceAddress", notes);
    let file = password_path(&o.name);
    if f.str("password", notes).is_some() {
        notes.add(
            f.key("password"),
            format!("ferrolb reads the TCP MD5 password from a file: copy the password into {file}, owned by the ferrolb user, mode 0600 (install -m 600 -o ferrolb /dev/null {file}, then write it)"),
        );
        p.password_file = Some(file.clone());
    }
    if let Some(secret) = f.take("passwordSecret") {
        let name = secret.get("name").and_then(|n| n.as_str()).unwrap_or("?");
        let ns = secret
            .get("namespace")
            .and_then(|n| n.as_str())
            .unwrap_or("metallb-system");
        notes.add(
            f.key("passwordSecret"),
            format!("ferrolb reads the TCP MD5 password from a file on each node, not a Secret: copy it into {file} with mode 0600, owned by the ferrolb user, e.g. kubectl -n {ns} get secret {name} -o jsonpath='{{.data.password}}' | base64 -d > {file} && chmod 600 {file}"),
        );
        p.password_file = Some(file);
    }
    if f.bool("ebgpMultiHop", notes) == Some(true) {
        // MetalLB's FRR mode sets TTL 255 for a multi-hop eBGP session.
        p.ebgp_multihop = Some(255);
    }
    p.graceful_restart = f.bool("enableGracefulRestart", notes);
    let selectors = f.list("nodeSelectors", notes);
    p.node_selector = node_selector(selectors, "matchLabels", "matchExpressions", notes);
    f.unsupported(
        "bfdProfile",
        "ferrolb has no BFD yet; the session relies on its hold time",
        notes,
    );
    f.unsupported(
        "vrf",
        "not supported: ferrolb peers from the default VRF",
        notes,
    );
    f.unsupported(
        "interface",
        "not supported: unnumbered BGP (peering over an interface) needs a peer address in ferrolb",
        notes,
    );
    f.unsupported(
        "dynamicASN",
        "not supported: ferrolb needs the peer's AS number (asn)",
        notes,
    );
    f.unsupported(
        "disableMP",
        "not needed: ferrolb opens one session per address family of the peer address",
        notes,
    );
    f.unsupported(
        "dualStackAddressFamily",
        "not supported: ferrolb advertises the peer address's family only",
        notes,
    );
    f.rest(notes);
    p
}

/// Applies an advertisement to the pools it selects: the mode, and the advertisement's
/// settings. A pool already given a mode keeps it — ferrolb pools have one mode, and since
/// BGP advertisements are applied first, a pool with both becomes bgp: routes reach beyond
/// the LAN segment, where L2 answers only on it.
fn advertise(
    o: Object,
    mode: Mode,
    pools: &mut [(Pool, BTreeMap<String, String>, Vec<String>)],
    aliases: &BTreeMap<String, String>,
    notes: &mut Notes,
) {
    let what = format!("{} {}", o.kind, o.name);
    let mut f = o.spec;
    let names = f.strs("ipAddressPools", notes);
    let mut selected: Vec<usize> = Vec::new();
    for n in &names {
        match pools.iter().position(|(p, _, _)| &p.name == n) {
            Some(i) => selected.push(i),
            None => notes.add(
                f.key("ipAddressPools"),
                format!("no IPAddressPool {n:?} in the input; ignored"),
            ),
        }
    }
    let pool_selectors = f.list("ipAddressPoolSelectors", notes);
    let had_selectors = !pool_selectors.is_empty();
    for mut s in pool_selectors {
        let labels = s.string_map("matchLabels", notes);
        s.unsupported("matchExpressions", "not carried over: only matchLabels select pools here; name the pools in ipAddressPools instead", notes);
        s.rest(notes);
        for (i, (_, pl, _)) in pools.iter().enumerate() {
            if !labels.is_empty()
                && labels.iter().all(|(k, v)| pl.get(k) == Some(v))
                && !selected.contains(&i)
            {
                selected.push(i);
            }
        }
    }
    if names.is_empty() && !had_selectors {
        // MetalLB: an advertisement naming no pool applies to all of them.
        selected = (0..pools.len()).collect();
    }
    let mut settings = Pool::default();
    let selectors = f.list("nodeSelectors", notes);
    settings.node_selector = node_selector(selectors, "matchLabels", "matchExpressions", notes);
    match mode {
        Mode::L2 => {
            settings.interfaces = f.strs("interfaces", notes);
        }
        Mode::Bgp => {
            settings.bgp.aggregation_length = f.int("aggregationLength", notes);
            settings.bgp.aggregation_length_v6 = f.int("aggregationLengthV6", notes);
            settings.bgp.local_pref = f.int("localPref", notes);
            settings.bgp.peers = f.strs("peers", notes);
            settings.bgp.communities = f.communities("communities", aliases, notes);
        }
    }
    f.rest(notes);
    for i in selected {
        let (pool, _, applied) = &mut pools[i];
        if pool.mode.is_some() {
            let first = applied.first().cloned().unwrap_or_default();
            let why = if pool.mode == Some(mode) {
                format!("a ferrolb pool has one advertisement: {first}'s settings were kept; put the addresses to advertise differently in a second pool")
            } else {
                format!("a ferrolb pool has one mode: IPAddressPool {} is also advertised by {first}, so it was converted as a bgp pool (routes reach beyond the LAN segment); to announce it over L2 as well, split its addresses into a second pool with mode = \"l2\"", pool.name)
            };
            notes.add(format!("{what} (pool {})", pool.name), why);
            continue;
        }
        pool.mode = Some(mode);
        pool.node_selector = settings.node_selector.clone();
        pool.interfaces = settings.interfaces.clone();
        pool.bgp = settings.bgp.clone();
        pool.comments
            .push(format!("Mode and settings from {what}."));
        applied.push(what.clone());
    }
}
