//! Path attribute types (RFC 4271 §5, RFC 1997, RFC 8092, RFC 6793) and the encoding and
//! decoding of each attribute's value. How a malformed value is handled (RFC 7606) is decided
//! here per attribute and carried out by [`super::update`].
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |O|T|P|E|0 0 0 0|  Type code    | Length (1 octet, 2 if E)  | Value ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::as_path::AsPath;
use super::error::EncodeError;
use super::open::AS_TRANS;
use super::reader::Reader;

/// Attribute flag bits.
pub(crate) const OPTIONAL: u8 = 0x80;
pub(crate) const TRANSITIVE: u8 = 0x40;
pub(crate) const PARTIAL: u8 = 0x20;
pub(crate) const EXTENDED_LENGTH: u8 = 0x10;

/// Attribute type codes this codec understands.
pub(crate) mod code {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MED: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITIES: u8 = 32;
}

/// The Optional and Transitive flags a known attribute must carry (RFC 7606 §3 c), or `None`
/// for a type code this codec does not know.
pub(crate) fn expected_flags(type_code: u8) -> Option<u8> {
    use code::*;
    Some(match type_code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => TRANSITIVE,
        MED | MP_REACH_NLRI | MP_UNREACH_NLRI => OPTIONAL,
        AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITIES => {
            OPTIONAL | TRANSITIVE
        }
        _ => return None,
    })
}

/// ORIGIN (type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// 0: learned from an interior protocol (what a service route is).
    Igp,
    /// 1: learned from EGP.
    Egp,
    /// 2: learned some other way.
    Incomplete,
}

impl Origin {
    pub(crate) fn from_wire(value: u8) -> Option<Self> {
        match value {
            0 => Some(Self::Igp),
            1 => Some(Self::Egp),
            2 => Some(Self::Incomplete),
            _ => None,
        }
    }

    pub(crate) fn to_wire(self) -> u8 {
        match self {
            Self::Igp => 0,
            Self::Egp => 1,
            Self::Incomplete => 2,
        }
    }
}

/// AGGREGATOR (type 7): who aggregated the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The aggregating speaker's AS (4-octet).
    pub asn: u32,
    /// Its BGP identifier.
    pub address: Ipv4Addr,
}

impl Aggregator {
    pub(crate) fn encode(&self, four_octet: bool) -> BytesMut {
        let mut out = BytesMut::new();
        if four_octet {
            out.put_u32(self.asn);
        } else {
            out.put_u16(u16::try_from(self.asn).unwrap_or(AS_TRANS));
        }
        out.put_slice(&self.address.octets());
        out
    }

    /// `None` if the length is not 8 (4-octet) or 6 (2-octet) — RFC 7606 §7.7.
    pub(crate) fn decode(value: &[u8], four_octet: bool) -> Option<Self> {
        let mut r = Reader::new(value);
        let asn = if four_octet {
            r.u32()?
        } else {
            u32::from(r.u16()?)
        };
        let address = r.ipv4()?;
        r.is_empty().then_some(Self { asn, address })
    }
}

/// A standard community (RFC 1997), `asn:value` packed in 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// NO_EXPORT (65535:65281).
    pub const NO_EXPORT: Self = Self(0xFFFF_FF01);
    /// NO_ADVERTISE (65535:65282).
    pub const NO_ADVERTISE: Self = Self(0xFFFF_FF02);

    /// `high:low`.
    pub fn new(high: u16, low: u16) -> Self {
        Self(u32::from(high) << 16 | u32::from(low))
    }
}

/// A large community (RFC 8092): `global:local1:local2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global: u32,
    /// First local data part.
    pub local1: u32,
    /// Second local data part.
    pub local2: u32,
}

/// Decodes a list of fixed-size items; `None` unless the value is a non-zero multiple of the
/// size (RFC 7606 §7.8, RFC 8092 §5).
pub(crate) fn decode_communities(value: &[u8]) -> Option<Vec<Community>> {
    if value.is_empty() || !value.len().is_multiple_of(4) {
        return None;
    }
    let mut r = Reader::new(value);
    let mut out = Vec::with_capacity(value.len() / 4);
    while let Some(c) = r.u32() {
        out.push(Community(c));
    }
    Some(out)
}

pub(crate) fn decode_large_communities(value: &[u8]) -> Option<Vec<LargeCommunity>> {
    if value.is_empty() || !value.len().is_multiple_of(12) {
        return None;
    }
    let mut r = Reader::new(value);
    let mut out = Vec::with_capacity(value.len() / 12);
    while let (Some(global), Some(local1), Some(local2)) = (r.u32(), r.u32(), r.u32()) {
        out.push(LargeCommunity {
            global,
            local1,
            local2,
        });
    }
    Some(out)
}

