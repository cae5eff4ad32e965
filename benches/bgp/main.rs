//! BGP benchmarks (issue 6).
//!
//! - `scale`: a speaker hands N /32 routes (10,000) to FRR in a router namespace. Measured per
//!   run: time from the session being allowed up (`no neighbor … shutdown` on FRR) until FRR
//!   holds all of them (`pfxRcd`, polled every 50 ms), the speaker's UPDATEs on the wire
//!   (count, bytes, first to last), decoded with ferrolb's codec from a `tcpdump` of the
//!   router's link, and the speaker's CPU time (from the moment it holds every route) and RSS.
//!   Speakers, in the same run: `gobgpd` (the routes injected beforehand from an MRT dump with
//!   `gobgp mrt inject global`) and the ferrolb daemon ([`ferrolb_speaker`]: one Service per route).
//! - `hold`: see [`hold`]: cables pulled → FRR drops the paths, at hold time 3 s and 90 s.
//!
//! `cargo bench --features lab --bench bgp` runs 5 runs per speaker (`--runs N`, `--routes N`)
//! and 10 + 2 hold rounds (`--rounds-3 N`, `--rounds-90 N`); `-- scale` or `-- hold` picks a
//! part. Without `--bench` (as `cargo test --benches` runs it) or with `--quick`: one run of
//! 500 routes, one hold round at 3 s. Needs root, FRR, GoBGP, tcpdump, kubectl. Nothing about
//! timings is asserted.

#[path = "../../tests/common/mod.rs"]
mod common;
mod ferrolb_speaker;
mod hold;
mod mrt;
mod pcap;
#[allow(dead_code)]
#[path = "../l2/stats.rs"]
mod stats;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrolb::bgp::codec::Message;

use common::bgp::*;
use common::netlab::*;

const ROUTER_ASN: u32 = 64001;
const NODE_ASN: u32 = 64500;
const WAIT: Duration = Duration::from_secs(120);

/// Who announces the routes.
#[derive(Debug, Clone, Copy)]
enum SpeakerKind {
    /// `gobgpd`, routes injected from an MRT dump before the session comes up.
    GoBgp,
    /// `ferrolb run`, one Service per route, every address allocated and planned before the
    /// session comes up.
    Ferrolb,
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Figures {
    /// Session allowed up → FRR holds every route.
    to_all: Duration,
    /// First to last UPDATE from the speaker on the wire.
    wire: Duration,
    /// The speaker's OPEN to its last UPDATE on the wire (session set-up included).
    from_open: Duration,
    /// The speaker's OPEN on the wire → FRR seen holding every route (the poll's 50 ms
    /// period and a vtysh call included): `to_all` without the wait for a connection.
    open_to_all: Duration,
    /// UPDATE messages from the speaker, End-of-RIB markers included.
    updates: usize,
    /// Their size, headers included.
    update_bytes: usize,
    /// IPv4 prefixes they announced.
    announced: usize,
    /// Every TCP payload byte from the speaker.
    bytes: usize,
    /// The speaker's CPU time (user + system) from injection to the end of the run.
    cpu: Duration,
    /// Its resident set at the end.
    rss_kib: u64,
}

/// The service addresses: 10.200.0.0 onwards.
fn prefixes(routes: usize) -> Vec<Ipv4Addr> {
    (0..routes as u32)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 200, 0, 0)) + i))
        .collect()
}

