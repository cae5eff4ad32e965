//! Prometheus metrics: what the daemon reports, as values ([`Snapshot`]), turned into the
//! OpenMetrics text format by [`render`] (pure), and served on `metrics.listen` by
//! [`server`] together with `/healthz` and `/readyz`.
//!
//! The daemon's counters already live where they are counted (atomics in the responders and
//! the gossip task, tables in the allocator); a scrape asks a [`Source`] for a snapshot of them
//! and encodes it with prometheus-client's const metrics, so there is one copy of each number
//! and nothing to keep in step.
//!
//! Names are in the `ferrolb_` namespace and, where MetalLB has an equivalent, keep its
//! meaning (`metallb_allocator_addresses_in_use_total` → `ferrolb_allocator_addresses_in_use`,
//! `metallb_layer2_responses_sent` → `ferrolb_layer2_responses_sent_total`, …) so dashboards
//! port by renaming.

pub mod server;

use std::collections::BTreeMap;
use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// One address pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStat {
    /// Pool name.
    pub name: String,
    /// Addresses it can hand out (both families; saturating).
    pub capacity: u128,
    /// Addresses in use.
    pub in_use: u128,
}

/// Gossip membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GossipStat {
    /// Members by state (`alive`, `suspect`, `down`, `left`), this node included.
    pub members: BTreeMap<&'static str, u64>,
    /// Packets dropped before they could affect anything, by reason (`auth`, `replay`, …).
    pub dropped: BTreeMap<&'static str, u64>,
    /// Members declared down (unplanned) since start.
    pub members_down: u64,
    /// Members whose pool configuration fingerprint differs from ours, now.
    pub config_mismatch_members: u64,
}

/// L2 announcement, per protocol (`arp`, `ndp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct L2Stat {
    /// Requests answered.
    pub responses: BTreeMap<&'static str, u64>,
    /// Gratuitous ARP / unsolicited NA frames sent.
    pub gratuitous: BTreeMap<&'static str, u64>,
}

/// One BGP peer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BgpPeerStat {
    /// The peer's name (its address unless configured).
    pub peer: String,
    /// The session is Established.
    pub up: bool,
    /// UPDATE messages sent on its sessions since start.
    pub updates_sent: u64,
    /// UPDATE messages received since start.
    pub updates_received: u64,
    /// Prefixes the peer holds from us now.
    pub prefixes: u64,
}

/// Everything a scrape reports. Optional parts are left out of the output when absent (a
/// daemon without gossip has no gossip metrics rather than zeros that would look healthy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Address pools (allocator view).
    pub pools: Vec<PoolStat>,
    /// Services holding addresses.
    pub services_allocated: u64,
    /// Services waiting for an address, by reason (`poolExhausted`, `noPool`, …).
    pub allocation_failures: BTreeMap<String, u64>,
    /// Addresses this node announces now, by mode (`l2`, `bgp`).
    pub announced: BTreeMap<&'static str, u64>,
    /// L2 responder counters.
    pub l2: Option<L2Stat>,
    /// Gossip.
    pub gossip: Option<GossipStat>,
    /// Kubernetes API requests sent.
    pub api_requests: u64,
    /// Kubernetes API watches restarted (expired, dropped, errors).
    pub api_watch_restarts: u64,
    /// Kubernetes API requests that failed.
    pub api_errors: u64,
    /// Seconds since the last complete sync with the API (absent before the first).
    pub seconds_since_sync: Option<f64>,
    /// BGP peers of this node.
    pub bgp: Vec<BgpPeerStat>,
    /// Configuration reloads, by result (`ok`, `failed`).
    pub reloads: BTreeMap<&'static str, u64>,
    /// The daemon is ready (first sync done, running).
    pub ready: bool,
}

/// Where a scrape gets its numbers.
pub trait Source: fmt::Debug + Send + Sync + 'static {
    /// The numbers now.
    fn snapshot(&self) -> Snapshot;
}

