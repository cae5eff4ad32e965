//! Allocator benchmarks against the in-process Kubernetes API simulator and the real `ferrolb
//! run` binary (child processes), on loopback. See BENCHMARKS.md for the figures.
//!
//! - `latency`: Service created → `status.loadBalancer.ingress` in the simulator's store, for
//!   Services created one after another at a steady pace and for a burst created as fast as
//!   possible; the store is *watched* in-process (no requests added to the daemon's path);
//!   plus the daemon's requests by verb during each run and its RSS afterwards.
//! - `rss`: daemon `VmRSS`/`VmHWM` with 0 Services and with 10,000 Services (seeded in the
//!   store with their addresses already in their status, so the daemon lists and keeps them).
//! - `takeover`: three daemons; kill -9 the Lease holder and create a Service at once; time
//!   until another daemon holds the Lease and until that Service has an address.
//!
//! `cargo bench --bench allocator` runs the full sizes (several minutes); append
//! `-- latency`, `-- rss` or `-- takeover` to run only some. Without `--bench` (as
//! `cargo test --benches` runs it) or with `--test`/`--quick` it does a tiny smoke run.
//! Nothing is asserted about timings: the program measures and prints.
//! The daemon binary is the one cargo built alongside (`CARGO_BIN_EXE_ferrolb`), or
//! `FERROLB_BIN`.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig, RequestRecord};
use serde_json::{json, Value};

/// Pool for every run: the benchmarking range of RFC 2544, never a real LAN.
const POOL: &str = "198.18.0.0/16";
const LEASE_PATH: &str =
    "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/ferrolb-allocator";

struct Sizes {
    steady: usize,
    steady_rate: f64,
    burst: usize,
    rss: usize,
    takeover_15s: usize,
    takeover_4s: usize,
}

const FULL: Sizes = Sizes {
    steady: 1_000,
    steady_rate: 5.0,
    burst: 1_000,
    rss: 10_000,
    takeover_15s: 3,
    takeover_4s: 10,
};

const QUICK: Sizes = Sizes {
    steady: 20,
    steady_rate: 10.0,
    burst: 20,
    rss: 200,
    takeover_15s: 0,
    takeover_4s: 1,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let full = args.iter().any(|a| a == "--bench")
        && !args.iter().any(|a| a == "--test" || a == "--quick");
    // Remaining free arguments select parts (cargo may pass other flags; ignore them).
    let parts: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .filter(|a| ["latency", "rss", "takeover"].contains(a))
        .collect();
    let want = |p: &str| parts.is_empty() || parts.contains(&p);
    let sizes = if full { FULL } else { QUICK };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let bin = daemon_binary();
    println!(
        "allocator benchmarks ({} mode), daemon binary {}",
        if full { "full" } else { "quick" },
        bin.display()
    );
    rt.block_on(async {
        if want("latency") {
            latency(&bin, "steady", sizes.steady, Some(sizes.steady_rate)).await;
            latency(&bin, "burst", sizes.burst, None).await;
        }
        if want("rss") {
            rss(&bin, sizes.rss).await;
        }
        if want("takeover") {
            if sizes.takeover_4s > 0 {
                takeover(&bin, "4s", sizes.takeover_4s).await;
            }
            if sizes.takeover_15s > 0 {
                takeover(&bin, "15s", sizes.takeover_15s).await;
            }
        }
    });
}

fn daemon_binary() -> PathBuf {
    if let Ok(p) = std::env::var("FERROLB_BIN") {
        return PathBuf::from(p);
    }
    PathBuf::from(env!("CARGO_BIN_EXE_ferrolb"))
}

// ---------------------------------------------------------------------------------------------
// Plumbing: simulator, daemons, statistics.

struct Lab {
    api: ApiServer,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

async fn lab() -> Lab {
    let api = ApiServer::start(ApiServerConfig {
        https: vec!["127.0.0.1:0".parse().expect("an address")],
        token: Some(format!("bench-{:016x}", fastrand::u64(..))),
        history: 50_000,
        ..ApiServerConfig::default()
    })
    .await
    .expect("the simulator starts");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig, true)
        .expect("kubeconfig written");
    Lab {
        api,
        dir,
        kubeconfig,
    }
}

