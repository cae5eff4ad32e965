//! FRR in the router namespace, run directly (no systemd) as NETLAB.md says: zebra, then bgpd
//! with the same zserv socket; every node is a passive-configured eBGP neighbour in one peer
//! group, multipath on, so a bgp-pool address gets one nexthop per announcing node.

use std::path::Path;
use std::time::{Duration, Instant};

use super::error::LabError;
use super::state::{LabState, RUN_DIR};
use super::topology::*;

const FRR_DIR: &str = "/usr/lib/frr";

/// Whether zebra and bgpd are installed (Debian's `frr` package).
pub fn frr_installed() -> bool {
    Path::new(FRR_DIR).join("bgpd").exists() && Path::new(FRR_DIR).join("zebra").exists()
}

/// zebra and bgpd in the router namespace, run directly (no systemd), as NETLAB.md says.
pub fn start_frr(state: &mut LabState, nodes: &[String]) -> Result<(), LabError> {
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
