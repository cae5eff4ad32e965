//! What each member says about itself — its pool-configuration fingerprint, the pools it can
//! announce, its current L2 claims, whether it is leaving — and how that travels.
//!
//! Claims change at runtime and can be large (a node may own hundreds of addresses), so the
//! metadata is not part of the identity. A member publishes it as a numbered *version*; each
//! version is encoded (postcard) and cut into parts of at most [`CHUNK`] bytes, and each part
//! is a foca custom broadcast (see `broadcast`) that a newer version invalidates. Receivers
//! assemble the parts in a [`MetaTable`] and switch to a version only once it is complete, so a
//! member's published claims never flicker to a half-received set. Pure: no IO, no clock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::identity::NodeId;
use crate::config::{Config, PoolMode};

/// The first 8 bytes of a SHA-256 over the canonical rendering of the pool configuration.
pub type Fingerprint = [u8; 8];

/// Largest encoded chunk of metadata in one part.
pub const CHUNK: usize = 1000;
/// Most parts one version may have (256 kB of metadata: ~15k IPv6 claims).
pub const MAX_PARTS: u16 = 256;
/// Members whose metadata is remembered at most.
pub const MAX_MEMBERS: usize = 4096;

/// The fingerprint of everything that decides who owns an address: every pool (in
/// configuration order, with its addresses normalised, selector, interfaces and BGP
/// settings) and the `[l2]` failback and quorum settings. Nodes that disagree would compute
/// owners from different inputs, so the daemon warns about them.
pub fn pool_fingerprint(config: &Config) -> Fingerprint {
    let text = canonical_pools(config);
    let digest = Sha256::digest(text.as_bytes());
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&digest[..8]);
    fp
}

/// The rendering [`pool_fingerprint`] hashes: one `key value` line per setting.
pub fn canonical_pools(config: &Config) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "ferrolb pools v1");
    let _ = writeln!(
        s,
        "l2 failback={} require_quorum={}",
        config.l2.failback, config.l2.require_quorum
    );
    for p in &config.pools {
        let _ = writeln!(s, "pool {}", p.name);
        let _ = writeln!(s, " mode {}", p.mode_kind());
        let addrs: Vec<String> = p.addresses.iter().map(|r| r.to_string()).collect();
        let _ = writeln!(s, " addresses {}", addrs.join(","));
        let _ = writeln!(s, " avoid_buggy_ips {}", p.avoid_buggy_ips);
        let _ = writeln!(s, " auto_assign {}", p.auto_assign);
        let sel: Vec<String> = p
            .node_selector
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let _ = writeln!(s, " node_selector {}", sel.join(","));
        match &p.mode {
            PoolMode::L2 { interfaces } => {
                let _ = writeln!(s, " interfaces {}", interfaces.join(","));
            }
            PoolMode::Bgp(b) => {
                let communities: Vec<String> =
                    b.communities.iter().map(|c| c.to_string()).collect();
                let _ = writeln!(
                    s,
                    " bgp peers={} communities={} local_pref={:?} aggregation={}/{}",
                    b.peers.join(","),
                    communities.join(","),
                    b.local_pref,
                    b.aggregation_length,
                    b.aggregation_length_v6
                );
            }
        }
    }
    s
}

/// Lower-case hex of a fingerprint, for logs and Events.
pub fn fingerprint_hex(fp: &Fingerprint) -> String {
    fp.iter().map(|b| format!("{b:02x}")).collect()
}

/// What a member publishes about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// [`pool_fingerprint`] of its configuration.
    pub fingerprint: Fingerprint,
    /// Pools it can announce (it has a usable interface, or they are BGP pools it peers for).
    pub pools: BTreeSet<String>,
    /// Addresses it announces now (L2 claims).
    pub claims: BTreeSet<IpAddr>,
    /// It is leaving the cluster on purpose (planned stop or drain).
    pub leaving: bool,
}

