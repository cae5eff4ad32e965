//! Decoding an UPDATE body, with RFC 4271 §6.3 error handling as revised by RFC 7606.
//!
//! Error handling, in short: a field whose routes cannot be parsed (withdrawn routes, NLRI,
//! the NLRI inside MP_REACH/MP_UNREACH), lengths that do not add up, a repeated MP attribute
//! or an unrecognized well-known attribute reset the session. A malformed ORIGIN, AS_PATH,
//! NEXT_HOP, MED, LOCAL_PREF, COMMUNITIES or LARGE_COMMUNITY, wrong flags on a known
//! attribute, a missing mandatory attribute, or attributes that overrun their field make
//! the UPDATE "treat-as-withdraw". A malformed ATOMIC_AGGREGATE, AGGREGATOR or AS4_* and
//! every repeat of an attribute but the first are discarded.

use std::net::Ipv6Addr;

use super::super::as_path::AsPath;
use super::super::attributes::{
    code, decode_communities, decode_large_communities, expected_flags, Aggregator, Origin,
    PathAttributes, RawAttribute, EXTENDED_LENGTH, OPTIONAL, TRANSITIVE,
};
use super::super::error::DecodeError;
use super::super::notification::{ErrorCode, Notification, UpdateSubcode};
use super::super::open::{AfiSafi, AS_TRANS};
use super::super::prefix;
use super::super::reader::Reader;
use super::super::Context;
use super::{Ipv6Reach, Ipv6Unreach, Update};

fn update_error(subcode: UpdateSubcode, data: &[u8]) -> Notification {
    Notification::new(ErrorCode::Update(subcode), data)
}

/// What RFC 7606 says to do with one bad attribute.
enum Fault {
    Withdraw(String),
    Discard,
    Reset(DecodeError),
}

/// State gathered while walking the attributes.
#[derive(Default)]
struct Walk {
    update: Update,
    withdraw: Option<String>,
    as4_path: Option<AsPath>,
    as4_aggregator: Option<Aggregator>,
}

/// Decodes an UPDATE body (the header already checked).
pub(crate) fn decode_body(body: &[u8], ctx: &Context) -> Result<Update, DecodeError> {
    let mut r = Reader::new(body);
    let fields = (|| {
        let withdrawn_len = r.u16()?;
        let withdrawn = r.take(usize::from(withdrawn_len))?;
        let attrs_len = r.u16()?;
        let attrs = r.take(usize::from(attrs_len))?;
        Some((withdrawn, attrs, r.rest()))
    })();
    let Some((withdrawn, attrs, nlri)) = fields else {
        return Err(DecodeError::reset(
            "withdrawn routes or path attribute length exceeds the message",
            update_error(UpdateSubcode::MalformedAttributeList, &[]),
        ));
    };
    let invalid_network = |what: &str| {
        DecodeError::reset(
            format!("malformed prefix in {what}"),
            update_error(UpdateSubcode::InvalidNetworkField, &[]),
        )
    };
    let mut walk = Walk::default();
    walk.update.withdrawn =
        prefix::decode_v4(withdrawn).ok_or_else(|| invalid_network("withdrawn routes"))?;
    walk.update.nlri = prefix::decode_v4(nlri).ok_or_else(|| invalid_network("NLRI"))?;

    walk_attributes(&mut walk, attrs, ctx)?;
    let Walk {
        mut update,
        mut withdraw,
        as4_path,
        as4_aggregator,
    } = walk;

    if !ctx.four_octet_as {
        merge_as4(&mut update.attributes, as4_path, as4_aggregator);
    }
    if withdraw.is_none() {
        withdraw = missing_mandatory(&update);
    }
    match withdraw {
        Some(detail) => Err(DecodeError::TreatAsWithdraw {
            detail,
            withdraw: Box::new(update.as_withdraw()),
        }),
        None => Ok(update),
    }
}

/// RFC 7606 §3 d: ORIGIN and AS_PATH with any announcement, NEXT_HOP with IPv4 NLRI.
fn missing_mandatory(u: &Update) -> Option<String> {
    let a = &u.attributes;
    let announces = !u.nlri.is_empty() || u.mp_reach.as_ref().is_some_and(|r| !r.nlri.is_empty());
    let missing = if !announces {
        None
    } else if a.origin.is_none() {
        Some("ORIGIN")
    } else if a.as_path.is_none() {
        Some("AS_PATH")
    } else if !u.nlri.is_empty() && a.next_hop.is_none() {
        Some("NEXT_HOP")
    } else {
        None
    };
    missing.map(|m| format!("mandatory attribute {m} missing"))
}

