//! Would the kernel answer ARP/NDP for an address we announce? Then two MACs answer and clients
//! flip between them. kube-proxy in IPVS mode puts every Service address on `kube-ipvs0`;
//! with the default `arp_ignore=0` Linux answers ARP for any local address on any interface,
//! which is why MetalLB documents `strictARP` (`arp_ignore=1`, `arp_announce=2`).
//!
//! [`would_answer`] is pure (interface table, `arp_ignore` value in); [`arp_ignore`] reads the
//! effective value from `/proc` (the current network namespace's).

use std::net::IpAddr;
use std::path::Path;

use super::interfaces::{Link, NetState};

/// The reason the kernel would answer for `address` on `link` too, or `None`.
///
/// IPv4 follows `arp_ignore` (`net/ipv4/arp.c`): 0 and the reserved 4–7 answer for an address
/// on any interface; 1 and 2 only for one on the receiving interface; 3 for one on any
/// interface unless its scope is `host`; 8 never. IPv6 answers a solicitation only for an
/// address on the receiving interface.
pub fn would_answer(
    address: IpAddr,
    link: &Link,
    net: &NetState,
    arp_ignore: u8,
) -> Option<String> {
    let holders: Vec<_> = net.holders_of(address).collect();
    if holders.is_empty() {
        return None;
    }
    let on_link = holders.iter().any(|h| h.index == link.index);
    let name = |index: u32| {
        net.links
            .get(&index)
            .map_or_else(|| format!("#{index}"), |l| l.name.clone())
    };
    if address.is_ipv6() {
        return on_link.then(|| {
            format!(
                "{address} is configured on {}, so the kernel answers neighbour solicitations \
                 for it there too",
                link.name
            )
        });
    }
    if arp_ignore == 8 {
        return None;
    }
    if on_link {
        return Some(format!(
            "{address} is configured on {} itself, so the kernel answers ARP for it there too",
            link.name
        ));
    }
    let elsewhere: Vec<String> = holders
        .iter()
        .filter(|h| arp_ignore != 3 || !h.host_scope)
        .map(|h| name(h.index))
        .collect();
    let answers = match arp_ignore {
        1 | 2 => false,
        3 => !elsewhere.is_empty(),
        _ => true,
    };
    answers.then(|| {
        format!(
            "{address} is configured on {} and arp_ignore={arp_ignore} on {}, so the kernel \
             answers ARP for it too (set arp_ignore=1 and arp_announce=2, kube-proxy IPVS \
             strictARP)",
            elsewhere.join(","),
            link.name
        )
    })
}

/// The effective `arp_ignore` of `interface`: the maximum of `conf/all` and `conf/<interface>`,
/// as the kernel takes it. `None` when neither can be read.
pub fn arp_ignore(interface: &str) -> Option<u8> {
    arp_ignore_in(Path::new("/proc/sys/net/ipv4/conf"), interface)
}

