//! Parsing what a Service asks of IPAM: the annotations (ferrolb's and MetalLB's spellings),
//! `spec.loadBalancerIP`, and the few spec fields whose values are strings in the API.
//!
//! Each annotation has three accepted spellings. Setting several spellings is fine when they
//! agree; when they disagree the Service is refused with [`InvalidService::ConflictingSpellings`],
//! because guessing which one the user meant would hand out an address nobody asked for. An
//! annotation whose value is empty (or only whitespace) counts as unset.

use std::collections::BTreeMap;
use std::net::IpAddr;

use super::range::Family;
use super::service::{IpFamilyPolicy, Port, PortInput, Protocol, TrafficPolicy};

/// The spellings of the requested-addresses annotation (comma-separated, at most one address
/// per family), ferrolb's first.
pub const LOAD_BALANCER_IPS: [&str; 3] = [
    "ferrolb.io/loadBalancerIPs",
    "metallb.io/loadBalancerIPs",
    "metallb.universe.tf/loadBalancerIPs",
];

/// The spellings of the annotation that pins a Service to one pool, ferrolb's first.
pub const ADDRESS_POOL: [&str; 3] = [
    "ferrolb.io/address-pool",
    "metallb.io/address-pool",
    "metallb.universe.tf/address-pool",
];

/// The spellings of the sharing-key annotation, ferrolb's first.
pub const ALLOW_SHARED_IP: [&str; 3] = [
    "ferrolb.io/allow-shared-ip",
    "metallb.io/allow-shared-ip",
    "metallb.universe.tf/allow-shared-ip",
];

/// The name of the spec field, as used in messages.
pub const SPEC_LOAD_BALANCER_IP: &str = "spec.loadBalancerIP";

/// A value in a Service that IPAM cannot use. Each message names the field and says what would
/// be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidService {
    /// An entry that is not an IP address.
    #[error("{field}: {value:?} is not an IP address")]
    BadAddress {
        /// The annotation or field.
        field: String,
        /// The entry as written.
        value: String,
    },
    /// More than two addresses requested.
    #[error("{field} lists {count} addresses; list at most two, one IPv4 and one IPv6")]
    TooManyAddresses {
        /// The annotation.
        field: String,
        /// How many were listed.
        count: usize,
    },
    /// Two requested addresses of one family.
    #[error(
        "{field} lists two {family} addresses ({first} and {second}); list at most one per family"
    )]
    SameFamily {
        /// The annotation.
        field: String,
        /// Their family.
        family: Family,
        /// The first one.
        first: IpAddr,
        /// The second one.
        second: IpAddr,
    },
    /// Two spellings of one annotation with different values.
    #[error("annotations {first_key} ({first_value:?}) and {second_key} ({second_value:?}) disagree; set only one of them")]
    ConflictingSpellings {
        /// One spelling.
        first_key: String,
        /// Its value.
        first_value: String,
        /// The other spelling.
        second_key: String,
        /// Its value.
        second_value: String,
    },
    /// `spec.loadBalancerIP` names an address the annotation does not list.
    #[error("spec.loadBalancerIP {spec_ip} is not among the addresses of {field} ({listed}); set only one of them")]
    LoadBalancerIpConflict {
        /// `spec.loadBalancerIP`.
        spec_ip: IpAddr,
        /// The annotation.
        field: String,
        /// The annotation's value.
        listed: String,
    },
    /// An unknown entry in `spec.ipFamilies`.
    #[error("spec.ipFamilies: {value:?} is not an IP family; expected \"IPv4\" or \"IPv6\"")]
    IpFamily {
        /// The entry as written.
        value: String,
    },
    /// An unknown `spec.ipFamilyPolicy`.
    #[error("spec.ipFamilyPolicy: {value:?} is not a policy; expected \"SingleStack\", \"PreferDualStack\" or \"RequireDualStack\"")]
    IpFamilyPolicy {
        /// The value as written.
        value: String,
    },
    /// An unknown port protocol.
    #[error(
        "spec.ports: protocol {value:?} is not supported; expected \"TCP\", \"UDP\" or \"SCTP\""
    )]
    Protocol {
        /// The value as written.
        value: String,
    },
    /// A port number outside 1–65535.
    #[error("spec.ports: port {value} is out of range; expected 1-65535")]
    Port {
        /// The value as written.
        value: i32,
    },
    /// An unknown `spec.externalTrafficPolicy`.
    #[error(
        "spec.externalTrafficPolicy: {value:?} is not a policy; expected \"Cluster\" or \"Local\""
    )]
    TrafficPolicy {
        /// The value as written.
        value: String,
    },
}