/// A daemon process, killed when dropped.
struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Daemon {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_contains(&self, needle: &str) -> bool {
        std::fs::read_to_string(&self.log).is_ok_and(|t| t.contains(needle))
    }
}

/// Lease timings: (duration, renew deadline, retry period).
fn lease_settings(lease: &str) -> (&'static str, &'static str, &'static str) {
    match lease {
        "4s" => ("4s", "3s", "1s"),
        _ => ("15s", "10s", "2s"),
    }
}

fn start_daemon(bin: &Path, lab: &Lab, name: &str, lease: &str) -> Daemon {
    let (duration, renew, retry) = lease_settings(lease);
    let config = lab.dir.path().join(format!("{name}.toml"));
    let text = format!(
        r#"[node]
name = "{name}"

[kubernetes]
kubeconfig = {kubeconfig:?}
lease_duration = "{duration}"
renew_deadline = "{renew}"
retry_period = "{retry}"

[cluster]
enabled = false

[metrics]
listen = ""

[[pool]]
name = "bench"
mode = "l2"
addresses = ["{POOL}"]
"#,
        kubeconfig = lab.kubeconfig
    );
    std::fs::write(&config, text).expect("daemon config written");
    let log = lab.dir.path().join(format!("{name}.log"));
    let child = Command::new(bin)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .env_remove("FERROLB_CONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("daemon log created"))
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    Daemon {
        name: name.to_string(),
        child,
        log,
    }
}

fn service(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": { "name": name, "namespace": "default" },
        "spec": {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": false,
            "selector": { "app": name },
            "ports": [{ "port": 80, "protocol": "TCP" }],
        }
    })
}

fn has_ingress(svc: &Value) -> bool {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .is_some_and(|a| !a.is_empty())
}

