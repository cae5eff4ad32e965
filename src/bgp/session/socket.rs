//! The session's TCP sockets and the addresses it uses: TCP MD5 (RFC 2385), the TTL of the
//! session's packets, the source address, and what our side of a session is called (router
//! id, next hops).
//!
//! **TTL.** Like FRR and BIRD: a direct eBGP session sends with TTL 1 (a peer that is not on
//! the link is refused by the network, not by a timeout later), `ebgp_multihop` raises it;
//! iBGP peers are routinely not adjacent, so iBGP sends with 255.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;

use ipnet::IpNet;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::sys::{self, IfAddr};
use crate::bgp::codec::pack::Ipv6NextHop;

/// A socket operation of a session that failed.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// A system call on the socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No IPv4 address toward the peer to take as router id.
    #[error("no IPv4 address toward {peer} to use as router id; set router_id")]
    NoRouterId {
        /// The peer.
        peer: IpAddr,
    },
}

fn io_err(what: &'static str) -> impl FnOnce(io::Error) -> SocketError {
    move |source| SocketError::Io { what, source }
}

/// Options of every socket to one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketOptions {
    /// TCP MD5 key; `None`: unsigned.
    pub md5_key: Option<Vec<u8>>,
    /// TTL / hop limit of our packets.
    pub ttl: u8,
    /// Address to connect from.
    pub source: Option<IpAddr>,
}

/// The TTL a session uses: `ebgp_multihop` when set, else 1 for eBGP and 255 for iBGP.
pub fn session_ttl(ibgp: bool, ebgp_multihop: Option<u8>) -> u8 {
    match (ibgp, ebgp_multihop) {
        (true, _) => 255,
        (false, Some(ttl)) => ttl.max(1),
        (false, None) => 1,
    }
}

/// Sets the TTL (IPv4) and hop limit (IPv6) of a socket. An `AF_INET6` socket carries IPv4
/// peers as mapped addresses, whose packets take `IP_TTL`, so both are set there.
pub fn set_ttl(
    fd: std::os::fd::BorrowedFd<'_>,
    v6_socket: bool,
    ttl: u8,
) -> Result<(), SocketError> {
    let ttl = libc::c_int::from(ttl);
    if v6_socket {
        sys::set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, ttl)
            .map_err(io_err("setting IPV6_UNICAST_HOPS"))?;
    }
    match sys::set_int(fd, libc::IPPROTO_IP, libc::IP_TTL, ttl) {
        Ok(()) => Ok(()),
        // An IPv6-only socket may refuse IPv4 options; it sends no IPv4 packets anyway.
        Err(_) if v6_socket => Ok(()),
        Err(e) => Err(io_err("setting IP_TTL")(e)),
    }
}

/// Sets the MD5 key for `peer` on a socket (connecting or listening); `None` or an empty key
/// removes it.
pub fn set_md5(
    fd: std::os::fd::BorrowedFd<'_>,
    peer: IpAddr,
    v6_socket: bool,
    key: Option<&[u8]>,
) -> Result<(), SocketError> {
    sys::set_md5sig(fd, peer, v6_socket, key.unwrap_or_default())
        .map_err(io_err("setting TCP_MD5SIG"))
}

/// Connects to `peer` with the options set before the SYN leaves.
pub async fn connect(peer: SocketAddr, opts: &SocketOptions) -> Result<TcpStream, SocketError> {
    let v6 = peer.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(io_err("creating the socket"))?;
    if let Some(key) = &opts.md5_key {
        set_md5(socket.as_fd(), peer.ip(), v6, Some(key))?;
    }
    set_ttl(socket.as_fd(), v6, opts.ttl)?;
    socket
        .set_nodelay(true)
        .map_err(io_err("setting TCP_NODELAY"))?;
    if let Some(source) = opts.source {
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(io_err("binding to the source address"))?;
    }
    socket.connect(peer).await.map_err(io_err("connecting"))
}

