//! Builds the lab's network (see `topology` for names and addresses): the LAN bridge in its
//! own namespace, a veth from it to `eth0` of every other namespace, the router's forwarding
//! sysctls, the client's route to the bgp pool through the router, and on each node the
//! ARP sysctls and the local routes that stand in for kube-proxy. Each namespace and link is
//! recorded in the state before it is configured.

use super::error::LabError;
use super::state::LabState;
use super::topology::*;

/// Builds the LAN, the router, API and client namespaces and one namespace per node.
pub fn build_network(state: &mut LabState, nodes: &[String]) -> Result<(), LabError> {
    // The LAN: a bridge in its own namespace.
    add_namespace(state, LAN_NS)?;
    ip(&["-n", LAN_NS, "link", "add", BRIDGE, "type", "bridge"])?;
    state.links.push(format!("{LAN_NS}/{BRIDGE}"));
    ip(&[
        "-n",
        LAN_NS,
        "link",
        "set",
        BRIDGE,
        "type",
        "bridge",
        "stp_state",
        "0",
        "mcast_snooping",
        "0",
    ])?;
    ip(&["-n", LAN_NS, "link", "set", BRIDGE, "up"])?;

    add_namespace(state, ROUTER_NS)?;
    sysctl(
        ROUTER_NS,
        &[
            ("net.ipv4.ip_forward", "1"),
            ("net.ipv6.conf.all.forwarding", "1"),
            ("net.ipv4.fib_multipath_hash_policy", "1"),
            ("net.ipv4.conf.all.send_redirects", "0"),
            ("net.ipv4.conf.default.send_redirects", "0"),
        ],
    )?;
    attach(state, ROUTER_NS, "vrouter", ROUTER_IP, "1")?;

    add_namespace(state, API_NS)?;
    attach(state, API_NS, "vapi", API_IP, "2")?;

    add_namespace(state, CLIENT_NS)?;
    sysctl(
        CLIENT_NS,
        &[
            ("net.ipv4.conf.all.accept_redirects", "0"),
            ("net.ipv6.conf.all.accept_redirects", "0"),
        ],
    )?;
    attach(state, CLIENT_NS, "vclient", CLIENT_IP, "3")?;
    // The bgp pool is reached through the router.
    ip(&["-n", CLIENT_NS, "route", "add", BGP_POOL, "via", ROUTER_IP])?;

    for (i, node) in nodes.iter().enumerate() {
        let ns = node_ns(node);
        add_namespace(state, &ns)?;
        // Answer ARP only for addresses on the receiving interface, never use a service
        // address as ARP sender: ferrolb, not the kernel, decides who answers.
        sysctl(
            &ns,
            &[
                ("net.ipv4.conf.all.arp_ignore", "1"),
                ("net.ipv4.conf.default.arp_ignore", "1"),
                ("net.ipv4.conf.all.arp_announce", "2"),
                ("net.ipv4.conf.default.arp_announce", "2"),
            ],
        )?;
        let port = format!("v{node}");
        attach(state, &ns, &port, &node_ip(i + 1), &format!("{:x}", 11 + i))?;
        state.nodes.push((node.clone(), port));
        // kube-proxy's part: the node accepts traffic for every pool address.
        ip(&["-n", &ns, "route", "add", "local", L2_LOCAL, "dev", "lo"])?;
        ip(&["-n", &ns, "route", "add", "local", BGP_POOL, "dev", "lo"])?;
        ip(&[
            "-n",
            &ns,
            "-6",
            "route",
            "add",
            "local",
            L2_LOCAL_V6,
            "dev",
            "lo",
        ])?;
        state.save()?;
    }
    Ok(())
}

fn add_namespace(state: &mut LabState, ns: &str) -> Result<(), LabError> {
    ip(&["netns", "add", ns])?;
    state.namespaces.push(ns.to_string());
    state.save()?;
    ip(&["-n", ns, "link", "set", "lo", "up"])?;
    sysctl(
        ns,
        &[
            ("net.ipv6.conf.all.accept_dad", "0"),
            ("net.ipv6.conf.default.accept_dad", "0"),
        ],
    )
}

/// A veth from the bridge (`port`, in the LAN namespace) to `eth0` in `ns`, with addresses.
fn attach(
    state: &mut LabState,
    ns: &str,
    port: &str,
    v4: &str,
    v6_host: &str,
) -> Result<(), LabError> {
    ip(&[
        "-n", LAN_NS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns,
    ])?;
    state.links.push(format!("{LAN_NS}/{port}"));
    state.links.push(format!("{ns}/eth0"));
    state.save()?;
    ip(&["-n", LAN_NS, "link", "set", port, "master", BRIDGE, "up"])?;
    ip(&["-n", ns, "addr", "add", &format!("{v4}/24"), "dev", "eth0"])?;
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{}/64", v6(v6_host)),
        "dev",
        "eth0",
        "nodad",
    ])?;
    ip(&["-n", ns, "link", "set", "eth0", "up"]).map(drop)
}
