//! The owner ranking: which eligible node announces an address. Pure.
//!
//! # A contract that never changes
//!
//! Every daemon in a cluster must pick the same owner from the same inputs, across versions and
//! across a migration from MetalLB. The ranking is therefore fixed forever:
//!
//! ```text
//! rank_key(node, address) = SHA-256( node_name ++ "#" ++ text(address) )
//! ```
//!
//! over the UTF-8 bytes, where `text` is the canonical text form of the address: dotted quad for
//! IPv4 (`10.0.0.1`), RFC 5952 for IPv6 (lower case, no leading zeros, the first longest run of
//! two or more zero groups written `::`, a single zero group never compressed:
//! `2001:db8::1:0:0:1`, `2001:db8:0:1:1:1:1:1`) — exactly what `Display` of
//! [`std::net::IpAddr`] writes. The owner is the candidate with the smallest key, compared as
//! 32 big-endian bytes. This is rendezvous hashing: when a node leaves, only its addresses move;
//! when one joins, it takes only the addresses it now ranks first for.
//!
//! It is MetalLB's layer-2 ranking. MetalLB's speaker (`speaker/layer2_controller.go`,
//! `sortL2Candidates`, read at metallb/metallb 7938d3f) sorts the usable nodes by
//! `bytes.Compare(sha256.Sum256([]byte(node + "#" + ip)))` with `ip` the `String()` of the
//! Service's first `status.loadBalancer.ingress` IP ("Using the first IP should work for both
//! single and dual stack") and announces if it is first; preference weights of
//! `L2Advertisement`s, which ferrolb has no equivalent of, only come before the hash when set.
//! Go's `net.IP.String()` writes the same text as Rust's `Display` for every IPv4 and IPv6
//! address except IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`), which Go writes as
//! `10.0.0.1`; such addresses have no business in a LoadBalancer pool, and ferrolb hashes
//! them as `::ffff:10.0.0.1`.
//!
//! The test vectors in this module's tests were computed outside Rust
//! (`printf '%s' 'node1#10.0.0.1' | sha256sum`, Python's `hashlib`); a change that breaks one
//! breaks every mixed-version cluster.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// The rank of `node` for `address`: `sha256(node + "#" + address)` with the address in its
/// canonical text form (see the [module documentation](self)). Smaller ranks first. Fixed
/// forever: daemons of every version must agree, and MetalLB computes the same value.
pub fn rank_key(node: &str, address: IpAddr) -> [u8; 32] {
    rank_key_text(node, &address.to_string())
}

/// [`rank_key`] with the address already in text form, so a caller ranking many nodes for one
/// address formats it once.
pub(crate) fn rank_key_text(node: &str, address: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(node.as_bytes())
        .chain_update(b"#")
        .chain_update(address.as_bytes())
        .finalize()
        .into()
}

/// The candidate with the smallest [`rank_key`] for `address`: the node that announces it.
/// `None` when there are no candidates. Two equal keys would need a SHA-256 collision; the
/// name breaks that tie anyway, so the result never depends on the candidates' order.
pub fn owner<'a>(
    candidates: impl IntoIterator<Item = &'a str>,
    address: IpAddr,
) -> Option<&'a str> {
    let text = address.to_string();
    min_by_rank(candidates, &text, |name| *name).map(|(_, name)| name)
}

