//! The BGP-4 wire format (RFC 4271) for a speaker that advertises /32 and /128 service
//! routes: OPEN with capabilities, UPDATE (IPv4 NLRI and IPv6 through MP_REACH/MP_UNREACH),
//! KEEPALIVE, NOTIFICATION, ROUTE-REFRESH. Pure: bytes in, values out, no IO, no clock.
//!
//! **Why our own codec and not `netgauze-bgp-pkt`.** netgauze 0.13 was evaluated: it builds,
//! its dependency tree is small (ipnet, serde, strum, thiserror) and it round-trips the
//! messages we need. It falls short where a *speaker* needs more than a parser: its UPDATE
//! error mapping is marked "TODO need to be refined in accordance with RFC 7606" (no
//! treat-as-withdraw, no attribute-discard, no rule for repeated attributes — every problem
//! becomes a session reset), the NOTIFICATIONs it derives carry empty data, and it has no
//! size-aware encoding, so packing prefixes into UPDATEs under the 4096/65535 limit would be
//! ours anyway. Its model also covers BGP-LS, EVPN, VPN, SR and more, which we would have to
//! map to and from our own types at every call. The subset a service-route speaker needs is
//! small enough to write, test and fuzz here; the public types are ours either way.
//!
//! Entry points: [`frame_len`] finds a complete message in a stream buffer (checking the
//! header first, so a bad length is refused before waiting for its bytes), [`Message::decode`]
//! decodes one, [`Message::encode`] encodes one, and [`pack`] builds the fewest UPDATEs for a
//! set of prefixes. Both directions take a [`Context`]: what the OPEN exchange negotiated.
//! A malformed message decodes to a [`DecodeError`] that says what RFC 4271 §6 / RFC 7606
//! prescribe: the NOTIFICATION to close with, or the routes to treat as withdrawn.
//!
//! Not covered: ADD-PATH, extended next hop (RFC 8950), families other than IPv4/IPv6
//! unicast (their MP attributes are ignored, as RFC 4760 §7 allows), ORF; LOCAL_PREF from an
//! eBGP peer is decoded, and ignoring it (RFC 7606 §7.5) is the session's job.
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod as_path;
mod attributes;
mod error;
mod notification;
mod open;
pub mod pack;
mod prefix;
mod reader;
mod update;

#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes, BytesMut};

pub use as_path::{AsPath, AsSegment, SegmentKind};
pub use attributes::{Aggregator, Community, LargeCommunity, Origin, PathAttributes, RawAttribute};
pub use error::{DecodeError, EncodeError};
pub use notification::{
    CeaseSubcode, ErrorCode, FsmSubcode, HeaderSubcode, Notification, OpenSubcode,
    RouteRefreshSubcode, UpdateSubcode,
};
pub use open::{
    AfiSafi, Capability, GracefulRestart, GracefulRestartFamily, Open, AS_TRANS, BGP_VERSION,
};
pub use update::{Family, Ipv6Reach, Ipv6Unreach, Update};

/// Length of the message header: marker, length, type.
pub const HEADER_LEN: usize = 19;
/// Maximum message size without extended messages (and always for OPEN and KEEPALIVE).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Maximum message size with extended messages (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

const MARKER: [u8; 16] = [0xff; 16];
const TYPE_OPEN: u8 = 1;
const TYPE_UPDATE: u8 = 2;
const TYPE_NOTIFICATION: u8 = 3;
const TYPE_KEEPALIVE: u8 = 4;
const TYPE_ROUTE_REFRESH: u8 = 5;

/// What the OPEN exchange negotiated, which changes the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Context {
    /// Both sides sent the 4-octet AS capability: AS numbers in AS_PATH and AGGREGATOR are
    /// 4 octets; otherwise 2, with AS4_PATH/AS4_AGGREGATOR (RFC 6793).
    pub four_octet_as: bool,
    /// Both sides sent the extended message capability: messages other than OPEN and
    /// KEEPALIVE may be up to 65535 octets (RFC 8654).
    pub extended_messages: bool,
}

impl Context {
    /// The context after exchanging `local` and `remote` OPENs.
    pub fn negotiated(local: &Open, remote: &Open) -> Self {
        Self {
            four_octet_as: local.four_octet_as().is_some() && remote.four_octet_as().is_some(),
            extended_messages: local.extended_messages() && remote.extended_messages(),
        }
    }

    /// The largest message (header included) allowed for UPDATE, NOTIFICATION, ROUTE-REFRESH.
    pub fn max_message_len(&self) -> usize {
        if self.extended_messages {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        }
    }
}

/// ROUTE-REFRESH (RFC 2918; subtype from RFC 7313: 0 request, 1 begin, 2 end of refresh).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteRefresh {
    /// The family to refresh.
    pub family: AfiSafi,
    /// Message subtype (the octet RFC 2918 reserved).
    pub subtype: u8,
}

/// A BGP message.
// Messages are transient (decoded, handled, dropped) and mostly UPDATEs: boxing the big
// variant would cost an allocation on the common path to save stack on the rare ones.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

