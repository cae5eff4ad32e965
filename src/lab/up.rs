//! `ferrolb lab up`: builds the lab (see `topology` for names and addresses), starts the API
//! simulator, a responder and a `ferrolb run` daemon per node, FRR in the router when it is
//! installed, applies the example, and says what to try. Every step is recorded in the state
//! file before the next one, so a failure half way is undone with what was made, and nothing
//! else.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::down::teardown;
use super::error::LabError;
use super::kubectl::{kubeconfig_path, kubectl_output, load_balancers};
use super::state::{LabState, RUN_DIR};
use super::topology::*;

/// What `lab up` builds.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// How many nodes (1 to 9).
    pub nodes: usize,
    /// The ferrolb binary the lab runs (the daemons, the simulator, the responders).
    pub program: PathBuf,
}

const FRR_DIR: &str = "/usr/lib/frr";
/// How long a daemon may take to sync with the API.
const START: Duration = Duration::from_secs(60);

/// Builds and starts the lab; returns what to tell the user.
pub fn up(options: &UpOptions) -> Result<String, LabError> {
    if !is_root() {
        return Err(LabError::NotRoot("up"));
    }
    if !(1..=9).contains(&options.nodes) {
        return Err(LabError::Command {
            command: "ferrolb lab up".into(),
            detail: format!("--nodes {} is not between 1 and 9", options.nodes),
        });
    }
    require("ip", "iproute2")?;
    require("sysctl", "procps")?;
    require(KUBECTL, "kubectl")?;
    if LabState::load()?.is_some() {
        return Err(LabError::AlreadyRunning(format!(
            "{} exists",
            super::state::state_path().display()
        )));
    }
    let stale = lab_namespaces()?;
    if !stale.is_empty() {
        return Err(LabError::AlreadyRunning(format!(
            "namespaces {} exist",
            stale.join(", ")
        )));
    }
    std::fs::create_dir_all(RUN_DIR).map_err(LabError::file(Path::new(RUN_DIR)))?;
    let mut state = LabState::default();
    state.save()?;
    let mut out = String::new();
    match build(options, &mut state, &mut out) {
        Ok(()) => Ok(out),
        Err(e) => {
            // Keep the logs for the report: copy them out of the run directory first.
            let kept = keep_logs(&state);
            if let Err(cleanup) = teardown(&state) {
                tracing::warn!(%cleanup, "undoing a failed lab up");
            }
            Err(LabError::Undone {
                error: Box::new(e),
                logs: kept,
            })
        }
    }
}

fn keep_logs(state: &LabState) -> PathBuf {
    let dir = std::env::temp_dir().join("ferrolb-lab-failed");
    // Best effort: the logs only help to explain the error being returned.
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    for p in &state.processes {
        if let Some(name) = p.log.file_name() {
            let _ = std::fs::copy(
                &p.log,
                dir.join(format!("{}-{}", p.namespace, name.to_string_lossy())),
            );
        }
    }
    dir
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

fn random_bytes() -> Result<[u8; 32], LabError> {
    use std::io::Read;
    let path = Path::new("/dev/urandom");
    let mut bytes = [0u8; 32];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(LabError::file(path))?;
    Ok(bytes)
}

fn write_private(path: &Path, text: &str) -> Result<(), LabError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(LabError::file(path))
}

