//! End-to-end: one `ferrolb run` against an API simulator that misbehaves on purpose (its
//! `/_sim/faults/…` endpoints): watches dropped, every request failing with 500 or with 429 and
//! `Retry-After`, watches forced to 410 Gone, the API stalled, the API down for 30 s. After each
//! fault the daemon must recover by itself — a Service created afterwards gets an address — and
//! must not have written to any Service that already had one (same addresses, same
//! resourceVersion, no write in the request log). While the API fails every request, the number
//! of requests the daemon sends is counted from the simulator's request log and held to a
//! ceiling.
//!
//! Needs root (network namespaces), `ip`, `curl` and `/usr/bin/kubectl`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::e2e::*;
use common::netlab::*;

/// A lab with one daemon and ten allocated Services.
struct Faulty {
    lab: Lab,
    api: Api,
    daemon: Daemon,
    before: BTreeMap<String, Svc>,
}

fn faulty(prefix: &str, n: u8) -> Faulty {
    let lab = Lab::new(prefix);
    let api_host = lab.host("api", &format!("10.250.{n}.2/24"), None);
    let n1 = lab.host("n1", &format!("10.250.{n}.11/24"), None);
    let api = lab.apiserver(&api_host, &ApiserverOptions::default());
    let config = lab.ferrolb_config(
        &NodeConfig::new("n1", &api.kubeconfig).pool(PoolConfig::new(
            "default",
            &[&format!("10.250.{n}.100-10.250.{n}.199")],
        )),
    );
    let daemon = lab.start_ferrolb(&n1, &config);
    wait_lease_holder(&api, Duration::from_secs(20), |h| h == "n1");
    let names: Vec<String> = (0..10).map(|i| format!("old-{i:02}")).collect();
    apply(&api, &names.iter().map(|n| lb(n)).collect::<Vec<_>>());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let before = wait_allocated(&api, &refs, Duration::from_secs(30));
    Faulty {
        lab,
        api,
        daemon,
        before,
    }
}

impl Faulty {
    /// Creates `name` and waits (up to `timeout`) for its address; returns how long it took.
    fn allocates_new(&self, name: &str, timeout: Duration) -> Duration {
        let start = Instant::now();
        apply(&self.api, &[lb(name)]);
        wait_allocated(&self.api, &[name], timeout);
        start.elapsed()
    }

    /// The Services that had addresses before the fault: same addresses, same
    /// resourceVersion, and no write from ferrolb about them since `mark`; the daemon alive; its
    /// requests within RBAC.
    fn nothing_flapped(&self, mark: u64, what: &str) {
        let after = services(&self.api);
        assert_untouched(&self.before, &after, what);
        let names: BTreeSet<String> = self.before.keys().cloned().collect();
        let requests = self.api.requests_after(mark);
        let writes = ferrolb_writes_to(&requests, &names);
        assert!(
            writes.is_empty(),
            "{what}: ferrolb wrote to Services that already had addresses: {writes:#?}"
        );
        assert!(
            self.lab.running(self.daemon.proc),
            "{what}: the daemon exited:\n{}",
            tail(&self.daemon.log, 30)
        );
        assert_rbac(&self.api);
    }

    /// Watches `window` go by and returns ferrolb's requests in it.
    fn observe(&self, window: Duration) -> Vec<Request> {
        let mark = self.api.mark();
        let start = Instant::now();
        wait_for("the observation window", window * 2, || {
            if start.elapsed() >= window {
                Ok(())
            } else {
                Err(String::new())
            }
        });
        let mut requests = self.api.requests_after(mark);
        requests.retain(Request::is_ferrolb);
        requests
    }
}

/// ferrolb's requests, counted by `verb resource`.
fn tally(requests: &[Request]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for r in requests {
        *out.entry(format!("{} {}", r.verb, r.resource)).or_default() += 1;
    }
    out
}

fn ferrolb_watches_after(api: &Api, mark: u64) -> usize {
    api.requests_after(mark)
        .iter()
        .filter(|r| r.is_ferrolb() && r.verb == "watch" && r.status == 200)
        .count()
}

#[test]
fn watches_dropped_resume_without_relisting() {
    let f = faulty("flb-fdrop", 20);
    let mark = f.api.mark();
    f.api.drop_watches();
    wait_for(
        "ferrolb to watch again",
        Duration::from_secs(20),
        || match ferrolb_watches_after(&f.api, mark) {
            n if n >= 3 => Ok(()),
            n => Err(format!("{n} watches reopened")),
        },
    );
    let took = f.allocates_new("new-after-drop", Duration::from_secs(20));
    eprintln!("after dropped watches: a new Service had its address in {took:?}");
    let requests = f.api.requests_after(mark);
    let lists: Vec<&Request> = requests
        .iter()
        .filter(|r| r.is_ferrolb() && r.verb == "list")
        .collect();
    assert!(
        lists.is_empty(),
        "a dropped watch resumes from its resourceVersion, without a relist: {lists:?}"
    );
    f.nothing_flapped(mark, "after dropped watches");
}