/// One part of one version of a member's [`Meta`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaPart {
    /// The member's gossip address (its foca key).
    pub addr: SocketAddr,
    /// The member's node name.
    pub node: String,
    /// The member's boot id: a new life starts its versions over.
    pub boot: u64,
    /// Grows with every change the member publishes.
    pub version: u64,
    /// This part's position, from 0.
    pub index: u16,
    /// How many parts the version has.
    pub count: u16,
    /// Bytes `[index * CHUNK ..]` of the encoded [`Meta`].
    pub chunk: Vec<u8>,
}

/// A member's suspicion of another, so that others can count independent confirmations
/// (Lifeguard's dogpile): `by` failed to get an answer from `about` in this incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SuspicionNote {
    /// Who suspects.
    pub by: SocketAddr,
    /// Whom.
    pub about: SocketAddr,
    /// The suspect's boot id.
    pub boot: u64,
    /// The suspect's foca incarnation.
    pub incarnation: u16,
}

/// A custom broadcast item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Item {
    /// A part of a member's metadata.
    Meta(MetaPart),
    /// A suspicion.
    Suspicion(SuspicionNote),
}

/// Metadata that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    /// The item does not decode, or has bytes left over.
    #[error("undecodable gossip item")]
    Undecodable,
    /// Part numbering or sizes are inconsistent.
    #[error("inconsistent metadata part {index}/{count}")]
    BadPart {
        /// Index given.
        index: u16,
        /// Count given.
        count: u16,
    },
    /// Our own metadata does not fit in [`MAX_PARTS`] parts.
    #[error("metadata of {bytes} bytes is too large to gossip")]
    TooLarge {
        /// Encoded size.
        bytes: usize,
    },
}

impl Item {
    /// The item's bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Parses an item; every byte must belong to it.
    pub fn decode(data: &[u8]) -> Result<Item, MetaError> {
        match postcard::take_from_bytes::<Item>(data) {
            Ok((item, [])) => Ok(item),
            _ => Err(MetaError::Undecodable),
        }
    }
}

/// `meta` of member `id` as version `version`, cut into parts.
pub fn split(id: &NodeId, version: u64, meta: &Meta) -> Result<Vec<MetaPart>, MetaError> {
    let bytes = postcard::to_allocvec(meta).map_err(|_| MetaError::Undecodable)?;
    let count = bytes.len().div_ceil(CHUNK).max(1);
    let count16 = u16::try_from(count)
        .ok()
        .filter(|c| *c <= MAX_PARTS)
        .ok_or(MetaError::TooLarge { bytes: bytes.len() })?;
    let mut parts = Vec::with_capacity(count);
    for index in 0..count16 {
        let start = usize::from(index) * CHUNK;
        let end = (start + CHUNK).min(bytes.len());
        parts.push(MetaPart {
            addr: id.addr,
            node: id.node.clone(),
            boot: id.boot,
            version,
            index,
            count: count16,
            chunk: bytes.get(start..end).unwrap_or_default().to_vec(),
        });
    }
    Ok(parts)
}

/// A complete version of a member's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// The member's node name.
    pub node: String,
    /// Boot id it belongs to.
    pub boot: u64,
    /// Version.
    pub version: u64,
    /// The metadata.
    pub meta: Meta,
}

#[derive(Debug, Default)]
struct Entry {
    current: Option<Stamped>,
    pending: Option<Assembly>,
}

#[derive(Debug)]
struct Assembly {
    boot: u64,
    version: u64,
    count: u16,
    chunks: BTreeMap<u16, Vec<u8>>,
}

/// What [`MetaTable::offer`] made of a part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Not seen before (pass it on); `completed`: it finished a version, now current.
    New {
        /// A new version became current.
        completed: bool,
    },
    /// Already known or older than what we have: drop it.
    Stale,
}

/// The latest complete metadata of every member, by gossip address.
#[derive(Debug, Default)]
pub struct MetaTable {
    entries: HashMap<SocketAddr, Entry>,
}