/// utime + stime of `pid` (`/proc/PID/stat`, in clock ticks of 10 ms).
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|w| w.parse().unwrap_or(0))
        .collect();
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn measure(kind: SpeakerKind, run: usize, routes: usize) -> Figures {
    let lab = Lab::new(&format!("fbrb{run}"));
    let router = lab.host("rtr", "10.254.1.1/24", None);
    let node = lab.host("n1", "10.254.1.11/24", None);
    let node_ip = IpAddr::V4(node.ipv4);
    let mut neighbor = FrrNeighbor::new(node_ip, NODE_ASN);
    neighbor.shutdown = true;
    let frr = FrrRouter::start(
        &lab,
        &router,
        &FrrConfig::new(ROUTER_ASN).neighbor(neighbor),
    );

    // The speaker holds every route before the session may come up.
    let (pid, cpu_before) = match kind {
        SpeakerKind::GoBgp => {
            let speaker =
                GoBgpRouter::speaker(&lab, &node, NODE_ASN, router.ipv4.into(), ROUTER_ASN, 50350);
            // `gobgp mrt inject` exits before its last batch (some hundred routes) is taken:
            // the first routes are repeated at the end of the dump (re-adding a route with the
            // same attributes changes nothing), and the count below is checked exactly.
            let mut dumped = prefixes(routes);
            while dumped.len() < routes + 4096 {
                dumped.extend_from_within(..4096.min(routes));
            }
            let dump = mrt::dump(node.ipv4, NODE_ASN, node.ipv4, &dumped);
            let file = lab.path("routes.mrt");
            std::fs::write(&file, dump).expect("write the MRT dump");
            speaker
                .try_gobgp(&["mrt", "inject", "global", &file.to_string_lossy()])
                .unwrap_or_else(|e| panic!("{e}"));
            wait_for("gobgpd to hold every route", WAIT, || {
                let s = speaker.try_gobgp(&["global", "rib", "summary", "-a", "ipv4"])?;
                if s.contains(&format!("Destination: {routes},")) {
                    Ok(())
                } else {
                    Err(s)
                }
            });
            (speaker.proc.pid, cpu_time(speaker.proc.pid))
        }
        SpeakerKind::Ferrolb => {
            let daemon =
                ferrolb_speaker::start(&lab, &node, router.ipv4, (NODE_ASN, ROUTER_ASN), routes);
            (daemon.pid, cpu_time(daemon.pid))
        }
    };

    let pcap_file = lab.path("bgp.pcap");
    let tcpdump_log = lab.path("tcpdump.log");
    let tcpdump = lab.spawn(
        &router.ns,
        "tcpdump",
        &[
            "-i",
            "eth0",
            "-n",
            // Packets are written as they come, so SIGTERM loses none.
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-Z",
            "root",
            "-w",
            &pcap_file.to_string_lossy(),
            "tcp port 179",
        ],
        &tcpdump_log,
    );
    wait_for("tcpdump to listen", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&tcpdump_log).unwrap_or_default();
        if log.contains("listening on") {
            Ok(())
        } else {
            Err(log)
        }
    });

    let start = Instant::now();
    frr.set_shutdown(ROUTER_ASN, node_ip, false);
    wait_for("FRR to hold every route", WAIT, || {
        match frr.prefixes_received("ipv4", node_ip) {
            n if n as usize == routes => Ok(()),
            n => Err(format!("{n} prefixes")),
        }
    });
    let to_all = start.elapsed();
    // pcap timestamps are wall-clock time.
    let all_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let rss_kib = rss_kib(pid);
    // Let the last segments (End-of-RIB, ACKs) reach the capture.
    std::thread::sleep(Duration::from_millis(500));
    lab.terminate(tcpdump, Duration::from_secs(10));

    let file = std::fs::read(&pcap_file).expect("read the capture");
    let flows = pcap::streams(&file).unwrap_or_else(|e| panic!("capture: {e}"));
    let (out, back) = pcap::busiest(&flows, node.ipv4, router.ipv4)
        .unwrap_or_else(|| panic!("no BGP connection from the speaker in the capture"));
    let messages = pcap::messages(out, back).unwrap_or_else(|e| panic!("capture: {e}"));
    let updates: Vec<&pcap::Captured> = messages
        .iter()
        .filter(|m| matches!(m.message, Message::Update(_)))
        .collect();
    let announced = updates
        .iter()
        .map(|m| match &m.message {
            Message::Update(u) => u.nlri.len(),
            _ => 0,
        })
        .sum();
    let wire = match (updates.first(), updates.last()) {
        (Some(a), Some(b)) => b.at.saturating_sub(a.at),
        _ => Duration::ZERO,
    };
    let from_open = match (messages.first(), updates.last()) {
        (Some(a), Some(b)) => b.at.saturating_sub(a.at),
        _ => Duration::ZERO,
    };
    let open_to_all = messages
        .first()
        .map_or(Duration::ZERO, |open| all_wall.saturating_sub(open.at));
    Figures {
        to_all,
        open_to_all,
        wire,
        from_open,
        updates: updates.len(),
        update_bytes: updates.iter().map(|m| m.len).sum(),
        announced,
        bytes: out.bytes.len(),
        cpu,
        rss_kib,
    }
}

fn arg_value(args: &[String], name: &str) -> Option<usize> {
    let i = args.iter().position(|a| a == name)?;
    args.get(i + 1)?.parse().ok()
}

fn median<T: Ord + Copy>(mut v: Vec<T>) -> T {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--quick");
    let runs = arg_value(&args, "--runs").unwrap_or(if full { 5 } else { 1 });
    let routes = arg_value(&args, "--routes").unwrap_or(if full { 10_000 } else { 500 });
    let filter: Vec<&String> = args
        .iter()
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    let wants = |part: &str| filter.is_empty() || filter.iter().any(|f| f.as_str() == part);
    require_frr();
    require_gobgp();
    require_program("tcpdump");
    if wants("hold") {
        hold::run(
            arg_value(&args, "--rounds-3").unwrap_or(if full { 10 } else { 1 }),
            arg_value(&args, "--rounds-90").unwrap_or(if full { 2 } else { 0 }),
        );
    }
    if !wants("scale") {
        return;
    }
    for kind in [SpeakerKind::GoBgp, SpeakerKind::Ferrolb] {
        let mut all = Vec::new();
        for run in 0..runs {
            let f = measure(kind, run, routes);
            println!(
                "bgp {kind:?} run {run}: all {routes} in FRR after {:?} ({:?} after the speaker's OPEN); {} UPDATEs, {} B ({} prefixes), first→last {:?}, OPEN→last {:?}; {} B from the speaker; speaker CPU {:?}, RSS {} KiB",
                f.to_all, f.open_to_all, f.updates, f.update_bytes, f.announced, f.wire, f.from_open, f.bytes, f.cpu, f.rss_kib
            );
            all.push(f);
        }
        println!(
            "bgp {kind:?} median of {runs}: all in FRR after {:?} ({:?} after the speaker's OPEN); UPDATEs {} ({} B); first→last UPDATE {:?}; OPEN→last UPDATE {:?}; speaker CPU {:?}, RSS {} KiB",
            median(all.iter().map(|f| f.to_all).collect()),
            median(all.iter().map(|f| f.open_to_all).collect()),
            median(all.iter().map(|f| f.updates).collect()),
            median(all.iter().map(|f| f.update_bytes).collect()),
            median(all.iter().map(|f| f.wire).collect()),
            median(all.iter().map(|f| f.from_open).collect()),
            median(all.iter().map(|f| f.cpu).collect()),
            median(all.iter().map(|f| f.rss_kib).collect()),
        );
    }
}
