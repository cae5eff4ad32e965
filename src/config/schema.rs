//! The file schema: what a configuration file (and the merged files and environment) may
//! contain, as serde reads it. Every table refuses unknown keys; every key has its default
//! here. Values whose correctness depends on other values (address ranges, names, ASNs and
//! ports, interfaces, communities, URLs…) stay close to the TOML types and are checked by
//! [`super::validate`], which reports all problems at once with their positions.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::model::{Failback, LogFormat, Mode};
use super::values::parse_duration;

/// A whole configuration file, or the merge of all of them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FileConfig {
    /// `[node]`.
    pub node: NodeSection,
    /// `[kubernetes]`.
    pub kubernetes: KubernetesSection,
    /// `[cluster]`.
    pub cluster: ClusterSection,
    /// `[l2]`.
    pub l2: L2Section,
    /// `[[pool]]`.
    pub pool: Vec<PoolSection>,
    /// `[bgp]` (holds `[[bgp.peer]]`).
    pub bgp: BgpSection,
    /// `[metrics]`.
    pub metrics: MetricsSection,
    /// `[log]`.
    pub log: LogSection,
}

/// `[node]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// The Kubernetes Node name; default: the host name.
    pub name: Option<String>,
}

/// `[kubernetes]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesSection {
    /// A kubeconfig file; exclusive with `server`.
    pub kubeconfig: Option<PathBuf>,
    /// The API server URL.
    pub server: Option<String>,
    /// Bearer token file (with `server`).
    pub token_file: Option<PathBuf>,
    /// CA certificates file (with `server`).
    pub ca_file: Option<PathBuf>,
    /// Skip TLS verification (default false).
    pub insecure_skip_tls_verify: bool,
    /// The `spec.loadBalancerClass` to handle.
    pub load_balancer_class: Option<String>,
    /// Namespace of the Lease (default `kube-system`).
    pub lease_namespace: String,
    /// Lease duration (default 15s).
    pub lease_duration: DurationValue,
    /// Renew deadline (default 10s).
    pub renew_deadline: DurationValue,
    /// Retry period (default 2s).
    pub retry_period: DurationValue,
    /// Watch (default true) rather than poll.
    pub watch: bool,
    /// Poll interval (default 30s).
    pub poll_interval: DurationValue,
    /// Resync interval (default 10m).
    pub resync_interval: DurationValue,
    /// Requests per second to the API server, on average (default 20).
    pub qps: u32,
    /// Requests allowed in a burst above `qps` (default 50).
    pub burst: u32,
}

impl Default for KubernetesSection {
    fn default() -> Self {
        KubernetesSection {
            kubeconfig: None,
            server: None,
            token_file: None,
            ca_file: None,
            insecure_skip_tls_verify: false,
            load_balancer_class: None,
            lease_namespace: "kube-system".to_string(),
            lease_duration: DurationValue::secs(15),
            renew_deadline: DurationValue::secs(10),
            retry_period: DurationValue::secs(2),
            watch: true,
            poll_interval: DurationValue::secs(30),
            resync_interval: DurationValue::secs(600),
            qps: 20,
            burst: 50,
        }
    }
}

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSection {
    /// Gossip on (default true).
    pub enabled: bool,
    /// Bind address (default `0.0.0.0:7946`).
    pub bind: String,
    /// Shared key file.
    pub secret_file: Option<PathBuf>,
    /// Run gossip unencrypted (default false).
    pub insecure: bool,
    /// Seed members (default: every Node's InternalIP).
    pub join: Vec<String>,
    /// One member probed per interval (default 100ms).
    pub probe_interval: DurationValue,
    /// Direct-ack timeout before indirect probes (default 40ms).
    pub probe_timeout: DurationValue,
    /// Suspect → down once confirmed (default 150ms).
    pub suspicion_timeout: DurationValue,
    /// Suspect → down unconfirmed, as a multiple of suspicion_timeout (default 3).
    pub suspicion_max_multiplier: i64,
    /// Members asked to ping a member that missed a direct ping (default 3).
    pub indirect_probes: i64,
    /// Push pending updates this often (default 100ms).
    pub gossip_interval: DurationValue,
    /// Members each push goes to (default 3).
    pub gossip_fanout: i64,
    /// Give up waiting for a complete sync at start after this long (default 5s).
    pub sync_timeout: DurationValue,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            enabled: true,
            bind: "0.0.0.0:7946".to_string(),
            secret_file: None,
            insecure: false,
            join: Vec::new(),
            probe_interval: DurationValue::millis(100),
            probe_timeout: DurationValue::millis(40),
            suspicion_timeout: DurationValue::millis(150),
            suspicion_max_multiplier: 3,
            indirect_probes: 3,
            gossip_interval: DurationValue::millis(100),
            gossip_fanout: 3,
            sync_timeout: DurationValue::secs(5),
        }
    }
}

