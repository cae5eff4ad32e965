//! The lab's network: namespace names, addresses, and the `ip` (iproute2) commands that build
//! it. Everything lives in namespaces named `ferrolb-*`; the LAN bridge sits in its own
//! namespace (`ferrolb-lan`), so the host's interfaces, routes and sysctls are never touched.
//!
//! Addressing (RFC 6598 shared space and a ULA prefix, unlikely to clash with a real LAN):
//! the LAN is `100.127.0.0/24` and `fdfe:7c4b:1ab0::/64`; the router is `.1`, the API
//! simulator `.2`, the client `.3`, nodes `.11`, `.12`, …; the l2 pool is
//! `100.127.0.200-100.127.0.223` and `fdfe:7c4b:1ab0::200-…::2ff` (on the LAN), the bgp pool `100.127.100.0/28` (routed by the
//! router).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::error::LabError;
use super::state::LabProcess;

/// Every name the lab makes starts with this.
pub const PREFIX: &str = "ferrolb-";
/// The namespace holding the LAN bridge.
pub const LAN_NS: &str = "ferrolb-lan";
/// The LAN bridge (inside [`LAN_NS`]).
pub const BRIDGE: &str = "br0";
/// The Kubernetes API simulator's namespace.
pub const API_NS: &str = "ferrolb-api";
/// The client's namespace.
pub const CLIENT_NS: &str = "ferrolb-client";
/// The router's namespace (FRR, when installed).
pub const ROUTER_NS: &str = "ferrolb-router";
/// The router's LAN address.
pub const ROUTER_IP: &str = "100.127.0.1";
/// The API simulator's address.
pub const API_IP: &str = "100.127.0.2";
/// The client's address.
pub const CLIENT_IP: &str = "100.127.0.3";
/// The LAN's IPv6 prefix (addresses `PREFIX::host`).
pub const LAN_V6: &str = "fdfe:7c4b:1ab0:";
/// The l2 pool (on the LAN).
pub const L2_POOL: &str = "100.127.0.200-100.127.0.223";
/// The l2 pool's IPv6 range (on the LAN).
pub const L2_POOL_V6: &str = "fdfe:7c4b:1ab0::200-fdfe:7c4b:1ab0::2ff";
/// What each node accepts as local for the l2 pool (kube-proxy's part).
pub const L2_LOCAL: &str = "100.127.0.192/27";
/// The same for the IPv6 range.
pub const L2_LOCAL_V6: &str = "fdfe:7c4b:1ab0::200/120";
/// The bgp pool (reached through the router).
pub const BGP_POOL: &str = "100.127.100.0/28";
/// The router's ASN.
pub const ROUTER_ASN: u32 = 64512;
/// The nodes' ASN.
pub const NODE_ASN: u32 = 64513;
/// The program `lab kubectl` runs.
pub const KUBECTL: &str = "/usr/bin/kubectl";

/// The namespace of node `name`.
pub fn node_ns(name: &str) -> String {
    format!("{PREFIX}{name}")
}

/// The LAN address of node number `i` (1-based).
pub fn node_ip(i: usize) -> String {
    format!("100.127.0.{}", 10 + i)
}

/// The IPv6 LAN address for host part `host` (`"b"` for node 11, say).
pub fn v6(host: &str) -> String {
    format!("{LAN_V6}:{host}")
}

/// Whether this process runs as root (`/proc/self` belongs to the effective user).
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Sends `signal` (`TERM`, `KILL`) to `p` with kill(1), if it is still the lab's process.
pub fn signal(p: &LabProcess, signal: &str) {
    if alive(p) {
        if let Err(error) = run("kill", &[&format!("-{signal}"), &p.pid.to_string()]) {
            tracing::debug!(%error, pid = p.pid, "signalling a lab process");
        }
    }
}