/// A dual-stack listening socket on `addr` (`[::]:179`): IPv4 peers arrive as mapped addresses.
pub fn listen(addr: SocketAddr) -> Result<TcpListener, SocketError> {
    let v6 = addr.is_ipv6();
    let socket = if v6 {
        TcpSocket::new_v6()
    } else {
        TcpSocket::new_v4()
    }
    .map_err(io_err("creating the listening socket"))?;
    if v6 {
        sys::set_int(socket.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 0)
            .map_err(io_err("clearing IPV6_V6ONLY"))?;
    }
    socket
        .set_reuseaddr(true)
        .map_err(io_err("setting SO_REUSEADDR"))?;
    socket.bind(addr).map_err(io_err("binding the listener"))?;
    socket.listen(64).map_err(io_err("listening"))
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is; others unchanged.
pub fn unmapped(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The local address the kernel would use toward `peer` (a connected UDP socket sends
/// nothing; connecting it only looks up the route).
fn local_toward(peer: IpAddr, source: Option<IpAddr>) -> Result<IpAddr, SocketError> {
    if let Some(source) = source {
        return Ok(source);
    }
    let any: IpAddr = match peer {
        IpAddr::V4(_) => Ipv4Addr::UNSPECIFIED.into(),
        IpAddr::V6(_) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let udp = UdpSocket::bind((any, 0)).map_err(io_err("binding a probe socket"))?;
    udp.connect((peer, 179))
        .map_err(io_err("looking up the route to the peer"))?;
    let local = udp
        .local_addr()
        .map_err(io_err("reading the probe's address"))?;
    Ok(local.ip())
}

/// Our router id toward `peer` when none is configured: our IPv4 address on the session, or
/// for an IPv6 session an IPv4 address of the same interface, else of any interface
/// (loopback last).
pub fn router_id_toward(peer: IpAddr, source: Option<IpAddr>) -> Result<Ipv4Addr, SocketError> {
    let local = local_toward(peer, source)?;
    if let IpAddr::V4(v4) = local {
        return Ok(v4);
    }
    let addrs = sys::interface_addresses().map_err(io_err("listing interface addresses"))?;
    pick_router_id(&addrs, local).ok_or(SocketError::NoRouterId { peer })
}

fn pick_router_id(addrs: &[IfAddr], local: IpAddr) -> Option<Ipv4Addr> {
    let ifname = addrs
        .iter()
        .find(|a| a.addr == local)
        .map(|a| a.name.as_str());
    let v4 = |a: &IfAddr| match a.addr {
        IpAddr::V4(v4) if !v4.is_unspecified() => Some(v4),
        _ => None,
    };
    addrs
        .iter()
        .filter(|a| Some(a.name.as_str()) == ifname)
        .find_map(v4)
        .or_else(|| addrs.iter().filter(|a| !a.addr.is_loopback()).find_map(v4))
        .or_else(|| addrs.iter().find_map(v4))
}

/// Our next hops on a session whose local address is `local`: that address for its own
/// family, and an address of the same interface for the other one. The IPv6 next hop carries
/// the interface's link-local address too when the peer is on one of its subnets.
pub fn next_hops(local: IpAddr, peer: IpAddr) -> (Option<Ipv4Addr>, Option<Ipv6NextHop>) {
    match sys::interface_addresses() {
        Ok(addrs) => pick_next_hops(&addrs, unmapped(local), unmapped(peer)),
        Err(e) => {
            tracing::warn!(%local, error = %e, "cannot list interface addresses; next hop of the session's own family only");
            pick_next_hops(&[], unmapped(local), unmapped(peer))
        }
    }
}

fn is_link_local_v6(v6: &Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

fn pick_next_hops(
    addrs: &[IfAddr],
    local: IpAddr,
    peer: IpAddr,
) -> (Option<Ipv4Addr>, Option<Ipv6NextHop>) {
    let ifname = addrs
        .iter()
        .find(|a| a.addr == local)
        .map(|a| a.name.clone());
    let same_if: Vec<&IfAddr> = addrs
        .iter()
        .filter(|a| ifname.as_deref() == Some(a.name.as_str()))
        .collect();
    let on_link = same_if.iter().any(|a| {
        IpNet::new(a.addr, a.prefix_len).is_ok_and(|net| net.trunc().contains(&peer))
            && a.prefix_len < if a.addr.is_ipv4() { 32 } else { 128 }
    });
    let v4 = match local {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(_) => same_if.iter().find_map(|a| match a.addr {
            IpAddr::V4(v4) => Some(v4),
            _ => None,
        }),
    };
    let global = match local {
        IpAddr::V6(v6) if !is_link_local_v6(&v6) => Some(v6),
        _ => same_if.iter().find_map(|a| match a.addr {
            IpAddr::V6(v6) if !is_link_local_v6(&v6) && !v6.is_loopback() => Some(v6),
            _ => None,
        }),
    };
    let link_local = same_if.iter().find_map(|a| match a.addr {
        IpAddr::V6(v6) if is_link_local_v6(&v6) => Some(v6),
        _ => None,
    });
    let v6 = global.map(|global| Ipv6NextHop {
        global,
        link_local: link_local.filter(|_| on_link),
    });
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ifa(name: &str, addr: &str, prefix_len: u8) -> IfAddr {
        IfAddr {
            name: name.into(),
            addr: addr.parse().unwrap(),
            prefix_len,
        }
    }

    fn lab() -> Vec<IfAddr> {
        vec![
            ifa("lo", "127.0.0.1", 8),
            ifa("lo", "::1", 128),
            ifa("eth0", "10.0.0.2", 24),
            ifa("eth0", "fd00::2", 64),
            ifa("eth0", "fe80::2", 64),
            ifa("eth1", "192.168.1.2", 24),
        ]
    }

    #[test]
    fn ttl_follows_frr_and_bird() {
        assert_eq!(session_ttl(false, None), 1);
        assert_eq!(session_ttl(false, Some(4)), 4);
        assert_eq!(session_ttl(false, Some(0)), 1);
        assert_eq!(session_ttl(true, None), 255);
    }

    #[test]
    fn next_hops_of_an_ipv4_session_take_the_interface_ipv6() {
        let (v4, v6) = pick_next_hops(
            &lab(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.1".parse().unwrap(),
        );
        assert_eq!(v4, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(
            v6,
            Some(Ipv6NextHop {
                global: "fd00::2".parse().unwrap(),
                link_local: Some("fe80::2".parse().unwrap()),
            })
        );
    }

    #[test]
    fn no_link_local_for_a_peer_off_link_and_no_ipv6_without_one() {
        let (_, v6) = pick_next_hops(
            &lab(),
            "10.0.0.2".parse().unwrap(),
            "10.9.9.9".parse().unwrap(),
        );
        assert_eq!(v6.map(|n| n.link_local), Some(None));
        let (v4, v6) = pick_next_hops(
            &lab(),
            "192.168.1.2".parse().unwrap(),
            "192.168.1.1".parse().unwrap(),
        );
        assert_eq!(v4, Some("192.168.1.2".parse().unwrap()));
        assert_eq!(v6, None);
    }

    #[test]
    fn next_hops_of_an_ipv6_session_take_the_interface_ipv4() {
        let (v4, v6) = pick_next_hops(
            &lab(),
            "fd00::2".parse().unwrap(),
            "fd00::1".parse().unwrap(),
        );
        assert_eq!(v4, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(v6.map(|n| n.global), Some("fd00::2".parse().unwrap()));
    }

    #[test]
    fn router_id_prefers_the_session_interface_then_any_but_loopback() {
        assert_eq!(
            pick_router_id(&lab(), "fd00::2".parse().unwrap()),
            Some("10.0.0.2".parse().unwrap())
        );
        let only_v6 = vec![
            ifa("lo", "127.0.0.1", 8),
            ifa("eth2", "fd01::2", 64),
            ifa("eth1", "192.168.1.2", 24),
        ];
        assert_eq!(
            pick_router_id(&only_v6, "fd01::2".parse().unwrap()),
            Some("192.168.1.2".parse().unwrap())
        );
        assert_eq!(
            pick_router_id(&[ifa("lo", "::1", 128)], "::1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn unmapped_turns_mapped_addresses_into_ipv4() {
        assert_eq!(
            unmapped("::ffff:10.0.0.1".parse().unwrap()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            unmapped("fd00::1".parse().unwrap()),
            "fd00::1".parse::<IpAddr>().unwrap()
        );
    }

    #[tokio::test]
    async fn md5_and_ttl_options_are_accepted_by_the_kernel() {
        let socket = TcpSocket::new_v4().unwrap();
        set_md5(
            socket.as_fd(),
            "127.0.0.1".parse().unwrap(),
            false,
            Some(b"secret"),
        )
        .unwrap();
        set_md5(socket.as_fd(), "127.0.0.1".parse().unwrap(), false, None).unwrap();
        set_ttl(socket.as_fd(), false, 1).unwrap();
        let listener = listen("[::1]:0".parse().unwrap()).unwrap();
        let fd = listener.as_fd();
        set_md5(fd, "10.0.0.1".parse().unwrap(), true, Some(b"k")).unwrap();
        set_md5(fd, "fd00::1".parse().unwrap(), true, Some(&[7; 80])).unwrap();
        assert!(set_md5(fd, "fd00::1".parse().unwrap(), true, Some(&[7; 81])).is_err());
    }

    #[tokio::test]
    async fn signed_connections_on_loopback_succeed_with_matching_keys() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        set_md5(listener.as_fd(), addr.ip(), false, Some(b"right")).unwrap();
        let opts = SocketOptions {
            md5_key: Some(b"right".to_vec()),
            ttl: 1,
            source: Some(addr.ip()),
        };
        let (client, server) = tokio::join!(connect(addr, &opts), listener.accept());
        assert!(server.is_ok());
        let client = client.unwrap();
        assert_eq!(client.ttl().unwrap(), 1);
        assert!(client.nodelay().unwrap());
    }
}
