//! One test (at least) per validation rule, through `load_str` so the key paths and positions
//! are checked too.

use std::net::IpAddr;
use std::time::Duration;

use proptest::prelude::*;

use crate::config::{load_str, Community, Config, Diagnostic, Location, Mode, PoolMode};

/// Gossip off, so the examples need no key file; appended (unless the example has its own
/// `[cluster]`), so the line numbers in the tests are those of the example.
const QUIET: &str = "[cluster]\nenabled = false\n";

fn quiet(text: &str) -> String {
    if text.contains("[cluster]") {
        text.to_string()
    } else {
        format!("{text}{QUIET}")
    }
}

const L2_POOL: &str =
    "[[pool]]\nname = \"default\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/24\"]\n";

const PEER: &str =
    "[[bgp.peer]]\nname = \"tor1\"\naddress = \"192.168.100.3\"\nasn = 64001\nmy_asn = 64500\n";

fn config(text: &str) -> Config {
    match load_str("t.toml", &quiet(text)) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match load_str("t.toml", &quiet(text)) {
        Ok(loaded) => panic!("expected errors, got:\n{}", loaded.config.summary()),
        Err(e) => e.0,
    }
}

/// Asserts that `text` is refused with an error at `key` whose message has `fragment`; returns
/// that error.
#[track_caller]
fn refused(text: &str, key: &str, fragment: &str) -> Diagnostic {
    let errors = errors(text);
    match errors
        .iter()
        .find(|d| d.key == key && d.message.contains(fragment))
    {
        Some(d) => d.clone(),
        None => panic!(
            "no error at {key} containing {fragment:?}; got:\n{}",
            errors
                .iter()
                .map(|d| format!("  {d}\n"))
                .collect::<String>()
        ),
    }
}

fn line(d: &Diagnostic) -> Option<usize> {
    match d.location {
        Location::File { line, .. } => line,
        _ => None,
    }
}

fn warnings(text: &str) -> Vec<Diagnostic> {
    match load_str("t.toml", text) {
        Ok(loaded) => loaded.warnings,
        Err(e) => panic!("expected a valid configuration, got:\n{e}"),
    }
}

#[test]
fn a_full_configuration_has_proper_types() {
    let c = config(&format!(
        r#"
[node]
name = "worker-1"
[kubernetes]
server = "https://10.0.0.1:6443"
token_file = "/etc/ferrolb/token"
ca_file = "ca.crt"
lease_duration = "20s"
[metrics]
listen = ""
[log]
level = "info,ferrolb::bgp=debug"
format = "json"
[[pool]]
name = "default"
mode = "l2"
addresses = ["192.168.10.10-192.168.10.30", "fd00:10::/120", "192.168.10.99"]
interfaces = ["eth1"]
node_selector = {{ "kubernetes.io/os" = "linux" }}
[[pool]]
name = "transit"
mode = "bgp"
addresses = ["10.1.0.0/24"]
auto_assign = false
[pool.bgp]
peers = ["tor1"]
communities = ["no-export", "64500:1", "large:1:2:3"]
local_pref = 200
aggregation_length = 24
{PEER}hold_time = "9s"
"#
    ));
    assert_eq!(c.node.name.as_deref(), Some("worker-1"));
    assert_eq!(c.kubernetes.lease_duration, Duration::from_secs(20));
    assert_eq!(c.kubernetes.renew_deadline, Duration::from_secs(10));
    assert_eq!(
        c.kubernetes.ca_file.as_deref(),
        Some(std::path::Path::new("ca.crt")),
        "load_str(\"t.toml\") has no directory to anchor relative paths"
    );
    assert_eq!(c.metrics.listen, None);
    assert_eq!(c.log.format, crate::config::LogFormat::Json);
    assert_eq!(c.pools.len(), 2);
    assert_eq!(c.pools[0].addresses.len(), 3);
    assert_eq!(
        c.pools[0].mode,
        PoolMode::L2 {
            interfaces: vec!["eth1".into()]
        }
    );
    assert_eq!(c.pools[1].mode_kind(), Mode::Bgp);
    let PoolMode::Bgp(adv) = &c.pools[1].mode else {
        panic!("bgp pool")
    };
    assert_eq!(adv.communities[0], Community::Standard(0xFFFF_FF01));
    assert_eq!(adv.local_pref, Some(200));
    assert_eq!(adv.aggregation_length, 24);
    assert_eq!(adv.aggregation_length_v6, 128);
    let peer = &c.peers[0];
    assert_eq!(peer.address, "192.168.100.3".parse::<IpAddr>().unwrap());
    assert_eq!(peer.port, 179);
    assert_eq!(peer.hold_time, Duration::from_secs(9));
    assert_eq!(
        peer.keepalive_time,
        Duration::from_secs(3),
        "a third of the hold time"
    );
    assert!(!peer.is_ibgp());
    assert_eq!(c.pool_peers(&c.pools[1]).len(), 1);
    assert!(c.pool_peers(&c.pools[0]).is_empty());
    let ipam = c.ipam_pools();
    assert_eq!(ipam[1].0, "transit");
    assert_eq!(ipam[1].1, vec!["10.1.0.0/24".parse().unwrap()]);
    assert_eq!((ipam[1].2, ipam[1].3), (false, false));
}

