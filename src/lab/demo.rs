//! `ferrolb lab demo`: the whole story, non-interactively, in the namespace lab: `lab up`
//! (three nodes with gossip, the API simulator, FRR in the router when installed, the example
//! Services), the L2 Service reached from the client and its owner named, the BGP Service
//! reached through the router and spread over the nodes, the L2 owner's cable pulled while the
//! client probes both addresses every 10 ms (how long until another node answers; how long
//! the router keeps sending to the dead node's path), the cable back, `lab down`, and a report
//! of what was measured. Nothing is left behind, also when a step fails.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::down::down;
use super::error::LabError;
use super::fault::cable;
use super::kubectl::load_balancers;
use super::probe;
use super::state::LabState;
use super::topology::{lab_namespaces, CLIENT_NS};
use super::up::{up, UpOptions};

/// The router's hold time for the lab's sessions (`lab/nodes.rs` writes `hold_time = "9s"`).
const HOLD: Duration = Duration::from_secs(9);

/// What the demo measured, for its report and for tests.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// The L2 Service's address and the node that answered it (its owner).
    pub l2: Option<(IpAddr, String)>,
    /// The BGP Service's address and the nodes that answered 30 connections through the router.
    pub bgp: Option<(IpAddr, Vec<String>)>,
    /// L2: cable pulled → first answer from another node.
    pub l2_failover: Option<Duration>,
    /// L2: probes that got no answer meanwhile.
    pub l2_lost: usize,
    /// BGP: probes that failed after the cable was pulled, and when the last one was sent.
    pub bgp_lost: Option<(usize, usize, Duration)>,
    /// Everything was torn down: no namespace and no process of the lab left.
    pub clean: bool,
    /// The whole demo.
    pub total: Duration,
}

impl Report {
    /// The text printed at the end.
    pub fn text(&self) -> String {
        let mut t = String::from("\nferrolb lab demo — report\n");
        match &self.l2 {
            Some((ip, owner)) => {
                let _ = writeln!(
                    t,
                    "  L2 reached: {ip} answered by {owner} (the owner, answering ARP/NDP)"
                );
            }
            None => t.push_str("  L2 not reached\n"),
        }
        match &self.bgp {
            Some((ip, nodes)) => {
                let _ = writeln!(
                    t,
                    "  BGP reached: {ip} through the router, 30 connections answered by {} (ECMP)",
                    nodes.join(", ")
                );
            }
            None => t.push_str("  BGP skipped (FRR not installed: apt-get install frr)\n"),
        }
        match self.l2_failover {
            Some(d) => {
                let _ = writeln!(
                    t,
                    "  failover measured: owner's cable pulled, another node answered the L2 address after {} ms ({} probes unanswered meanwhile)",
                    d.as_millis(),
                    self.l2_lost
                );
            }
            None => t.push_str("  failover not measured: no other node answered\n"),
        }
        if let Some((lost, sent, last)) = self.bgp_lost {
            let _ = writeln!(
                t,
                "  BGP during the failure: {lost} of {sent} probes failed, the last at {:.1} s (the router dropped the node's path at hold-timer expiry, {} s; BFD will shorten this)",
                last.as_secs_f64(),
                HOLD.as_secs()
            );
        }
        let _ = writeln!(
            t,
            "  torn down: {}",
            if self.clean {
                "no ferrolb-* namespace or lab process left"
            } else {
                "SOMETHING WAS LEFT BEHIND"
            }
        );
        let _ = writeln!(t, "  total: {:.1} s", self.total.as_secs_f64());
        t
    }
}

/// Runs the demo with `program` (this binary) as every lab process; prints progress on
/// stdout and returns the report. The lab is taken down whatever happens.
pub fn run(program: PathBuf) -> Result<Report, LabError> {
    let started = Instant::now();
    let said = up(&UpOptions { nodes: 3, program })?;
    println!("{said}");
    let result = story();
    let down_said = down();
    let mut report = result?;
    println!("{}", down_said?);
    report.clean = lab_namespaces()?.is_empty() && LabState::load()?.is_none();
    report.total = started.elapsed();
    Ok(report)
}

fn first_address(services: &[(String, Vec<String>)], name: &str) -> Option<IpAddr> {
    services
        .iter()
        .find(|(n, _)| n == name)?
        .1
        .iter()
        .filter_map(|ip| ip.parse().ok())
        .find(IpAddr::is_ipv4)
}

fn story() -> Result<Report, LabError> {
    let mut report = Report::default();
    let services = load_balancers()?;
    let l2_ip = first_address(&services, "default/hello-l2").ok_or(LabError::Command {
        command: "ferrolb lab demo".into(),
        detail: "the example Service hello-l2 has no IPv4 address".into(),
    })?;
    let l2 = SocketAddr::new(l2_ip, 80);
    let owner = probe::answers(CLIENT_NS, l2, 1)?
        .pop()
        .flatten()
        .ok_or(LabError::Command {
            command: format!("connect {l2} from {CLIENT_NS}"),
            detail: "no node answered the L2 address".into(),
        })?;
    println!("L2: {l2_ip} answered by {owner}");
    report.l2 = Some((l2_ip, owner.clone()));

    let bgp = first_address(&services, "default/hello-bgp").map(|ip| SocketAddr::new(ip, 80));
    if let Some(bgp) = bgp {
        let mut nodes: Vec<String> = probe::answers(CLIENT_NS, bgp, 30)?
            .into_iter()
            .flatten()
            .collect();
        nodes.sort();
        nodes.dedup();
        println!("BGP: {} answered by {}", bgp.ip(), nodes.join(", "));
        report.bgp = Some((bgp.ip(), nodes));
    }

    // The owner fails: its cable is pulled while the client keeps probing.
    let window = HOLD + Duration::from_secs(4);
    let start = Instant::now();
    let l2_probe = probe::spawn(CLIENT_NS, l2, start, Duration::from_secs(10));
    let bgp_probe = bgp.map(|a| probe::spawn(CLIENT_NS, a, start, window));
    println!("{}", cable(&owner, false)?);
    let l2_samples = probe::join(l2_probe)?;
    let moved = l2_samples
        .iter()
        .find(|s| s.node.as_deref().is_some_and(|n| n != owner));
    report.l2_failover = moved.map(|s| s.at);
    report.l2_lost = l2_samples
        .iter()
        .take_while(|s| s.node.as_deref().is_none_or(|n| n == owner))
        .filter(|s| s.node.is_none())
        .count();
    if let Some(p) = bgp_probe {
        let samples = probe::join(p)?;
        let failed: Vec<&probe::Sample> = samples.iter().filter(|s| s.node.is_none()).collect();
        report.bgp_lost = Some((
            failed.len(),
            samples.len(),
            failed.last().map_or(Duration::ZERO, |s| s.at),
        ));
    }
    println!("{}", cable(&owner, true)?);
    Ok(report)
}