fn arp_ignore_in(conf: &Path, interface: &str) -> Option<u8> {
    let read = |dir: &str| -> Option<u8> {
        std::fs::read_to_string(conf.join(dir).join("arp_ignore"))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    // An interface name is a single path component; anything else is not read.
    let own = (!interface.contains('/') && !interface.starts_with('.'))
        .then(|| read(interface))
        .flatten();
    match (read("all"), own) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0).max(b.unwrap_or(0))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2::frame::MacAddr;
    use crate::l2::interfaces::LinkAddress;

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            running: true,
            ethernet: index != 1,
            noarp: false,
            loopback: index == 1,
            master: None,
            mac: Some(MacAddr::new(2, 0, 0, 0, 0, 1)),
        }
    }

    fn state(extra: &[(u32, &str, bool)]) -> NetState {
        let mut n = NetState::default();
        for l in [link(1, "lo"), link(2, "eth0"), link(5, "kube-ipvs0")] {
            n.links.insert(l.index, l);
        }
        n.addresses.insert(LinkAddress {
            index: 2,
            address: "10.0.0.2".parse().unwrap(),
            prefix_len: 24,
            host_scope: false,
        });
        for (index, a, host_scope) in extra {
            n.addresses.insert(LinkAddress {
                index: *index,
                address: a.parse().unwrap(),
                prefix_len: if a.contains(':') { 128 } else { 32 },
                host_scope: *host_scope,
            });
        }
        n
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_address_configured_nowhere_is_never_a_problem() {
        let n = state(&[]);
        for ignore in 0..=8 {
            assert_eq!(
                would_answer(ip("10.0.0.100"), &n.links[&2], &n, ignore),
                None
            );
        }
        assert_eq!(would_answer(ip("fd00::100"), &n.links[&2], &n, 0), None);
    }

    #[test]
    fn kube_ipvs0_with_arp_ignore_0_is_reported() {
        let n = state(&[(5, "10.0.0.100", false)]);
        let detail = would_answer(ip("10.0.0.100"), &n.links[&2], &n, 0).expect("warning");
        assert!(
            detail.contains("kube-ipvs0") && detail.contains("arp_ignore=0"),
            "{detail}"
        );
        // The reserved values 4..=7 behave like 0.
        assert!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, 5).is_some());
    }

    #[test]
    fn strict_arp_silences_the_kernel_for_addresses_elsewhere() {
        // The test setup: the address on lo, arp_ignore=1.
        let n = state(&[(1, "10.0.0.100", false)]);
        assert_eq!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, 1), None);
        assert_eq!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, 2), None);
        assert_eq!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, 8), None);
        assert!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, 0).is_some());
    }

    #[test]
    fn arp_ignore_3_answers_unless_the_address_has_host_scope() {
        let global = state(&[(1, "10.0.0.100", false)]);
        assert!(would_answer(ip("10.0.0.100"), &global.links[&2], &global, 3).is_some());
        let host = state(&[(1, "10.0.0.100", true)]);
        assert_eq!(
            would_answer(ip("10.0.0.100"), &host.links[&2], &host, 3),
            None
        );
    }

    #[test]
    fn an_address_on_the_announcing_interface_itself_is_reported_unless_arp_ignore_8() {
        let n = state(&[(2, "10.0.0.100", false), (2, "fd00::100", false)]);
        for ignore in [0, 1, 2, 3] {
            assert!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, ignore).is_some());
        }
        assert_eq!(would_answer(ip("10.0.0.100"), &n.links[&2], &n, 8), None);
        assert!(would_answer(ip("fd00::100"), &n.links[&2], &n, 1).is_some());
    }

    #[test]
    fn ipv6_elsewhere_is_not_answered_by_the_kernel() {
        let n = state(&[(1, "fd00::100", false), (5, "fd00::101", false)]);
        assert_eq!(would_answer(ip("fd00::100"), &n.links[&2], &n, 0), None);
        assert_eq!(would_answer(ip("fd00::101"), &n.links[&2], &n, 0), None);
    }

    #[test]
    fn effective_arp_ignore_is_the_maximum_of_all_and_the_interface() {
        let dir = tempfile::tempdir().unwrap();
        let write = |d: &str, v: &str| {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("arp_ignore"), v).unwrap();
        };
        write("all", "0\n");
        write("eth0", "1\n");
        write("eth1", "0\n");
        assert_eq!(arp_ignore_in(dir.path(), "eth0"), Some(1));
        assert_eq!(arp_ignore_in(dir.path(), "eth1"), Some(0));
        write("all", "2\n");
        assert_eq!(arp_ignore_in(dir.path(), "eth0"), Some(2));
        assert_eq!(arp_ignore_in(dir.path(), "gone"), Some(2));
        assert_eq!(arp_ignore_in(dir.path(), "../all"), Some(2));
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(arp_ignore_in(empty.path(), "eth0"), None);
    }
}
