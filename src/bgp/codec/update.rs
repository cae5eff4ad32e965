//! UPDATE (RFC 4271 §4.3) with MP_REACH_NLRI / MP_UNREACH_NLRI for IPv6 unicast (RFC 4760),
//! and its error handling: RFC 4271 §6.3 as revised by RFC 7606.
//!
//! ```text
//! +-----------------------------------------------------+
//! |   Withdrawn Routes Length (2 octets)                |
//! |   Withdrawn Routes (variable)                       |
//! |   Total Path Attribute Length (2 octets)            |
//! |   Path Attributes (variable)                        |
//! |   Network Layer Reachability Information (variable) |
//! +-----------------------------------------------------+
//! ```

mod decode;

use std::net::Ipv6Addr;

use bytes::{BufMut, BytesMut};
use ipnet::{Ipv4Net, Ipv6Net};

use super::attributes::{code, put_attribute, PathAttributes, OPTIONAL};
use super::error::EncodeError;
use super::open::AfiSafi;
use super::prefix;
use super::Context;

pub(crate) use decode::decode_body;

/// The route families this speaker carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4 unicast: NLRI and withdrawn routes fields.
    Ipv4Unicast,
    /// IPv6 unicast: MP_REACH_NLRI / MP_UNREACH_NLRI.
    Ipv6Unicast,
}

impl Family {
    /// The AFI/SAFI numbers.
    pub fn afi_safi(self) -> AfiSafi {
        match self {
            Self::Ipv4Unicast => AfiSafi::IPV4_UNICAST,
            Self::Ipv6Unicast => AfiSafi::IPV6_UNICAST,
        }
    }
}

/// MP_REACH_NLRI for IPv6 unicast: reachable IPv6 prefixes and their next hop.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ipv6Reach {
    /// Global next hop.
    pub next_hop: Ipv6Addr,
    /// Link-local next hop (RFC 2545), sent when the peer is on the same link.
    pub link_local: Option<Ipv6Addr>,
    /// Announced prefixes.
    pub nlri: Vec<Ipv6Net>,
}

/// MP_UNREACH_NLRI for IPv6 unicast. An empty one alone in an UPDATE is the IPv6 End-of-RIB
/// marker (RFC 4724).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Ipv6Unreach {
    /// Withdrawn prefixes.
    pub withdrawn: Vec<Ipv6Net>,
}

/// An UPDATE message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Update {
    /// Withdrawn IPv4 prefixes.
    pub withdrawn: Vec<Ipv4Net>,
    /// Path attributes of the announced routes (IPv4 and IPv6).
    pub attributes: PathAttributes,
    /// IPv6 announcements (MP_REACH_NLRI).
    pub mp_reach: Option<Ipv6Reach>,
    /// IPv6 withdrawals (MP_UNREACH_NLRI).
    pub mp_unreach: Option<Ipv6Unreach>,
    /// Announced IPv4 prefixes.
    pub nlri: Vec<Ipv4Net>,
    /// Type codes of attributes dropped while decoding (RFC 7606 attribute-discard, repeats,
    /// unrecognized non-transitive ones, MP attributes of families we do not carry).
    /// Informational; never encoded.
    pub discarded: Vec<u8>,
}

impl Update {
    /// The End-of-RIB marker for a family (RFC 4724 §2).
    pub fn end_of_rib(family: Family) -> Self {
        match family {
            Family::Ipv4Unicast => Self::default(),
            Family::Ipv6Unicast => Self {
                mp_unreach: Some(Ipv6Unreach::default()),
                ..Self::default()
            },
        }
    }

    /// Which family's End-of-RIB marker this is, if it is one.
    pub fn end_of_rib_family(&self) -> Option<Family> {
        let no_routes = self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.mp_reach.is_none()
            && self.attributes == PathAttributes::default()
            && self.discarded.is_empty();
        match &self.mp_unreach {
            None if no_routes => Some(Family::Ipv4Unicast),
            Some(u) if no_routes && u.withdrawn.is_empty() => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut, ctx: &Context) -> Result<(), EncodeError> {
        let mut withdrawn = BytesMut::new();
        for net in &self.withdrawn {
            prefix::put_v4(&mut withdrawn, net);
        }
        let mut attrs = BytesMut::new();
        self.attributes.encode_head(&mut attrs, ctx.four_octet_as)?;
        if let Some(reach) = &self.mp_reach {
            let mut v = BytesMut::new();
            v.put_u16(AfiSafi::IPV6_UNICAST.afi);
            v.put_u8(AfiSafi::IPV6_UNICAST.safi);
            v.put_u8(if reach.link_local.is_some() { 32 } else { 16 });
            v.put_slice(&reach.next_hop.octets());
            if let Some(ll) = reach.link_local {
                v.put_slice(&ll.octets());
            }
            v.put_u8(0);
            for net in &reach.nlri {
                prefix::put_v6(&mut v, net);
            }
            put_attribute(&mut attrs, OPTIONAL, code::MP_REACH_NLRI, &v)?;
        }
        if let Some(unreach) = &self.mp_unreach {
            let mut v = BytesMut::new();
            v.put_u16(AfiSafi::IPV6_UNICAST.afi);
            v.put_u8(AfiSafi::IPV6_UNICAST.safi);
            for net in &unreach.withdrawn {
                prefix::put_v6(&mut v, net);
            }
            put_attribute(&mut attrs, OPTIONAL, code::MP_UNREACH_NLRI, &v)?;
        }
        self.attributes.encode_tail(&mut attrs, ctx.four_octet_as)?;
        let field_len = |what, len: usize| {
            u16::try_from(len).map_err(|_| EncodeError::TooLong {
                what,
                len,
                max: usize::from(u16::MAX),
            })
        };
        out.put_u16(field_len("withdrawn routes", withdrawn.len())?);
        out.put_slice(&withdrawn);
        out.put_u16(field_len("path attributes", attrs.len())?);
        out.put_slice(&attrs);
        for net in &self.nlri {
            prefix::put_v4(out, net);
        }
        Ok(())
    }

    /// Every route this UPDATE carries, as an UPDATE that only withdraws them.
    pub(super) fn as_withdraw(&self) -> Update {
        let mut v6: Vec<Ipv6Net> = self.mp_reach.iter().flat_map(|r| r.nlri.clone()).collect();
        v6.extend(
            self.mp_unreach
                .iter()
                .flat_map(|u| u.withdrawn.iter().copied()),
        );
        let has_v6 = self.mp_reach.is_some() || self.mp_unreach.is_some();
        Update {
            withdrawn: self.withdrawn.iter().chain(&self.nlri).copied().collect(),
            mp_unreach: has_v6.then_some(Ipv6Unreach { withdrawn: v6 }),
            ..Update::default()
        }
    }
}
