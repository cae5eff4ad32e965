//! End-to-end: three `ferrolb run` daemons, each in its own node namespace, against one API
//! simulator on the lab LAN. Exactly one allocates (the holder of the Lease
//! `kube-system/ferrolb-allocator`); kill -9 of the holder hands the Lease over once it expires;
//! restarting all three (five times) moves no address. A `kubectl get svc -w` runs throughout
//! and must never see a status flap.
//!
//! Lease timings are short in these configs (4 s / 3 s / 1 s). Takeover times are printed, not
//! asserted.
//!
//! Needs root (network namespaces), `ip`, `curl` and `/usr/bin/kubectl`.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::e2e::*;
use common::netlab::*;

const POOL: (&str, &str) = ("10.250.7.100", "10.250.7.199");

fn pool() -> (IpAddr, IpAddr) {
    (addr(POOL.0), addr(POOL.1))
}

/// Every IPAllocated Event, by Service name: the node whose daemon sent it.
fn allocated_by(api: &Api) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in events(api) {
        if e.reason == "IPAllocated" {
            out.entry(e.object).or_default().push(e.host);
        }
    }
    out
}

/// Creates `names`, waits for their addresses, and checks every Service in the cluster still
/// has a distinct address from the pool. Returns all Services.
fn create_and_allocate(api: &Api, names: &[String]) -> BTreeMap<String, Svc> {
    let specs: Vec<SvcSpec> = names.iter().map(|n| lb(n)).collect();
    apply(api, &specs);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let all = wait_allocated(api, &refs, Duration::from_secs(60));
    let every: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_distinct_in(&all, &every, pool());
    all
}

