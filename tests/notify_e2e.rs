//! End-to-end: the systemd notify protocol of `ferrolb run`, against a test socket standing in
//! for systemd (`NOTIFY_SOCKET`, `WATCHDOG_USEC` as systemd sets them for `Type=notify` with
//! `WatchdogSec=`): `READY=1` with a `STATUS=` line after the first sync, `WATCHDOG=1` at half
//! the watchdog interval from the main loop, `STATUS=` as the work changes, `RELOADING=1` then `READY=1` around a SIGHUP
//! reload, `STOPPING=1` on SIGTERM.
//!
//! Needs root (network namespaces), `ip`, `curl` and `/usr/bin/kubectl`.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::e2e::*;
use common::netlab::*;

/// Every datagram received within `window`.
fn messages(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let end = Instant::now() + window;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .expect("timeout");
        match socket.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => break,
        }
    }
    out
}

#[test]
fn ready_status_watchdog_reload_and_stop_are_notified() {
    let lab = Lab::new("flntf");
    let api_host = lab.host("api", "10.250.68.2/24", None);
    let n1 = lab.host("n1", "10.250.68.11/24", None);
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let socket_path = lab.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    // The daemon inherits them, as from systemd. One test in this file.
    std::env::set_var("NOTIFY_SOCKET", &socket_path);
    std::env::set_var("WATCHDOG_USEC", "400000");
    let mut config = NodeConfig::new("n1", &api.kubeconfig);
    config.pools = vec![PoolConfig::new("default", &["10.250.68.200-10.250.68.209"])];
    let config = lab.ferrolb_config(&config);
    let daemon = lab.start_ferrolb(&n1, &config);

    let first = messages(&socket, Duration::from_secs(2));
    let ready = first
        .iter()
        .find(|m| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {first:?}"));
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("services")),
        "READY=1 without a STATUS line: {ready:?}"
    );
    let pings = first.iter().filter(|m| m.trim() == "WATCHDOG=1").count();
    // Every 200 ms for 2 s: about 10; a busy machine may delay some.
    assert!(pings >= 4, "{pings} watchdog pings in 2 s: {first:?}");

    // STATUS= follows what the daemon does after READY=1.
    apply(&api, &[lb("web")]);
    let later = messages(&socket, Duration::from_secs(3));
    assert!(
        later.iter().any(|m| m
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("1 services"))),
        "no STATUS= line counting the new Service: {later:?}"
    );

    lab.signal(daemon.proc, "HUP");
    let reload = messages(&socket, Duration::from_secs(2));
    let reloading = reload
        .iter()
        .position(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1 in {reload:?}"));
    assert!(
        reload[reloading..]
            .iter()
            .any(|m| m.lines().any(|l| l == "READY=1")),
        "no READY=1 after RELOADING=1: {reload:?}"
    );

    lab.signal(daemon.proc, "TERM");
    let stop = messages(&socket, Duration::from_secs(3));
    assert!(
        stop.iter().any(|m| m.lines().any(|l| l == "STOPPING=1")),
        "no STOPPING=1 in {stop:?}"
    );
    assert!(lab
        .wait_exit(daemon.proc, Duration::from_secs(10))
        .success());
}