/// RFC 6793 §4.2.3, for a session without 4-octet AS: an AGGREGATOR with a real 2-octet AS
/// means the AS4 attributes are stale and ignored; otherwise they complete the 2-octet ones.
fn merge_as4(attrs: &mut PathAttributes, as4_path: Option<AsPath>, as4_agg: Option<Aggregator>) {
    if let Some(agg) = &mut attrs.aggregator {
        if agg.asn != u32::from(AS_TRANS) {
            return;
        }
        if let Some(as4) = as4_agg {
            *agg = as4;
        }
    }
    if let (Some(path), Some(as4)) = (&mut attrs.as_path, as4_path) {
        *path = std::mem::take(path).merge_as4(as4);
    }
}

fn walk_attributes(walk: &mut Walk, field: &[u8], ctx: &Context) -> Result<(), DecodeError> {
    let mut r = Reader::new(field);
    let mut seen = [false; 256];
    while !r.is_empty() {
        let start = r.clone();
        let header = (|| {
            let flags = r.u8()?;
            let type_code = r.u8()?;
            let len = if flags & EXTENDED_LENGTH != 0 {
                r.u16()?
            } else {
                u16::from(r.u8()?)
            };
            Some((flags, type_code, r.take(usize::from(len))?))
        })();
        // RFC 7606 §4: an attribute overrunning the field, or a tail too short for a header.
        let Some((flags, type_code, value)) = header else {
            walk.withdraw
                .get_or_insert_with(|| "path attributes overrun their field".to_owned());
            return Ok(());
        };
        let whole = start
            .clone()
            .take(start.remaining() - r.remaining())
            .unwrap_or_default();
        if std::mem::replace(&mut seen[usize::from(type_code)], true) {
            // RFC 7606 §3 g: a repeated MP attribute is fatal, any other repeat is dropped.
            if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
                return Err(DecodeError::reset(
                    format!("attribute {type_code} repeated"),
                    update_error(UpdateSubcode::MalformedAttributeList, &[]),
                ));
            }
            walk.update.discarded.push(type_code);
            continue;
        }
        match attribute(walk, flags, type_code, value, whole, ctx) {
            Ok(()) => {}
            Err(Fault::Withdraw(detail)) => {
                walk.withdraw.get_or_insert(detail);
            }
            Err(Fault::Discard) => walk.update.discarded.push(type_code),
            Err(Fault::Reset(e)) => return Err(e),
        }
    }
    Ok(())
}

/// Decodes one attribute into `walk`.
fn attribute(
    walk: &mut Walk,
    flags: u8,
    type_code: u8,
    value: &[u8],
    whole: &[u8],
    ctx: &Context,
) -> Result<(), Fault> {
    let Some(expected) = expected_flags(type_code) else {
        return unknown(walk, flags, type_code, value, whole);
    };
    if flags & (OPTIONAL | TRANSITIVE) != expected {
        if matches!(type_code, code::MP_REACH_NLRI | code::MP_UNREACH_NLRI) {
            return Err(Fault::Reset(DecodeError::reset(
                format!("attribute {type_code} with flags {flags:#04x}"),
                update_error(UpdateSubcode::AttributeFlagsError, whole),
            )));
        }
        // RFC 7606 §3 c: handled like a length error of the same attribute.
        if matches!(
            type_code,
            code::ATOMIC_AGGREGATE | code::AGGREGATOR | code::AS4_PATH | code::AS4_AGGREGATOR
        ) {
            return Err(Fault::Discard);
        }
        return Err(Fault::Withdraw(format!(
            "attribute {type_code} with flags {flags:#04x}"
        )));
    }
    let malformed =
        |name: &str| Fault::Withdraw(format!("malformed {name} ({} octets)", value.len()));
    let four = |v: &[u8]| -> Option<u32> {
        let mut r = Reader::new(v);
        r.u32().filter(|_| r.is_empty())
    };
    let a = &mut walk.update.attributes;
    match type_code {
        code::ORIGIN => match value {
            [o] => a.origin = Some(Origin::from_wire(*o).ok_or_else(|| malformed("ORIGIN"))?),
            _ => return Err(malformed("ORIGIN")),
        },
        code::AS_PATH => {
            a.as_path =
                Some(AsPath::decode(value, ctx.four_octet_as).ok_or_else(|| malformed("AS_PATH"))?);
        }
        code::NEXT_HOP => {
            let mut r = Reader::new(value);
            a.next_hop = Some(
                r.ipv4()
                    .filter(|_| r.is_empty())
                    .ok_or_else(|| malformed("NEXT_HOP"))?,
            );
        }
        code::MED => a.med = Some(four(value).ok_or_else(|| malformed("MULTI_EXIT_DISC"))?),
        code::LOCAL_PREF => {
            a.local_pref = Some(four(value).ok_or_else(|| malformed("LOCAL_PREF"))?)
        }
        code::ATOMIC_AGGREGATE if value.is_empty() => a.atomic_aggregate = true,
        code::ATOMIC_AGGREGATE => return Err(Fault::Discard),
        code::AGGREGATOR => {
            a.aggregator =
                Some(Aggregator::decode(value, ctx.four_octet_as).ok_or(Fault::Discard)?);
        }
        code::COMMUNITIES => {
            a.communities = decode_communities(value).ok_or_else(|| malformed("COMMUNITIES"))?;
        }
        code::LARGE_COMMUNITIES => {
            a.large_communities =
                decode_large_communities(value).ok_or_else(|| malformed("LARGE_COMMUNITY"))?;
        }
        // RFC 6793 §4.2.1/§6: ignored between two 4-octet speakers, discarded when malformed.
        code::AS4_PATH if ctx.four_octet_as => return Err(Fault::Discard),
        code::AS4_PATH => walk.as4_path = Some(AsPath::decode(value, true).ok_or(Fault::Discard)?),
        code::AS4_AGGREGATOR if ctx.four_octet_as => return Err(Fault::Discard),
        code::AS4_AGGREGATOR => {
            walk.as4_aggregator = Some(Aggregator::decode(value, true).ok_or(Fault::Discard)?);
        }
        code::MP_REACH_NLRI => mp_reach(walk, value, whole)?,
        code::MP_UNREACH_NLRI => mp_unreach(walk, value, whole)?,
        _ => return unknown(walk, flags, type_code, value, whole),
    }
    Ok(())
}