fn build(options: &UpOptions, state: &mut LabState, out: &mut String) -> Result<(), LabError> {
    let run = Path::new(RUN_DIR);
    let program = options.program.to_string_lossy().into_owned();
    let nodes: Vec<String> = (1..=options.nodes).map(|i| format!("node{i}")).collect();

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
        state.save()?;
    }

    // The Kubernetes API simulator.
    let token = hex(&random_bytes()?[..16]);
    let token_file = run.join("token");
    write_private(&token_file, &format!("{token}\n"))?;
    let kubeconfig = kubeconfig_path();
    let listen = format!("{API_IP}:6443");
    let api = spawn_detached(
        "apiserver",
        API_NS,
        &program,
        &[
            "lab",
            "apiserver",
            "--https-listen",
            &listen,
            "--token-file",
            &token_file.to_string_lossy(),
            "--write-kubeconfig",
            &kubeconfig.to_string_lossy(),
            "--lab-endpoints",
        ],
        &run.join("apiserver.log"),
    )?;
    state.processes.push(api.clone());
    state.save()?;
    wait_for_log(&api, "serving https://", 1, START)?;
    let _ = writeln!(
        out,
        "Kubernetes API simulator: https://{listen} in {API_NS}"
    );
    let _ = writeln!(out, "kubeconfig: {}", kubeconfig.display());

    let node_objects: Vec<serde_json::Value> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| node_object(n, &node_ip(i + 1)))
        .collect();
    kubectl_output(
        &["apply", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": node_objects}).to_string()),
    )?;

    // FRR in the router, when installed.
    let frr = Path::new(FRR_DIR).join("bgpd").exists() && Path::new(FRR_DIR).join("zebra").exists();
    if frr {
        start_frr(state, &nodes)?;
        state.bgp = true;
        state.save()?;
        let _ = writeln!(
            out,
            "router: FRR (AS {ROUTER_ASN}) in {ROUTER_NS}, peering with every node"
        );
    } else {
        let _ = writeln!(
            out,
            "FRR not installed (apt-get install frr): BGP part skipped, L2 only"
        );
    }

    // Gossip key, then per node: a responder and the daemon.
    let key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(random_bytes()?)
    };
    let key_file = run.join("gossip.key");
    write_private(&key_file, &format!("{key}\n"))?;
    let mut daemons = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        let ns = node_ns(node);
        let dir = run.join(node);
        std::fs::create_dir_all(&dir).map_err(LabError::file(&dir))?;
        let responder = spawn_detached(
            &format!("responder {node}"),
            &ns,
            &program,
            &[
                "lab",
                "responder",
                "--listen",
                "0.0.0.0:80",
                "--listen",
                "[::]:80",
                "--name",
                node,
            ],
            &dir.join("responder.log"),
        )?;
        state.processes.push(responder.clone());
        state.save()?;
        wait_for_log(&responder, "listening on", 2, START)?;
        let config = dir.join("ferrolb.toml");
        write_private(
            &config,
            &node_config(node, i + 1, options.nodes, &key_file, frr),
        )?;
        let daemon = spawn_detached(
            &format!("ferrolb {node}"),
            &ns,
            &program,
            &["run", "--config", &config.to_string_lossy()],
            &dir.join("ferrolb.log"),
        )?;
        state.processes.push(daemon.clone());
        state.save()?;
        daemons.push(daemon);
    }
    for d in &daemons {
        wait_for_log(d, "initial sync complete", 1, START)?;
    }
    let _ = writeln!(
        out,
        "nodes: {} (ferrolb daemons running, gossip on)",
        nodes.join(", ")
    );

    // The example.
    kubectl_output(
        &["apply", "-f", "-"],
        Some(include_str!("examples/hello-l2.yaml")),
    )?;
    let mut wanted = vec!["default/hello-l2"];
    if frr {
        kubectl_output(
            &["apply", "-f", "-"],
            Some(include_str!("examples/hello-bgp.yaml")),
        )?;
        wanted.push("default/hello-bgp");
    }
    let services = wait_for_addresses(&wanted, Duration::from_secs(30))?;
    let _ = writeln!(out, "\nexample Services:");
    for (name, ips) in &services {
        let _ = writeln!(out, "  {name:<20} {}", ips.join(", "));
    }
    let first = |svc: &str| {
        services
            .iter()
            .find(|(n, _)| n == svc)
            .and_then(|(_, ips)| ips.first().cloned())
    };
    let _ = writeln!(out, "\nTry (as root):\n  ferrolb lab kubectl get svc");
    if let Some(ip) = first("default/hello-l2") {
        let _ = writeln!(
            out,
            "  ip netns exec {CLIENT_NS} curl http://{ip}/      # L2: the node answering ARP says its name"
        );
    }
    if let Some(ip) = first("default/hello-bgp") {
        let _ = writeln!(
            out,
            "  ip netns exec {CLIENT_NS} curl http://{ip}/      # BGP: through the router\n  ip -n {ROUTER_NS} route show {ip}               # the router's ECMP route"
        );
    }
    let _ = writeln!(
        out,
        "  ferrolb lab fail node2\n  ferrolb lab heal node2\n  ferrolb lab status\n  ferrolb lab kubectl apply -f your-manifest.yaml\n  ferrolb lab down"
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn node_object(name: &str, ip: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
        },
    })
}