/// An optional transitive attribute this codec does not know, kept to be passed on.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags as received, without the Extended Length bit (the encoder chooses it).
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// The attribute as passed on to another peer: RFC 4271 §5 sets the Partial bit on an
    /// unrecognized optional transitive attribute that is passed along.
    pub fn passed_on(mut self) -> Self {
        self.flags |= PARTIAL;
        self
    }
}

/// The path attributes of an UPDATE, except MP_REACH_NLRI / MP_UNREACH_NLRI, which carry
/// routes and live on [`super::Update`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN (mandatory with routes).
    pub origin: Option<Origin>,
    /// AS_PATH (mandatory with routes; empty for iBGP).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (mandatory with IPv4 NLRI).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (iBGP only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES; empty = attribute absent (an empty one is malformed, RFC 7606 §7.8).
    pub communities: Vec<Community>,
    /// LARGE_COMMUNITY; empty = attribute absent (an empty one is malformed, RFC 8092).
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognized optional transitive attributes, in the order received.
    pub other: Vec<RawAttribute>,
}

/// Appends one attribute, choosing the 1- or 2-octet length form.
pub(crate) fn put_attribute(
    out: &mut BytesMut,
    flags: u8,
    type_code: u8,
    value: &[u8],
) -> Result<(), EncodeError> {
    let flags = flags & !EXTENDED_LENGTH;
    if let Ok(len) = u8::try_from(value.len()) {
        out.put_u8(flags);
        out.put_u8(type_code);
        out.put_u8(len);
    } else {
        let len = u16::try_from(value.len()).map_err(|_| EncodeError::TooLong {
            what: "path attribute",
            len: value.len(),
            max: usize::from(u16::MAX),
        })?;
        out.put_u8(flags | EXTENDED_LENGTH);
        out.put_u8(type_code);
        out.put_u16(len);
    }
    out.put_slice(value);
    Ok(())
}

/// One attribute with its canonical flags.
fn put_known(out: &mut BytesMut, type_code: u8, value: &[u8]) -> Result<(), EncodeError> {
    put_attribute(
        out,
        expected_flags(type_code).unwrap_or(OPTIONAL),
        type_code,
        value,
    )
}

impl PathAttributes {
    /// Encodes the attributes up to (not including) MP_REACH_NLRI, in type-code order.
    pub(crate) fn encode_head(
        &self,
        out: &mut BytesMut,
        four_octet: bool,
    ) -> Result<(), EncodeError> {
        if let Some(origin) = self.origin {
            put_known(out, code::ORIGIN, &[origin.to_wire()])?;
        }
        if let Some(path) = &self.as_path {
            put_known(out, code::AS_PATH, &path.encode(four_octet, false)?)?;
        }
        if let Some(nh) = self.next_hop {
            put_known(out, code::NEXT_HOP, &nh.octets())?;
        }
        if let Some(med) = self.med {
            put_known(out, code::MED, &med.to_be_bytes())?;
        }
        if let Some(lp) = self.local_pref {
            put_known(out, code::LOCAL_PREF, &lp.to_be_bytes())?;
        }
        if self.atomic_aggregate {
            put_known(out, code::ATOMIC_AGGREGATE, &[])?;
        }
        if let Some(agg) = &self.aggregator {
            put_known(out, code::AGGREGATOR, &agg.encode(four_octet))?;
        }
        if !self.communities.is_empty() {
            let mut v = BytesMut::with_capacity(self.communities.len() * 4);
            for c in &self.communities {
                v.put_u32(c.0);
            }
            put_known(out, code::COMMUNITIES, &v)?;
        }
        Ok(())
    }

    /// Encodes the attributes after MP_UNREACH_NLRI: the AS4 pair a 2-octet peer needs
    /// (RFC 6793 §4.2.2), LARGE_COMMUNITY, then the unrecognized ones.
    pub(crate) fn encode_tail(
        &self,
        out: &mut BytesMut,
        four_octet: bool,
    ) -> Result<(), EncodeError> {
        if !four_octet {
            if let Some(path) = self.as_path.as_ref().filter(|p| p.has_four_octet()) {
                put_known(out, code::AS4_PATH, &path.encode(true, true)?)?;
            }
            if let Some(agg) = self.aggregator.filter(|a| a.asn > u32::from(u16::MAX)) {
                put_known(out, code::AS4_AGGREGATOR, &agg.encode(true))?;
            }
        }
        if !self.large_communities.is_empty() {
            let mut v = BytesMut::with_capacity(self.large_communities.len() * 12);
            for c in &self.large_communities {
                v.put_u32(c.global);
                v.put_u32(c.local1);
                v.put_u32(c.local2);
            }
            put_known(out, code::LARGE_COMMUNITIES, &v)?;
        }
        for raw in &self.other {
            put_attribute(out, raw.flags, raw.type_code, &raw.value)?;
        }
        Ok(())
    }
}