#[test]
fn relative_paths_are_anchored_at_the_main_file() {
    let loaded = load_str(
        "/etc/ferrolb/ferrolb.toml",
        "[cluster]\nsecret_file = \"gossip.key\"\n",
    )
    .unwrap();
    assert_eq!(
        loaded.config.cluster.secret_file.as_deref(),
        Some(std::path::Path::new("/etc/ferrolb/gossip.key"))
    );
}

// --- [node], [kubernetes] -------------------------------------------------------------------

#[test]
fn node_name_must_be_a_kubernetes_name() {
    refused(
        "[node]\nname = \"Worker_1\"\n",
        "node.name",
        "not a Kubernetes Node name",
    );
}

#[test]
fn kubeconfig_and_server_exclude_each_other() {
    let d = refused(
        "[kubernetes]\nkubeconfig = \"/k\"\nserver = \"https://x:6443\"\n",
        "kubernetes.server",
        "exclude each other",
    );
    assert_eq!(line(&d), Some(3));
}

#[test]
fn server_must_be_an_http_url() {
    refused(
        "[kubernetes]\nserver = \"10.0.0.1:6443\"\n",
        "kubernetes.server",
        "http(s) URL",
    );
}

#[test]
fn token_and_ca_need_the_server() {
    refused(
        "[kubernetes]\ntoken_file = \"/t\"\n",
        "kubernetes.token_file",
        "without kubernetes.server",
    );
    refused(
        "[kubernetes]\nkubeconfig = \"/k\"\nca_file = \"/c\"\n",
        "kubernetes.ca_file",
        "kubeconfig file carries its own credentials",
    );
    refused(
        "[kubernetes]\nserver = \"https://x\"\nca_file = \"/c\"\ninsecure_skip_tls_verify = true\n",
        "kubernetes.insecure_skip_tls_verify",
        "exclude each other",
    );
}

#[test]
fn skipping_tls_verification_warns() {
    let w = warnings("[cluster]\nenabled = false\n[kubernetes]\ninsecure_skip_tls_verify = true\n");
    assert!(w
        .iter()
        .any(|d| d.key == "kubernetes.insecure_skip_tls_verify" && !d.blocks_start));
}

#[test]
fn class_and_namespace_are_kubernetes_names() {
    refused(
        "[kubernetes]\nload_balancer_class = \"my class\"\n",
        "kubernetes.load_balancer_class",
        "ferrolb.io/lb",
    );
    refused(
        "[kubernetes]\nlease_namespace = \"Kube\"\n",
        "kubernetes.lease_namespace",
        "namespace",
    );
}

#[test]
fn lease_timings_are_ordered() {
    let d = refused(
        "[kubernetes]\nlease_duration = \"10s\"\n",
        "kubernetes.lease_duration",
        "renew_deadline (10s, default) must be shorter than lease_duration (10s):",
    );
    assert_eq!(
        line(&d),
        Some(2),
        "reported where the operator wrote something"
    );
    refused(
        "[kubernetes]\nrenew_deadline = \"1s\"\n",
        "kubernetes.renew_deadline",
        "retry_period (2s, default) must be shorter than renew_deadline",
    );
    refused(
        "[kubernetes]\nretry_period = \"0s\"\n",
        "kubernetes.retry_period",
        "longer than 0s",
    );
    refused(
        "[kubernetes]\npoll_interval = \"0s\"\n",
        "kubernetes.poll_interval",
        "longer than 0s",
    );
}

#[test]
fn durations_need_units_and_sense() {
    let d = refused(
        "[kubernetes]\nlease_duration = 15\n",
        "kubernetes.lease_duration",
        "\"15s\"",
    );
    assert_eq!(line(&d), Some(2));
    refused(
        "[kubernetes]\nresync_interval = \"10 minutes please\"\n",
        "kubernetes.resync_interval",
        "not a duration",
    );
}

