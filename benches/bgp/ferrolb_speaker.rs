//! The ferrolb speaker of the `scale` part: the real daemon on the node, fed by the API
//! simulator (on the same LAN) with one LoadBalancer Service per route in a bgp pool, each
//! with a ready endpoint on the node. It allocates every address itself (API rate limit raised
//! to 2000/s) while FRR holds the neighbour in `shutdown`, so when the session is allowed up the
//! daemon has everything to send, as `gobgpd` has after its MRT injection.

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::l2::node_manifest;
use crate::common::netlab::*;

/// The bgp pool: 16,384 addresses from 10.200.0.0, as the GoBGP speaker's routes.
const POOL: &str = "10.200.0.0/18";

fn service(i: usize) -> [Value; 2] {
    let name = format!("s{i:05}");
    [
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default"},
            // No node ports: the API's 2,768 would run out (as in a real cluster).
            "spec": {"type": "LoadBalancer", "selector": {"app": name},
                     "allocateLoadBalancerNodePorts": false,
                     "ports": [{"name": "p80", "protocol": "TCP", "port": 80}]},
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-x1"), "namespace": "default",
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4",
            "ports": [{"name": "p80", "port": 80, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["10.244.0.1"], "nodeName": "n1",
                           "conditions": {"ready": true, "serving": true, "terminating": false}}],
        }),
    ]
}

/// Starts the simulator on `api_ip` of the lab's LAN, `routes` Services, and the daemon on
/// `node` peering with `router` (`node_asn` → `router_asn`); returns its process once it
/// plans to advertise every address.
pub fn start(
    lab: &Lab,
    node: &Host,
    router: Ipv4Addr,
    (node_asn, router_asn): (u32, u32),
    routes: usize,
) -> Proc {
    let api_host = lab.host("api", "10.254.1.2/24", None);
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    api.kubectl_stdin(
        &["apply", "-f", "-"],
        &node_manifest("n1", &node.ipv4.to_string(), true).to_string(),
    )
    .expect_ok("Node n1");
    for chunk in (0..routes).collect::<Vec<_>>().chunks(500) {
        let items: Vec<Value> = chunk.iter().flat_map(|i| service(*i)).collect();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
        api.kubectl_stdin(&["create", "-f", "-"], &list.to_string())
            .expect_ok("kubectl create");
    }
    let mut config = NodeConfig::new("n1", &api.kubeconfig);
    config.kubernetes_extra = "qps = 2000\nburst = 2000\n".into();
    config.metrics_listen = format!("{}:7472", node.ipv4);
    config.pools = vec![PoolConfig::new("bgp", &[POOL]).bgp("")];
    config.bgp_peers = vec![format!(
        "name = \"router\"\naddress = \"{router}\"\nasn = {router_asn}\nmy_asn = {node_asn}\nconnect_time = \"1s\"\n"
    )];
    let config = lab.ferrolb_config(&config);
    let daemon = lab.start_ferrolb(node, &config);
    let metrics = format!("http://{}:7472/metrics", node.ipv4);
    let want = format!("ferrolb_announced_addresses{{mode=\"bgp\"}} {routes}");
    wait_for(
        "the daemon to plan every address",
        Duration::from_secs(900),
        || {
            let out = lab.exec(&node.ns, "curl", &["-s", &metrics]);
            if out.stdout.lines().any(|l| l == want) {
                Ok(())
            } else {
                Err(out
                    .stdout
                    .lines()
                    .filter(|l| l.starts_with("ferrolb_announced"))
                    .collect::<Vec<_>>()
                    .join(", "))
            }
        },
    );
    daemon.proc
}
