use std::collections::BTreeMap;

use super::*;

fn sample() -> Snapshot {
    Snapshot {
        pools: vec![
            PoolStat {
                name: "lan".into(),
                capacity: 10,
                in_use: 3,
            },
            PoolStat {
                name: "v6".into(),
                capacity: u128::MAX,
                in_use: 1,
            },
        ],
        services_allocated: 4,
        allocation_failures: [("poolExhausted".to_string(), 2)].into(),
        announced: [("l2", 3), ("bgp", 0)].into(),
        l2: Some(L2Stat {
            responses: [("arp", 17), ("ndp", 5)].into(),
            gratuitous: [("arp", 10), ("ndp", 5)].into(),
        }),
        gossip: Some(GossipStat {
            members: [("alive", 3), ("suspect", 0), ("down", 1), ("left", 0)].into(),
            dropped: [("auth", 7), ("replay", 2)].into(),
            members_down: 1,
            config_mismatch_members: 0,
        }),
        api_requests: 120,
        api_watch_restarts: 2,
        api_errors: 1,
        seconds_since_sync: Some(1.5),
        bgp: vec![
            BgpPeerStat {
                peer: "tor1".into(),
                up: true,
                updates_sent: 14,
                updates_received: 2,
                prefixes: 9,
            },
            BgpPeerStat {
                peer: "tor2".into(),
                ..BgpPeerStat::default()
            },
        ],
        reloads: [("ok", 1), ("failed", 0)].into(),
        ready: true,
    }
}

/// The samples of the text format: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_number_is_rendered_under_its_name() {
    let text = render(&sample());
    assert!(text.ends_with("# EOF\n"), "{text}");
    let s = samples(&text);
    let want = [
        ("ferrolb_allocator_addresses{pool=\"lan\"}", "10"),
        ("ferrolb_allocator_addresses_in_use{pool=\"lan\"}", "3"),
        (
            "ferrolb_allocator_addresses{pool=\"v6\"}",
            &i64::MAX.to_string(),
        ),
        ("ferrolb_allocator_services_allocated", "4"),
        (
            "ferrolb_allocator_services_pending{reason=\"poolExhausted\"}",
            "2",
        ),
        ("ferrolb_announced_addresses{mode=\"l2\"}", "3"),
        (
            "ferrolb_layer2_responses_sent_total{protocol=\"arp\"}",
            "17",
        ),
        (
            "ferrolb_layer2_gratuitous_sent_total{protocol=\"ndp\"}",
            "5",
        ),
        ("ferrolb_gossip_members{state=\"down\"}", "1"),
        ("ferrolb_gossip_packets_dropped_total{reason=\"auth\"}", "7"),
        ("ferrolb_gossip_members_down_total", "1"),
        ("ferrolb_config_mismatch_members", "0"),
        ("ferrolb_k8s_requests_total", "120"),
        ("ferrolb_k8s_watch_restarts_total", "2"),
        ("ferrolb_k8s_errors_total", "1"),
        ("ferrolb_k8s_seconds_since_sync", "1.5"),
        ("ferrolb_config_reloads_total{result=\"ok\"}", "1"),
        ("ferrolb_ready", "1"),
        ("ferrolb_bgp_session_up{peer=\"tor1\"}", "1"),
        ("ferrolb_bgp_session_up{peer=\"tor2\"}", "0"),
        ("ferrolb_bgp_announced_prefixes{peer=\"tor1\"}", "9"),
        ("ferrolb_bgp_updates_sent_total{peer=\"tor1\"}", "14"),
        ("ferrolb_bgp_updates_received_total{peer=\"tor1\"}", "2"),
    ];
    for (k, v) in want {
        assert_eq!(s.get(k).map(String::as_str), Some(v), "{k} in\n{text}");
    }
    assert!(text.contains("# TYPE ferrolb_layer2_responses_sent counter"));
    assert!(text.contains("# HELP ferrolb_allocator_addresses_in_use"));
}

#[test]
fn absent_parts_are_left_out() {
    let text = render(&Snapshot::default());
    assert!(!text.contains("gossip"), "{text}");
    assert!(!text.contains("layer2"), "{text}");
    assert!(!text.contains("bgp_session"), "{text}");
    assert!(!text.contains("seconds_since_sync"), "{text}");
    assert_eq!(
        samples(&text).get("ferrolb_ready").map(String::as_str),
        Some("0")
    );
}