/// What a Service's annotations and `spec.loadBalancerIP` ask for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requests {
    /// Requested addresses: none, or at most one per family, in the order written.
    pub addresses: Vec<IpAddr>,
    /// The pool the Service is pinned to.
    pub pool: Option<String>,
    /// The sharing key; never empty.
    pub sharing_key: Option<String>,
}

impl Requests {
    /// Reads the three annotations (each in any of its spellings) and `spec.loadBalancerIP`.
    ///
    /// `spec.loadBalancerIP` and the annotation may both be set only if the annotation lists
    /// that address; the annotation's list is then used.
    pub fn parse(
        annotations: &BTreeMap<String, String>,
        load_balancer_ip: Option<&str>,
    ) -> Result<Requests, InvalidService> {
        let addresses = match agreed(annotations, &LOAD_BALANCER_IPS, parse_list)? {
            Some((field, list)) => {
                if let Some(spec_ip) = parse_spec_ip(load_balancer_ip)? {
                    if !list.contains(&spec_ip) {
                        return Err(InvalidService::LoadBalancerIpConflict {
                            spec_ip,
                            field: field.to_string(),
                            listed: join(&list),
                        });
                    }
                }
                list
            }
            None => parse_spec_ip(load_balancer_ip)?.into_iter().collect(),
        };
        let text = |_: &str, v: &str| Ok(v.to_string());
        let pool = agreed(annotations, &ADDRESS_POOL, text)?.map(|(_, v)| v);
        let sharing_key = agreed(annotations, &ALLOW_SHARED_IP, text)?.map(|(_, v)| v);
        Ok(Requests {
            addresses,
            pool,
            sharing_key,
        })
    }
}