#[test]
fn api_rate_limit_is_bounded_and_burst_covers_qps() {
    let d = refused("[kubernetes]\nqps = 0\n", "kubernetes.qps", "1 to 10000");
    assert_eq!(line(&d), Some(2));
    refused(
        "[kubernetes]\nqps = 100\nburst = 10\n",
        "kubernetes.burst",
        "at least qps (100)",
    );
    let ok = load_str(
        "t.toml",
        "[kubernetes]\nqps = 100\nburst = 200\n[cluster]\nenabled = false\n",
    )
    .unwrap();
    assert_eq!(
        (ok.config.kubernetes.qps, ok.config.kubernetes.burst),
        (100, 200)
    );
}

// --- [cluster], [metrics], [log], [l2] -------------------------------------------------------

#[test]
fn gossip_needs_a_key_or_insecure() {
    let e = load_str("t.toml", "[cluster]\nbind = \"0.0.0.0:7946\"\n").unwrap_err();
    let d = e.0.iter().find(|d| d.key == "cluster.secret_file").unwrap();
    assert!(d.message.contains("gossip must be encrypted: set cluster.secret_file, or cluster.insecure = true to run unencrypted"));
    let w = warnings("[cluster]\ninsecure = true\n");
    assert!(w
        .iter()
        .any(|d| d.key == "cluster.insecure" && d.message.contains("unencrypted")));
}

#[test]
fn bind_and_join_are_addresses() {
    refused("[cluster]\nbind = \"7946\"\n", "cluster.bind", "host:port");
    refused(
        "[cluster]\nbind = \"0.0.0.0:0\"\n",
        "cluster.bind",
        "port 0",
    );
    let d = refused(
        "[cluster]\njoin = [\"10.0.0.1\", \"bad host\"]\n",
        "cluster.join[1]",
        "neither an IP address nor a host name",
    );
    assert_eq!(d.location.to_string(), "t.toml:2:21");
    let c = config(
        "[cluster]\nenabled = false\nbind = \"0.0.0.0:8000\"\njoin = [\"10.0.0.1\", \"n2:9000\"]\n",
    );
    assert_eq!(c.cluster.join[0].to_string(), "10.0.0.1:8000");
    assert_eq!(c.cluster.join[1].to_string(), "n2:9000");
}

#[test]
fn gossip_timing_has_lan_defaults_and_sane_ranges() {
    let t = config("").cluster.timing;
    assert_eq!(t.probe_interval, Duration::from_millis(100));
    assert_eq!(t.probe_timeout, Duration::from_millis(40));
    assert_eq!(t.suspicion_timeout, Duration::from_millis(150));
    assert_eq!(t.suspicion_max_multiplier, 3);
    assert_eq!(t.indirect_probes, 3);
    assert_eq!(t.gossip_interval, Duration::from_millis(100));
    assert_eq!(t.gossip_fanout, 3);
    assert_eq!(t.sync_timeout, Duration::from_secs(5));
    let t = config(
        "[cluster]\nenabled = false\nprobe_interval = \"1s\"\nprobe_timeout = \"500ms\"\nsuspicion_timeout = \"4s\"\nindirect_probes = 5\n",
    )
    .cluster
    .timing;
    assert_eq!(
        (
            t.probe_interval,
            t.probe_timeout,
            t.suspicion_timeout,
            t.indirect_probes
        ),
        (
            Duration::from_secs(1),
            Duration::from_millis(500),
            Duration::from_secs(4),
            5
        )
    );
    let d = refused(
        "[cluster]\nenabled = false\nprobe_timeout = \"200ms\"\n",
        "cluster.probe_timeout",
        "must be shorter than probe_interval (100ms",
    );
    assert_eq!(d.location.to_string(), "t.toml:3:17");
    refused(
        "[cluster]\nenabled = false\nsuspicion_timeout = \"50ms\"\n",
        "cluster.suspicion_timeout",
        "at least probe_interval",
    );
    refused(
        "[cluster]\nenabled = false\nprobe_interval = \"5ms\"\n",
        "cluster.probe_interval",
        "use 10ms to 60s",
    );
    refused(
        "[cluster]\nenabled = false\nindirect_probes = 0\n",
        "cluster.indirect_probes",
        "use 1 to 10 (default 3)",
    );
    refused(
        "[cluster]\nenabled = false\ngossip_fanout = -1\n",
        "cluster.gossip_fanout",
        "out of range",
    );
    refused(
        "[cluster]\nenabled = false\nsuspicion_max_multiplier = 11\n",
        "cluster.suspicion_max_multiplier",
        "use 1 to 10",
    );
    refused(
        "[cluster]\nenabled = false\nsync_timeout = \"100ms\"\n",
        "cluster.sync_timeout",
        "use 1s to 600s",
    );
    refused(
        "[cluster]\nenabled = false\ngossip_interval = \"0s\"\n",
        "cluster.gossip_interval",
        "out of range",
    );
}