#[test]
fn three_daemons_one_allocator_takeover_and_restarts() {
    let lab = Lab::new("flb-ha");
    let api_host = lab.host("api", "10.250.7.2/24", None);
    let hosts: Vec<Host> = (1..=3)
        .map(|i| lab.host(&format!("n{i}"), &format!("10.250.7.1{i}/24"), None))
        .collect();
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let configs: Vec<PathBuf> =
        hosts
            .iter()
            .map(|h| {
                lab.ferrolb_config(&NodeConfig::new(&h.name, &api.kubeconfig).pool(
                    PoolConfig::new("default", &[&format!("{}-{}", POOL.0, POOL.1)]),
                ))
            })
            .collect();
    let watch = SvcWatch::start(&lab, &api);
    let mut daemons: Vec<Daemon> = hosts
        .iter()
        .zip(&configs)
        .map(|(h, c)| lab.start_ferrolb(h, c))
        .collect();
    let holder = wait_lease_holder(&api, Duration::from_secs(20), |_| true);
    let first = lease(&api).expect("the Lease");
    assert_eq!(first.duration, 4, "leaseDurationSeconds from the config");

    // --- one allocator: all Services get distinct addresses, all from the holder ---
    let batch: Vec<String> = (0..20).map(|i| format!("s-{i:02}")).collect();
    create_and_allocate(&api, &batch);
    let by = allocated_by(&api);
    for name in &batch {
        assert_eq!(
            by.get(name),
            Some(&vec![holder.clone()]),
            "{name} was allocated by exactly one daemon, the Lease holder"
        );
    }
    let now = lease(&api).expect("the Lease");
    assert_eq!(now.holder, holder, "the Lease stayed with one holder");
    assert_eq!(now.transitions, first.transitions);
    for d in &daemons {
        let acquired = d.log_text().matches("acquired the allocator lease").count();
        assert_eq!(
            acquired,
            usize::from(d.node == holder),
            "{}: {acquired} acquisitions logged",
            d.node
        );
    }

    // --- kill -9 the holder: another takes the Lease once it expires, and allocates ---
    let before = services(&api);
    let victim = daemons
        .iter()
        .position(|d| d.node == holder)
        .expect("the holder runs");
    let killed = Instant::now();
    lab.kill(daemons[victim].proc);
    let successor = wait_lease_holder(&api, Duration::from_secs(30), |h| h != holder);
    let takeover = killed.elapsed();
    eprintln!(
        "lease takeover after kill -9 of {holder}: {successor} holds it {takeover:?} later \
         (lease_duration 4s, retry_period 1s)"
    );
    let l = lease(&api).expect("the Lease");
    assert_eq!(l.transitions, first.transitions + 1, "{l:?}");
    let more: Vec<String> = (0..10).map(|i| format!("t-{i:02}")).collect();
    let all = create_and_allocate(&api, &more);
    let by = allocated_by(&api);
    for name in &more {
        assert_eq!(by.get(name), Some(&vec![successor.clone()]), "{name}");
    }
    assert_untouched(&before, &all, "after the takeover");
    // The killed daemon comes back as a follower.
    daemons[victim] = lab.start_ferrolb(&hosts[victim], &configs[victim]);

    // --- SIGTERM the holder alone: it releases the Lease and another takes it at once ---
    let before = services(&api);
    let leaving = daemons
        .iter()
        .position(|d| d.node == successor)
        .expect("the holder runs");
    let stopped = Instant::now();
    let status = lab.terminate(daemons[leaving].proc, Duration::from_secs(15));
    assert!(status.success(), "{successor} stopped with {status}");
    let next = wait_lease_holder(&api, Duration::from_secs(30), |h| h != successor);
    eprintln!(
        "lease handover after SIGTERM of {successor}: {next} holds it {:?} after the signal",
        stopped.elapsed()
    );
    assert!(
        daemons[leaving]
            .log_text()
            .contains("released the allocator lease"),
        "{successor} did not release the Lease:\n{}",
        tail(&daemons[leaving].log, 20)
    );
    let all = create_and_allocate(&api, &["u-00".to_string()]);
    assert_eq!(allocated_by(&api).get("u-00"), Some(&vec![next.clone()]));
    assert_untouched(&before, &all, "after the handover on SIGTERM");
    daemons[leaving] = lab.start_ferrolb(&hosts[leaving], &configs[leaving]);

    // --- restart all three, five times: every Service keeps its address ---
    for round in 1..=5 {
        let before = services(&api);
        for d in &daemons {
            lab.signal(d.proc, "TERM");
        }
        for d in &daemons {
            let status = lab.wait_exit(d.proc, Duration::from_secs(15));
            assert!(status.success(), "{} stopped with {status}", d.node);
        }
        let released = lease(&api).expect("the Lease");
        assert_eq!(
            released.holder, "",
            "round {round}: the holder released the Lease on SIGTERM: {released:?}"
        );
        // A different daemon starts first each round, so the Lease changes hands.
        let started = Instant::now();
        for k in 0..daemons.len() {
            let i = (k + round) % daemons.len();
            daemons[i] = lab.start_ferrolb(&hosts[i], &configs[i]);
        }
        let holder = wait_lease_holder(&api, Duration::from_secs(30), |_| true);
        eprintln!(
            "restart round {round}: {holder} holds the Lease {:?} after the first daemon started",
            started.elapsed()
        );
        let name = format!("r-{round}");
        let all = create_and_allocate(&api, std::slice::from_ref(&name));
        assert_eq!(allocated_by(&api).get(&name), Some(&vec![holder.clone()]));
        assert_untouched(&before, &all, &format!("restart round {round}"));
    }

    // kubectl get -w saw every state: no Service's status ever went away or changed.
    let names: Vec<String> = services(&api).into_keys().collect();
    assert_eq!(names.len(), 36);
    watch.assert_no_flaps(&lab, &names);
    for d in &daemons {
        assert!(lab.running(d.proc), "{} exited", d.node);
    }
    assert_rbac(&api);
}

/// The timestamp that starts a log line holding `needle` (RFC 3339, UTC, fixed width: compares
/// as text).
fn logged_at(d: &Daemon, needle: &str) -> Option<String> {
    d.log_text()
        .lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split_whitespace().next())
        .map(str::to_string)
}