fn header_error(detail: impl Into<String>, subcode: HeaderSubcode, data: &[u8]) -> DecodeError {
    DecodeError::reset(
        detail,
        Notification::new(ErrorCode::MessageHeader(subcode), data),
    )
}

/// Checks the header at the start of `buf` (RFC 4271 §6.1) and returns the message's length
/// once all of it is in `buf`; `Ok(None)` means more bytes are needed.
pub fn frame_len(buf: &[u8], ctx: &Context) -> Result<Option<usize>, DecodeError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let (marker, rest) = header.split_at(MARKER.len());
    if marker != MARKER {
        return Err(header_error(
            "marker not all ones",
            HeaderSubcode::ConnectionNotSynchronized,
            &[],
        ));
    }
    let len_field = [rest[0], rest[1]];
    let len = usize::from(u16::from_be_bytes(len_field));
    let kind = rest[2];
    let bad_len = || {
        header_error(
            format!("length {len} for message type {kind}"),
            HeaderSubcode::BadMessageLength,
            &len_field,
        )
    };
    if len < HEADER_LEN || len > ctx.max_message_len() {
        return Err(bad_len());
    }
    let ok = match kind {
        TYPE_OPEN => (HEADER_LEN + 10..=MAX_MESSAGE_LEN).contains(&len),
        TYPE_UPDATE => len >= HEADER_LEN + 4,
        TYPE_NOTIFICATION => len >= HEADER_LEN + 2,
        TYPE_KEEPALIVE => len == HEADER_LEN,
        TYPE_ROUTE_REFRESH => len == HEADER_LEN + 4,
        other => {
            return Err(header_error(
                format!("message type {other}"),
                HeaderSubcode::BadMessageType,
                &[other],
            ))
        }
    };
    if !ok {
        return Err(bad_len());
    }
    Ok((buf.len() >= len).then_some(len))
}

impl Message {
    /// Decodes exactly one message: `buf` must hold it whole and nothing else (as cut by
    /// [`frame_len`]).
    pub fn decode(buf: &[u8], ctx: &Context) -> Result<Self, DecodeError> {
        let len = match frame_len(buf, ctx)? {
            Some(len) if len == buf.len() => len,
            _ => {
                let field = buf.get(16..18).unwrap_or_default();
                return Err(header_error(
                    format!("length field does not match the {} octets given", buf.len()),
                    HeaderSubcode::BadMessageLength,
                    field,
                ));
            }
        };
        let body = &buf[HEADER_LEN..len];
        Ok(match buf[18] {
            TYPE_OPEN => Self::Open(Open::decode_body(body)?),
            TYPE_UPDATE => Self::Update(update::decode_body(body, ctx)?),
            TYPE_NOTIFICATION => match Notification::decode_body(body) {
                Some(n) => Self::Notification(n),
                None => {
                    return Err(header_error(
                        "short NOTIFICATION",
                        HeaderSubcode::BadMessageLength,
                        &[],
                    ))
                }
            },
            TYPE_KEEPALIVE => Self::Keepalive,
            _ => match body {
                [a0, a1, subtype, safi] => Self::RouteRefresh(RouteRefresh {
                    family: AfiSafi {
                        afi: u16::from_be_bytes([*a0, *a1]),
                        safi: *safi,
                    },
                    subtype: *subtype,
                }),
                _ => {
                    return Err(header_error(
                        "ROUTE-REFRESH length",
                        HeaderSubcode::BadMessageLength,
                        &[],
                    ))
                }
            },
        })
    }

    /// Encodes the message, header included; fails if it would exceed the size limit.
    pub fn encode(&self, ctx: &Context) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::with_capacity(HEADER_LEN + 64);
        out.put_slice(&MARKER);
        out.put_u16(0); // patched below
        let (kind, max) = match self {
            Self::Open(open) => {
                out.put_u8(TYPE_OPEN);
                open.encode_body(&mut out)?;
                (TYPE_OPEN, MAX_MESSAGE_LEN)
            }
            Self::Update(update) => {
                out.put_u8(TYPE_UPDATE);
                update.encode_body(&mut out, ctx)?;
                (TYPE_UPDATE, ctx.max_message_len())
            }
            Self::Notification(n) => {
                out.put_u8(TYPE_NOTIFICATION);
                n.encode_body(&mut out);
                (TYPE_NOTIFICATION, ctx.max_message_len())
            }
            Self::Keepalive => {
                out.put_u8(TYPE_KEEPALIVE);
                (TYPE_KEEPALIVE, MAX_MESSAGE_LEN)
            }
            Self::RouteRefresh(rr) => {
                out.put_u8(TYPE_ROUTE_REFRESH);
                out.put_u16(rr.family.afi);
                out.put_u8(rr.subtype);
                out.put_u8(rr.family.safi);
                (TYPE_ROUTE_REFRESH, MAX_MESSAGE_LEN)
            }
        };
        let len = out.len();
        if len > max {
            return Err(EncodeError::TooLong {
                what: match kind {
                    TYPE_OPEN => "OPEN",
                    TYPE_UPDATE => "UPDATE",
                    _ => "NOTIFICATION",
                },
                len,
                max,
            });
        }
        // len <= max <= 65535, checked just above.
        out[16..18].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(out.freeze())
    }
}