#[test]
fn metrics_listen_is_an_address_or_empty() {
    refused(
        "[metrics]\nlisten = \"localhost:7472\"\n",
        "metrics.listen",
        "\"\" to disable",
    );
    assert_eq!(config("[metrics]\nlisten = \"\"\n").metrics.listen, None);
    assert_eq!(
        config("[metrics]\nlisten = \"[::1]:9000\"\n")
            .metrics
            .listen
            .map(|a| a.port()),
        Some(9000)
    );
    refused(
        "[cluster]\ninsecure = true\n[metrics]\nlisten = \"127.0.0.1:7946\"\n",
        "metrics.listen",
        "collides with cluster.bind",
    );
}

#[test]
fn log_level_and_format() {
    refused(
        "[log]\nlevel = \"verbose\"\n",
        "log.level",
        "trace, debug, info, warn, error",
    );
    refused(
        "[log]\nformat = \"xml\"\n",
        "log.format",
        "expected \"text\" or \"json\"",
    );
}

#[test]
fn failback_is_sticky_or_immediate() {
    refused(
        "[l2]\nfailback = \"immedate\"\n",
        "l2.failback",
        "did you mean \"immediate\"?",
    );
    assert_eq!(
        config("[l2]\nfailback = \"immediate\"\n").l2.failback,
        crate::config::Failback::Immediate
    );
}

#[test]
fn gratuitous_refresh_is_off_or_at_least_a_second() {
    assert_eq!(config("").l2.gratuitous_refresh, None);
    assert_eq!(
        config("[l2]\ngratuitous_refresh = \"30s\"\n")
            .l2
            .gratuitous_refresh,
        Some(std::time::Duration::from_secs(30))
    );
    refused(
        "[l2]\ngratuitous_refresh = \"100ms\"\n",
        "l2.gratuitous_refresh",
        "at least 1s",
    );
}

#[test]
fn drain_grace_is_zero_to_ten_minutes() {
    assert_eq!(
        config("").l2.drain_grace,
        std::time::Duration::from_secs(30)
    );
    assert_eq!(
        config("[l2]\ndrain_grace = \"0s\"\n").l2.drain_grace,
        std::time::Duration::ZERO
    );
    assert_eq!(
        config("[l2]\ndrain_grace = \"10m\"\n").l2.drain_grace,
        std::time::Duration::from_secs(600)
    );
    refused(
        "[l2]\ndrain_grace = \"11m\"\n",
        "l2.drain_grace",
        "660s is out of range: use 0s to 600s",
    );
    refused("[l2]\ndrain_grace = \"soon\"\n", "l2.drain_grace", "");
}

#[test]
fn quorum_without_gossip_warns() {
    let w = warnings("[cluster]\nenabled = false\n[l2]\nrequire_quorum = true\n");
    assert!(w.iter().any(|d| d.key == "l2.require_quorum"));
}

// --- [[pool]] --------------------------------------------------------------------------------

#[test]
fn pools_need_name_mode_and_addresses() {
    refused(
        "[[pool]]\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\n",
        "pool[0].name",
        "is required",
    );
    refused(
        "[[pool]]\nname = \"a\"\naddresses = [\"10.0.0.1\"]\n",
        "pool[0].mode",
        "is required",
    );
    let d = refused(
        "[[pool]]\nname = \"a\"\nmode = \"l2\"\n",
        "pool[0].addresses",
        "no addresses",
    );
    assert_eq!(line(&d), Some(1), "no addresses key: the pool's header");
    refused(
        "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = []\n",
        "pool[0].addresses",
        "no addresses",
    );
    refused(
        "[[pool]]\nname = \"a b\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\n",
        "pool[0].name",
        "not allowed",
    );
}

#[test]
fn pool_names_are_unique() {
    let d = refused(
        &format!(
            "{L2_POOL}[[pool]]\nname = \"default\"\nmode = \"l2\"\naddresses = [\"10.0.1.0/24\"]\n"
        ),
        "pool[1].name",
        "already used by pool[0] (t.toml:2:8)",
    );
    assert_eq!(line(&d), Some(6));
}

#[test]
fn addresses_must_parse() {
    let pool = |a: &str| {
        format!("[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.9.0.0/24\", \"{a}\"]\n")
    };
    refused(
        &pool("10.0.0.0/33"),
        "pool[0].addresses[1]",
        "not an address range",
    );
    refused(
        &pool("10.0.0.9-10.0.0.1"),
        "pool[0].addresses[1]",
        "ends before it starts; write the lower address first",
    );
    refused(
        &pool("10.0.0.1-fd00::1"),
        "pool[0].addresses[1]",
        "mixes IPv4 and IPv6",
    );
    refused(
        &pool("10.0.0.5/24"),
        "pool[0].addresses[1]",
        "did you mean \"10.0.0.0/24\"?",
    );
    let d = refused(&pool("banana"), "pool[0].addresses[1]", "expected a CIDR");
    assert_eq!(d.location.to_string(), "t.toml:4:29");
}

