//! The membership layer's settings, from `[cluster]` and what the daemon knows at start.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use super::keys::{KeyError, Keyring};
use super::meta::{pool_fingerprint, Fingerprint};
use super::packet::Security;
use crate::config::{Config, GossipTiming, JoinAddress};

/// SWIM/Lifeguard timing (`[cluster]` keys). The defaults aim at a LAN: a dead member of a
/// 3-node cluster is declared down in about 300-450 ms, and a member must miss a direct ping
/// *and* every indirect one, then stay silent for another suspicion timeout, before it is —
/// see [`Timing::default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// `cluster.probe_interval`: one member probed per interval (a full probe round).
    pub probe_interval: Duration,
    /// `cluster.probe_timeout`: wait for a direct ack before asking others to probe.
    pub probe_timeout: Duration,
    /// `cluster.suspicion_timeout`: suspect → down with every expected confirmation (scaled
    /// by log10(members) above 10 members).
    pub suspicion_timeout: Duration,
    /// `cluster.suspicion_max_multiplier`: suspect → down with no confirmation, as a multiple
    /// of `suspicion_timeout`.
    pub suspicion_max_multiplier: u32,
    /// Independent confirmations after which the suspicion timeout is at its minimum
    /// (memberlist: suspicion multiplier − 2).
    pub suspicion_confirmations: u32,
    /// `cluster.indirect_probes`: members asked to ping a member that missed a direct ping.
    pub indirect_probes: u32,
    /// `cluster.gossip_interval`: how often pending updates are pushed (besides riding on
    /// probes, and besides the immediate push on every change).
    pub gossip_interval: Duration,
    /// `cluster.gossip_fanout`: members each push goes to.
    pub gossip_fanout: u32,
    /// `cluster.sync_timeout`: after this long the view counts as synced even if no member
    /// could be reached (a lone first node) or some member's metadata never came.
    pub sync_timeout: Duration,
}

impl Default for Timing {
    /// Why these numbers (3 nodes on a LAN, RTT well under 1 ms):
    ///
    /// - a probe round of 100 ms: 40 ms for the direct ack (40× a LAN round trip, and above
    ///   the scheduling stalls of a loaded 2-core box), the remaining 60 ms for the indirect
    ///   pings; each member is probed by each other member every ~2 rounds with 3 nodes;
    /// - suspect → down: 150 ms once the third node confirms (or right away with 2 nodes),
    ///   450 ms for a lone suspicion; a live suspect refutes within one round trip of hearing
    ///   it (the suspicion is pushed to it at once), so 150 ms leaves >100× margin;
    /// - detection ≈ the wait for the next probe of the dead node (0-100 ms), plus one round
    ///   (100 ms), plus the suspicion (150-200 ms once confirmed): 250-450 ms; a node that
    ///   merely stalls must lose a direct *and* an indirect ping and then stay silent for
    ///   ≥150 ms more, and Lifeguard awareness stretches the probes of a node that is itself
    ///   starved up to 9×.
    fn default() -> Timing {
        Timing {
            probe_interval: Duration::from_millis(100),
            probe_timeout: Duration::from_millis(40),
            suspicion_timeout: Duration::from_millis(150),
            suspicion_max_multiplier: 3,
            suspicion_confirmations: 2,
            indirect_probes: 3,
            gossip_interval: Duration::from_millis(100),
            gossip_fanout: 3,
            sync_timeout: Duration::from_secs(5),
        }
    }
}

impl From<&GossipTiming> for Timing {
    fn from(t: &GossipTiming) -> Timing {
        Timing {
            probe_interval: t.probe_interval,
            probe_timeout: t.probe_timeout,
            suspicion_timeout: t.suspicion_timeout,
            suspicion_max_multiplier: t.suspicion_max_multiplier,
            suspicion_confirmations: Timing::default().suspicion_confirmations,
            indirect_probes: t.indirect_probes,
            gossip_interval: t.gossip_interval,
            gossip_fanout: t.gossip_fanout,
            sync_timeout: t.sync_timeout,
        }
    }
}

/// Everything the membership task needs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's Kubernetes name.
    pub node: String,
    /// Where to bind (`cluster.bind`).
    pub bind: SocketAddr,
    /// The address others reach us at; `None`: the bound address (which then must not be
    /// unspecified). Port 0: the bound port.
    pub advertise: Option<SocketAddr>,
    /// Keys, or insecure.
    pub security: Security,
    /// Timing.
    pub timing: Timing,
    /// Whom to join (`cluster.join`, or the Nodes' InternalIPs from the daemon).
    pub join: Vec<JoinAddress>,
    /// Our pool fingerprint.
    pub fingerprint: Fingerprint,
    /// Pools we can announce, at start.
    pub pools: BTreeSet<String>,
}

impl Settings {
    /// Settings from the configuration: keys read from `cluster.secret_file` (unless
    /// `cluster.insecure`), the fingerprint of its pools, every pool as announceable (the
    /// daemon narrows that with `set_pools` once it knows the interfaces). `advertise` is
    /// left unset: with `cluster.bind` on an unspecified address the daemon must set it to
    /// the Node's InternalIP (port 0 keeps the bound port).
    pub fn from_config(config: &Config, node: &str) -> Result<Settings, KeyError> {
        let c = &config.cluster;
        let security = match (&c.secret_file, c.insecure) {
            (_, true) => Security::Insecure,
            (Some(path), false) => Security::Keys(Keyring::load(path)?),
            (None, false) => return Err(KeyError::NotConfigured),
        };
        Ok(Settings {
            node: node.to_string(),
            bind: c.bind,
            advertise: None,
            security,
            timing: Timing::from(&c.timing),
            join: c.join.clone(),
            fingerprint: pool_fingerprint(config),
            pools: config.pools.iter().map(|p| p.name.clone()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Config {
        crate::config::load_str("/etc/ferrolb/ferrolb.toml", text)
            .unwrap()
            .config
    }

    #[test]
    fn from_config_reads_keys_timing_and_pools() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("gossip.key");
        std::fs::write(
            &key,
            "# test\nAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n",
        )
        .unwrap();
        let pools = "[[pool]]\nname = \"a\"\nmode = \"l2\"\naddresses = [\"10.0.0.1\"]\n";
        let text = format!(
            "[cluster]\nsecret_file = \"{}\"\nprobe_interval = \"120ms\"\n{pools}",
            key.display()
        );
        let config = load(&text);
        let s = Settings::from_config(&config, "n1").unwrap();
        assert!(matches!(&s.security, Security::Keys(r) if r.keys().len() == 1));
        assert_eq!(s.timing.probe_interval, Duration::from_millis(120));
        assert_eq!(s.timing.suspicion_confirmations, 2);
        assert_eq!(s.fingerprint, pool_fingerprint(&config));
        assert_eq!(s.pools, ["a".to_string()].into());
        assert_eq!(s.bind, "0.0.0.0:7946".parse().unwrap());

        std::fs::write(&key, "not a key\n").unwrap();
        let e = Settings::from_config(&config, "n1").unwrap_err();
        assert!(e.to_string().contains("gossip.key:1"), "{e}");

        let insecure = load(&format!("[cluster]\ninsecure = true\n{pools}"));
        let s = Settings::from_config(&insecure, "n1").unwrap();
        assert!(matches!(s.security, Security::Insecure));
    }
}