/// The OpenMetrics text for `snapshot`.
pub fn render(snapshot: &Snapshot) -> String {
    let mut registry = Registry::with_prefix("ferrolb");
    registry.register_collector(Box::new(Collect(snapshot.clone())));
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Collect(Snapshot);

type Labels<'a> = [(&'a str, &'a str)];

/// Writes one metric family: a name, help, and `(labels, value)` samples.
struct Family<'e, 'a> {
    encoder: &'e mut DescriptorEncoder<'a>,
}

impl Family<'_, '_> {
    fn counter(&mut self, name: &str, help: &str, samples: &[(&Labels<'_>, u64)]) -> fmt::Result {
        self.family(name, help, MetricType::Counter, samples, |v, m| {
            ConstCounter::new(v).encode(m)
        })
    }

    fn gauge_f(&mut self, name: &str, help: &str, samples: &[(&Labels<'_>, f64)]) -> fmt::Result {
        self.family(name, help, MetricType::Gauge, samples, |v, m| {
            ConstGauge::new(v).encode(m)
        })
    }

    fn gauge(&mut self, name: &str, help: &str, samples: &[(&Labels<'_>, i64)]) -> fmt::Result {
        self.family(name, help, MetricType::Gauge, samples, |v, m| {
            ConstGauge::new(v).encode(m)
        })
    }

    fn family<T: Copy>(
        &mut self,
        name: &str,
        help: &str,
        kind: MetricType,
        samples: &[(&Labels<'_>, T)],
        encode: impl Fn(T, MetricEncoder<'_>) -> fmt::Result,
    ) -> fmt::Result {
        let mut fam = self.encoder.encode_descriptor(name, help, None, kind)?;
        // A metric without labels is written bare (`name 1`, not `name{} 1`).
        if let [(labels, v)] = samples {
            if labels.is_empty() {
                return encode(*v, fam);
            }
        }
        for (labels, v) in samples {
            encode(*v, fam.encode_family(labels)?)?;
        }
        Ok(())
    }
}

/// Pool sizes can exceed i64 (IPv6): saturate.
fn sat(v: u128) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn per<'a>(
    key: &'a str,
    map: &'a BTreeMap<&'static str, u64>,
) -> Vec<([(&'a str, &'a str); 1], u64)> {
    map.iter().map(|(k, v)| ([(key, *k)], *v)).collect()
}

fn refs<'a, const N: usize, T: Copy>(
    v: &'a [([(&'a str, &'a str); N], T)],
) -> Vec<(&'a Labels<'a>, T)> {
    v.iter().map(|(l, x)| (&l[..], *x)).collect()
}

impl Collector for Collect {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let s = &self.0;
        let mut f = Family {
            encoder: &mut encoder,
        };
        let none: &Labels<'_> = &[];
        let pools: Vec<_> = s
            .pools
            .iter()
            .map(|p| ([("pool", p.name.as_str())], p))
            .collect();
        f.gauge(
            "allocator_addresses",
            "Addresses a pool can hand out (MetalLB: metallb_allocator_addresses_total).",
            &pools
                .iter()
                .map(|(l, p)| (&l[..], sat(p.capacity)))
                .collect::<Vec<_>>(),
        )?;
        f.gauge(
            "allocator_addresses_in_use",
            "Addresses of a pool in use (MetalLB: metallb_allocator_addresses_in_use_total).",
            &pools
                .iter()
                .map(|(l, p)| (&l[..], sat(p.in_use)))
                .collect::<Vec<_>>(),
        )?;
        f.gauge(
            "allocator_services_allocated",
            "Services of type LoadBalancer holding addresses.",
            &[(
                none,
                i64::try_from(s.services_allocated).unwrap_or(i64::MAX),
            )],
        )?;
        let failures: Vec<_> = s
            .allocation_failures
            .iter()
            .map(|(k, v)| {
                (
                    [("reason", k.as_str())],
                    i64::try_from(*v).unwrap_or(i64::MAX),
                )
            })
            .collect();
        f.gauge(
            "allocator_services_pending",
            "Services waiting for an address, by reason.",
            &refs(&failures),
        )?;
        let announced = per("mode", &s.announced);
        let announced: Vec<_> = announced
            .iter()
            .map(|(l, v)| (&l[..], i64::try_from(*v).unwrap_or(i64::MAX)))
            .collect();
        f.gauge(
            "announced_addresses",
            "Addresses this node announces now, by mode.",
            &announced,
        )?;
        if let Some(l2) = &s.l2 {
            f.counter(
                "layer2_responses_sent",
                "ARP replies and neighbour advertisements sent in answer to requests (MetalLB: metallb_layer2_responses_sent).",
                &refs(&per("protocol", &l2.responses)),
            )?;
            f.counter(
                "layer2_gratuitous_sent",
                "Gratuitous ARP and unsolicited neighbour advertisements sent (MetalLB: metallb_layer2_gratuitous_sent).",
                &refs(&per("protocol", &l2.gratuitous)),
            )?;
        }
        if let Some(g) = &s.gossip {
            let members = per("state", &g.members);
            let members: Vec<_> = members
                .iter()
                .map(|(l, v)| (&l[..], i64::try_from(*v).unwrap_or(i64::MAX)))
                .collect();
            f.gauge(
                "gossip_members",
                "Gossip members by state, this node included.",
                &members,
            )?;
            f.counter(
                "gossip_packets_dropped",
                "Gossip packets dropped before they could affect anything, by reason (forged, replayed, malformed, ...).",
                &refs(&per("reason", &g.dropped)),
            )?;
            f.counter(
                "gossip_members_down",
                "Members declared down (they stopped answering) since start.",
                &[(none, g.members_down)],
            )?;
            f.gauge(
                "config_mismatch_members",
                "Members whose pool configuration differs from this node's (owners would be computed from different pools).",
                &[(none, i64::try_from(g.config_mismatch_members).unwrap_or(i64::MAX))],
            )?;
        }
        f.counter(
            "k8s_requests",
            "Requests sent to the Kubernetes API.",
            &[(none, s.api_requests)],
        )?;
        f.counter(
            "k8s_watch_restarts",
            "Kubernetes API watches restarted (expired, dropped or failed).",
            &[(none, s.api_watch_restarts)],
        )?;
        f.counter(
            "k8s_errors",
            "Kubernetes API requests that failed.",
            &[(none, s.api_errors)],
        )?;
        if let Some(age) = s.seconds_since_sync {
            f.gauge_f(
                "k8s_seconds_since_sync",
                "Seconds since the last complete sync with the Kubernetes API.",
                &[(none, age)],
            )?;
        }
        if !s.bgp.is_empty() {
            let peers: Vec<_> = s
                .bgp
                .iter()
                .map(|b| ([("peer", b.peer.as_str())], b))
                .collect();
            let gauge = |v: &dyn Fn(&BgpPeerStat) -> u64| -> Vec<_> {
                peers
                    .iter()
                    .map(|(l, b)| (&l[..], i64::try_from(v(b)).unwrap_or(i64::MAX)))
                    .collect()
            };
            let counter = |v: &dyn Fn(&BgpPeerStat) -> u64| -> Vec<_> {
                peers.iter().map(|(l, b)| (&l[..], v(b))).collect()
            };
            f.gauge(
                "bgp_session_up",
                "1 when the BGP session to the peer is Established (MetalLB: metallb_bgp_session_up).",
                &gauge(&|b| u64::from(b.up)),
            )?;
            f.gauge(
                "bgp_announced_prefixes",
                "Prefixes the peer holds from this node (MetalLB: metallb_bgp_announced_prefixes_total).",
                &gauge(&|b| b.prefixes),
            )?;
            f.counter(
                "bgp_updates_sent",
                "BGP UPDATE messages sent to the peer (MetalLB: metallb_bgp_updates_total).",
                &counter(&|b| b.updates_sent),
            )?;
            f.counter(
                "bgp_updates_received",
                "BGP UPDATE messages received from the peer.",
                &counter(&|b| b.updates_received),
            )?;
        }
        f.counter(
            "config_reloads",
            "Configuration reloads by result (ok, failed).",
            &refs(&per("result", &s.reloads)),
        )?;
        f.gauge(
            "ready",
            "1 once the daemon has synced with the API and is running.",
            &[(none, i64::from(s.ready))],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
