//! gobgpd as a router (or a stand-in peer) in a lab namespace: configuration, start, and
//! its view through the `gobgp` CLI.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;

use super::netlab::*;

/// One neighbour of a gobgpd.
pub struct Neighbor<'a> {
    /// Its address.
    pub addr: IpAddr,
    /// TCP MD5 password.
    pub password: Option<&'a str>,
    /// gobgpd only waits for our connection.
    pub passive: bool,
    /// Hold time gobgpd proposes (keepalives at a third); `None`: its default, 90 s.
    pub hold_time: Option<u32>,
}

impl Neighbor<'_> {
    /// A passive neighbour with gobgpd's defaults.
    pub fn to(addr: IpAddr) -> Neighbor<'static> {
        Neighbor {
            addr,
            password: None,
            passive: true,
            hold_time: None,
        }
    }
}

/// Starts gobgpd in `host` as AS `asn`, its neighbours in AS `peer_asn`, its API on
/// 127.0.0.1:`api` (inside the namespace), debug log in the lab directory.
pub fn start_gobgpd(
    lab: &Lab,
    host: &Host,
    (asn, peer_asn): (u32, u32),
    neighbors: &[Neighbor],
    api: &str,
) -> Proc {
    let mut toml = format!(
        "[global.config]\n  as = {asn}\n  router-id = \"{}\"\n",
        host.ipv4
    );
    for n in neighbors {
        toml += &format!(
            "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {peer_asn}\n",
            n.addr
        );
        if let Some(p) = n.password {
            toml += &format!("    auth-password = \"{p}\"\n");
        }
        toml += &format!(
            "  [neighbors.transport.config]\n    passive-mode = {}\n",
            n.passive
        );
        // Dial the node soon when active (the default idle hold after a reset is 30 s).
        toml += "  [neighbors.timers.config]\n    connect-retry = 1\n    idle-hold-time-after-reset = 1\n";
        if let Some(hold) = n.hold_time {
            toml += &format!(
                "    hold-time = {hold}\n    keepalive-interval = {}\n",
                (hold / 3).max(1)
            );
        }
        for family in ["ipv4-unicast", "ipv6-unicast"] {
            toml += &format!(
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{family}\"\n"
            );
        }
    }
    let conf = lab.write_file(&format!("gobgpd-{}.toml", host.name), &toml, 0o644);
    let log = lab.path(&format!("gobgpd-{}.log", host.name));
    let conf = conf.to_string_lossy().to_string();
    let api_host = format!("127.0.0.1:{api}");
    let p = lab.spawn(
        &host.ns,
        "gobgpd",
        &[
            "-f",
            &conf,
            "-t",
            "toml",
            "-p",
            "-l",
            "debug",
            "--api-hosts",
            &api_host,
            "--pprof-disable",
        ],
        &log,
    );
    wait_for("gobgpd API", Duration::from_secs(30), || {
        let out = lab.exec(&host.ns, "gobgp", &["-p", api, "global"]);
        if out.ok {
            Ok(())
        } else {
            Err(out.stderr.clone())
        }
    });
    p
}

/// `gobgp -p API ARGS -j`, parsed.
pub fn gobgp_json(lab: &Lab, host: &Host, api: &str, args: &[&str]) -> Value {
    let mut all = vec!["-p", api];
    all.extend_from_slice(args);
    all.push("-j");
    let out = lab.exec(&host.ns, "gobgp", &all).expect_ok("gobgp");
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

/// GoBGP's session state for `addr` (6 = Established).
pub fn gobgp_session_state(lab: &Lab, host: &Host, api: &str, addr: IpAddr) -> i64 {
    let all = gobgp_json(lab, host, api, &["neighbor"]);
    all.as_array()
        .into_iter()
        .flatten()
        .find(|n| n["conf"]["neighbor_address"] == addr.to_string())
        .and_then(|n| n["state"]["session_state"].as_i64())
        .unwrap_or(0)
}

/// GoBGP's RIB of a family: prefix → (next hop, communities, large communities).
pub fn gobgp_rib(
    lab: &Lab,
    host: &Host,
    api: &str,
    family: &str,
) -> BTreeMap<String, (String, Vec<u64>, Vec<String>)> {
    let rib = gobgp_json(lab, host, api, &["global", "rib", "-a", family]);
    let mut out = BTreeMap::new();
    for (prefix, paths) in rib.as_object().into_iter().flatten() {
        let Some(path) = paths.get(0) else { continue };
        let mut entry = (String::new(), Vec::new(), Vec::new());
        for attr in path["attrs"].as_array().into_iter().flatten() {
            match attr["type"].as_i64() {
                Some(3) => entry.0 = attr["nexthop"].as_str().unwrap_or("").to_string(),
                Some(14) => entry.0 = attr["nexthop"].as_str().unwrap_or("").to_string(),
                Some(8) => {
                    entry.1 = attr["communities"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_u64)
                        .collect()
                }
                Some(32) => {
                    entry.2 = attr["value"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|c| format!("{}:{}:{}", c["ASN"], c["LocalData1"], c["LocalData2"]))
                        .collect()
                }
                _ => {}
            }
        }
        out.insert(prefix.clone(), entry);
    }
    out
}

/// The next hops of every path GoBGP holds for `prefix`, sorted.
pub fn gobgp_paths(lab: &Lab, host: &Host, api: &str, family: &str, prefix: &str) -> Vec<String> {
    let rib = gobgp_json(lab, host, api, &["global", "rib", "-a", family]);
    let mut hops: Vec<String> = rib[prefix]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|path| {
            path["attrs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["type"] == 3 || a["type"] == 14)
                .and_then(|a| a["nexthop"].as_str().map(str::to_string))
        })
        .collect();
    hops.sort();
    hops
}