#[test]
fn addresses_overlap_nowhere() {
    let d = refused(
        "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/24\", \"10.0.0.128-10.0.0.130\"]\n",
        "pool[0].addresses[1]",
        "overlaps \"10.0.0.0/24\" of the same pool (pool[0].addresses[0], t.toml:4:14)",
    );
    assert_eq!(line(&d), Some(4));
    refused(
        &format!("{L2_POOL}[[pool]]\nname = \"b\"\nmode = \"l2\"\naddresses = [\"fd00::/64\", \"10.0.0.255\"]\n"),
        "pool[1].addresses[1]",
        "overlaps \"10.0.0.0/24\" of pool \"default\" (pool[0].addresses[0], t.toml:4:14)",
    );
    // Adjacent is fine; the same numbers in the other family are fine.
    config(&format!(
        "{L2_POOL}[[pool]]\nname = \"b\"\nmode = \"l2\"\naddresses = [\"10.0.1.0/24\", \"::a00:0/120\"]\n"
    ));
}

#[test]
fn overlaps_are_each_reported() {
    let errors = errors(
        "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.0/16\", \"10.0.1.0/24\", \"10.0.2.0/24\", \"10.0.2.7\"]\n",
    );
    let keys: Vec<&str> = errors.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "pool[0].addresses[1]",
            "pool[0].addresses[2]",
            "pool[0].addresses[3]"
        ]
    );
}

#[test]
fn avoid_buggy_ips_must_leave_something() {
    refused(
        "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.255-10.0.1.0\"]\navoid_buggy_ips = true\n",
        "pool[0].avoid_buggy_ips",
        "every address of this pool is skipped",
    );
    config("[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.254-10.0.1.0\"]\navoid_buggy_ips = true\n");
}

#[test]
fn interfaces_are_linux_names_on_l2_pools() {
    let pool = |i: &str| format!("{L2_POOL}interfaces = [\"eth0\", {i}]\n");
    refused(
        &pool("\"a-very-long-interface\""),
        "pool[0].interfaces[1]",
        "15 at most",
    );
    refused(&pool("\"eth/1\""), "pool[0].interfaces[1]", "'/'");
    refused(&pool("\"eth 1\""), "pool[0].interfaces[1]", "whitespace");
    refused(&pool("\"eth0:1\""), "pool[0].interfaces[1]", "':'");
    refused(&pool("\"\""), "pool[0].interfaces[1]", "empty");
    refused(&pool("\"..\""), "pool[0].interfaces[1]", "not allowed");
    refused(&pool("\"eth0\""), "pool[0].interfaces[1]", "listed twice");
    refused(
        &format!("{PEER}[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\ninterfaces = [\"eth0\"]\n"),
        "pool[0].interfaces",
        "applies to l2 pools only",
    );
}

#[test]
fn pool_bgp_only_on_bgp_pools() {
    let d = refused(
        &format!("{L2_POOL}[pool.bgp]\nlocal_pref = 100\n"),
        "pool[0].bgp",
        "applies to bgp pools only",
    );
    assert_eq!(line(&d), Some(5));
}

#[test]
fn bgp_pools_need_peers() {
    refused(
        "[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n",
        "pool[0].mode",
        "no [[bgp.peer]] is configured",
    );
    let bgp = |peers: &str| {
        format!("{PEER}[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\npeers = [{peers}]\n")
    };
    refused(
        &bgp("\"tor2\""),
        "pool[0].bgp.peers[0]",
        "no [[bgp.peer]] is named \"tor2\"",
    );
    refused(
        &bgp("\"tor1\", \"tor1\""),
        "pool[0].bgp.peers[1]",
        "listed twice",
    );
    config(&bgp("\"tor1\""));
    // A peer without a name is named by its address.
    config("[[bgp.peer]]\naddress = \"192.168.100.3\"\nasn = 1\nmy_asn = 2\n[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\npeers = [\"192.168.100.3\"]\n");
}

#[test]
fn communities_parse_once_each() {
    let bgp = |c: &str| {
        format!("{PEER}[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\ncommunities = [{c}]\n")
    };
    refused(
        &bgp("\"65536:1\""),
        "pool[0].bgp.communities[0]",
        "not a number 0-65535",
    );
    refused(
        &bgp("\"large:1:2\""),
        "pool[0].bgp.communities[0]",
        "three parts",
    );
    refused(
        &bgp("\"no-exports\""),
        "pool[0].bgp.communities[0]",
        "well-known name",
    );
    refused(
        &bgp("\"no-export\", \"65535:65281\""),
        "pool[0].bgp.communities[1]",
        "listed twice",
    );
    refused(
        &bgp("\"1:1\", \"1:1\""),
        "pool[0].bgp.communities[1]",
        "listed twice",
    );
}