impl MetaTable {
    /// An empty table.
    pub fn new() -> MetaTable {
        MetaTable::default()
    }

    /// Takes in one part.
    pub fn offer(&mut self, part: &MetaPart) -> Result<Offer, MetaError> {
        if part.count == 0
            || part.count > MAX_PARTS
            || part.index >= part.count
            || part.chunk.len() > CHUNK
        {
            return Err(MetaError::BadPart {
                index: part.index,
                count: part.count,
            });
        }
        if !self.entries.contains_key(&part.addr) && self.entries.len() >= MAX_MEMBERS {
            return Ok(Offer::Stale);
        }
        let entry = self.entries.entry(part.addr).or_default();
        let stamp = (part.boot, part.version);
        if entry
            .current
            .as_ref()
            .is_some_and(|c| (c.boot, c.version) >= stamp)
        {
            return Ok(Offer::Stale);
        }
        match &entry.pending {
            Some(p) if (p.boot, p.version) > stamp => return Ok(Offer::Stale),
            Some(p) if (p.boot, p.version) == stamp => {
                if p.count != part.count {
                    return Err(MetaError::BadPart {
                        index: part.index,
                        count: part.count,
                    });
                }
                if p.chunks.contains_key(&part.index) {
                    return Ok(Offer::Stale);
                }
            }
            _ => {
                entry.pending = Some(Assembly {
                    boot: part.boot,
                    version: part.version,
                    count: part.count,
                    chunks: BTreeMap::new(),
                });
            }
        }
        let Some(pending) = entry.pending.as_mut() else {
            return Ok(Offer::Stale);
        };
        pending.chunks.insert(part.index, part.chunk.clone());
        if pending.chunks.len() < usize::from(pending.count) {
            return Ok(Offer::New { completed: false });
        }
        let bytes: Vec<u8> = pending.chunks.values().flatten().copied().collect();
        let (boot, version) = (pending.boot, pending.version);
        entry.pending = None;
        match postcard::from_bytes::<Meta>(&bytes) {
            Ok(meta) => {
                entry.current = Some(Stamped {
                    node: part.node.clone(),
                    boot,
                    version,
                    meta,
                });
                Ok(Offer::New { completed: true })
            }
            Err(_) => Err(MetaError::Undecodable),
        }
    }

    /// The current metadata of the member at `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Stamped> {
        self.entries.get(addr).and_then(|e| e.current.as_ref())
    }

    /// Keeps only the members `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&SocketAddr) -> bool) {
        self.entries.retain(|a, _| keep(a));
    }
}

/// What foca's broadcast queue keys an item by: a newer version of a member's metadata
/// replaces every older part still waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemKey {
    /// A metadata part.
    Meta {
        /// Member.
        addr: SocketAddr,
        /// Its boot id.
        boot: u64,
        /// Version.
        version: u64,
        /// Part.
        index: u16,
    },
    /// A suspicion.
    Suspicion(SuspicionNote),
}

impl ItemKey {
    /// The key of `item`.
    pub fn of(item: &Item) -> ItemKey {
        match item {
            Item::Meta(p) => ItemKey::Meta {
                addr: p.addr,
                boot: p.boot,
                version: p.version,
                index: p.index,
            },
            Item::Suspicion(n) => ItemKey::Suspicion(*n),
        }
    }
}

impl foca::Invalidates for ItemKey {
    fn invalidates(&self, other: &Self) -> bool {
        match (self, other) {
            (
                ItemKey::Meta {
                    addr,
                    boot,
                    version,
                    index,
                },
                ItemKey::Meta {
                    addr: a2,
                    boot: b2,
                    version: v2,
                    index: i2,
                },
            ) => {
                addr == a2 && ((boot, version) > (b2, v2) || (boot, version, index) == (b2, v2, i2))
            }
            (ItemKey::Suspicion(a), ItemKey::Suspicion(b)) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests;