/// An attribute this codec does not know (RFC 4271 §5/§6.3).
fn unknown(
    walk: &mut Walk,
    flags: u8,
    type_code: u8,
    value: &[u8],
    whole: &[u8],
) -> Result<(), Fault> {
    if flags & OPTIONAL == 0 {
        return Err(Fault::Reset(DecodeError::reset(
            format!("unrecognized well-known attribute {type_code}"),
            update_error(UpdateSubcode::UnrecognizedWellKnownAttribute, whole),
        )));
    }
    if flags & TRANSITIVE == 0 {
        // Unrecognized optional non-transitive: quietly ignored.
        return Err(Fault::Discard);
    }
    walk.update.attributes.other.push(RawAttribute {
        flags: flags & !EXTENDED_LENGTH,
        type_code,
        value: value.to_vec(),
    });
    Ok(())
}

fn mp_error(detail: &str, whole: &[u8]) -> Fault {
    Fault::Reset(DecodeError::reset(
        detail.to_owned(),
        update_error(UpdateSubcode::OptionalAttributeError, whole),
    ))
}

/// MP_REACH_NLRI: if its NLRI cannot be parsed no remedy short of a reset exists
/// (RFC 7606 §5.3); a bad next hop with parseable NLRI is treat-as-withdraw.
fn mp_reach(walk: &mut Walk, value: &[u8], whole: &[u8]) -> Result<(), Fault> {
    let mut r = Reader::new(value);
    let parts = (|| {
        let afi = r.u16()?;
        let safi = r.u8()?;
        let nh_len = r.u8()?;
        let nh = r.take(usize::from(nh_len))?;
        let _reserved = r.u8()?;
        Some((AfiSafi { afi, safi }, nh, r.rest()))
    })();
    let Some((family, nh, nlri)) = parts else {
        return Err(mp_error("MP_REACH_NLRI truncated", whole));
    };
    if family != AfiSafi::IPV6_UNICAST {
        // RFC 4760 §7 lets a speaker ignore families it did not negotiate; we only carry
        // IPv6 unicast through MP attributes.
        return Err(Fault::Discard);
    }
    let nlri = prefix::decode_v6(nlri)
        .ok_or_else(|| mp_error("malformed prefix in MP_REACH_NLRI", whole))?;
    let mut nr = Reader::new(nh);
    let next_hop = match nh.len() {
        16 => nr.ipv6().map(|g| (g, None)),
        32 => nr.ipv6().zip(nr.ipv6()).map(|(g, l)| (g, Some(l))),
        _ => None,
    };
    let fault = match next_hop {
        Some(_) => None,
        None => Some(Fault::Withdraw(format!(
            "MP_REACH_NLRI next hop of {} octets",
            nh.len()
        ))),
    };
    let (next_hop, link_local) = next_hop.unwrap_or((Ipv6Addr::UNSPECIFIED, None));
    walk.update.mp_reach = Some(Ipv6Reach {
        next_hop,
        link_local,
        nlri,
    });
    fault.map_or(Ok(()), Err)
}

fn mp_unreach(walk: &mut Walk, value: &[u8], whole: &[u8]) -> Result<(), Fault> {
    let mut r = Reader::new(value);
    let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
        return Err(mp_error("MP_UNREACH_NLRI truncated", whole));
    };
    if (AfiSafi { afi, safi }) != AfiSafi::IPV6_UNICAST {
        return Err(Fault::Discard);
    }
    let withdrawn = prefix::decode_v6(r.rest())
        .ok_or_else(|| mp_error("malformed prefix in MP_UNREACH_NLRI", whole))?;
    walk.update.mp_unreach = Some(Ipv6Unreach { withdrawn });
    Ok(())
}