/// Fails with the package to install when `program` is not on this machine.
pub fn require(program: &str, package: &'static str) -> Result<(), LabError> {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(program).exists())
        })
    };
    if found {
        Ok(())
    } else {
        Err(LabError::Missing {
            program: program.to_string(),
            package,
        })
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String, LabError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Command {
            command,
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// Runs `ip ARGS`.
pub fn ip(args: &[&str]) -> Result<String, LabError> {
    run("ip", args)
}

/// Runs `program args` inside namespace `ns` to completion.
pub fn exec_in(ns: &str, program: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["netns", "exec", ns, program];
    all.extend_from_slice(args);
    ip(&all)
}

/// Sets sysctls inside `ns` (`/proc/sys/net` is per namespace).
pub fn sysctl(ns: &str, settings: &[(&str, &str)]) -> Result<(), LabError> {
    let pairs: Vec<String> = settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut args = vec!["-q", "-w"];
    args.extend(pairs.iter().map(String::as_str));
    exec_in(ns, "sysctl", &args).map(drop)
}

/// The namespaces whose names start with [`PREFIX`].
pub fn lab_namespaces() -> Result<Vec<String>, LabError> {
    Ok(ip(&["netns", "list"])?
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(PREFIX))
        .map(str::to_string)
        .collect())
}

/// Starts `program args` in `ns`, detached (its own process group, so the terminal's Ctrl-C
/// does not reach it; stdin closed; stdout and stderr appended to `log`).
pub fn spawn_detached(
    role: &str,
    ns: &str,
    program: &str,
    args: &[&str],
    log: &Path,
) -> Result<LabProcess, LabError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(LabError::file(log))?;
    let err = file.try_clone().map_err(LabError::file(log))?;
    // `ip netns exec` execs the program after entering the namespace: the PID is the program's.
    let child = Command::new("ip")
        .args(["netns", "exec", ns, program])
        .args(args)
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .process_group(0)
        .spawn()
        .map_err(|e| LabError::Command {
            command: format!("ip netns exec {ns} {program} {}", args.join(" ")),
            detail: e.to_string(),
        })?;
    let p = LabProcess {
        role: role.to_string(),
        namespace: ns.to_string(),
        pid: child.id(),
        program: program.to_string(),
        log: log.to_path_buf(),
    };
    // Until `ip` has entered the namespace and exec'd, the PID runs `ip`: wait for the
    // program, so that `alive` (and `lab down`) recognise it.
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !alive(&p) {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || Instant::now() >= deadline {
            return Err(LabError::Command {
                command: format!("ip netns exec {ns} {program} {}", args.join(" ")),
                detail: match exited {
                    Some(status) => format!("exited at once ({status}); see {}", log.display()),
                    None => "did not start within 10 s".into(),
                },
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(p)
}

/// Whether `p` still runs (and is still the program the lab started under that PID).
pub fn alive(p: &LabProcess) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else {
        return false;
    };
    let ours = cmdline
        .split(|b| *b == 0)
        .next()
        .is_some_and(|argv0| argv0 == p.program.as_bytes());
    // A zombie keeps its PID but has no cmdline; it is not alive.
    ours && !cmdline.is_empty()
}

/// Waits until `p`'s log holds `needle` (`count` times); fails when `p` exits first or the
/// deadline passes.
pub fn wait_for_log(
    p: &LabProcess,
    needle: &str,
    count: usize,
    timeout: Duration,
) -> Result<(), LabError> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(&p.log).unwrap_or_default();
        if text.matches(needle).count() >= count {
            return Ok(());
        }
        if !alive(p) || Instant::now() >= deadline {
            return Err(LabError::Timeout {
                what: format!("{} ({})", p.role, p.namespace),
                seconds: timeout.as_secs(),
                log: Some(p.log.clone()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        assert_eq!(node_ns("node2"), "ferrolb-node2");
        assert_eq!(node_ip(3), "100.127.0.13");
        assert_eq!(v6("b"), "fdfe:7c4b:1ab0::b");
        for ns in [LAN_NS, API_NS, CLIENT_NS, ROUTER_NS] {
            assert!(ns.starts_with(PREFIX));
        }
        let l2: ipnet::Ipv4Net = L2_LOCAL.parse().unwrap();
        for end in L2_POOL.split('-') {
            assert!(l2.contains(&end.parse::<std::net::Ipv4Addr>().unwrap()));
        }
        let l2: ipnet::Ipv6Net = L2_LOCAL_V6.parse().unwrap();
        for end in L2_POOL_V6.split('-') {
            assert!(l2.contains(&end.parse::<std::net::Ipv6Addr>().unwrap()));
            assert!(end.starts_with(LAN_V6));
        }
    }

    #[test]
    fn missing_programs_name_their_package() {
        let e = require("/nonexistent/kubectl", "kubectl").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/kubectl is not installed (apt-get install kubectl)"
        );
        assert!(require("sh", "dash").is_ok());
    }
}
