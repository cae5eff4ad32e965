//! Which interfaces an address is announced on — pure: a function of the interface table that
//! [`super::netlink`] keeps, the address, and the pool's explicit list.
//!
//! Automatic selection (no list in the pool): every interface that is up, ARP-capable, not
//! enslaved to a bond or bridge, whose configured subnets contain the address — never `lo`,
//! and never the container/CNI/virtualisation interfaces a node is full of
//! ([`AUTO_EXCLUDED_PREFIXES`]), which are not the LAN. A pool's explicit list bypasses the
//! name, subnet and enslavement rules (the operator knows their network), but an interface
//! must still be up and able to carry ARP/NDP.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use super::frame::MacAddr;

/// Name prefixes automatic selection never picks (named explicitly in a pool, they are used).
pub const AUTO_EXCLUDED_PREFIXES: [&str; 10] = [
    "docker",
    "cali",
    "cni",
    "flannel",
    "veth",
    "kube-ipvs",
    "tunl",
    "virbr",
    "lxc",
    "nodelocaldns",
];

/// One network interface as rtnetlink describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Operationally up (`IFF_RUNNING`: carrier present).
    pub running: bool,
    /// Link type is Ethernet (`ARPHRD_ETHER`).
    pub ethernet: bool,
    /// `IFF_NOARP` is set.
    pub noarp: bool,
    /// `IFF_LOOPBACK` is set.
    pub loopback: bool,
    /// Index of the bond or bridge this interface is enslaved to (`IFLA_MASTER`).
    pub master: Option<u32>,
    /// Hardware address.
    pub mac: Option<MacAddr>,
}

/// An address configured on an interface (`RTM_NEWADDR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkAddress {
    /// Interface index.
    pub index: u32,
    /// The local address.
    pub address: IpAddr,
    /// Prefix length of the subnet it is configured with.
    pub prefix_len: u8,
    /// Scope `host` (only meaningful inside the node).
    pub host_scope: bool,
}

impl LinkAddress {
    /// Whether `address` is inside the subnet this address is configured with.
    pub fn subnet_contains(&self, address: IpAddr) -> bool {
        match (self.address, address) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                let bits = u32::from(self.prefix_len.min(32));
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                u32::from(net) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                let bits = u32::from(self.prefix_len.min(128));
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                u128::from(net) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The node's interfaces and addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetState {
    /// Interfaces by index.
    pub links: BTreeMap<u32, Link>,
    /// Every configured address.
    pub addresses: BTreeSet<LinkAddress>,
}

impl NetState {
    /// The interface named `name`.
    pub fn by_name(&self, name: &str) -> Option<&Link> {
        self.links.values().find(|l| l.name == name)
    }

    /// Addresses configured on interface `index`.
    pub fn addresses_of(&self, index: u32) -> impl Iterator<Item = &LinkAddress> {
        self.addresses.iter().filter(move |a| a.index == index)
    }

    /// Interfaces on which `address` itself is configured.
    pub fn holders_of(&self, address: IpAddr) -> impl Iterator<Item = &LinkAddress> {
        self.addresses.iter().filter(move |a| a.address == address)
    }
}

/// Why an interface is not used for an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Administratively down or without carrier.
    Down,
    /// Not Ethernet, or `IFF_NOARP`: ARP/NDP frames cannot be answered there.
    NotArpCapable,
    /// No hardware address to answer from.
    NoMac,
    /// The loopback interface.
    Loopback,
    /// Part of a bond or bridge (the master is the interface to use).
    Enslaved,
    /// A container/CNI/virtual interface (name prefix in [`AUTO_EXCLUDED_PREFIXES`]).
    ExcludedName,
    /// None of its subnets contains the address.
    NoSubnet,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Skip::Down => "down",
            Skip::NotArpCapable => "not ARP-capable",
            Skip::NoMac => "no hardware address",
            Skip::Loopback => "loopback",
            Skip::Enslaved => "enslaved to a bond or bridge",
            Skip::ExcludedName => "excluded by name",
            Skip::NoSubnet => "no subnet containing the address",
        })
    }
}