/// `[l2]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct L2Section {
    /// `sticky` (default) or `immediate`.
    pub failback: Failback,
    /// Announce only with a quorum (default false).
    pub require_quorum: bool,
    /// Re-send gratuitous ARP / unsolicited NA this often while announcing (default 0s: off).
    pub gratuitous_refresh: DurationValue,
    /// A draining daemon answers this long after handing over (default 30s; 0s to 10m).
    pub drain_grace: DurationValue,
}

impl Default for L2Section {
    fn default() -> Self {
        L2Section {
            failback: Failback::default(),
            require_quorum: false,
            gratuitous_refresh: DurationValue::secs(0),
            drain_grace: DurationValue::secs(30),
        }
    }
}

/// One `[[pool]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolSection {
    /// Required.
    pub name: Option<String>,
    /// Required: `l2` or `bgp`.
    pub mode: Option<Mode>,
    /// CIDRs, ranges or single addresses.
    pub addresses: Vec<String>,
    /// Skip `.0` and `.255` (default false).
    pub avoid_buggy_ips: bool,
    /// Assign to Services that name no pool (default true).
    pub auto_assign: bool,
    /// Label → value.
    pub node_selector: BTreeMap<String, String>,
    /// l2 only.
    pub interfaces: Option<Vec<String>>,
    /// bgp only.
    pub bgp: Option<PoolBgpSection>,
}

impl Default for PoolSection {
    fn default() -> Self {
        PoolSection {
            name: None,
            mode: None,
            addresses: Vec::new(),
            avoid_buggy_ips: false,
            auto_assign: true,
            node_selector: BTreeMap::new(),
            interfaces: None,
            bgp: None,
        }
    }
}

/// `[pool.bgp]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PoolBgpSection {
    /// Peer names (default: all).
    pub peers: Vec<String>,
    /// Communities.
    pub communities: Vec<String>,
    /// LOCAL_PREF.
    pub local_pref: Option<i64>,
    /// IPv4 route prefix length (default 32).
    pub aggregation_length: Option<i64>,
    /// IPv6 route prefix length (default 128).
    pub aggregation_length_v6: Option<i64>,
}

/// `[bgp]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BgpSection {
    /// `[[bgp.peer]]`.
    pub peer: Vec<PeerSection>,
}

/// One `[[bgp.peer]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeerSection {
    /// Default: the address as written.
    pub name: Option<String>,
    /// Required.
    pub address: Option<String>,
    /// Required.
    pub asn: Option<i64>,
    /// Required.
    pub my_asn: Option<i64>,
    /// Default 179.
    pub port: Option<i64>,
    /// Default 90s.
    pub hold_time: DurationValue,
    /// Default: hold_time / 3.
    pub keepalive_time: Option<DurationValue>,
    /// Default 10s.
    pub connect_time: DurationValue,
    /// TCP MD5 password file.
    pub password_file: Option<PathBuf>,
    /// TTL 2-255, eBGP only.
    pub ebgp_multihop: Option<i64>,
    /// Local address.
    pub source_address: Option<String>,
    /// IPv4 BGP identifier.
    pub router_id: Option<String>,
    /// Label → value.
    pub node_selector: BTreeMap<String, String>,
    /// Default false.
    pub passive: bool,
    /// Default true.
    pub graceful_restart: bool,
}

