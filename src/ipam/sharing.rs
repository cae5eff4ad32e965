//! Address sharing (`allow-shared-ip`): when two Services may hold the same address.
//!
//! Two Services may share an address only if
//! - both carry the same non-empty sharing key,
//! - they send traffic to the same backends: both `externalTrafficPolicy: Cluster`, or both
//!   `Local` with identical selectors (with `Local`, only nodes with an endpoint announce the
//!   address, so the two must have the same endpoints), and
//! - no `(protocol, port)` is used by both.
//!
//! Every pair of holders of an address satisfies this, so a newcomer is checked against each
//! holder.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::reason::AllocError;
use super::service::{Port, Protocol, ServiceKey, ServiceSpec, TrafficPolicy};

/// Who may share with whom, ports aside: Services may share an address only if they are in
/// the same group (same key, same backends).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Group {
    pub(crate) key: String,
    pub(crate) traffic: TrafficPolicy,
    /// The selector, kept only for `Local` (it does not matter for `Cluster`).
    pub(crate) selector: Option<BTreeMap<String, String>>,
}

/// What sharing compatibility depends on, kept by the allocator for Services that share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sharing {
    pub(crate) group: Group,
    /// Sorted, without duplicates.
    pub(crate) ports: Vec<Port>,
}

impl Sharing {
    /// The Service's sharing terms, if it allows sharing.
    pub(crate) fn of(spec: &ServiceSpec) -> Option<Sharing> {
        let key = spec.sharing_key()?;
        Some(Sharing {
            group: Group {
                key: key.to_string(),
                traffic: spec.traffic_policy(),
                selector: (spec.traffic_policy() == TrafficPolicy::Local)
                    .then(|| spec.selector().clone()),
            },
            ports: spec.ports().to_vec(),
        })
    }
}

/// Whether a Service with terms `ours` may hold `ip` next to `holder`, which holds it with
/// terms `theirs`; the error says what prevents it.
pub(crate) fn check(
    ip: IpAddr,
    ours: Option<&Sharing>,
    holder: &ServiceKey,
    theirs: Option<&Sharing>,
) -> Result<(), AllocError> {
    check_group(ip, ours, holder, theirs)?;
    let (Some(ours), Some(theirs)) = (ours, theirs) else {
        return Ok(());
    };
    if let Some(port) = first_common(&ours.ports, &theirs.ports) {
        return Err(AllocError::PortCollision {
            ip,
            port,
            by: holder.clone(),
        });
    }
    Ok(())
}

/// [`check`] without the ports: both share, in the same group.
pub(crate) fn check_group(
    ip: IpAddr,
    ours: Option<&Sharing>,
    holder: &ServiceKey,
    theirs: Option<&Sharing>,
) -> Result<(), AllocError> {
    let (Some(ours), Some(theirs)) = (ours, theirs) else {
        return Err(AllocError::InUse {
            ip,
            by: holder.clone(),
        });
    };
    let (a, b) = (&ours.group, &theirs.group);
    if a.key != b.key {
        return Err(AllocError::SharingKeyMismatch {
            ip,
            by: holder.clone(),
            key: a.key.clone(),
            theirs: b.key.clone(),
        });
    }
    if a.traffic != b.traffic {
        return Err(AllocError::TrafficPolicyMismatch {
            ip,
            by: holder.clone(),
            ours: a.traffic,
            theirs: b.traffic,
        });
    }
    if a.selector != b.selector {
        return Err(AllocError::SelectorMismatch {
            ip,
            by: holder.clone(),
        });
    }
    Ok(())
}

/// The lowest element of two sorted slices in common.
fn first_common(a: &[Port], b: &[Port]) -> Option<Port> {
    let (mut i, mut j) = (0, 0);
    while let (Some(x), Some(y)) = (a.get(i), b.get(j)) {
        match x.cmp(y) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => return Some(*x),
        }
    }
    None
}

/// A fixed 64-bit hash of one port (splitmix64). The signature of a set of ports is the XOR
/// of its ports' hashes: independent of order, and updated in `O(1)` per port added or removed.
/// Fixed (not `std`'s randomly seeded hasher) so that decisions are the same on every run.
pub(crate) fn port_hash(port: Port) -> u64 {
    let protocol: u64 = match port.protocol {
        Protocol::Tcp => 1,
        Protocol::Udp => 2,
        Protocol::Sctp => 3,
    };
    let mut z = (protocol << 16 | u64::from(port.port)).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ipam::service::{PortInput, ServiceInput};

    fn spec(key: Option<&str>, policy: &str, app: &str, ports: &[(&str, i32)]) -> ServiceSpec {
        let ann: BTreeMap<String, String> = key
            .map(|k| ("ferrolb.io/allow-shared-ip".to_string(), k.to_string()))
            .into_iter()
            .collect();
        let sel: BTreeMap<String, String> = [("app".to_string(), app.to_string())].into();
        let ports: Vec<PortInput<'_>> = ports
            .iter()
            .map(|(p, n)| PortInput {
                protocol: Some(p),
                port: *n,
            })
            .collect();
        ServiceSpec::parse(&ServiceInput {
            namespace: "ns",
            name: "s",
            annotations: Some(&ann),
            external_traffic_policy: Some(policy),
            selector: Some(&sel),
            ports: &ports,
            ..Default::default()
        })
    }

    fn verdict(a: &ServiceSpec, b: &ServiceSpec) -> Result<(), AllocError> {
        let ip = "10.0.0.1".parse().unwrap();
        check(
            ip,
            Sharing::of(a).as_ref(),
            &ServiceKey::new("ns", "b"),
            Sharing::of(b).as_ref(),
        )
    }

    #[test]
    fn compatible_services_share() {
        let a = spec(Some("k"), "Cluster", "a", &[("TCP", 80)]);
        let b = spec(Some("k"), "Cluster", "b", &[("TCP", 443), ("UDP", 80)]);
        assert_eq!(verdict(&a, &b), Ok(()));
        let a = spec(Some("k"), "Local", "x", &[("TCP", 80)]);
        let b = spec(Some("k"), "Local", "x", &[("TCP", 81)]);
        assert_eq!(verdict(&a, &b), Ok(()));
    }

    #[test]
    fn each_incompatibility_has_its_reason() {
        let base = spec(Some("k"), "Cluster", "a", &[("TCP", 80)]);
        let e = verdict(&spec(None, "Cluster", "a", &[("TCP", 81)]), &base).unwrap_err();
        assert!(matches!(e, AllocError::InUse { .. }), "{e}");
        let e = verdict(&base, &spec(None, "Cluster", "a", &[("TCP", 81)])).unwrap_err();
        assert!(matches!(e, AllocError::InUse { .. }), "{e}");
        let e = verdict(&spec(Some("j"), "Cluster", "a", &[("TCP", 81)]), &base).unwrap_err();
        assert!(matches!(e, AllocError::SharingKeyMismatch { .. }), "{e}");
        let e = verdict(&spec(Some("k"), "Local", "a", &[("TCP", 81)]), &base).unwrap_err();
        assert!(matches!(e, AllocError::TrafficPolicyMismatch { .. }), "{e}");
        let e = verdict(
            &spec(Some("k"), "Local", "a", &[("TCP", 81)]),
            &spec(Some("k"), "Local", "b", &[("TCP", 80)]),
        )
        .unwrap_err();
        assert!(matches!(e, AllocError::SelectorMismatch { .. }), "{e}");
        let e = verdict(
            &spec(Some("k"), "Cluster", "a", &[("UDP", 1), ("TCP", 80)]),
            &base,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "port TCP/80 is already in use on 10.0.0.1 by ns/b"
        );
    }
}