/// Whether `link` can carry announcements of `address`; `explicit` = named in the pool.
pub fn check(net: &NetState, link: &Link, address: IpAddr, explicit: bool) -> Result<(), Skip> {
    if link.loopback || link.name == "lo" {
        return Err(Skip::Loopback);
    }
    if !link.ethernet || link.noarp {
        return Err(Skip::NotArpCapable);
    }
    if link.mac.is_none() {
        return Err(Skip::NoMac);
    }
    if !link.up || !link.running {
        return Err(Skip::Down);
    }
    if explicit {
        return Ok(());
    }
    if AUTO_EXCLUDED_PREFIXES
        .iter()
        .any(|p| link.name.starts_with(p))
    {
        return Err(Skip::ExcludedName);
    }
    if link.master.is_some() {
        return Err(Skip::Enslaved);
    }
    if !net
        .addresses_of(link.index)
        .any(|a| a.subnet_contains(address))
    {
        return Err(Skip::NoSubnet);
    }
    Ok(())
}

/// The interfaces `address` is announced on: those in `explicit` that pass [`check`], or, when
/// `explicit` is empty, every interface that passes the automatic rules. Sorted by index.
pub fn select<'a>(net: &'a NetState, address: IpAddr, explicit: &[String]) -> Vec<&'a Link> {
    if explicit.is_empty() {
        net.links
            .values()
            .filter(|l| check(net, l, address, false).is_ok())
            .collect()
    } else {
        net.links
            .values()
            .filter(|l| explicit.contains(&l.name) && check(net, l, address, true).is_ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.to_string(),
            up: true,
            running: true,
            ethernet: true,
            noarp: false,
            loopback: false,
            master: None,
            mac: Some(MacAddr::new(
                2,
                0,
                0,
                0,
                0,
                u8::try_from(index).unwrap_or(0),
            )),
        }
    }

    fn lo() -> Link {
        Link {
            index: 1,
            name: "lo".into(),
            ethernet: false,
            loopback: true,
            mac: Some(MacAddr::zero()),
            ..eth(1, "lo")
        }
    }

    fn addr(index: u32, cidr: &str) -> LinkAddress {
        let (a, p) = cidr.split_once('/').unwrap_or((cidr, "32"));
        LinkAddress {
            index,
            address: a.parse().unwrap(),
            prefix_len: p.parse().unwrap(),
            host_scope: false,
        }
    }

    fn net(links: Vec<Link>, addresses: Vec<LinkAddress>) -> NetState {
        NetState {
            links: links.into_iter().map(|l| (l.index, l)).collect(),
            addresses: addresses.into_iter().collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn names(links: Vec<&Link>) -> Vec<&str> {
        links.into_iter().map(|l| l.name.as_str()).collect()
    }

    /// A typical node: lo, the LAN on eth0 (v4 and v6), a second LAN on eth1, a Docker bridge
    /// and a Calico veth whose subnets would otherwise match.
    fn node() -> NetState {
        net(
            vec![
                lo(),
                eth(2, "eth0"),
                eth(3, "eth1"),
                eth(4, "docker0"),
                eth(5, "cali1234"),
            ],
            vec![
                addr(1, "127.0.0.1/8"),
                addr(1, "10.0.0.100/32"),
                addr(2, "10.0.0.11/24"),
                addr(2, "fd00::11/64"),
                addr(2, "fe80::1/64"),
                addr(3, "192.168.5.11/24"),
                addr(4, "10.0.0.200/24"),
                addr(5, "10.0.0.201/24"),
            ],
        )
    }

    #[test]
    fn automatic_selection_picks_the_interfaces_whose_subnet_holds_the_address() {
        let n = node();
        assert_eq!(names(select(&n, ip("10.0.0.100"), &[])), ["eth0"]);
        assert_eq!(names(select(&n, ip("fd00::100"), &[])), ["eth0"]);
        assert_eq!(names(select(&n, ip("192.168.5.50"), &[])), ["eth1"]);
        assert!(select(&n, ip("172.16.0.1"), &[]).is_empty());
        assert!(select(&n, ip("fd01::1"), &[]).is_empty());
    }

    #[test]
    fn lo_is_never_used_even_when_it_holds_the_address_or_is_named() {
        let n = node();
        let lo = &n.links[&1];
        assert_eq!(check(&n, lo, ip("10.0.0.100"), false), Err(Skip::Loopback));
        assert!(select(&n, ip("127.0.0.5"), &[]).is_empty());
        assert!(select(&n, ip("127.0.0.5"), &["lo".into()]).is_empty());
    }

    #[test]
    fn excluded_names_are_skipped_unless_named() {
        let n = node();
        for prefix in AUTO_EXCLUDED_PREFIXES {
            let l = eth(9, &format!("{prefix}0"));
            assert_eq!(
                check(&n, &l, ip("10.0.0.100"), false),
                Err(Skip::ExcludedName),
                "{prefix}"
            );
        }
        assert_eq!(
            names(select(&n, ip("10.0.0.100"), &["docker0".into()])),
            ["docker0"]
        );
    }

    #[test]
    fn down_noarp_non_ethernet_and_macless_interfaces_are_not_used() {
        let n = node();
        let a = ip("10.0.0.100");
        let down = Link {
            up: false,
            ..eth(2, "eth0")
        };
        let no_carrier = Link {
            running: false,
            ..eth(2, "eth0")
        };
        let noarp = Link {
            noarp: true,
            ..eth(2, "eth0")
        };
        let tun = Link {
            ethernet: false,
            ..eth(2, "eth0")
        };
        let no_mac = Link {
            mac: None,
            ..eth(2, "eth0")
        };
        assert_eq!(check(&n, &down, a, false), Err(Skip::Down));
        assert_eq!(check(&n, &no_carrier, a, false), Err(Skip::Down));
        assert_eq!(check(&n, &noarp, a, true), Err(Skip::NotArpCapable));
        assert_eq!(check(&n, &tun, a, true), Err(Skip::NotArpCapable));
        assert_eq!(check(&n, &no_mac, a, true), Err(Skip::NoMac));
        // Explicitly named changes nothing for these.
        assert_eq!(check(&n, &down, a, true), Err(Skip::Down));
    }

    #[test]
    fn bond_and_bridge_members_are_skipped_but_their_master_is_used() {
        let mut n = node();
        n.links.insert(
            6,
            Link {
                master: Some(7),
                ..eth(6, "ens1")
            },
        );
        n.links.insert(7, eth(7, "bond0"));
        n.addresses.insert(addr(6, "10.9.0.2/24")); // stale, before enslaving
        n.addresses.insert(addr(7, "10.9.0.3/24"));
        assert_eq!(
            check(&n, &n.links[&6], ip("10.9.0.50"), false),
            Err(Skip::Enslaved)
        );
        assert_eq!(names(select(&n, ip("10.9.0.50"), &[])), ["bond0"]);
        // Named explicitly, a member is used (the operator's choice).
        assert_eq!(
            names(select(&n, ip("10.9.0.50"), &["ens1".into()])),
            ["ens1"]
        );
    }

    #[test]
    fn explicit_interfaces_ignore_subnets_and_unknown_names() {
        let n = node();
        assert_eq!(
            names(select(
                &n,
                ip("172.16.0.1"),
                &["eth1".into(), "eth0".into(), "nope".into()]
            )),
            ["eth0", "eth1"]
        );
    }

    #[test]
    fn several_interfaces_in_one_subnet_are_all_used() {
        let mut n = node();
        n.addresses.insert(addr(3, "10.0.0.12/24"));
        assert_eq!(names(select(&n, ip("10.0.0.100"), &[])), ["eth0", "eth1"]);
    }

    #[test]
    fn changes_to_the_table_change_the_selection() {
        let mut n = node();
        let a = ip("10.0.0.100");
        assert_eq!(names(select(&n, a, &[])), ["eth0"]);
        // The interface goes down: nothing.
        n.links.get_mut(&2).unwrap().up = false;
        assert!(select(&n, a, &[]).is_empty());
        n.links.get_mut(&2).unwrap().up = true;
        // Its address moves to another subnet: nothing; a new interface appears in it: that one.
        n.addresses.remove(&addr(2, "10.0.0.11/24"));
        n.addresses.insert(addr(2, "10.1.0.11/24"));
        assert!(select(&n, a, &[]).is_empty());
        n.links.insert(8, eth(8, "eth2"));
        n.addresses.insert(addr(8, "10.0.0.13/24"));
        assert_eq!(names(select(&n, a, &[])), ["eth2"]);
    }

    #[test]
    fn subnet_containment_edges() {
        assert!(addr(1, "10.0.0.1/0").subnet_contains(ip("192.0.2.1")));
        assert!(addr(1, "10.0.0.1/32").subnet_contains(ip("10.0.0.1")));
        assert!(!addr(1, "10.0.0.1/32").subnet_contains(ip("10.0.0.2")));
        assert!(addr(1, "10.0.0.1/31").subnet_contains(ip("10.0.0.0")));
        assert!(addr(1, "fd00::1/128").subnet_contains(ip("fd00::1")));
        assert!(!addr(1, "fd00::1/127").subnet_contains(ip("fd00::2")));
        assert!(addr(1, "::/0").subnet_contains(ip("2001:db8::1")));
        assert!(!addr(1, "10.0.0.1/0").subnet_contains(ip("::1")));
    }
}