impl Default for PeerSection {
    fn default() -> Self {
        PeerSection {
            name: None,
            address: None,
            asn: None,
            my_asn: None,
            port: None,
            hold_time: DurationValue::secs(90),
            keepalive_time: None,
            connect_time: DurationValue::secs(10),
            password_file: None,
            ebgp_multihop: None,
            source_address: None,
            router_id: None,
            node_selector: BTreeMap::new(),
            passive: false,
            graceful_restart: true,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSection {
    /// Default `0.0.0.0:7472`; empty disables.
    pub listen: String,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            listen: "0.0.0.0:7472".to_string(),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// Default `info`.
    pub level: String,
    /// `text` (default) or `json`.
    pub format: LogFormat,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// A duration written as a string with a unit (`"90s"`); a bare number is refused with a hint
/// to add the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DurationValue(pub Duration);

impl DurationValue {
    fn secs(s: u64) -> DurationValue {
        DurationValue(Duration::from_secs(s))
    }

    fn millis(ms: u64) -> DurationValue {
        DurationValue(Duration::from_millis(ms))
    }
}

impl<'de> Deserialize<'de> for DurationValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DurationValue, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DurationValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration with a unit, like \"90s\" or \"500ms\"")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<DurationValue, E> {
                parse_duration(s).map(DurationValue).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<DurationValue, E> {
                Err(E::custom(format!(
                    "{n} has no unit; add one, like \"{n}s\" or \"{n}ms\" (durations are strings with a unit)"
                )))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<DurationValue, E> {
                Err(E::custom(format!(
                    "{n} has no unit; add one, like \"{n}s\" or \"{n}ms\" (durations are strings with a unit)"
                )))
            }

            fn visit_f64<E: de::Error>(self, n: f64) -> Result<DurationValue, E> {
                Err(E::custom(format!(
                    "{n} has no unit; add one, like \"{n}s\" (durations are strings with a unit)"
                )))
            }
        }
        d.deserialize_any(V)
    }
}

/// The keys a table of type `T` accepts, read from its serde derive (so the list cannot drift
/// from the schema).
pub fn fields_of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    match T::deserialize(FieldsProbe) {
        Err(ProbeError(Some(fields))) => fields,
        _ => &[],
    }
}

/// The tables of the schema: how operators write each header, and its keys.
pub fn sections() -> Vec<(&'static str, &'static [&'static str])> {
    vec![
        ("the top level", fields_of::<FileConfig>()),
        ("[node]", fields_of::<NodeSection>()),
        ("[kubernetes]", fields_of::<KubernetesSection>()),
        ("[cluster]", fields_of::<ClusterSection>()),
        ("[l2]", fields_of::<L2Section>()),
        ("[[pool]]", fields_of::<PoolSection>()),
        ("[pool.bgp]", fields_of::<PoolBgpSection>()),
        ("[bgp]", fields_of::<BgpSection>()),
        ("[[bgp.peer]]", fields_of::<PeerSection>()),
        ("[metrics]", fields_of::<MetricsSection>()),
        ("[log]", fields_of::<LogSection>()),
    ]
}

/// A deserializer that only records the field list serde derive passes to `deserialize_struct`.
struct FieldsProbe;

#[derive(Debug)]
struct ProbeError(Option<&'static [&'static str]>);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ProbeError(None)
    }
}

impl<'de> Deserializer<'de> for FieldsProbe {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_ones() {
        let c: FileConfig = toml::from_str("").unwrap();
        assert_eq!(c.kubernetes.lease_namespace, "kube-system");
        assert_eq!(c.kubernetes.lease_duration.0, Duration::from_secs(15));
        assert_eq!(c.kubernetes.resync_interval.0, Duration::from_secs(600));
        assert!(c.kubernetes.watch);
        assert!(c.cluster.enabled);
        assert_eq!(c.cluster.bind, "0.0.0.0:7946");
        assert_eq!(c.cluster.probe_interval.0, Duration::from_millis(100));
        assert_eq!(c.cluster.sync_timeout.0, Duration::from_secs(5));
        assert_eq!(c.metrics.listen, "0.0.0.0:7472");
        assert_eq!(c.log.level, "info");
        assert_eq!(c.l2.failback, Failback::Sticky);
        let c: FileConfig = toml::from_str("[[pool]]\n[[bgp.peer]]\n").unwrap();
        assert!(c.pool[0].auto_assign);
        assert_eq!(c.bgp.peer[0].hold_time.0, Duration::from_secs(90));
        assert!(c.bgp.peer[0].graceful_restart);
    }

    #[test]
    fn durations_want_units() {
        let e = toml::from_str::<FileConfig>("[kubernetes]\nlease_duration = 15\n").unwrap_err();
        assert!(e.message().contains("\"15s\""), "{e}");
        let e =
            toml::from_str::<FileConfig>("[kubernetes]\nlease_duration = \"15x\"\n").unwrap_err();
        assert!(e.message().contains("not a duration"), "{e}");
        let c: FileConfig = toml::from_str("[kubernetes]\nlease_duration = \"1m\"\n").unwrap();
        assert_eq!(c.kubernetes.lease_duration.0, Duration::from_secs(60));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<FileConfig>("[log]\nlevle = \"x\"\n").unwrap_err();
        assert!(e.message().contains("unknown field `levle`"), "{e}");
        assert_eq!(e.span(), Some(6..11));
    }

    #[test]
    fn field_lists_come_from_serde() {
        assert_eq!(fields_of::<LogSection>(), ["level", "format"]);
        assert!(fields_of::<PeerSection>().contains(&"ebgp_multihop"));
        assert_eq!(fields_of::<FileConfig>().len(), 8);
        for (name, fields) in sections() {
            assert!(!fields.is_empty(), "{name}");
        }
    }
}
