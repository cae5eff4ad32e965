//! `ferrolb lab status`: the namespaces, whether each process the lab started is alive, the
//! LoadBalancer Services and their addresses (from the simulator), and which node answers
//! each address when the client connects.

use std::fmt::Write as _;

use super::error::LabError;
use super::kubectl::load_balancers;
use super::state::LabState;
use super::topology::{alive, exec_in, lab_namespaces, require, CLIENT_NS};

/// The status report.
pub fn status() -> Result<String, LabError> {
    let state = LabState::load()?.ok_or(LabError::NotRunning)?;
    let mut out = String::new();
    let present = lab_namespaces()?;
    let _ = writeln!(out, "namespaces:");
    for ns in &state.namespaces {
        let mark = if present.contains(ns) {
            ""
        } else {
            " (missing)"
        };
        let _ = writeln!(out, "  {ns}{mark}");
    }
    let _ = writeln!(out, "processes:");
    for p in &state.processes {
        let life = if alive(p) { "running" } else { "DEAD" };
        let _ = writeln!(
            out,
            "  {:<18} pid {:<7} {life:<8} in {} (log {})",
            p.role,
            p.pid,
            p.namespace,
            p.log.display()
        );
    }
    let _ = writeln!(out, "nodes (LAN cable):");
    for (node, port) in &state.nodes {
        let link =
            super::topology::ip(&["-n", super::topology::LAN_NS, "-o", "link", "show", port])
                .unwrap_or_default();
        let cable = if link.contains(",UP") || link.contains("<UP") {
            "connected"
        } else {
            "PULLED"
        };
        let _ = writeln!(out, "  {node:<8} {cable}");
    }
    let has_curl = require("curl", "curl").is_ok();
    let _ = writeln!(out, "services (type LoadBalancer):");
    let services = match load_balancers() {
        Ok(s) => s,
        Err(error) => {
            // The rest of the report still helps to see why.
            let _ = writeln!(out, "  cannot ask the API simulator: {error}");
            Vec::new()
        }
    };
    for (name, ips) in services {
        if ips.is_empty() {
            let _ = writeln!(out, "  {name:<24} <pending>");
        }
        for ip in ips {
            let answer = if has_curl {
                answered_by(&ip)
            } else {
                "(install curl to see who answers)".into()
            };
            let _ = writeln!(out, "  {name:<24} {ip:<16} {answer}");
        }
    }
    Ok(out)
}

/// Which node answers `ip`'s port 80 from the client (the responder says its name).
pub fn answered_by(ip: &str) -> String {
    let host = if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    match exec_in(
        CLIENT_NS,
        "curl",
        &["-s", "--max-time", "2", &format!("http://{host}/")],
    ) {
        Ok(body) if !body.trim().is_empty() => format!("answered by {}", body.trim()),
        _ => "no answer".into(),
    }
}