/// The value of an annotation given in `spellings`, parsed; an error if two spellings disagree.
/// Values are trimmed; empty values count as unset.
fn agreed<T: PartialEq>(
    annotations: &BTreeMap<String, String>,
    spellings: &[&'static str],
    parse: impl Fn(&str, &str) -> Result<T, InvalidService>,
) -> Result<Option<(&'static str, T)>, InvalidService> {
    let mut found: Option<(&'static str, &str, T)> = None;
    for &key in spellings {
        let Some(raw) = annotations.get(key) else {
            continue;
        };
        let value = raw.trim();
        if value.is_empty() {
            continue;
        }
        let parsed = parse(key, value)?;
        match &found {
            None => found = Some((key, value, parsed)),
            Some((first_key, first_value, first)) => {
                if *first != parsed {
                    return Err(InvalidService::ConflictingSpellings {
                        first_key: first_key.to_string(),
                        first_value: first_value.to_string(),
                        second_key: key.to_string(),
                        second_value: value.to_string(),
                    });
                }
            }
        }
    }
    Ok(found.map(|(key, _, parsed)| (key, parsed)))
}

/// A comma-separated list of at most two addresses of distinct families. Spaces around entries
/// are allowed; an empty entry is not (it usually hides a typo).
fn parse_list(field: &str, value: &str) -> Result<Vec<IpAddr>, InvalidService> {
    let out = value
        .split(',')
        .map(str::trim)
        .map(|entry| {
            entry
                .parse::<IpAddr>()
                .map_err(|_| InvalidService::BadAddress {
                    field: field.to_string(),
                    value: entry.to_string(),
                })
        })
        .collect::<Result<Vec<IpAddr>, InvalidService>>()?;
    if out.len() > 2 {
        return Err(InvalidService::TooManyAddresses {
            field: field.to_string(),
            count: out.len(),
        });
    }
    if let [first, second] = out[..] {
        if Family::of(first) == Family::of(second) {
            return Err(InvalidService::SameFamily {
                field: field.to_string(),
                family: Family::of(first),
                first,
                second,
            });
        }
    }
    Ok(out)
}

/// `spec.loadBalancerIP`: unset, empty, or one address.
fn parse_spec_ip(value: Option<&str>) -> Result<Option<IpAddr>, InvalidService> {
    let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    value
        .parse()
        .map(Some)
        .map_err(|_| InvalidService::BadAddress {
            field: SPEC_LOAD_BALANCER_IP.to_string(),
            value: value.to_string(),
        })
}

fn join(list: &[IpAddr]) -> String {
    list.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// One entry of `spec.ipFamilies`.
pub fn parse_family(value: &str) -> Result<Family, InvalidService> {
    match value {
        "IPv4" => Ok(Family::V4),
        "IPv6" => Ok(Family::V6),
        other => Err(InvalidService::IpFamily {
            value: other.to_string(),
        }),
    }
}

/// `spec.ipFamilyPolicy`; unset or empty is `SingleStack`.
pub fn parse_family_policy(value: Option<&str>) -> Result<IpFamilyPolicy, InvalidService> {
    match value.unwrap_or("") {
        "" | "SingleStack" => Ok(IpFamilyPolicy::SingleStack),
        "PreferDualStack" => Ok(IpFamilyPolicy::PreferDualStack),
        "RequireDualStack" => Ok(IpFamilyPolicy::RequireDualStack),
        other => Err(InvalidService::IpFamilyPolicy {
            value: other.to_string(),
        }),
    }
}

/// One entry of `spec.ports`; an unset protocol is TCP.
pub fn parse_port(input: &PortInput<'_>) -> Result<Port, InvalidService> {
    let protocol = match input.protocol.unwrap_or("") {
        "" | "TCP" => Protocol::Tcp,
        "UDP" => Protocol::Udp,
        "SCTP" => Protocol::Sctp,
        other => {
            return Err(InvalidService::Protocol {
                value: other.to_string(),
            })
        }
    };
    let port = u16::try_from(input.port)
        .ok()
        .filter(|p| *p != 0)
        .ok_or(InvalidService::Port { value: input.port })?;
    Ok(Port { protocol, port })
}

/// `spec.externalTrafficPolicy`; unset or empty is `Cluster`.
pub fn parse_traffic_policy(value: Option<&str>) -> Result<TrafficPolicy, InvalidService> {
    match value.unwrap_or("") {
        "" | "Cluster" => Ok(TrafficPolicy::Cluster),
        "Local" => Ok(TrafficPolicy::Local),
        other => Err(InvalidService::TrafficPolicy {
            value: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn every_spelling_of_each_annotation_is_read() {
        for key in LOAD_BALANCER_IPS {
            let r = Requests::parse(&ann(&[(key, "10.0.0.5, fd00::5")]), None).unwrap();
            assert_eq!(r.addresses, [ip("10.0.0.5"), ip("fd00::5")], "{key}");
        }
        for key in ADDRESS_POOL {
            let r = Requests::parse(&ann(&[(key, " gold ")]), None).unwrap();
            assert_eq!(r.pool.as_deref(), Some("gold"), "{key}");
        }
        for key in ALLOW_SHARED_IP {
            let r = Requests::parse(&ann(&[(key, "k1")]), None).unwrap();
            assert_eq!(r.sharing_key.as_deref(), Some("k1"), "{key}");
        }
    }

    #[test]
    fn spec_load_balancer_ip_is_a_request() {
        let r = Requests::parse(&BTreeMap::new(), Some("10.0.0.7")).unwrap();
        assert_eq!(r.addresses, [ip("10.0.0.7")]);
        let r = Requests::parse(&BTreeMap::new(), Some("")).unwrap();
        assert!(r.addresses.is_empty());
    }

    #[test]
    fn empty_values_count_as_unset() {
        let a = ann(&[
            (LOAD_BALANCER_IPS[0], " "),
            (ADDRESS_POOL[1], ""),
            (ALLOW_SHARED_IP[2], ""),
        ]);
        assert_eq!(Requests::parse(&a, None).unwrap(), Requests::default());
    }

    #[test]
    fn agreeing_spellings_are_fine_disagreeing_ones_are_refused() {
        let a = ann(&[
            (LOAD_BALANCER_IPS[0], "10.0.0.5"),
            (LOAD_BALANCER_IPS[2], " 10.0.0.5 "),
            (ALLOW_SHARED_IP[0], "k"),
            (ALLOW_SHARED_IP[1], "k"),
        ]);
        assert!(Requests::parse(&a, None).is_ok());
        let a = ann(&[(ADDRESS_POOL[0], "gold"), (ADDRESS_POOL[1], "silver")]);
        let e = Requests::parse(&a, None).unwrap_err();
        assert!(matches!(e, InvalidService::ConflictingSpellings { .. }));
        let msg = e.to_string();
        assert!(
            msg.contains("ferrolb.io/address-pool") && msg.contains("silver"),
            "{msg}"
        );
        let a = ann(&[
            (LOAD_BALANCER_IPS[0], "10.0.0.5"),
            (LOAD_BALANCER_IPS[1], "10.0.0.6"),
        ]);
        assert!(matches!(
            Requests::parse(&a, None),
            Err(InvalidService::ConflictingSpellings { .. })
        ));
    }

    #[test]
    fn malformed_address_lists_are_refused_with_the_field() {
        let e =
            Requests::parse(&ann(&[(LOAD_BALANCER_IPS[1], "10.0.0.1,banana")]), None).unwrap_err();
        assert_eq!(
            e,
            InvalidService::BadAddress {
                field: LOAD_BALANCER_IPS[1].into(),
                value: "banana".into()
            }
        );
        let e = Requests::parse(&ann(&[(LOAD_BALANCER_IPS[0], "10.0.0.1,")]), None).unwrap_err();
        assert!(matches!(e, InvalidService::BadAddress { .. }), "{e}");
        let e = Requests::parse(&ann(&[(LOAD_BALANCER_IPS[0], "10.0.0.1,10.0.0.2")]), None)
            .unwrap_err();
        assert!(
            matches!(
                e,
                InvalidService::SameFamily {
                    family: Family::V4,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("one per family"), "{e}");
        let e = Requests::parse(
            &ann(&[(LOAD_BALANCER_IPS[0], "10.0.0.1,fd00::1,10.0.0.2")]),
            None,
        )
        .unwrap_err();
        assert!(
            matches!(e, InvalidService::TooManyAddresses { count: 3, .. }),
            "{e}"
        );
    }

    #[test]
    fn spec_ip_and_annotation_must_agree() {
        let a = ann(&[(LOAD_BALANCER_IPS[0], "10.0.0.5,fd00::5")]);
        let r = Requests::parse(&a, Some("10.0.0.5")).unwrap();
        assert_eq!(r.addresses, [ip("10.0.0.5"), ip("fd00::5")]);
        let e = Requests::parse(&a, Some("10.0.0.6")).unwrap_err();
        assert!(matches!(e, InvalidService::LoadBalancerIpConflict { .. }));
        assert!(e.to_string().contains("10.0.0.6"), "{e}");
        let e = Requests::parse(&a, Some("nope")).unwrap_err();
        assert!(e.to_string().contains("spec.loadBalancerIP"), "{e}");
    }

    #[test]
    fn spec_string_fields() {
        assert_eq!(parse_family("IPv6"), Ok(Family::V6));
        assert!(parse_family("ipv6").is_err());
        assert_eq!(
            parse_family_policy(Some("")),
            Ok(IpFamilyPolicy::SingleStack)
        );
        assert_eq!(
            parse_port(&PortInput {
                protocol: Some("SCTP"),
                port: 65535
            }),
            Ok(Port {
                protocol: Protocol::Sctp,
                port: 65535
            })
        );
        assert!(parse_port(&PortInput {
            protocol: None,
            port: 65536
        })
        .is_err());
        assert_eq!(parse_traffic_policy(None), Ok(TrafficPolicy::Cluster));
    }
}
