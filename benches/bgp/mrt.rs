//! A minimal MRT dump (RFC 6396, TABLE_DUMP_V2) of /32 routes, for `gobgp mrt inject global`:
//! the fastest way to put 10,000 routes into a `gobgpd` (one CLI call instead of 10,000).

use std::net::Ipv4Addr;

const TABLE_DUMP_V2: u16 = 13;
const PEER_INDEX_TABLE: u16 = 1;
const RIB_IPV4_UNICAST: u16 = 2;

fn record(out: &mut Vec<u8>, subtype: u16, body: &[u8]) {
    out.extend_from_slice(&0u32.to_be_bytes()); // timestamp
    out.extend_from_slice(&TABLE_DUMP_V2.to_be_bytes());
    out.extend_from_slice(&subtype.to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
}

/// The dump: one peer (`peer`, AS `peer_as`), and a /32 route per address in `prefixes`, each
/// with ORIGIN IGP, an empty AS_PATH and NEXT_HOP `next_hop`.
pub fn dump(peer: Ipv4Addr, peer_as: u32, next_hop: Ipv4Addr, prefixes: &[Ipv4Addr]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut index = Vec::new();
    index.extend_from_slice(&peer.octets()); // collector BGP id
    index.extend_from_slice(&0u16.to_be_bytes()); // no view name
    index.extend_from_slice(&1u16.to_be_bytes()); // one peer
    index.push(0x02); // IPv4 peer address, 4-octet AS
    index.extend_from_slice(&peer.octets());
    index.extend_from_slice(&peer.octets());
    index.extend_from_slice(&peer_as.to_be_bytes());
    record(&mut out, PEER_INDEX_TABLE, &index);

    let mut attrs = vec![0x40, 1, 1, 0]; // ORIGIN IGP
    attrs.extend_from_slice(&[0x40, 2, 0]); // AS_PATH, empty
    attrs.extend_from_slice(&[0x40, 3, 4]); // NEXT_HOP
    attrs.extend_from_slice(&next_hop.octets());
    for (seq, p) in prefixes.iter().enumerate() {
        let mut rib = Vec::new();
        rib.extend_from_slice(&(seq as u32).to_be_bytes());
        rib.push(32);
        rib.extend_from_slice(&p.octets());
        rib.extend_from_slice(&1u16.to_be_bytes()); // one entry
        rib.extend_from_slice(&0u16.to_be_bytes()); // peer index
        rib.extend_from_slice(&0u32.to_be_bytes()); // originated time
        rib.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        rib.extend_from_slice(&attrs);
        record(&mut out, RIB_IPV4_UNICAST, &rib);
    }
    out
}