#[test]
fn every_request_failing_with_500_is_retried_with_bounded_rate() {
    let f = faulty("flb-f500", 21);
    let mark = f.api.mark();
    f.api.fail_next(1_000_000, 500, 0);
    f.api.drop_watches();
    let window = Duration::from_secs(10);
    let requests = f.observe(window);
    f.api.clear_faults();
    let counts = tally(&requests);
    eprintln!(
        "while every request failed with 500 for {window:?}, ferrolb sent {} requests: {counts:?}",
        requests.len()
    );
    // Only failures, but for the requests in flight when the fault was set.
    let answered = requests.iter().filter(|r| r.status != 500).count();
    assert!(
        answered <= 2,
        "{answered} requests were not failed in the window"
    );
    // Three reflectors backing off from 0.5 s (doubling, jitter down to half) make at most 6
    // attempts each in 10 s; the Lease loop one per retry_period (1 s): 11. Everything else
    // (status writes, Events) has nothing to do. 40 leaves room for timing noise; the client's
    // own rate limit (20/s) would allow 200.
    assert!(
        requests.len() <= 40,
        "ferrolb sent {} requests in {window:?} to an API failing every request: {counts:?}",
        requests.len()
    );
    let took = f.allocates_new("new-after-500s", Duration::from_secs(40));
    eprintln!("after the 500s: a new Service had its address {took:?} after the API recovered");
    f.nothing_flapped(mark, "after 10 s of 500s");
}

#[test]
fn too_many_requests_with_retry_after_is_honoured() {
    let f = faulty("flb-f429", 22);
    let mark = f.api.mark();
    let retry_after = 3;
    f.api.fail_next(1_000_000, 429, retry_after);
    f.api.drop_watches();
    let window = Duration::from_secs(9);
    let requests = f.observe(window);
    f.api.clear_faults();
    let counts = tally(&requests);
    eprintln!(
        "while every request got 429 (Retry-After: {retry_after}) for {window:?}, ferrolb sent {} \
         requests: {counts:?}",
        requests.len()
    );
    // Each reflector waits at least Retry-After between attempts: at most 9/3 + 1 each. The
    // Lease loop keeps its retry_period (1 s), as client-go's leader election does.
    for path in [
        "/api/v1/services",
        "/api/v1/nodes",
        "/apis/discovery.k8s.io/v1/endpointslices",
    ] {
        let n = requests.iter().filter(|r| r.path == path).count();
        assert!(
            n <= 4 + 1,
            "{n} requests to {path} in {window:?} despite Retry-After: {retry_after}"
        );
    }
    assert!(
        requests.len() <= 30,
        "ferrolb sent {} requests in {window:?}: {counts:?}",
        requests.len()
    );
    let took = f.allocates_new("new-after-429s", Duration::from_secs(30));
    eprintln!("after the 429s: a new Service had its address in {took:?}");
    f.nothing_flapped(mark, "after 429s");
}

#[test]
fn forced_410_gone_relists_and_changes_nothing() {
    let f = faulty("flb-f410", 23);
    let mark = f.api.mark();
    f.api.expire_watches(3);
    f.api.drop_watches();
    wait_for("three relists", Duration::from_secs(20), || {
        let lists = f
            .api
            .requests_after(mark)
            .iter()
            .filter(|r| r.is_ferrolb() && r.verb == "list" && r.status == 200)
            .count();
        if lists >= 3 {
            Ok(())
        } else {
            Err(format!("{lists} lists"))
        }
    });
    let took = f.allocates_new("new-after-410", Duration::from_secs(20));
    eprintln!("after 410 Gone: a new Service had its address in {took:?}");
    f.nothing_flapped(mark, "after 410 Gone and a relist");
}

#[test]
fn stalled_api_recovers() {
    let f = faulty("flb-fstall", 24);
    let mark = f.api.mark();
    let stall = 6.0;
    let stalled = Instant::now();
    f.api.stall(stall);
    // The simulator's own endpoints are not held: wait until requests flow again.
    wait_for("the stall to end", Duration::from_secs(20), || {
        if stalled.elapsed().as_secs_f64() > stall {
            Ok(())
        } else {
            Err(String::new())
        }
    });
    let took = f.allocates_new("new-after-stall", Duration::from_secs(30));
    eprintln!("after a {stall} s stall: a new Service had its address in {took:?}");
    wait_lease_holder(&f.api, Duration::from_secs(20), |h| h == "n1");
    f.nothing_flapped(mark, "after the API stalled");
}

#[test]
fn api_down_for_30_seconds_recovers() {
    let f = faulty("flb-fdown", 25);
    let mark = f.api.mark();
    let down = 30.0;
    f.api.restart(down);
    wait_for("the API to go down", Duration::from_secs(10), || {
        match f.api.try_sim("GET", "/_sim/counters") {
            Err(_) => Ok(()),
            Ok(_) => Err("still up".into()),
        }
    });
    let went_down = Instant::now();
    wait_for("the API to come back", Duration::from_secs(60), || {
        f.api.try_sim("GET", "/_sim/counters").map(drop)
    });
    eprintln!("the API was down for {:?}", went_down.elapsed());
    let took = f.allocates_new("new-after-outage", Duration::from_secs(60));
    eprintln!(
        "after a {down} s outage: a new Service had its address {took:?} after the API came back"
    );
    wait_lease_holder(&f.api, Duration::from_secs(20), |h| h == "n1");
    f.nothing_flapped(mark, "after the API was down");
}