/// A node's `ferrolb.toml`.
fn node_config(node: &str, i: usize, count: usize, key_file: &Path, bgp: bool) -> String {
    let q = |s: &str| toml::Value::String(s.to_string()).to_string();
    let join: Vec<String> = (1..=count)
        .filter(|j| *j != i)
        .map(|j| q(&format!("{}:7946", node_ip(j))))
        .collect();
    let mut t = format!(
        "# written by `ferrolb lab up`\n[node]\nname = {}\n\n[kubernetes]\nkubeconfig = {}\n\
         lease_duration = \"4s\"\nrenew_deadline = \"3s\"\nretry_period = \"1s\"\n\n\
         [cluster]\nenabled = true\nbind = {}\nsecret_file = {}\njoin = [{}]\n\n\
         [[pool]]\nname = \"lab-l2\"\nmode = \"l2\"\naddresses = [{}]\n",
        q(node),
        q(&kubeconfig_path().to_string_lossy()),
        q(&format!("{}:7946", node_ip(i))),
        q(&key_file.to_string_lossy()),
        join.join(", "),
        q(L2_POOL),
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

/// zebra and bgpd in the router namespace, run directly (no systemd), as NETLAB.md says.
fn start_frr(state: &mut LabState, nodes: &[String]) -> Result<(), LabError> {
    let dir = Path::new(RUN_DIR).join("router");
    std::fs::create_dir_all(&dir).map_err(LabError::file(&dir))?;
    let neighbors: String = (1..=nodes.len())
        .map(|i| format!(" neighbor {} peer-group NODES\n", node_ip(i)))
        .collect();
    let bgpd = format!(
        "hostname router\n!\nrouter bgp {ROUTER_ASN}\n bgp router-id {ROUTER_IP}\n no bgp ebgp-requires-policy\n\
         bgp bestpath as-path multipath-relax\n neighbor NODES peer-group\n neighbor NODES remote-as {NODE_ASN}\n\
         neighbor NODES timers connect 1\n{neighbors} address-family ipv4 unicast\n  neighbor NODES activate\n\
         maximum-paths 8\n exit-address-family\n!\n"
    );
    for (name, text) in [
        ("zebra.conf", "hostname router\n".to_string()),
        ("bgpd.conf", bgpd),
        (
            "vtysh.conf",
            "no service integrated-vtysh-config\n".to_string(),
        ),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(LabError::file(&path))?;
    }
    // The daemons drop to `frr` and must reach their directory.
    run("chown", &["-R", "frr:frr", &dir.to_string_lossy()])?;
    let d = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let common = |conf: &str, pid: &str, log: &str| -> Vec<String> {
        [
            "-u",
            "frr",
            "-g",
            "frr",
            "-f",
            &d(conf),
            "-i",
            &d(pid),
            "-z",
            &d("zserv.api"),
            "--vty_socket",
            &d(""),
            "-P",
            "0",
            "--log",
            &format!("file:{}", d(log)),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let zebra_args = common("zebra.conf", "zebra.pid", "zebra.log");
    let zebra_path = format!("{FRR_DIR}/zebra");
    let zebra = spawn_detached(
        "zebra",
        ROUTER_NS,
        &zebra_path,
        &zebra_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &dir.join("zebra.out"),
    )?;
    state.processes.push(zebra.clone());
    state.save()?;
    wait_until("zebra's socket", Duration::from_secs(20), || {
        dir.join("zserv.api").exists() && alive(&zebra)
    })?;
    let bgpd_args = common("bgpd.conf", "bgpd.pid", "bgpd.log");
    let bgpd_path = format!("{FRR_DIR}/bgpd");
    let bgpd = spawn_detached(
        "bgpd",
        ROUTER_NS,
        &bgpd_path,
        &bgpd_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &dir.join("bgpd.out"),
    )?;
    state.processes.push(bgpd.clone());
    state.save()?;
    wait_until("bgpd's pid file", Duration::from_secs(20), || {
        dir.join("bgpd.pid").exists() && alive(&bgpd)
    })
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: what.to_string(),
                seconds: timeout.as_secs(),
                log: None,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Waits until every Service in `wanted` has an address.
fn wait_for_addresses(
    wanted: &[&str],
    timeout: Duration,
) -> Result<Vec<(String, Vec<String>)>, LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        let now: Vec<(String, Vec<String>)> = load_balancers()?
            .into_iter()
            .filter(|(n, _)| wanted.contains(&n.as_str()))
            .collect();
        if now.len() == wanted.len() && now.iter().all(|(_, ips)| !ips.is_empty()) {
            let mut now = now;
            now.sort_by_key(|(n, _)| wanted.iter().position(|w| w == n));
            return Ok(now);
        }
        if Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("addresses for {}", wanted.join(", ")),
                seconds: timeout.as_secs(),
                log: None,
            });
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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
            let parsed: toml::Value = toml::from_str(&text).unwrap();
            assert_eq!(
                parsed["pool"].as_array().unwrap().len(),
                if bgp { 2 } else { 1 }
            );
        }
    }
}