fn lease_holder(api: &ApiServer) -> Option<String> {
    let lease = api.object(LEASE_PATH)?;
    lease["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

async fn until<T>(
    timeout: Duration,
    step: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let end = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        if Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(step).await;
    }
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn rss_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// p50/p99/max (nearest rank) of durations, in the unit's words.
struct Summary {
    n: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    min: Duration,
}

fn summary(mut v: Vec<Duration>) -> Summary {
    v.sort();
    let rank = |q: f64| {
        let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
        v[i]
    };
    Summary {
        n: v.len(),
        p50: rank(0.50),
        p99: rank(0.99),
        max: *v.last().unwrap_or(&Duration::ZERO),
        min: *v.first().unwrap_or(&Duration::ZERO),
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

/// The daemons' requests (user agent `ferrolb/…`), counted by `verb resource[/subresource]`.
fn daemon_requests(records: &[RequestRecord]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for r in records
        .iter()
        .filter(|r| r.user_agent.starts_with("ferrolb/"))
    {
        let what = if r.subresource.is_empty() {
            format!("{} {}", r.verb, r.resource)
        } else {
            format!("{} {}/{}", r.verb, r.resource, r.subresource)
        };
        *by.entry(what).or_insert(0) += 1;
    }
    by
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: created → status written, requests per Service.

async fn latency(bin: &Path, kind: &str, n: usize, rate: Option<f64>) {
    let lab = lab().await;
    let daemon = start_daemon(bin, &lab, "node1", "15s");
    let api = &lab.api;
    until(Duration::from_secs(30), Duration::from_millis(20), || {
        lease_holder(api).filter(|_| daemon.log_contains("allocator started"))
    })
    .await
    .expect("the daemon takes the Lease and starts allocating");
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Watch the store in-process: the moment a Service's status first shows an address.
    let seen: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let mut sub = api
        .store()
        .subscribe(None, "services", Some("default"))
        .expect("a store subscription");
    let watcher = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut lagged = 0u64;
            loop {
                match sub.live.recv().await {
                    Ok(ev) => {
                        if has_ingress(&ev.object) {
                            let now = Instant::now();
                            seen.lock()
                                .expect("lock")
                                .entry(ev.name.clone())
                                .or_insert(now);
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(k)) => lagged += k,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break lagged,
                }
            }
        })
    };

    api.clear_requests();
    let (rss0, _) = rss_kib(daemon.pid());
    let t_start = Instant::now();
    let mut created: Vec<(String, Instant)> = Vec::with_capacity(n);
    for i in 0..n {
        if let Some(rate) = rate {
            let due = t_start + Duration::from_secs_f64(i as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let name = format!("{kind}-{i:05}");
        api.create(&service(&name))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        created.push((name, Instant::now()));
    }
    let t_created = t_start.elapsed();
    let deadline = Duration::from_secs(120 + (n as u64) / 2);
    let all = until(deadline, Duration::from_millis(50), || {
        let seen = seen.lock().expect("lock");
        created
            .iter()
            .all(|(name, _)| seen.contains_key(name))
            .then_some(())
    })
    .await;
    let t_all = t_start.elapsed();
    // Let the trailing annotation patches and Events go out before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let records = api.requests();
    let (rss1, hwm1) = rss_kib(daemon.pid());
    drop(daemon);
    api.shutdown();
    watcher.abort();

    let seen = seen.lock().expect("lock").clone();
    let mut early = 0;
    let lat: Vec<Duration> = created
        .iter()
        .filter_map(|(name, t)| {
            let s = seen.get(name)?;
            if s < t {
                early += 1;
            }
            Some(s.saturating_duration_since(*t))
        })
        .collect();
    let missing = n - lat.len();
    let s = summary(lat);
    let by = daemon_requests(&records);
    let total: usize = by.values().sum();

    let mut out = String::new();
    let pace = rate.map_or("as fast as possible".to_string(), |r| format!("{r}/s"));
    let _ = writeln!(out, "\n## latency/{kind}: {n} Services created at {pace}");
    let _ = writeln!(
        out,
        "created in {:.1} s; all addressed after {:.1} s{}",
        t_created.as_secs_f64(),
        t_all.as_secs_f64(),
        if all.is_none() {
            format!(" (TIMED OUT: {missing} without an address)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "created → ingress in store: n={} min={} p50={} p99={} max={}{}",
        s.n,
        ms(s.min),
        ms(s.p50),
        ms(s.p99),
        ms(s.max),
        if early > 0 {
            format!(" ({early} seen before the create returned, counted as 0)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        out,
        "daemon requests during the run: {total} = {:.2} per Service",
        total as f64 / n as f64
    );
    for (what, count) in &by {
        let _ = writeln!(
            out,
            "  {what:<28} {count:>6}  ({:.2}/Service)",
            *count as f64 / n as f64
        );
    }
    let _ = writeln!(
        out,
        "daemon VmRSS before {} after {} (VmHWM {})",
        mib(rss0),
        mib(rss1),
        mib(hwm1)
    );
    print!("{out}");
}

// ---------------------------------------------------------------------------------------------
// 3: RSS with 0 and with N Services in the cache.

async fn rss(bin: &Path, n: usize) {
    // 0 Services.
    let lab0 = lab().await;
    let d0 = start_daemon(bin, &lab0, "node1", "15s");
    until(Duration::from_secs(30), Duration::from_millis(20), || {
        d0.log_contains("allocator started").then_some(())
    })
    .await
    .expect("the daemon starts allocating");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss0, hwm0) = rss_kib(d0.pid());
    drop(d0);
    drop(lab0);

    // N Services, each with its address already in its status (as after the allocator wrote
    // it): the daemon lists them, its allocator loads them all and has nothing to write.
    let lab = lab().await;
    let api = &lab.api;
    let seed = Instant::now();
    for i in 0..n {
        let name = format!("svc-{i:05}");
        api.create(&service(&name))
            .await
            .unwrap_or_else(|e| panic!("create {name}: {e}"));
        let ip =
            std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(198, 18, 0, 0)) + i as u32);
        let path = format!("/api/v1/namespaces/default/services/{name}");
        let (code, body) = api
            .request(
                "PATCH",
                &path,
                Some(&json!({
                    "metadata": { "annotations": { "ferrolb.io/ip-allocated-from-pool": "bench" } }
                })),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let (code, body) = api
            .request(
                "PATCH",
                &format!("{path}/status"),
                Some(&json!({ "status": { "loadBalancer": { "ingress": [{ "ip": ip.to_string() }] } } })),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let seeded = seed.elapsed();
    api.clear_requests();
    let t0 = Instant::now();
    let d = start_daemon(bin, &lab, "node1", "15s");
    until(Duration::from_secs(120), Duration::from_millis(20), || {
        d.log_contains("allocator started").then_some(())
    })
    .await
    .expect("the daemon starts allocating");
    let t_alloc = t0.elapsed();
    let all = api
        .wait_for("/api/v1/services", Duration::from_secs(60), |svcs| {
            svcs.len() == n && svcs.iter().all(has_ingress)
        })
        .await
        .is_ok();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rss_n, hwm_n) = rss_kib(d.pid());
    let by = daemon_requests(&api.requests());
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    let started_line = log
        .lines()
        .find(|l| l.contains("allocator started"))
        .unwrap_or("")
        .to_string();
    drop(d);

    println!("\n## rss: daemon with 0 and {n} LoadBalancer Services");
    println!("0 Services:      VmRSS {} VmHWM {}", mib(rss0), mib(hwm0));
    println!(
        "{n} Services: VmRSS {} VmHWM {} (seeded in {:.1} s; daemon allocating {:.2} s after start; all addressed: {all})",
        mib(rss_n),
        mib(hwm_n),
        seeded.as_secs_f64(),
        t_alloc.as_secs_f64()
    );
    println!(
        "per Service: {:.2} KiB (VmRSS difference / {n})",
        rss_n.saturating_sub(rss0) as f64 / n as f64
    );
    println!("daemon log: {}", started_line.trim());
    println!("daemon requests from start to measurement: {by:?}");
}

// ---------------------------------------------------------------------------------------------
// 4: takeover after kill -9.

async fn takeover(bin: &Path, lease: &str, runs: usize) {
    let lab = lab().await;
    let api = &lab.api;
    let names = ["node1", "node2", "node3"];
    let mut daemons: Vec<Daemon> = names
        .iter()
        .map(|n| start_daemon(bin, &lab, n, lease))
        .collect();
    let mut to_lease = Vec::new();
    let mut to_address = Vec::new();
    println!("\n## takeover: lease_duration {lease}, {runs} runs (3 daemons; kill -9 the holder)");
    for run in 0..runs {
        let holder = until(Duration::from_secs(60), Duration::from_millis(20), || {
            lease_holder(api)
        })
        .await
        .expect("someone holds the Lease");
        // Let every daemon settle (the restarted one must have synced and be following), then
        // kill at a random phase of the renewal cycle: a fixed delay would always hit the same
        // point between two renewals and hide the spread.
        let (_, _, retry) = lease_settings(lease);
        let retry = humantime::parse_duration(retry).expect("a duration");
        tokio::time::sleep(Duration::from_secs(3) + retry.mul_f64(fastrand::f64())).await;
        let Some(pos) = daemons.iter().position(|d| d.name == holder) else {
            panic!("holder {holder} is not one of ours");
        };
        let mut victim = daemons.remove(pos);
        let t0 = Instant::now();
        let _ = victim.child.kill();
        let _ = victim.child.wait();
        let name = format!("after-kill-{run:02}");
        api.create(&service(&name)).await.expect("created");
        let path = format!("/api/v1/namespaces/default/services/{name}");
        let mut t_lease = None;
        let mut new_holder = String::new();
        let t_addr = until(Duration::from_secs(120), Duration::from_millis(5), || {
            if t_lease.is_none() {
                if let Some(h) = lease_holder(api).filter(|h| *h != holder) {
                    t_lease = Some(t0.elapsed());
                    new_holder = h;
                }
            }
            api.object(&path).filter(has_ingress).map(|_| t0.elapsed())
        })
        .await
        .expect("the new Service gets an address");
        let t_lease = t_lease.unwrap_or(t_addr);
        println!(
            "run {:>2}: killed {holder}; {new_holder} holds the Lease after {}, new Service addressed after {}",
            run + 1,
            ms(t_lease),
            ms(t_addr)
        );
        to_lease.push(t_lease);
        to_address.push(t_addr);
        drop(victim);
        // Bring the killed node back as a follower for the next run.
        let name = holder.clone();
        daemons.push(start_daemon(bin, &lab, &name, lease));
    }
    let l = summary(to_lease);
    let a = summary(to_address);
    println!(
        "kill → Lease held by another: n={} min={} p50={} max={}",
        l.n,
        ms(l.min),
        ms(l.p50),
        ms(l.max)
    );
    println!(
        "kill → Service created at the kill has an address: n={} min={} p50={} max={}",
        a.n,
        ms(a.min),
        ms(a.p50),
        ms(a.max)
    );
}
