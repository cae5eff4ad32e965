//! Plan benchmarks: `plan/<services>x<nodes>` plans 1,000 or 10,000 Services over 3 or 100
//! nodes, as the daemon does on every change. The Services are a mix: 80% single-stack IPv4
//! with `externalTrafficPolicy: Cluster`, 10% dual-stack, 10% `Local`; each has endpoints on
//! three nodes. Two l2 pools (IPv4 /16, IPv6 /112) and one bgp pool (which holds every tenth
//! IPv4 Service). Every node is Ready; no gossip set.
//!
//! The cost is dominated by SHA-256: one hash per (Service, candidate node), so a Cluster
//! Service over 100 nodes costs 100 hashes.

use std::collections::{BTreeMap, BTreeSet};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ferrolb::plan::{plan, PlanInput, PlanMode, PlanNode, PlanPool, PlanService};

fn pool(name: &str, cidr: &str, mode: PlanMode) -> PlanPool {
    PlanPool {
        name: name.into(),
        ranges: vec![cidr.parse().expect("a valid CIDR")],
        mode,
        node_selector: BTreeMap::new(),
    }
}

fn pools() -> Vec<PlanPool> {
    let l2 = || PlanMode::L2 {
        interfaces: Vec::new(),
    };
    vec![
        pool("v4", "10.0.0.0/16", l2()),
        pool("v6", "fd00:10::/112", l2()),
        pool("bgp", "10.1.0.0/16", PlanMode::Bgp),
    ]
}

fn nodes(n: usize) -> Vec<PlanNode> {
    (0..n)
        .map(|i| PlanNode {
            name: format!("worker-{i:03}.example.internal"),
            labels: BTreeMap::from([("kubernetes.io/os".into(), "linux".into())]),
            ready: Some(true),
            network_unavailable: false,
        })
        .collect()
}

fn services(n: usize, nodes: &[PlanNode]) -> Vec<PlanService> {
    (0..n)
        .map(|i| {
            let k = u32::try_from(i).expect("a small index");
            let net = if i % 10 == 3 { 1 } else { 0 };
            let v4 = IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(10, net, 0, 0)) + k));
            let mut addresses = vec![v4];
            if i % 10 == 5 {
                addresses.push(IpAddr::V6(Ipv6Addr::from(
                    u128::from(Ipv6Addr::new(0xfd00, 0x10, 0, 0, 0, 0, 0, 0)) + u128::from(k),
                )));
            }
            let endpoint_nodes: BTreeSet<String> = (0..3)
                .map(|j| nodes[(i * 7 + j * 13) % nodes.len()].name.clone())
                .collect();
            PlanService {
                key: format!("ns-{:02}/svc-{i:05}", i % 50),
                addresses,
                local_traffic: i % 10 == 7,
                endpoint_nodes,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("plan");
    g.sample_size(20);
    let pools = pools();
    for n_services in [1_000, 10_000] {
        for n_nodes in [3, 100] {
            let nodes = nodes(n_nodes);
            let services = services(n_services, &nodes);
            let me = nodes[0].name.clone();
            let input = PlanInput {
                node: &me,
                pools: &pools,
                nodes: &nodes,
                services: &services,
                alive: None,
            };
            g.bench_function(
                BenchmarkId::from_parameter(format!("{n_services}x{n_nodes}")),
                |b| b.iter(|| plan(black_box(&input))),
            );
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
