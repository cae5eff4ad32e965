//! Prefixes as NLRI encodes them (RFC 4271 §4.3, RFC 4760 §5): a length in bits, then the
//! fewest octets that hold it. Trailing bits past the length are ignored on decode.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::reader::Reader;

/// Octets a prefix of `len` bits takes in NLRI, its length octet included.
pub(crate) fn wire_len(prefix_len: u8) -> usize {
    1 + usize::from(prefix_len).div_ceil(8)
}

pub(crate) fn put_v4(out: &mut BytesMut, net: &Ipv4Net) {
    out.put_u8(net.prefix_len());
    out.put_slice(&net.network().octets()[..wire_len(net.prefix_len()) - 1]);
}

pub(crate) fn put_v6(out: &mut BytesMut, net: &Ipv6Net) {
    out.put_u8(net.prefix_len());
    out.put_slice(&net.network().octets()[..wire_len(net.prefix_len()) - 1]);
}

/// Reads `N` octets' worth of prefix: `None` if the length exceeds `N * 8` or the octets are
/// missing.
fn read<const N: usize>(r: &mut Reader<'_>) -> Option<([u8; N], u8)> {
    let len = r.u8()?;
    if usize::from(len) > N * 8 {
        return None;
    }
    let bytes = r.take(wire_len(len) - 1)?;
    let mut addr = [0u8; N];
    addr[..bytes.len()].copy_from_slice(bytes);
    Some((addr, len))
}

/// Decodes a whole field of IPv4 prefixes; `None` if any is malformed.
pub(crate) fn decode_v4(field: &[u8]) -> Option<Vec<Ipv4Net>> {
    let mut r = Reader::new(field);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (addr, len) = read::<4>(&mut r)?;
        out.push(Ipv4Net::new(Ipv4Addr::from(addr), len).ok()?.trunc());
    }
    Some(out)
}

/// Decodes a whole field of IPv6 prefixes; `None` if any is malformed.
pub(crate) fn decode_v6(field: &[u8]) -> Option<Vec<Ipv6Net>> {
    let mut r = Reader::new(field);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (addr, len) = read::<16>(&mut r)?;
        out.push(Ipv6Net::new(Ipv6Addr::from(addr), len).ok()?.trunc());
    }
    Some(out)
}