/// The item whose name (per `name_of`) ranks first for the address written `text`, with its key.
/// Ties (a SHA-256 collision) go to the smaller name.
pub(crate) fn min_by_rank<'n, T>(
    items: impl IntoIterator<Item = T>,
    text: &str,
    name_of: impl Fn(&T) -> &'n str,
) -> Option<([u8; 32], T)> {
    let mut best: Option<([u8; 32], T)> = None;
    for item in items {
        let key = rank_key_text(name_of(&item), text);
        let better = match &best {
            None => true,
            Some((k, b)) => (key, name_of(&item)) < (*k, name_of(b)),
        };
        if better {
            best = Some((key, item));
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn hex(key: [u8; 32]) -> String {
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `printf '%s' 'NODE#TEXT' | sha256sum`, computed outside Rust.
    #[test]
    fn rank_key_vectors() {
        let vectors = [
            (
                "node1",
                "10.0.0.1",
                "414b4c5392caa413d81d44f63a055c8b42cd8cfd6c339c8525f16eebc27e271b",
            ),
            (
                "node2",
                "10.0.0.1",
                "3d44f3ccacb3ffc6921d11e88894a2c52733c566d6757bfe6d736ded76bb3d21",
            ),
            (
                "node3",
                "10.0.0.1",
                "ccff10459233d893dee48d897c32eb369c53025d43525fd0b8258e1d2210e6b1",
            ),
            (
                "worker-1",
                "192.168.10.10",
                "3154c58ca2f6b274076d3a0120c8e8f6054eb2fb7afab51269dcfc5c5b70b2a5",
            ),
            (
                "node1",
                "0.0.0.0",
                "8d5d05eef663cf65da303a1d1739e462c4749f9b11fb3611081bedc107d8ad56",
            ),
            (
                "node1",
                "2001:db8::1",
                "7ff27e9e2526b12bfa6a6c09471ab4fd3d4bad234c18426aad908739ce249756",
            ),
            (
                "node2",
                "2001:db8::1",
                "6a6cd2e3cd5163df42010220f373179f21dcbf7ed463e42979d46b590df6cdbb",
            ),
            (
                "node1",
                "fe80::1",
                "6e781e33e09b1b03194d04e7445f7757affd500c969d9ac276744d2d71d328c2",
            ),
            (
                "node1",
                "fd00:10::a",
                "e4c25a4dda0abbdf22be6f69c445a0941b3ddfdbe7d6a0d20744b396d67244ba",
            ),
            (
                "worker-1",
                "fd00:10::a",
                "ed0c06bef124f542237403bc3376b4a964f52993953aff948c8d7f2b9b97096f",
            ),
            (
                "node1",
                "::",
                "75fe9db153af521e8d646efd30b017b93a01bedf74d4d698d11c3e6203b73010",
            ),
        ];
        for (node, addr, want) in vectors {
            assert_eq!(hex(rank_key(node, ip(addr))), want, "{node}#{addr}");
        }
    }

    /// Addresses written in non-canonical forms hash as their RFC 5952 text (the digest of the
    /// canonical text, computed outside Rust).
    #[test]
    fn rank_key_hashes_the_canonical_text() {
        let vectors = [
            // Two runs of two zero groups: the first one is compressed.
            (
                "2001:db8:0:0:1:0:0:1",
                "2001:db8::1:0:0:1",
                "9a11e33a64c63659054b946f5c321acf947e39146ab6163d510c68bea7bee305",
            ),
            // The longest run is compressed, not the first.
            (
                "2001:0:0:1:0:0:0:1",
                "2001:0:0:1::1",
                "541780e703a56fa9c4707b4fc2ff4bc9662a12dccb985b9c3657a0e9ee058f05",
            ),
            // A single zero group is never compressed.
            (
                "2001:0db8:0000:0001:0001:0001:0001:0001",
                "2001:db8:0:1:1:1:1:1",
                "e0a21eee5ff64750f63cc1703af5a455faa1d8d1827506d51ea756fac6d4ac7a",
            ),
            // Upper case and leading zeros.
            (
                "FE80:0000::0001",
                "fe80::1",
                "6e781e33e09b1b03194d04e7445f7757affd500c969d9ac276744d2d71d328c2",
            ),
            // Mixed notation with a dotted tail: plain hex groups.
            (
                "2001:db8::192.168.0.1",
                "2001:db8::c0a8:1",
                "84411698bd4b3580ac281075762ac1de1ff1fa29e3627049196a373cf7ee125c",
            ),
            // IPv4-mapped stays mapped (Go would write 10.0.0.1; see the module doc).
            (
                "::ffff:10.0.0.1",
                "::ffff:10.0.0.1",
                "a4fbb66e7ed6c2b3429f99ffd67f7e5337be6e400864852036d93d848681e72a",
            ),
        ];
        for (written, canonical, want) in vectors {
            assert_eq!(ip(written).to_string(), canonical);
            assert_eq!(hex(rank_key("node1", ip(written))), want, "{written}");
        }
    }

    /// Full orders of three nodes, computed with Python's `hashlib`.
    #[test]
    fn owner_vectors() {
        let nodes = ["node1", "node2", "node3"];
        let vectors = [
            ("10.0.0.1", ["node2", "node1", "node3"]),
            ("10.0.0.2", ["node2", "node3", "node1"]),
            ("10.0.0.4", ["node1", "node3", "node2"]),
            ("10.0.0.5", ["node3", "node2", "node1"]),
            ("10.0.0.6", ["node3", "node1", "node2"]),
            ("10.0.0.13", ["node1", "node3", "node2"]),
            ("192.168.10.10", ["node2", "node3", "node1"]),
            ("2001:db8::1", ["node3", "node2", "node1"]),
            ("2001:db8:0:0:1:0:0:1", ["node2", "node1", "node3"]),
            ("2001:db8::192.168.0.1", ["node3", "node2", "node1"]),
            ("fe80::1", ["node2", "node1", "node3"]),
            ("fd00:10::1", ["node3", "node1", "node2"]),
            ("fd00:10::2", ["node1", "node2", "node3"]),
            ("fd00:10::3", ["node1", "node3", "node2"]),
        ];
        for (addr, order) in vectors {
            let a = ip(addr);
            assert_eq!(owner(nodes, a), Some(order[0]), "{addr}");
            // Without the winner, the runner-up wins; alone, anyone wins.
            let rest: Vec<&str> = nodes.into_iter().filter(|n| *n != order[0]).collect();
            assert_eq!(
                owner(rest, a),
                Some(order[1]),
                "{addr} without {}",
                order[0]
            );
            assert_eq!(owner([order[2]], a), Some(order[2]));
            // The candidates' order does not matter.
            let reversed: Vec<&str> = nodes.into_iter().rev().collect();
            assert_eq!(owner(reversed, a), Some(order[0]));
        }
    }

    #[test]
    fn owner_of_nobody_is_none() {
        assert_eq!(owner([], ip("10.0.0.1")), None);
    }

    #[test]
    fn duplicate_candidates_are_harmless() {
        assert_eq!(
            owner(["node1", "node2", "node2", "node1"], ip("10.0.0.1")),
            Some("node2")
        );
    }
}
