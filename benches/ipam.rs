//! IPAM benchmarks (see BENCHMARKS.md for the figures and what they show):
//! - `allocate_all/from_empty/10000`: 10,000 Services into a /16, none holding an address;
//! - `allocate_all/restart/10000`: the same 10,000 with their addresses in their status (what
//!   the allocator does when it takes the Lease);
//! - `assign_one_on_top/N`: one new Service on top of N allocated (`assign` + `release` per
//!   iteration so N stays N), for N = 1,000, 10,000, 50,000 and 200,000 — it must not grow
//!   with N (beyond the logarithm of B-tree look-ups);
//! - `assign_one_on_top_fragmented/N`: the same after every other Service was released, so the
//!   taken addresses are N/2 separate runs;
//! - `assign_one_on_top_same_sharing_key/N`: N Services with one sharing key and one port (so
//!   none can share), and one more;
//! - `join_a_crowded_address/N`: N Services with distinct ports sharing one address, and one
//!   more joining it.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferrolb::ipam::{
    allocate_all, Allocator, Pool, PortInput, ServiceInput, ServiceKey, ServiceSpec,
};

/// One pool: a /16 for the batch benchmarks, a /14 (262,144 addresses) for the sweep.
fn pools_of(cidr: &str) -> Vec<Pool> {
    let range = cidr.parse().expect("a valid CIDR");
    vec![Pool::new("bench", vec![range])]
}

fn pools() -> Vec<Pool> {
    pools_of("10.0.0.0/16")
}

/// Sizes for the one-on-top sweep: if `assign` were O(n), 200,000 would cost 200 times 1,000.
const SWEEP: [usize; 4] = [1_000, 10_000, 50_000, 200_000];

fn service(i: usize) -> ServiceSpec {
    service_with(i, &BTreeMap::new())
}

/// A Service carrying `annotations`.
fn service_with(i: usize, annotations: &BTreeMap<String, String>) -> ServiceSpec {
    let namespace = format!("ns-{:02}", i % 50);
    let name = format!("svc-{i:05}");
    let ports = [PortInput {
        protocol: Some("TCP"),
        port: 80,
    }];
    ServiceSpec::parse(&ServiceInput {
        namespace: &namespace,
        name: &name,
        ports: &ports,
        annotations: Some(annotations),
        ..Default::default()
    })
}

fn services(n: usize) -> Vec<ServiceSpec> {
    (0..n).map(service).collect()
}

fn allocated(n: usize) -> (Allocator, Vec<ServiceSpec>) {
    let specs = services(n);
    let mut a = Allocator::new(&pools_of("10.0.0.0/14"));
    let results = a.assign_all(&specs);
    assert!(
        results.values().all(Result::is_ok),
        "{n} Services fit in a /14"
    );
    (a, specs)
}

fn batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocate_all");
    g.sample_size(20);
    let pools = pools();
    let specs = services(10_000);
    g.bench_function(BenchmarkId::new("from_empty", 10_000), |b| {
        b.iter(|| allocate_all(black_box(&pools), black_box(&specs)))
    });
    let results = allocate_all(&pools, &specs);
    let fed: Vec<ServiceSpec> = specs
        .iter()
        .map(|s| {
            let now: Vec<IpAddr> = results
                .get(s.key())
                .and_then(|r| r.as_ref().ok())
                .map(|a| a.addresses.clone())
                .unwrap_or_default();
            s.clone().with_current(now)
        })
        .collect();
    g.bench_function(BenchmarkId::new("restart", 10_000), |b| {
        b.iter(|| allocate_all(black_box(&pools), black_box(&fed)))
    });
    g.finish();
}

fn one_on_top(c: &mut Criterion) {
    let mut g = c.benchmark_group("assign_one_on_top");
    let new = service(99_999);
    for n in SWEEP {
        let (mut a, _) = allocated(n);
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let got = a.assign(black_box(&new));
                a.release(new.key());
                got
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("assign_one_on_top_fragmented");
    for n in SWEEP {
        let (mut a, _) = allocated(n);
        let mut by_address: Vec<(IpAddr, ServiceKey)> = a
            .assignments()
            .map(|(k, got)| (got.addresses[0], k.clone()))
            .collect();
        by_address.sort();
        for (_, key) in by_address.iter().skip(1).step_by(2) {
            a.release(key);
        }
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let got = a.assign(black_box(&new));
                a.release(new.key());
                got
            })
        });
    }
    g.finish();
}

/// Every Service carries the same sharing key and the same port (a chart that sets one key on
/// everything), so none can share: a new one must find that no address of the group can be
/// joined before taking a free one.
fn one_key_for_all(c: &mut Criterion) {
    let mut g = c.benchmark_group("assign_one_on_top_same_sharing_key");
    let annotations: BTreeMap<String, String> = [(
        "ferrolb.io/allow-shared-ip".to_string(),
        "everyone".to_string(),
    )]
    .into();
    let new = service_with(999_999, &annotations);
    for n in [1_000, 10_000, 50_000] {
        let specs: Vec<ServiceSpec> = (0..n).map(|i| service_with(i, &annotations)).collect();
        let mut a = Allocator::new(&pools_of("10.0.0.0/14"));
        let results = a.assign_all(&specs);
        assert!(results.values().all(Result::is_ok));
        assert_eq!(a.pool_usage("bench").map(|u| u.used), Some(n as u128));
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let got = a.assign(black_box(&new));
                a.release(new.key());
                got
            })
        });
    }
    g.finish();
}

/// N Services with distinct ports on one shared address (a fleet of game servers on one IP),
/// and one more joining it.
fn crowded_address(c: &mut Criterion) {
    let mut g = c.benchmark_group("join_a_crowded_address");
    let annotations: BTreeMap<String, String> = [(
        "ferrolb.io/allow-shared-ip".to_string(),
        "fleet".to_string(),
    )]
    .into();
    let with_port = |i: usize, port: i32| {
        let name = format!("game-{i:05}");
        let ports = [PortInput {
            protocol: Some("UDP"),
            port,
        }];
        ServiceSpec::parse(&ServiceInput {
            namespace: "games",
            name: &name,
            ports: &ports,
            annotations: Some(&annotations),
            ..Default::default()
        })
    };
    let new = with_port(99_999, 65_000);
    for n in [100usize, 1_000, 10_000] {
        let specs: Vec<ServiceSpec> = (0..n).map(|i| with_port(i, 1 + i as i32)).collect();
        let mut a = Allocator::new(&pools());
        let results = a.assign_all(&specs);
        assert!(results.values().all(Result::is_ok));
        assert_eq!(
            a.pool_usage("bench").map(|u| u.used),
            Some(1),
            "all on one address"
        );
        g.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                let got = a.assign(black_box(&new));
                a.release(new.key());
                got
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = batch, one_on_top, one_key_for_all, crowded_address
}
criterion_main!(benches);