#[test]
fn local_pref_is_32_bits_and_fine_on_ebgp() {
    let bgp = |v: &str| {
        format!("{PEER}[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\nlocal_pref = {v}\n")
    };
    refused(&bgp("-1"), "pool[0].bgp.local_pref", "0-4294967295");
    refused(&bgp("4294967296"), "pool[0].bgp.local_pref", "0-4294967295");
    // The only peer is eBGP: LOCAL_PREF is simply not sent.
    config(&bgp("100"));
}

#[test]
fn aggregation_lengths_fit_family_and_pool() {
    let bgp = |addresses: &str, agg: &str| {
        format!("{PEER}[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [{addresses}]\n[pool.bgp]\n{agg}\n")
    };
    refused(
        &bgp("\"10.1.0.0/24\"", "aggregation_length = 33"),
        "pool[0].bgp.aggregation_length",
        "0-32",
    );
    refused(
        &bgp("\"10.1.0.0/24\"", "aggregation_length_v6 = 129"),
        "pool[0].bgp.aggregation_length_v6",
        "0-128",
    );
    refused(
        &bgp("\"10.1.0.0/24\"", "aggregation_length = 16"),
        "pool[0].bgp.aggregation_length",
        "/16 is shorter than 10.1.0.0/24",
    );
    refused(
        &bgp("\"10.1.0.1-10.1.0.6\"", "aggregation_length = 30"),
        "pool[0].bgp.aggregation_length",
        "use at least 32",
    );
    refused(
        &bgp("\"fd00::/120\"", "aggregation_length_v6 = 64"),
        "pool[0].bgp.aggregation_length_v6",
        "use at least 120",
    );
    config(&bgp(
        "\"10.1.0.0/24\", \"fd00::/120\"",
        "aggregation_length = 24\naggregation_length_v6 = 120",
    ));
    // Each family is checked against its own addresses only.
    config(&bgp("\"fd00::/120\"", "aggregation_length = 8"));
}

#[test]
fn node_selectors_are_labels() {
    refused(
        &format!("{L2_POOL}node_selector = {{ \"bad key\" = \"x\" }}\n"),
        "pool[0].node_selector.\"bad key\"",
        "label key",
    );
    refused(
        &format!("{PEER}node_selector = {{ rack = \"r 1\" }}\n"),
        "bgp.peer[0].node_selector.rack",
        "not a label value",
    );
}

// --- [[bgp.peer]] ----------------------------------------------------------------------------

fn peer(extra: &str) -> String {
    format!("{PEER}{extra}\n")
}

#[test]
fn peers_need_address_and_asns() {
    refused(
        "[[bgp.peer]]\nasn = 1\nmy_asn = 2\n",
        "bgp.peer[0].address",
        "is required",
    );
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1.5\"\nasn = 1\nmy_asn = 2\n",
        "bgp.peer[0].address",
        "not an IP address",
    );
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nmy_asn = 2\n",
        "bgp.peer[0].asn",
        "is required",
    );
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\n",
        "bgp.peer[0].my_asn",
        "is required",
    );
}

#[test]
fn asns_are_1_to_2_pow_32_minus_1() {
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 0\nmy_asn = 2\n",
        "bgp.peer[0].asn",
        "AS 0 is reserved",
    );
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 4294967296\nmy_asn = 2\n",
        "bgp.peer[0].asn",
        "out of range",
    );
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = -5\n",
        "bgp.peer[0].my_asn",
        "out of range",
    );
    let c = config("[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 4294967295\nmy_asn = 4294967295\n");
    assert!(c.peers[0].is_ibgp());
}

#[test]
fn peer_port() {
    refused(&peer("port = 0"), "bgp.peer[0].port", "1-65535");
    refused(&peer("port = 65536"), "bgp.peer[0].port", "1-65535");
    assert_eq!(config(&peer("port = 1179")).peers[0].port, 1179);
}

#[test]
fn hold_time_is_0_or_at_least_3s() {
    refused(
        &peer("hold_time = \"1s\""),
        "bgp.peer[0].hold_time",
        "RFC 4271",
    );
    refused(
        &peer("hold_time = \"2s\""),
        "bgp.peer[0].hold_time",
        "at least \"3s\"",
    );
    refused(
        &peer("hold_time = \"3500ms\""),
        "bgp.peer[0].hold_time",
        "whole number of seconds",
    );
    refused(
        &peer("hold_time = \"20h\""),
        "bgp.peer[0].hold_time",
        "65535s",
    );
    let c = config(&peer("hold_time = \"0s\""));
    assert_eq!(c.peers[0].keepalive_time, Duration::ZERO);
    assert_eq!(
        config(&peer("hold_time = \"3s\"")).peers[0].keepalive_time,
        Duration::from_secs(1)
    );
}

