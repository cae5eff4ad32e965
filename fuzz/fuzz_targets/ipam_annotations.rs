#![no_main]
//! Arbitrary annotation maps, `spec.loadBalancerIP`, `ipFamilies`, `ipFamilyPolicy` and status
//! strings through ferrolb's annotation parsing and the allocator. Nothing may panic, and every
//! address handed out must obey the rules (in a pool, requests honoured exactly, one address
//! per family, nothing held twice without sharing).
//!
//! Input format (raw bytes, lossily UTF-8): up to four Services separated by blank lines; in
//! each, line 1 is `spec.loadBalancerIP`, line 2 comma-separated `ipFamilies`, line 3
//! `ipFamilyPolicy`, line 4 comma-separated status addresses, then `key=value` annotation lines
//! where a one-digit key stands for a known spelling (so the fuzzer reaches them easily).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb::ipam::annotations::{ADDRESS_POOL, ALLOW_SHARED_IP, LOAD_BALANCER_IPS};
use ferrolb::ipam::{
    allocate_all, Allocator, IpRange, Pool, PortInput, Requests, ServiceInput, ServiceSpec,
};
use libfuzzer_sys::fuzz_target;

fn known_key(digit: u8) -> &'static str {
    let keys: Vec<&'static str> = LOAD_BALANCER_IPS
        .iter()
        .chain(&ADDRESS_POOL)
        .chain(&ALLOW_SHARED_IP)
        .copied()
        .collect();
    keys[usize::from(digit) % keys.len()]
}

fn range(s: &str) -> IpRange {
    s.parse().expect("a valid range in the fuzz target itself")
}

fn pools() -> Vec<Pool> {
    vec![
        Pool::new("p0", vec![range("10.0.0.0/30"), range("fd00::/126")]).with_avoid_buggy_ips(true),
        Pool::new("p1", vec![range("10.0.0.254-10.0.1.1")]).with_auto_assign(false),
        Pool::new("p2", vec![range("fd00:1::/64"), range("192.168.0.0/31")]),
    ]
}

fn service(i: usize, chunk: &str) -> ServiceSpec {
    let mut lines = chunk.lines();
    let lb_ip = lines.next();
    let families: Vec<&str> = lines.next().unwrap_or("").split(',').take(3).collect();
    let policy = lines.next();
    let ingress: Vec<&str> = lines.next().unwrap_or("").split(',').take(4).collect();
    let mut annotations = BTreeMap::new();
    for line in lines.take(16) {
        let (key, value) = line.split_once('=').unwrap_or((line, ""));
        let key = match key.as_bytes() {
            [d] if d.is_ascii_digit() => known_key(d - b'0').to_string(),
            _ => key.to_string(),
        };
        // Exercise the annotation parser on its own too.
        let _ = Requests::parse(&annotations, lb_ip);
        annotations.insert(key, value.to_string());
    }
    let name = format!("s{i}");
    let ports = [PortInput {
        protocol: Some(["TCP", "UDP", "SCTP", "tcp"][i % 4]),
        port: 80,
    }];
    ServiceSpec::parse(&ServiceInput {
        namespace: "fuzz",
        name: &name,
        annotations: Some(&annotations),
        load_balancer_ip: lb_ip,
        ingress_ips: &ingress,
        ip_families: &families,
        ip_family_policy: policy,
        ports: &ports,
        ..Default::default()
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let specs: Vec<ServiceSpec> = text
        .split("\n\n")
        .take(4)
        .enumerate()
        .map(|(i, chunk)| service(i, chunk))
        .collect();
    let pools = pools();
    let results = allocate_all(&pools, &specs);

    let mut seen: BTreeMap<IpAddr, usize> = BTreeMap::new();
    for spec in &specs {
        match results.get(spec.key()) {
            Some(Ok(a)) => {
                assert!(spec.invalid().is_none());
                assert!(!a.addresses.is_empty() && a.addresses.len() <= 2);
                if let [x, y] = a.addresses[..] {
                    assert_ne!(x.is_ipv4(), y.is_ipv4(), "one address per family");
                }
                let pool = pools.iter().find(|p| p.name == a.pool).expect("a known pool");
                for ip in &a.addresses {
                    assert!(pool.ranges.iter().any(|r| r.contains(*ip)), "{ip} in {}", a.pool);
                    *seen.entry(*ip).or_default() += 1;
                }
                if !spec.requested().is_empty() {
                    let mut want = spec.requested().to_vec();
                    let mut got = a.addresses.clone();
                    want.sort();
                    got.sort();
                    assert_eq!(want, got, "requests are honoured exactly");
                }
            }
            Some(Err(e)) => {
                let _ = e.to_string();
            }
            None => {}
        }
    }
    // Services here share only under a key and on different protocols; without a key, never.
    for (ip, n) in seen {
        if n > 1 {
            let keys: Vec<Option<&str>> = specs
                .iter()
                .filter(|s| {
                    matches!(results.get(s.key()), Some(Ok(a)) if a.addresses.contains(&ip))
                })
                .map(|s| s.sharing_key())
                .collect();
            assert!(keys.iter().all(|k| k.is_some() && *k == keys[0]), "{ip} shared without a key");
        }
    }

    // The incremental path, and releasing, must not panic either.
    let mut a = Allocator::new(&pools);
    for spec in &specs {
        let _ = a.assign(spec);
    }
    for spec in &specs {
        a.release(spec.key());
    }
    assert!(a.is_empty());
});
