//! Packing many prefixes that share attributes into as few UPDATEs as the size limit allows
//! (4096 octets, or 65535 with extended messages): IPv4 in the NLRI / withdrawn routes
//! fields, IPv6 in MP_REACH_NLRI / MP_UNREACH_NLRI. MetalLB sends one UPDATE per prefix;
//! here 10,000 /32s with ORIGIN, AS_PATH, NEXT_HOP, MED and two communities take 13 UPDATEs
//! (804 prefixes each; 1 with extended messages), 1,000 /128s take 5.
//!
//! Each message is built as an [`Update`] and encoded by the ordinary encoder, so packing can
//! never produce something the decoder would not read back; the arithmetic here only decides
//! where to cut.

use std::net::Ipv6Addr;

use bytes::Bytes;
use ipnet::{Ipv4Net, Ipv6Net};

use super::prefix::wire_len;
use super::{Context, EncodeError, Ipv6Reach, Ipv6Unreach, Message, PathAttributes, Update};

/// The IPv6 next hop of an announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6NextHop {
    /// Global address.
    pub global: Ipv6Addr,
    /// Link-local address, when the peer shares the link.
    pub link_local: Option<Ipv6Addr>,
}

/// UPDATEs announcing every prefix in `prefixes` with `attributes`, which must hold ORIGIN,
/// AS_PATH and NEXT_HOP.
pub fn announce_ipv4(
    attributes: &PathAttributes,
    prefixes: &[Ipv4Net],
    ctx: &Context,
) -> Result<Vec<Bytes>, EncodeError> {
    if attributes.origin.is_none() || attributes.as_path.is_none() || attributes.next_hop.is_none()
    {
        return Err(EncodeError::Invalid(
            "an IPv4 announcement needs ORIGIN, AS_PATH and NEXT_HOP",
        ));
    }
    let template = Update {
        attributes: attributes.clone(),
        ..Update::default()
    };
    pack(
        &template,
        prefixes,
        |n| n.prefix_len(),
        ctx,
        |u, chunk| u.nlri = chunk.to_vec(),
    )
}

/// UPDATEs announcing every prefix in `prefixes` through MP_REACH_NLRI with `attributes`
/// (which must hold ORIGIN and AS_PATH; NEXT_HOP, if set, is sent too).
pub fn announce_ipv6(
    attributes: &PathAttributes,
    next_hop: Ipv6NextHop,
    prefixes: &[Ipv6Net],
    ctx: &Context,
) -> Result<Vec<Bytes>, EncodeError> {
    if attributes.origin.is_none() || attributes.as_path.is_none() {
        return Err(EncodeError::Invalid(
            "an IPv6 announcement needs ORIGIN and AS_PATH",
        ));
    }
    let template = Update {
        attributes: attributes.clone(),
        mp_reach: Some(Ipv6Reach {
            next_hop: next_hop.global,
            link_local: next_hop.link_local,
            nlri: Vec::new(),
        }),
        ..Update::default()
    };
    pack(
        &template,
        prefixes,
        |n| n.prefix_len(),
        ctx,
        |u, chunk| {
            if let Some(reach) = &mut u.mp_reach {
                reach.nlri = chunk.to_vec();
            }
        },
    )
}

/// UPDATEs withdrawing every prefix in `prefixes` (withdrawn routes field).
pub fn withdraw_ipv4(prefixes: &[Ipv4Net], ctx: &Context) -> Result<Vec<Bytes>, EncodeError> {
    pack(
        &Update::default(),
        prefixes,
        |n| n.prefix_len(),
        ctx,
        |u, chunk| {
            u.withdrawn = chunk.to_vec();
        },
    )
}

/// UPDATEs withdrawing every prefix in `prefixes` (MP_UNREACH_NLRI).
pub fn withdraw_ipv6(prefixes: &[Ipv6Net], ctx: &Context) -> Result<Vec<Bytes>, EncodeError> {
    let template = Update {
        mp_unreach: Some(Ipv6Unreach::default()),
        ..Update::default()
    };
    pack(
        &template,
        prefixes,
        |n| n.prefix_len(),
        ctx,
        |u, chunk| {
            u.mp_unreach = Some(Ipv6Unreach {
                withdrawn: chunk.to_vec(),
            });
        },
    )
}

/// Greedy cut: the template's size is fixed, each prefix adds its NLRI length. One octet is
/// held back for an MP attribute growing into the 2-octet length form.
fn pack<P>(
    template: &Update,
    prefixes: &[P],
    prefix_len: impl Fn(&P) -> u8,
    ctx: &Context,
    fill: impl Fn(&mut Update, &[P]),
) -> Result<Vec<Bytes>, EncodeError> {
    if prefixes.is_empty() {
        return Ok(Vec::new());
    }
    let base = Message::Update(template.clone()).encode(ctx)?.len();
    let mp_slack = usize::from(template.mp_reach.is_some() || template.mp_unreach.is_some());
    let budget = ctx.max_message_len().saturating_sub(base + mp_slack);
    let mut messages = Vec::new();
    let mut start = 0;
    while start < prefixes.len() {
        let mut used = 0;
        let mut end = start;
        while let Some(p) = prefixes.get(end) {
            let len = wire_len(prefix_len(p));
            if used + len > budget {
                break;
            }
            used += len;
            end += 1;
        }
        if end == start {
            return Err(EncodeError::TooLong {
                what: "UPDATE with its path attributes and one prefix",
                len: base + mp_slack + wire_len(prefix_len(&prefixes[start])),
                max: ctx.max_message_len(),
            });
        }
        let mut update = template.clone();
        fill(&mut update, &prefixes[start..end]);
        messages.push(Message::Update(update).encode(ctx)?);
        start = end;
    }
    Ok(messages)
}