#[test]
fn keepalive_fits_in_hold_time() {
    refused(
        &peer("keepalive_time = \"91s\""),
        "bgp.peer[0].keepalive_time",
        "must not exceed hold_time (90s)",
    );
    refused(
        &peer("keepalive_time = \"0s\""),
        "bgp.peer[0].keepalive_time",
        "sends no keepalives",
    );
    refused(
        &peer("hold_time = \"0s\"\nkeepalive_time = \"1s\""),
        "bgp.peer[0].keepalive_time",
        "must not exceed",
    );
    refused(
        &peer("keepalive_time = \"1500ms\""),
        "bgp.peer[0].keepalive_time",
        "whole number",
    );
    assert_eq!(
        config(&peer("keepalive_time = \"90s\"")).peers[0].keepalive_time,
        Duration::from_secs(90)
    );
}

#[test]
fn connect_time_is_positive() {
    refused(
        &peer("connect_time = \"0s\""),
        "bgp.peer[0].connect_time",
        "longer than 0s",
    );
    assert_eq!(
        config(&peer("connect_time = \"500ms\"")).peers[0].connect_time,
        Duration::from_millis(500)
    );
}

#[test]
fn ebgp_multihop_is_a_ttl_for_ebgp() {
    refused(
        &peer("ebgp_multihop = 1"),
        "bgp.peer[0].ebgp_multihop",
        "2-255",
    );
    refused(
        &peer("ebgp_multihop = 256"),
        "bgp.peer[0].ebgp_multihop",
        "2-255",
    );
    refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 64500\nmy_asn = 64500\nebgp_multihop = 2\n",
        "bgp.peer[0].ebgp_multihop",
        "this peer is iBGP",
    );
    assert_eq!(
        config(&peer("ebgp_multihop = 4")).peers[0].ebgp_multihop,
        Some(4)
    );
}

#[test]
fn source_address_and_router_id() {
    refused(
        &peer("source_address = \"fd00::1\""),
        "bgp.peer[0].source_address",
        "same family",
    );
    refused(
        &peer("source_address = \"me\""),
        "bgp.peer[0].source_address",
        "not an IP address",
    );
    refused(
        &peer("router_id = \"fd00::1\""),
        "bgp.peer[0].router_id",
        "not an IPv4 address",
    );
    refused(
        &peer("router_id = \"0.0.0.0\""),
        "bgp.peer[0].router_id",
        "RFC 6286",
    );
    let c = config(&peer("router_id = \"10.0.0.1\"\nsource_address = \"192.168.100.10\"\npassive = true\ngraceful_restart = false"));
    assert_eq!(c.peers[0].router_id, Some("10.0.0.1".parse().unwrap()));
    assert!(c.peers[0].passive && !c.peers[0].graceful_restart);
}

#[test]
fn peer_names_are_unique() {
    refused(
        &format!("{PEER}{PEER}"),
        "bgp.peer[1].name",
        "already used by bgp.peer[0]",
    );
    let d = refused(
        "[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 1\nmy_asn = 2\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 3\nmy_asn = 2\n",
        "bgp.peer[1].address",
        "give each a distinct name",
    );
    assert_eq!(line(&d), Some(6));
}

#[test]
fn password_file_is_a_path() {
    refused(
        &peer("password_file = \"\""),
        "bgp.peer[0].password_file",
        "empty path",
    );
}

// --- the whole -------------------------------------------------------------------------------

#[test]
fn no_pool_warns_nothing_to_announce() {
    let w = warnings(QUIET);
    assert!(w
        .iter()
        .any(|d| d.message.contains("nothing to announce") && !d.blocks_start));
}

#[test]
fn every_error_at_once_in_file_order() {
    let errors = errors(
        "[log]\nlevel = \"loud\"\nformat = \"xml\"\n[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.9-10.0.0.1\"]\ninterface = [\"eth0\"]\n[[bgp.peer]]\naddress = \"10.0.0.1\"\nasn = 0\nmy_asn = 1\nhold_time = \"1s\"\n",
    );
    let keys: Vec<&str> = errors.iter().map(|d| d.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "log.level",
            "log.format",
            "pool[0].addresses[0]",
            "pool[0].interface",
            "bgp.peer[0].asn",
            "bgp.peer[0].hold_time",
        ]
    );
    let lines: Vec<Option<usize>> = errors.iter().map(line).collect();
    assert_eq!(
        lines,
        [Some(2), Some(3), Some(7), Some(8), Some(11), Some(13)]
    );
    let typo = &errors[3];
    assert!(
        typo.message.contains("did you mean `interfaces`?"),
        "{typo}"
    );
}

