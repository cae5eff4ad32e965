//! Where each desired address is announced, and what changed since last time — pure.
//!
//! [`assign`] turns the desired set (address → explicit interfaces) and the interface table into
//! address → interfaces; [`diff`] compares two assignments into what starts (takeover
//! announcements, group joins), what stops, and what must be re-announced because the
//! interface's hardware address changed.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::frame::MacAddr;

use super::interfaces::{select, NetState};

/// An interface an address is announced on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its hardware address: replies and announcements come from it.
    pub mac: MacAddr,
}

/// Address → interface index → interface.
pub type Assignments = BTreeMap<IpAddr, BTreeMap<u32, Target>>;

/// The assignment of every desired address (an address with no usable interface maps to an
/// empty map).
pub fn assign(desired: &BTreeMap<IpAddr, Vec<String>>, net: &NetState) -> Assignments {
    desired
        .iter()
        .map(|(&address, explicit)| {
            let targets = select(net, address, explicit)
                .into_iter()
                .filter_map(|l| {
                    let mac = l.mac?;
                    Some((
                        l.index,
                        Target {
                            index: l.index,
                            name: l.name.clone(),
                            mac,
                        },
                    ))
                })
                .collect();
            (address, targets)
        })
        .collect()
}

/// What changed between two assignments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// (address, interface) pairs announced now and not before.
    pub started: Vec<(IpAddr, Target)>,
    /// Pairs announced before and not now.
    pub stopped: Vec<(IpAddr, Target)>,
    /// Pairs still announced whose interface has a new hardware address: announce again.
    pub readdressed: Vec<(IpAddr, Target)>,
}

impl Diff {
    /// Addresses with a started or re-addressed pair.
    pub fn announced_addresses(&self) -> BTreeSet<IpAddr> {
        self.started
            .iter()
            .chain(&self.readdressed)
            .map(|(a, _)| *a)
            .collect()
    }
}

/// Compares `old` with `new`.
pub fn diff(old: &Assignments, new: &Assignments) -> Diff {
    let mut d = Diff::default();
    let empty = BTreeMap::new();
    for (address, targets) in new {
        let before = old.get(address).unwrap_or(&empty);
        for (index, target) in targets {
            match before.get(index) {
                None => d.started.push((*address, target.clone())),
                Some(prev) if prev.mac != target.mac => {
                    d.readdressed.push((*address, target.clone()))
                }
                Some(_) => {}
            }
        }
    }
    for (address, targets) in old {
        let after = new.get(address).unwrap_or(&empty);
        for (index, target) in targets {
            if !after.contains_key(index) {
                d.stopped.push((*address, target.clone()));
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::l2::interfaces::{Link, LinkAddress};

    fn link(index: u32, name: &str, last: u8) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            running: true,
            ethernet: true,
            noarp: false,
            loopback: false,
            master: None,
            mac: Some(MacAddr::new(2, 0, 0, 0, 0, last)),
        }
    }

    fn state() -> NetState {
        let mut n = NetState::default();
        n.links.insert(2, link(2, "eth0", 2));
        n.links.insert(3, link(3, "eth1", 3));
        for (index, a, p) in [(2, "10.0.0.2", 24), (2, "fd00::2", 64), (3, "10.1.0.2", 24)] {
            n.addresses.insert(LinkAddress {
                index,
                address: a.parse().unwrap(),
                prefix_len: p,
                host_scope: false,
            });
        }
        n
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn desired(entries: &[(&str, &[&str])]) -> BTreeMap<IpAddr, Vec<String>> {
        entries
            .iter()
            .map(|(a, ifs)| (ip(a), ifs.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    fn pairs(v: &[(IpAddr, Target)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, t)| (a.to_string(), t.name.clone()))
            .collect()
    }

    #[test]
    fn addresses_are_assigned_by_subnet_or_explicit_list() {
        let n = state();
        let a = assign(
            &desired(&[
                ("10.0.0.100", &[]),
                ("fd00::100", &[]),
                ("10.1.0.100", &["eth0", "eth1"]),
                ("172.16.0.1", &[]),
            ]),
            &n,
        );
        let names =
            |addr: &str| -> Vec<String> { a[&ip(addr)].values().map(|t| t.name.clone()).collect() };
        assert_eq!(names("10.0.0.100"), ["eth0"]);
        assert_eq!(names("fd00::100"), ["eth0"]);
        assert_eq!(names("10.1.0.100"), ["eth0", "eth1"]);
        assert!(names("172.16.0.1").is_empty(), "no interface, still listed");
        assert_eq!(a[&ip("10.0.0.100")][&2].mac, MacAddr::new(2, 0, 0, 0, 0, 2));
    }

    #[test]
    fn diff_reports_started_stopped_and_readdressed_pairs() {
        let mut n = state();
        let d1 = desired(&[("10.0.0.100", &[]), ("10.0.0.101", &[])]);
        let a1 = assign(&d1, &n);
        let first = diff(&Assignments::new(), &a1);
        assert_eq!(
            pairs(&first.started),
            [
                ("10.0.0.100".into(), "eth0".into()),
                ("10.0.0.101".into(), "eth0".into())
            ]
        );
        assert!(first.stopped.is_empty() && first.readdressed.is_empty());
        assert_eq!(diff(&a1, &a1), Diff::default(), "no change, nothing to do");

        // One address removed, one moved to eth1 by an explicit list.
        let d2 = desired(&[("10.0.0.101", &["eth1"])]);
        let a2 = assign(&d2, &n);
        let second = diff(&a1, &a2);
        assert_eq!(
            pairs(&second.started),
            [("10.0.0.101".into(), "eth1".into())]
        );
        assert_eq!(
            pairs(&second.stopped),
            [
                ("10.0.0.100".into(), "eth0".into()),
                ("10.0.0.101".into(), "eth0".into())
            ]
        );

        // eth1 gets a new MAC: re-announce, no start/stop.
        n.links.get_mut(&3).unwrap().mac = Some(MacAddr::new(2, 0, 0, 0, 0, 0x33));
        let a3 = assign(&d2, &n);
        let third = diff(&a2, &a3);
        assert_eq!(
            pairs(&third.readdressed),
            [("10.0.0.101".into(), "eth1".into())]
        );
        assert!(third.started.is_empty() && third.stopped.is_empty());
        assert_eq!(third.announced_addresses().len(), 1);

        // eth1 goes down: stopped.
        n.links.get_mut(&3).unwrap().running = false;
        let a4 = assign(&d2, &n);
        assert_eq!(
            pairs(&diff(&a3, &a4).stopped),
            [("10.0.0.101".into(), "eth1".into())]
        );
    }
}
