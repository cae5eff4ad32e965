//! The unsafe part of BGP sessions: `TCP_MD5SIG` (no socket crate exposes it), integer socket
//! options on a raw descriptor, and the list of interface addresses (`getifaddrs`).
#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;
use std::os::fd::BorrowedFd;

/// `TCP_MD5SIG_MAXKEYLEN` of `<linux/tcp.h>`.
pub(crate) const MD5_MAX_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `<linux/tcp.h>` (libc does not define it).
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

/// Sets (or, with an empty `key`, deletes) the TCP MD5 key for segments to and from `peer`
/// on `fd`. `v6_socket`: the socket is `AF_INET6`, so an IPv4 peer is given as an
/// IPv4-mapped address (the kernel then keys the IPv4 traffic of that socket).
pub(crate) fn set_md5sig(
    fd: BorrowedFd<'_>,
    peer: IpAddr,
    v6_socket: bool,
    key: &[u8],
) -> io::Result<()> {
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP MD5 key longer than 80 octets",
        ));
    }
    // SAFETY: all-zero bytes are a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    // Bounded by MD5_MAX_KEY_LEN just above.
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    let peer = match peer {
        IpAddr::V4(v4) if v6_socket => IpAddr::V6(v4.to_ipv6_mapped()),
        other => other,
    };
    match peer {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any sockaddr type.
            let sin = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above.
            let sin6 = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = v6.octets();
        }
    }
    // SAFETY: `sig` is a fully initialised `tcp_md5sig` and the length passed is its size;
    // the kernel copies it and keeps no pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            (&sig as *const TcpMd5Sig).cast(),
            mem::size_of::<TcpMd5Sig>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt(fd, level, name, &value, sizeof(int))`.
pub(crate) fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is an int living across the call and the length is its size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One address of a local interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IfAddr {
    /// The interface's name.
    pub name: String,
    /// The address.
    pub addr: IpAddr,
    /// Its prefix length (from the netmask).
    pub prefix_len: u8,
}

/// Every IPv4 and IPv6 address on the interfaces of this network namespace.
pub(crate) fn interface_addresses() -> io::Result<Vec<IfAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head into `head`, freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        cur = ifa.ifa_next;
        // SAFETY: ifa_addr / ifa_netmask are null or point at a sockaddr of the family in
        // sa_family (sockaddr_in / sockaddr_in6 for the two read here); ifa_name is a C string.
        let (addr, mask) = unsafe { (sockaddr_ip(ifa.ifa_addr), sockaddr_ip(ifa.ifa_netmask)) };
        let Some(addr) = addr else { continue };
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(ifa.ifa_name) }
            .to_string_lossy()
            .into_owned();
        let prefix_len = match mask {
            Some(IpAddr::V4(m)) => u32::from(m).leading_ones() as u8,
            Some(IpAddr::V6(m)) => u128::from(m).leading_ones() as u8,
            None => 0,
        };
        out.push(IfAddr {
            name,
            addr,
            prefix_len,
        });
    }
    // SAFETY: `head` came from getifaddrs and is freed once; nothing borrowed from it remains.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// The IP address in a `sockaddr`, if it is IPv4 or IPv6.
///
/// # Safety
/// `sa` is null or points at a valid sockaddr whose real type matches its family.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: per the contract, `sa` points at a sockaddr of the family it names.
    unsafe {
        match i32::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                    sin.sin_addr.s_addr,
                ))))
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}
