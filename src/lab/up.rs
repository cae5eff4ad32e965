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
use super::frr::{frr_installed, start_frr};
use super::kubectl::{kubeconfig_path, kubectl_output, load_balancers};
use super::network::build_network;
use super::nodes::{node_config, node_object};
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
    // Creating the run directory is the lock: of two `lab up` racing, one gets it.
    match std::fs::create_dir(RUN_DIR) {
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(LabError::AlreadyRunning(format!("{RUN_DIR} exists")));
        }
        other => other.map_err(LabError::file(Path::new(RUN_DIR)))?,
    }
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

    build_network(state, &nodes)?;

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
        .map(|(i, n)| node_object(n, &node_ip(i + 1), &v6(&format!("{:x}", 11 + i))))
        .collect();
    kubectl_output(
        &["apply", "-f", "-"],
        Some(&json!({"apiVersion": "v1", "kind": "List", "items": node_objects}).to_string()),
    )?;

    // FRR in the router, when installed.
    let frr = frr_installed();
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
