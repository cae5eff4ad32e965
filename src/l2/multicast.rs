//! Solicited-node multicast group memberships, through the IP stack: joining with
//! `IPV6_JOIN_GROUP` makes the kernel program the NIC's multicast filter and send MLD reports,
//! so that snooping switches forward the neighbour solicitations for our addresses to us.
//!
//! Several addresses can share one solicited-node group (the group keeps only the low 24 bits),
//! so memberships are reference-counted per (group, interface): [`GroupCounts`] is the pure
//! bookkeeping, [`Memberships`] applies it to a UDP socket.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};

/// Reference counts of (group, interface index) memberships.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupCounts {
    counts: BTreeMap<(Ipv6Addr, u32), usize>,
}

impl GroupCounts {
    /// One more user of `group` on `ifindex`; `true` when it is the first (join now).
    pub fn acquire(&mut self, group: Ipv6Addr, ifindex: u32) -> bool {
        let n = self.counts.entry((group, ifindex)).or_insert(0);
        *n += 1;
        *n == 1
    }

    /// One user fewer; `true` when it was the last (leave now). Releasing what was never
    /// acquired does nothing and returns `false`.
    pub fn release(&mut self, group: Ipv6Addr, ifindex: u32) -> bool {
        match self.counts.get_mut(&(group, ifindex)) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.counts.remove(&(group, ifindex));
                true
            }
            None => false,
        }
    }

    /// The memberships held now.
    pub fn joined(&self) -> impl Iterator<Item = (Ipv6Addr, u32)> + '_ {
        self.counts.keys().copied()
    }

    /// Forgets everything; returns what was joined (to leave).
    pub fn take(&mut self) -> Vec<(Ipv6Addr, u32)> {
        std::mem::take(&mut self.counts).into_keys().collect()
    }
}

/// Group memberships held by one UDP socket (memberships belong to a socket and end with it).
#[derive(Debug)]
pub(crate) struct Memberships {
    socket: UdpSocket,
    counts: GroupCounts,
}

impl Memberships {
    /// A socket bound to `[::]:0` in the current network namespace; it never sends or
    /// receives, it only holds memberships.
    pub(crate) fn new() -> io::Result<Memberships> {
        let socket = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))?;
        Ok(Memberships {
            socket,
            counts: GroupCounts::default(),
        })
    }

    /// Joins `group` on `ifindex` unless already joined there.
    pub(crate) fn acquire(&mut self, group: Ipv6Addr, ifindex: u32) {
        if self.counts.acquire(group, ifindex) {
            match self.socket.join_multicast_v6(&group, ifindex) {
                Ok(()) => tracing::debug!(%group, ifindex, "joined solicited-node group"),
                Err(error) => tracing::warn!(
                    %group, ifindex, %error,
                    "cannot join the solicited-node group; switches with MLD snooping may not \
                     forward neighbour solicitations for this address"
                ),
            }
        }
    }

    /// Leaves `group` on `ifindex` when its last user is gone.
    pub(crate) fn release(&mut self, group: Ipv6Addr, ifindex: u32) {
        if self.counts.release(group, ifindex) {
            self.leave(group, ifindex);
        }
    }

    /// Leaves every group.
    pub(crate) fn clear(&mut self) {
        for (group, ifindex) in self.counts.take() {
            self.leave(group, ifindex);
        }
    }

    fn leave(&self, group: Ipv6Addr, ifindex: u32) {
        // Fails when the interface is gone, which dropped the membership anyway.
        match self.socket.leave_multicast_v6(&group, ifindex) {
            Ok(()) => tracing::debug!(%group, ifindex, "left solicited-node group"),
            Err(error) => tracing::debug!(%group, ifindex, %error, "leaving group"),
        }
    }

    /// The memberships held now.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> &GroupCounts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn groups_are_joined_once_and_left_with_their_last_user() {
        let mut c = GroupCounts::default();
        let group = g("ff02::1:ff00:1");
        assert!(c.acquire(group, 2), "first user joins");
        assert!(!c.acquire(group, 2), "second user shares the membership");
        assert!(
            c.acquire(group, 3),
            "another interface is another membership"
        );
        assert!(!c.release(group, 2));
        assert!(c.release(group, 2), "last user on eth leaves");
        assert_eq!(c.joined().collect::<Vec<_>>(), [(group, 3)]);
        assert!(!c.release(group, 2), "releasing again does nothing");
        assert!(c.release(group, 3));
        assert_eq!(c.joined().count(), 0);
    }

    #[test]
    fn take_returns_every_membership_once() {
        let mut c = GroupCounts::default();
        c.acquire(g("ff02::1:ff00:1"), 2);
        c.acquire(g("ff02::1:ff00:1"), 2);
        c.acquire(g("ff02::1:ff00:2"), 2);
        assert_eq!(c.take().len(), 2);
        assert_eq!(c, GroupCounts::default());
    }

    /// Whether the kernel lists `group` as joined on interface `ifindex` (`/proc/net/igmp6`).
    fn kernel_has(group: Ipv6Addr, ifindex: u32) -> bool {
        let hex: String = group.octets().iter().map(|b| format!("{b:02x}")).collect();
        std::fs::read_to_string("/proc/net/igmp6")
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.first() == Some(&ifindex.to_string().as_str()) && f.get(2) == Some(&hex.as_str())
            })
    }

    /// On loopback (index 1 in every namespace) the kernel's memberships follow the counts.
    #[test]
    fn memberships_join_and_leave_on_loopback() {
        let mut m = Memberships::new().expect("UDP socket");
        let group = g("ff02::1:ffe7:1f42");
        assert!(!kernel_has(group, 1));
        m.acquire(group, 1);
        m.acquire(group, 1);
        assert!(kernel_has(group, 1));
        m.release(group, 1);
        assert!(kernel_has(group, 1), "one user left");
        m.release(group, 1);
        assert!(!kernel_has(group, 1), "left with the last user");
        assert_eq!(m.counts().joined().count(), 0);
        m.acquire(group, 1);
        assert!(kernel_has(group, 1));
        m.clear();
        assert!(!kernel_has(group, 1));
    }
}
