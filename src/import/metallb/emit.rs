//! Writes the converted configuration as a commented ferrolb.toml.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::model::{Converted, Mode, Peer, Pool};

/// The TOML text of `c`; `sources` are the input files, named in the header.
pub(crate) fn emit(c: &Converted, sources: &[String]) -> String {
    let mut s = String::new();
    header(&mut s, sources);
    for p in &c.pools {
        pool(&mut s, p);
    }
    if !c.peers.is_empty() {
        s.push_str("[bgp]\n\n");
    }
    for p in &c.peers {
        peer(&mut s, p);
    }
    s
}

fn header(s: &mut String, sources: &[String]) {
    s.push_str("# ferrolb.toml converted from MetalLB configuration by `ferrolb import-metallb`\n");
    let _ = writeln!(s, "# from: {}", sources.join(", "));
    s.push_str(
        "# Settings that could not be carried over were listed on stderr by the converter.\n\
         # Check the result with: ferrolb check-config --config FILE\n\
         \n\
         [node]\n\
         # The Kubernetes Node name; the default is the host name.\n\
         # name = \"worker-1\"\n\
         \n\
         [kubernetes]\n\
         # How to reach the API server; write a kubeconfig with `ferrolb kubeconfig --server URL\n\
         # --token-file FILE` (see packaging/kubernetes/rbac.yaml) and name it here.\n\
         # kubeconfig = \"/etc/ferrolb/kubeconfig\"\n\
         \n\
         [cluster]\n\
         # The daemons gossip to detect dead nodes; gossip is encrypted with a key shared by every\n\
         # node. The packages create it on first install; otherwise, once, then copy it to every\n\
         # node: head -c 32 /dev/urandom | base64 > /etc/ferrolb/gossip.key && chmod 600 /etc/ferrolb/gossip.key\n\
         # check-config warns (and ferrolb run refuses to start) until this file, and every\n\
         # password_file below, exists with mode 0600.\n\
         secret_file = \"/etc/ferrolb/gossip.key\"\n\n",
    );
}

fn pool(s: &mut String, p: &Pool) {
    for c in &p.comments {
        let _ = writeln!(s, "# {c}");
    }
    s.push_str("[[pool]]\n");
    kv(s, "name", &q(&p.name));
    let mode = match p.mode {
        Some(Mode::Bgp) => "bgp",
        _ => "l2",
    };
    kv(s, "mode", &q(mode));
    kv(s, "addresses", &list(&p.addresses));
    if p.avoid_buggy_ips {
        kv(s, "avoid_buggy_ips", "true");
    }
    if !p.auto_assign {
        kv(s, "auto_assign", "false");
    }
    if p.mode != Some(Mode::Bgp) && !p.interfaces.is_empty() {
        kv(s, "interfaces", &list(&p.interfaces));
    }
    selector(s, &p.node_selector);
    if p.mode == Some(Mode::Bgp) {
        let b = &p.bgp;
        s.push_str("[pool.bgp]\n");
        if !b.peers.is_empty() {
            kv(s, "peers", &list(&b.peers));
        }
        if !b.communities.is_empty() {
            kv(s, "communities", &list(&b.communities));
        }
        opt(s, "local_pref", b.local_pref);
        opt(s, "aggregation_length", b.aggregation_length);
        opt(s, "aggregation_length_v6", b.aggregation_length_v6);
    }
    s.push('\n');
}

fn peer(s: &mut String, p: &Peer) {
    for c in &p.comments {
        let _ = writeln!(s, "# {c}");
    }
    s.push_str("[[bgp.peer]]\n");
    kv(s, "name", &q(&p.name));
    kv(s, "address", &q(&p.address));
    opt(s, "asn", p.asn);
    opt(s, "my_asn", p.my_asn);
    opt(s, "port", p.port);
    for (k, v) in [
        ("hold_time", &p.hold_time),
        ("keepalive_time", &p.keepalive_time),
        ("connect_time", &p.connect_time),
        ("password_file", &p.password_file),
        ("source_address", &p.source_address),
        ("router_id", &p.router_id),
    ] {
        if let Some(v) = v {
            kv(s, k, &q(v));
        }
    }
    opt(s, "ebgp_multihop", p.ebgp_multihop);
    if let Some(g) = p.graceful_restart {
        kv(s, "graceful_restart", &g.to_string());
    }
    selector(s, &p.node_selector);
    s.push('\n');
}

fn selector(s: &mut String, sel: &BTreeMap<String, String>) {
    if sel.is_empty() {
        return;
    }
    let items: Vec<String> = sel
        .iter()
        .map(|(k, v)| format!("{} = {}", q(k), q(v)))
        .collect();
    kv(s, "node_selector", &format!("{{ {} }}", items.join(", ")));
}

fn opt(s: &mut String, key: &str, v: Option<i64>) {
    if let Some(v) = v {
        kv(s, key, &v.to_string());
    }
}

fn kv(s: &mut String, key: &str, value: &str) {
    let _ = writeln!(s, "{key} = {value}");
}

/// A TOML string, quoted and escaped by the `toml` crate.
fn q(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| q(i)).collect();
    format!("[{}]", quoted.join(", "))
}
