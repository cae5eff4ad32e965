//! The reference: keepalived (VRRP, default `advert_int 1`) moving a virtual address on eth0
//! between the same node namespaces, measured by the same probe. The ferrolb daemons are
//! stopped first. Each run: kill -9 the master (keepalived's parent and its VRRP child) and
//! pull its cable; once another node answers, the master's leftover address is removed (as a
//! reboot would), its cable plugged back and keepalived restarted: with the highest priority
//! it preempts and is master again for the next run.

use std::net::IpAddr;
use std::time::Duration;

use crate::common::l2::L2Lab;
use crate::common::netlab::{run_with_timeout, wait_for, Proc};
use crate::common::probe::{now, Probe, Timeouts};

/// Priorities of node1..node3.
const PRIORITIES: [u8; 3] = [150, 100, 50];

fn config(name: &str, priority: u8, vip: IpAddr) -> String {
    format!(
        "global_defs {{\n  router_id {name}\n}}\nvrrp_instance flfob {{\n  state BACKUP\n  interface eth0\n  virtual_router_id 62\n  priority {priority}\n  advert_int 1\n  virtual_ipaddress {{\n    {vip}/24 dev eth0\n  }}\n}}\n"
    )
}

/// One keepalived: the parent process and the file its VRRP child writes its pid to.
struct Keepalived {
    proc: Proc,
    vrrp_pid: std::path::PathBuf,
}

fn start(l: &L2Lab, i: usize, vip: IpAddr, attempt: usize) -> Keepalived {
    let node = &l.nodes[i];
    let conf = l.lab.write_file(
        &format!("keepalived-{}.conf", node.name),
        &config(&node.name, PRIORITIES[i], vip),
        0o644,
    );
    let pid = l.lab.path(&format!("keepalived-{}.pid", node.name));
    let vrrp_pid = l.lab.path(&format!("keepalived-{}.vrrp.pid", node.name));
    let _ = std::fs::remove_file(&vrrp_pid);
    let log = l
        .lab
        .path(&format!("keepalived-{}.{attempt}.log", node.name));
    let args = [
        "-n",
        "-l",
        "-D",
        "-G",
        "-P",
        "-f",
        &conf.to_string_lossy(),
        "-p",
        &pid.to_string_lossy(),
        "-r",
        &vrrp_pid.to_string_lossy(),
    ]
    .map(str::to_string);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let proc = l.lab.spawn(&node.host.ns, "keepalived", &args, &log);
    Keepalived { proc, vrrp_pid }
}

fn kill_vrrp_child(k: &Keepalived) {
    let pid = std::fs::read_to_string(&k.vrrp_pid).unwrap_or_default();
    let pid = pid.trim();
    if !pid.is_empty() {
        let mut cmd = std::process::Command::new("kill");
        cmd.args(["-9", pid]);
        let _ = run_with_timeout(cmd, None, Duration::from_secs(5));
    }
}

/// Runs the keepalived comparison `runs` times.
pub fn run(l: &mut L2Lab, runs: usize) {
    if std::process::Command::new("keepalived")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("keepalived: not installed (apt-get install -y keepalived); skipped");
        return;
    }
    for n in &l.nodes {
        if l.lab.running(n.daemon.proc) {
            l.lab.terminate(n.daemon.proc, Duration::from_secs(20));
        }
    }
    let vip: IpAddr = match l.net.v4(190).parse() {
        Ok(v) => v,
        Err(e) => panic!("virtual address: {e}"),
    };
    let mut ka: Vec<Keepalived> = (0..l.nodes.len()).map(|i| start(l, i, vip, 0)).collect();
    let probe = Probe::start(l, vip, "probe-keepalived", Timeouts::SHORT);
    let master = l.nodes[0].name.clone();
    let mut windows = Vec::new();
    for i in 0..runs {
        let since = now();
        wait_for(
            &format!("{master} to answer for {vip}"),
            Duration::from_secs(30),
            || match probe.last_answer(since) {
                Some(w) if w == master => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        std::thread::sleep(Duration::from_secs(2));
        let t0 = now();
        l.lab.cable(&l.nodes[0].host, false);
        l.lab.kill(ka[0].proc);
        kill_vrrp_child(&ka[0]);
        let next = probe.wait_answer(t0, Some(&master), Duration::from_secs(30));
        std::thread::sleep(Duration::from_secs(2));
        let w = probe.window(t0, now() - 0.5, &master);
        println!(
            "keepalived {i}: {master} -> {next}: outage {} ms, longest interval between answers {} ms, {} of {} attempts lost",
            w.outage.as_millis(),
            w.longest.as_millis(),
            w.lost,
            w.attempts
        );
        windows.push(w);
        let _ = l.lab.exec(
            &l.nodes[0].host.ns,
            "ip",
            &["addr", "del", &format!("{vip}/24"), "dev", "eth0"],
        );
        l.lab.cable(&l.nodes[0].host, true);
        ka[0] = start(l, 0, vip, i + 1);
    }
    for k in &ka {
        if l.lab.running(k.proc) {
            l.lab.kill(k.proc);
        }
        kill_vrrp_child(k);
    }
    l.lab.kill(probe.proc);
    crate::report("keepalived (kill -9 + cable, advert_int 1)", &windows);
}
