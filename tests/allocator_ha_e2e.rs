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
    assert_eq!(names.len(), 35);
    watch.assert_no_flaps(&names);
    for d in &daemons {
        assert!(lab.running(d.proc), "{} exited", d.node);
    }
    assert_rbac(&api);
}
