//! End-to-end: the metrics endpoint of `ferrolb run`. The L2 lab with gossip (three node
//! namespaces, the API simulator, a client), each daemon serving metrics on its LAN address,
//! port 7472. The client scrapes every node with curl; the text is parsed (OpenMetrics: HELP
//! and TYPE before the samples, `# EOF` last) and checked against what the lab did: three
//! gossip members alive, the Service's address announced by exactly one node, the ARP
//! requests the client sent counted as answered there, the pool's use on the allocator,
//! forged gossip counted by reason, and `/healthz`, `/readyz`.
//!
//! Needs root (network namespaces), `ip`, `curl`, `/usr/bin/kubectl`, `arping` (Habets'),
//! `ndisc6` and `tcpdump`.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::gossip::*;
use common::l2::*;

/// A parsed scrape: sample (`name{labels}`) → value.
type Samples = BTreeMap<String, f64>;

/// Parses OpenMetrics text strictly enough to catch a malformed exposition: every sample
/// belongs to a family announced by `# TYPE` before it, values are numbers, `# EOF` ends it.
fn parse(text: &str) -> Result<Samples, String> {
    let mut families: Vec<String> = Vec::new();
    let mut samples = Samples::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            return match lines.next() {
                None => Ok(samples),
                Some(extra) => Err(format!("text after # EOF: {extra:?}")),
            };
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("bad TYPE {line:?}"))?;
            if !["counter", "gauge"].contains(&kind) {
                return Err(format!("unexpected type {kind:?}"));
            }
            families.push(name.to_string());
            continue;
        }
        if line.starts_with("# HELP ") || line.starts_with("# UNIT ") {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .ok_or(format!("bad sample {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("bad value in {line:?}"))?;
        let name = key.split('{').next().unwrap_or(key);
        let family = families
            .last()
            .ok_or(format!("sample before any TYPE: {line:?}"))?;
        if name != family && name != format!("{family}_total") {
            return Err(format!("sample {name} outside its family {family}"));
        }
        samples.insert(key.to_string(), value);
    }
    Err("no # EOF".into())
}

fn get(l: &L2Lab, url: &str) -> (u16, String) {
    let out = l
        .lab
        .exec(
            &l.client.ns,
            "curl",
            &["-sS", "--max-time", "5", "-w", "\n%{http_code}", url],
        )
        .expect_ok("curl");
    let (body, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", "0"));
    (code.parse().unwrap_or(0), body.to_string())
}

fn scrape(l: &L2Lab, node: &L2Node) -> Samples {
    let (code, body) = get(l, &format!("http://{}:7472/metrics", node.host.ipv4));
    assert_eq!(code, 200, "{}: {body}", node.name);
    parse(&body).unwrap_or_else(|e| panic!("{}: {e}", node.name))
}

fn value(s: &Samples, key: &str) -> f64 {
    *s.get(key)
        .unwrap_or_else(|| panic!("no {key} in {:#?}", s.keys().collect::<Vec<_>>()))
}

#[test]
fn metrics_report_membership_announcements_and_answers() {
    let l = L2Lab::start_opts(
        "flmet",
        65,
        &L2Options {
            gossip: true,
            metrics: true,
            ..L2Options::default()
        },
    );
    let address = gossip_web(&l);
    let owner_mac = l.wait_arp_answer(address, Duration::from_secs(20));
    let owner = l
        .node_by_mac(&owner_mac)
        .map(|n| n.name.clone())
        .expect("the owner is a node");
    for n in &l.nodes {
        let (code, body) = get(&l, &format!("http://{}:7472/healthz", n.host.ipv4));
        assert_eq!((code, body.trim_end()), (200, "ok"), "{}", n.name);
        let (code, _) = get(&l, &format!("http://{}:7472/readyz", n.host.ipv4));
        assert_eq!(code, 200, "{}", n.name);
    }

    let answered_before = value(
        &scrape(&l, l.node(&owner)),
        "ferrolb_layer2_responses_sent_total{protocol=\"arp\"}",
    );
    assert_eq!(l.arping(address, 5, Duration::from_secs(3)).len(), 5);
    // Forged gossip from the client namespace: random bytes to every node's gossip port.
    for n in &l.nodes {
        let script = format!(
            "import os, socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(os.urandom(200), ('{}', 7946))",
            n.host.ipv4
        );
        l.lab
            .exec(&l.client.ns, "python3", &["-c", &script])
            .expect_ok("send a forged gossip packet");
    }
    std::thread::sleep(Duration::from_millis(500));

    let mut announcing = 0.0;
    let mut pool_seen = false;
    for n in &l.nodes {
        let s = scrape(&l, n);
        assert_eq!(value(&s, "ferrolb_ready"), 1.0, "{}", n.name);
        assert_eq!(
            value(&s, "ferrolb_gossip_members{state=\"alive\"}"),
            3.0,
            "{}",
            n.name
        );
        assert_eq!(
            value(&s, "ferrolb_gossip_members{state=\"down\"}"),
            0.0,
            "{}",
            n.name
        );
        assert_eq!(
            value(&s, "ferrolb_config_mismatch_members"),
            0.0,
            "{}",
            n.name
        );
        assert!(value(&s, "ferrolb_k8s_requests_total") > 0.0, "{}", n.name);
        assert!(
            value(&s, "ferrolb_k8s_seconds_since_sync") < 600.0,
            "{}",
            n.name
        );
        let dropped: f64 = s
            .iter()
            .filter(|(k, _)| k.starts_with("ferrolb_gossip_packets_dropped_total"))
            .map(|(_, v)| v)
            .sum();
        assert!(dropped >= 1.0, "{}: forged packet not counted", n.name);
        let announced = value(&s, "ferrolb_announced_addresses{mode=\"l2\"}");
        announcing += announced;
        if n.name == owner {
            assert!(announced >= 1.0, "the owner {owner} announces nothing");
            let answered = value(&s, "ferrolb_layer2_responses_sent_total{protocol=\"arp\"}");
            assert!(
                answered >= answered_before + 5.0,
                "{owner} answered {answered} (before: {answered_before})"
            );
            assert!(value(&s, "ferrolb_layer2_gratuitous_sent_total{protocol=\"arp\"}") >= 1.0);
        }
        // The allocator (the Lease holder) reports the pools; the others report none.
        if let Some(used) = s.get("ferrolb_allocator_addresses_in_use{pool=\"lan-v4\"}") {
            pool_seen = true;
            assert_eq!(*used, 1.0);
            assert_eq!(
                value(&s, "ferrolb_allocator_addresses{pool=\"lan-v4\"}"),
                f64::from(POOL_SIZE)
            );
            assert_eq!(value(&s, "ferrolb_allocator_services_allocated"), 1.0);
        }
    }
    assert_eq!(
        announcing, 1.0,
        "exactly one node announces the one address"
    );
    assert!(pool_seen, "no node reported the pools (no allocator?)");
}

#[test]
fn the_metrics_text_parser_rejects_malformed_expositions() {
    assert!(parse("# TYPE a counter\na_total 1\n# EOF").is_ok());
    assert!(parse("a_total 1\n# EOF").is_err());
    assert!(parse("# TYPE a counter\na_total x\n# EOF").is_err());
    assert!(parse("# TYPE a counter\na_total 1\n").is_err());
    assert!(parse("# TYPE a counter\nb 1\n# EOF").is_err());
}