#[test]
fn a_blanked_key_is_not_reported_again_as_missing() {
    let errors = errors("[[pool]]\nname = \"a\"\nmode = 7\naddresses = [\"10.0.0.1\"]\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key, "pool[0].mode");
    assert!(
        errors[0].message.contains("expected \"l2\" or \"bgp\""),
        "{}",
        errors[0]
    );
}

#[test]
fn a_misspelt_key_is_not_reported_again_as_missing() {
    let found = errors("[[pool]]\nname = \"a\"\nmodee = \"l2\"\naddresses = [\"10.0.0.1\"]\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].message.contains("did you mean `mode`?"));
    // Written correctly as well: the rules about `mode` still apply.
    let found = errors(
        "[[pool]]\nname = \"a\"\nmode = \"bgp\"\nmodee = \"l2\"\naddresses = [\"10.0.0.1\"]\n",
    );
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[0].key, "pool[0].mode");
}

#[test]
fn syntax_errors_have_line_and_a_key() {
    let e = load_str(
        "t.toml",
        "[log]\nlevel = \"info\"\n[[pool]]\nname = \"a\"\naddresses = [\"10.0.0.1\"\n",
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1);
    let d = &e.0[0];
    assert!(d.message.starts_with("TOML syntax error"), "{d}");
    assert_eq!(d.key, "pool[0].addresses");
    assert_eq!(line(d), Some(6));
}

#[test]
fn unknown_tables_and_misplaced_keys() {
    let d = refused("[pools]\nname = \"a\"\n", "pools", "did you mean `pool`?");
    assert_eq!(d.location.to_string(), "t.toml:1:2");
    refused(
        "[[bgp.peers]]\naddress = \"10.0.0.1\"\n",
        "bgp.peers",
        "did you mean `peer`?",
    );
    refused(
        "name = \"x\"\n",
        "name",
        "is a key of [node] or [[pool]] or [[bgp.peer]]",
    );
    let d = refused(
        &format!("{PEER}[[pool]]\nname = \"b\"\nmode = \"bgp\"\naddresses = [\"10.1.0.0/24\"]\n[pool.bgp]\npeers = [\"tor1\"]\nauto_assign = false\n"),
        "pool[0].bgp.auto_assign",
        "is a key of [[pool]]",
    );
    assert_eq!(line(&d), Some(12));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn load_str_never_panics_on_any_text(text in "\\PC{0,200}") {
        if let Ok(loaded) = load_str("fuzz.toml", &text) {
            let _ = loaded.config.summary();
        }
    }

    /// Configurations assembled from plausible and broken lines: never a panic, and every error
    /// names a key or a file.
    #[test]
    fn load_str_never_panics_on_config_like_text(lines in proptest::collection::vec(proptest::sample::select(vec![
        "[log]", "level = \"debug\"", "level = 3", "format = \"json\"", "[cluster]", "insecure = true",
        "enabled = false", "bind = \"0.0.0.0:0\"", "[[pool]]", "name = \"a\"", "name = \"b\"",
        "mode = \"l2\"", "mode = \"bgp\"", "mode = \"l3\"", "addresses = [\"10.0.0.0/24\"]",
        "addresses = [\"10.0.0.9-10.0.0.1\", 5]", "addresses = [\"fd00::/120\"]", "[pool.bgp]",
        "peers = [\"tor1\"]", "communities = [\"no-export\", \"1:1\", \"large:1:2\"]",
        "aggregation_length = 24", "interfaces = [\"eth0\"]", "[[bgp.peer]]", "name = \"tor1\"",
        "address = \"10.0.0.1\"", "asn = 0", "asn = 64500", "my_asn = 64500", "hold_time = \"2s\"",
        "keepalive_time = 5", "ebgp_multihop = 2", "bogus = 1", "[bogus]", "x = [", "\"",
        "node_selector = { a = \"b\" }", "pool = 3", "bgp.peer = []",
    ]), 0..24)) {
        let text = lines.join("\n");
        match load_str("gen.toml", &text) {
            Ok(loaded) => { let _ = loaded.config.summary(); }
            Err(errors) => {
                prop_assert!(!errors.0.is_empty());
                for d in &errors.0 {
                    prop_assert!(d.is_error());
                    prop_assert!(!d.key.is_empty() || d.location != Location::Unknown, "{}", d);
                }
            }
        }
    }
}