#[test]
fn a_holder_cut_off_from_the_api_stops_allocating_before_another_takes_over() {
    let lab = Lab::new("flb-cut");
    let api_host = lab.host("api", "10.250.8.2/24", None);
    let hosts = [
        lab.host("n1", "10.250.8.11/24", None),
        lab.host("n2", "10.250.8.12/24", None),
    ];
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let configs: Vec<PathBuf> = hosts
        .iter()
        .map(|h| {
            lab.ferrolb_config(
                &NodeConfig::new(&h.name, &api.kubeconfig)
                    .pool(PoolConfig::new("default", &["10.250.8.100-10.250.8.199"])),
            )
        })
        .collect();
    let watch = SvcWatch::start(&lab, &api);
    let n1 = lab.start_ferrolb(&hosts[0], &configs[0]);
    wait_lease_holder(&api, Duration::from_secs(20), |h| h == "n1");
    let n2 = lab.start_ferrolb(&hosts[1], &configs[1]);
    let first: Vec<String> = (0..5).map(|i| format!("a-{i}")).collect();
    let pool = (addr("10.250.8.100"), addr("10.250.8.199"));
    apply(&api, &first.iter().map(|n| lb(n)).collect::<Vec<_>>());
    let refs: Vec<&str> = first.iter().map(String::as_str).collect();
    wait_allocated(&api, &refs, Duration::from_secs(20));

    // Pull n1's cable: it can no longer renew; n2 takes the Lease once it expires.
    let pulled = Instant::now();
    lab.cable(&hosts[0], false);
    wait_lease_holder(&api, Duration::from_secs(30), |h| h == "n2");
    eprintln!(
        "n1's cable pulled: n2 holds the Lease {:?} later",
        pulled.elapsed()
    );
    // While n1 is cut off, n2 allocates; one of n1's Services goes away.
    api.kubectl_ok(&["delete", "svc", "a-0"]);
    let second: Vec<String> = (0..5).map(|i| format!("b-{i}")).collect();
    apply(&api, &second.iter().map(|n| lb(n)).collect::<Vec<_>>());
    let refs: Vec<&str> = second.iter().map(String::as_str).collect();
    wait_allocated(&api, &refs, Duration::from_secs(20));
    // n1 gave up leading on its own, within renew_deadline, before n2 took over: there was
    // never a moment with two allocators.
    let stepped_down = logged_at(&n1, "stepping down");
    let acquired = logged_at(&n2, "acquired the allocator lease");
    eprintln!("n1 stepped down at {stepped_down:?}; n2 acquired at {acquired:?}");
    assert!(
        stepped_down.is_some() && stepped_down < acquired,
        "n1 did not stop leading before n2 took over (n1 stepped down at {stepped_down:?}, n2 \
         acquired at {acquired:?}):\n{}",
        tail(&n1.log, 20)
    );

    // Plug it back in: n1 follows, writes nothing; every address stays where it is.
    lab.cable(&hosts[0], true);
    let healed = Instant::now();
    apply(&api, &[lb("c-0")]);
    let all = wait_allocated(&api, &["c-0"], Duration::from_secs(20));
    let every: Vec<&str> = all.keys().map(String::as_str).collect();
    assert_distinct_in(&all, &every, pool);
    for e in events(&api) {
        if e.reason == "IPAllocated" && (e.object.starts_with("b-") || e.object == "c-0") {
            assert_eq!(e.host, "n2", "{e:?}");
        }
    }
    eprintln!(
        "after the cable was plugged back in: c-0 allocated {:?} later",
        healed.elapsed()
    );
    let mut names: Vec<String> = all.into_keys().collect();
    names.retain(|n| n != "a-0");
    watch.assert_no_flaps(&lab, &names);
    assert!(lab.running(n1.proc) && lab.running(n2.proc));
    assert_rbac(&api);
}
