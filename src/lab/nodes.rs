//! What a lab node is made of in the API and on disk: its Node object and its `ferrolb.toml`.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::json;

use super::kubectl::kubeconfig_path;
use super::topology::*;

/// A dual-stack Node, Ready, with both InternalIPs (as a dual-stack kubelet reports).
pub fn node_object(name: &str, ip: &str, ipv6: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "InternalIP", "address": ipv6},
                {"type": "Hostname", "address": name},
            ],
        },
    })
}

/// A node's `ferrolb.toml`.
pub fn node_config(node: &str, i: usize, count: usize, key_file: &Path, bgp: bool) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let join: Vec<String> = (1..=count)
        .filter(|j| *j != i)
        .map(|j| q(&format!("{}:7946", node_ip(j))))
        .collect();
    let mut t = format!(
        "# written by `ferrolb lab up`\n[node]\nname = {}\n\n[kubernetes]\nkubeconfig = {}\n\
         lease_duration = \"4s\"\nrenew_deadline = \"3s\"\nretry_period = \"1s\"\n\n\
         [cluster]\nenabled = true\nbind = {}\nsecret_file = {}\njoin = [{}]\n\n\
         [[pool]]\nname = \"lab-l2\"\nmode = \"l2\"\naddresses = [{}, {}]\n",
        q(node),
        q(&kubeconfig_path().to_string_lossy()),
        q(&format!("{}:7946", node_ip(i))),
        q(&key_file.to_string_lossy()),
        join.join(", "),
        q(L2_POOL),
        q(L2_POOL_V6),
    );
    if bgp {
        let _ = write!(
            t,
            "\n[[pool]]\nname = \"lab-bgp\"\nmode = \"bgp\"\naddresses = [{}]\nauto_assign = false\navoid_buggy_ips = true\n\n\
             [[bgp.peer]]\nname = \"router\"\naddress = {}\nasn = {ROUTER_ASN}\nmy_asn = {NODE_ASN}\n\
             hold_time = \"9s\"\nconnect_time = \"1s\"\n",
            q(BGP_POOL),
            q(ROUTER_IP),
        );
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_configs_pass_validation() {
        for bgp in [false, true] {
            let text = node_config("node2", 2, 3, Path::new("/run/ferrolb-lab/gossip.key"), bgp);
            assert!(
                text.contains("join = [\"100.127.0.11:7946\", \"100.127.0.13:7946\"]"),
                "{text}"
            );
            assert!(text.contains("bind = \"100.127.0.12:7946\""));
            assert_eq!(text.contains("[[bgp.peer]]"), bgp);
            let loaded = crate::config::load_str("ferrolb.toml", &text)
                .unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(loaded.config.pools.len(), if bgp { 2 } else { 1 });
            let parsed: toml::Value = toml::from_str(&text).unwrap();
            assert_eq!(
                parsed["pool"].as_array().unwrap().len(),
                if bgp { 2 } else { 1 }
            );
        }
    }
}
