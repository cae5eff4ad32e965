//! OPEN (RFC 4271 §4.2) and its capabilities (RFC 5492): multiprotocol (RFC 4760), route
//! refresh (RFC 2918), extended messages (RFC 8654), graceful restart (RFC 4724), 4-octet AS
//! (RFC 6793). Unknown capabilities are kept as raw bytes.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |    Version    |     My Autonomous System      |   Hold Time   :
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! :               |                BGP Identifier                 :
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! :               | Opt Parm Len  | Optional Parameters (type 2 = capabilities) ...
//! ```

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError};
use super::notification::{ErrorCode, Notification, OpenSubcode};
use super::reader::Reader;

/// The AS number put in the 2-octet "My AS" field when the real one does not fit (RFC 6793).
pub const AS_TRANS: u16 = 23456;
/// The only BGP version there is.
pub const BGP_VERSION: u8 = 4;

const PARAM_CAPABILITIES: u8 = 2;
const CAP_MULTIPROTOCOL: u8 = 1;
const CAP_ROUTE_REFRESH: u8 = 2;
const CAP_EXTENDED_MESSAGE: u8 = 6;
const CAP_GRACEFUL_RESTART: u8 = 64;
const CAP_FOUR_OCTET_AS: u8 = 65;
/// Graceful restart flags: R (restarting) and N (notification support, RFC 8538).
const GR_RESTARTING: u16 = 0x8000;
const GR_NOTIFICATION: u16 = 0x4000;
const GR_TIME_MASK: u16 = 0x0fff;
const GR_FORWARDING: u8 = 0x80;

/// An address family / subsequent address family pair (RFC 4760), as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AfiSafi {
    /// Address family identifier (1 = IPv4, 2 = IPv6).
    pub afi: u16,
    /// Subsequent address family identifier (1 = unicast).
    pub safi: u8,
}

impl AfiSafi {
    /// IPv4 unicast.
    pub const IPV4_UNICAST: Self = Self { afi: 1, safi: 1 };
    /// IPv6 unicast.
    pub const IPV6_UNICAST: Self = Self { afi: 2, safi: 1 };
}

/// Per-family part of the graceful restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GracefulRestartFamily {
    /// The family.
    pub family: AfiSafi,
    /// F bit: forwarding state for this family was preserved across the restart.
    pub forwarding_preserved: bool,
}

/// The graceful restart capability (RFC 4724; N bit from RFC 8538).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GracefulRestart {
    /// R bit: the sender has restarted and is re-sending its routes.
    pub restarting: bool,
    /// N bit: the sender supports graceful restart for NOTIFICATIONs (RFC 8538).
    pub notification: bool,
    /// Seconds the peer should keep our routes while we restart (12 bits: at most 4095).
    pub restart_time: u16,
    /// Families whose forwarding state is preserved.
    pub families: Vec<GracefulRestartFamily>,
}

/// A capability advertised in OPEN.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Capability {
    /// Multiprotocol extensions for one family (code 1).
    Multiprotocol(AfiSafi),
    /// Route refresh (code 2).
    RouteRefresh,
    /// Extended messages up to 65535 octets (code 6).
    ExtendedMessage,
    /// Graceful restart (code 64).
    GracefulRestart(GracefulRestart),
    /// Support for 4-octet AS numbers, carrying the sender's AS (code 65).
    FourOctetAs(u32),
    /// Any other capability, kept as received.
    Unknown {
        /// Capability code.
        code: u8,
        /// Capability value.
        value: Vec<u8>,
    },
}

/// An OPEN message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Open {
    /// The sender's AS: from the 4-octet AS capability when there is one, else the 2-octet
    /// "My AS" field. Encoded as [`AS_TRANS`] in that field when it does not fit.
    pub asn: u32,
    /// Proposed hold time in seconds (0, or at least 3).
    pub hold_time: u16,
    /// BGP identifier (router id), non-zero.
    pub bgp_id: Ipv4Addr,
    /// Capabilities in the order sent.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// The 4-octet AS capability's value, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// Whether extended messages (RFC 8654) are advertised.
    pub fn extended_messages(&self) -> bool {
        self.capabilities.contains(&Capability::ExtendedMessage)
    }

    /// Whether route refresh (RFC 2918) is advertised.
    pub fn route_refresh(&self) -> bool {
        self.capabilities.contains(&Capability::RouteRefresh)
    }

    /// Families advertised with the multiprotocol capability.
    pub fn families(&self) -> impl Iterator<Item = AfiSafi> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// The graceful restart capability, if advertised.
    pub fn graceful_restart(&self) -> Option<&GracefulRestart> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let params = encode_parameters(&self.capabilities)?;
        out.put_u8(BGP_VERSION);
        out.put_u16(u16::try_from(self.asn).unwrap_or(AS_TRANS));
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_id.octets());
        out.put_u8(
            u8::try_from(params.len()).map_err(|_| EncodeError::TooLong {
                what: "OPEN optional parameters",
                len: params.len(),
                max: 255,
            })?,
        );
        out.put_slice(&params);
        Ok(())
    }

    /// Decodes an OPEN body and applies the checks of RFC 4271 §6.2 that need no
    /// configuration: version, AS 0 (RFC 7607), BGP identifier 0, hold time 1 or 2.
    /// Whether the AS is the configured peer AS is the session's check
    /// ([`Notification::bad_peer_as`]).
    pub(crate) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let fixed = (|| Some((r.u8()?, r.u16()?, r.u16()?, r.ipv4()?, r.u8()?)))();
        let Some((version, my_as, hold_time, bgp_id, params_len)) = fixed else {
            return Err(open_error(
                "OPEN shorter than its fixed part",
                OpenSubcode::Unspecific,
            ));
        };
        if version != BGP_VERSION {
            return Err(DecodeError::reset(
                format!("unsupported BGP version {version}"),
                Notification::new(
                    ErrorCode::Open(OpenSubcode::UnsupportedVersionNumber),
                    u16::from(BGP_VERSION).to_be_bytes(),
                ),
            ));
        }
        if usize::from(params_len) != r.remaining() {
            return Err(open_error(
                format!(
                    "optional parameters length {params_len} but {} octets follow",
                    r.remaining()
                ),
                OpenSubcode::Unspecific,
            ));
        }
        let capabilities = decode_parameters(r.rest())?;
        let asn = capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(my_as));
        if asn == 0 || my_as == 0 {
            return Err(open_error("peer AS 0", OpenSubcode::BadPeerAs));
        }
        if bgp_id.is_unspecified() {
            return Err(open_error(
                "BGP identifier 0.0.0.0",
                OpenSubcode::BadBgpIdentifier,
            ));
        }
        if hold_time == 1 || hold_time == 2 {
            return Err(open_error(
                format!("hold time {hold_time}s (must be 0 or at least 3)"),
                OpenSubcode::UnacceptableHoldTime,
            ));
        }
        Ok(Self {
            asn,
            hold_time,
            bgp_id,
            capabilities,
        })
    }
}

fn open_error(detail: impl Into<String>, subcode: OpenSubcode) -> DecodeError {
    DecodeError::reset(
        detail,
        Notification::new(ErrorCode::Open(subcode), Vec::new()),
    )
}

/// All capabilities in one parameter when they fit in 255 octets; otherwise one parameter
/// per capability (both forms are common; RFC 5492 allows either).
fn encode_parameters(capabilities: &[Capability]) -> Result<BytesMut, EncodeError> {
    let mut caps = Vec::with_capacity(capabilities.len());
    for cap in capabilities {
        let mut one = BytesMut::new();
        encode_capability(cap, &mut one)?;
        caps.push(one);
    }
    let total: usize = caps.iter().map(|c| c.len()).sum();
    let mut out = BytesMut::new();
    if total <= 255 {
        if total > 0 {
            out.put_u8(PARAM_CAPABILITIES);
            out.put_u8(total as u8);
            for cap in &caps {
                out.put_slice(cap);
            }
        }
    } else {
        for cap in &caps {
            out.put_u8(PARAM_CAPABILITIES);
            // A capability's value is at most 253 octets (checked in encode_capability),
            // so with its own 2-octet header it fits a parameter.
            out.put_u8(cap.len() as u8);
            out.put_slice(cap);
        }
    }
    Ok(out)
}

fn encode_capability(cap: &Capability, out: &mut BytesMut) -> Result<(), EncodeError> {
    let mut value = BytesMut::new();
    let code = match cap {
        Capability::Multiprotocol(f) => {
            value.put_u16(f.afi);
            value.put_u8(0);
            value.put_u8(f.safi);
            CAP_MULTIPROTOCOL
        }
        Capability::RouteRefresh => CAP_ROUTE_REFRESH,
        Capability::ExtendedMessage => CAP_EXTENDED_MESSAGE,
        Capability::GracefulRestart(gr) => {
            if gr.restart_time > GR_TIME_MASK {
                return Err(EncodeError::Invalid("graceful restart time over 4095 s"));
            }
            let mut flags = gr.restart_time;
            if gr.restarting {
                flags |= GR_RESTARTING;
            }
            if gr.notification {
                flags |= GR_NOTIFICATION;
            }
            value.put_u16(flags);
            for f in &gr.families {
                value.put_u16(f.family.afi);
                value.put_u8(f.family.safi);
                value.put_u8(if f.forwarding_preserved {
                    GR_FORWARDING
                } else {
                    0
                });
            }
            CAP_GRACEFUL_RESTART
        }
        Capability::FourOctetAs(asn) => {
            value.put_u32(*asn);
            CAP_FOUR_OCTET_AS
        }
        Capability::Unknown { code, value: raw } => {
            value.put_slice(raw);
            *code
        }
    };
    if value.len() > 253 {
        return Err(EncodeError::TooLong {
            what: "capability value",
            len: value.len(),
            max: 253,
        });
    }
    out.put_u8(code);
    out.put_u8(value.len() as u8);
    out.put_slice(&value);
    Ok(())
}

fn decode_parameters(params: &[u8]) -> Result<Vec<Capability>, DecodeError> {
    let mut r = Reader::new(params);
    let mut capabilities = Vec::new();
    while !r.is_empty() {
        let param = (|| {
            let kind = r.u8()?;
            let len = r.u8()?;
            Some((kind, r.take(usize::from(len))?))
        })();
        let Some((kind, value)) = param else {
            return Err(open_error(
                "optional parameter overruns",
                OpenSubcode::Unspecific,
            ));
        };
        if kind != PARAM_CAPABILITIES {
            return Err(open_error(
                format!("optional parameter type {kind}"),
                OpenSubcode::UnsupportedOptionalParameter,
            ));
        }
        let mut caps = Reader::new(value);
        while !caps.is_empty() {
            let tlv = (|| {
                let code = caps.u8()?;
                let len = caps.u8()?;
                Some((code, caps.take(usize::from(len))?))
            })();
            let Some((code, value)) = tlv else {
                return Err(open_error(
                    "capability overruns its parameter",
                    OpenSubcode::Unspecific,
                ));
            };
            capabilities.push(decode_capability(code, value)?);
        }
    }
    Ok(capabilities)
}

fn decode_capability(code: u8, value: &[u8]) -> Result<Capability, DecodeError> {
    let bad_len = || {
        open_error(
            format!("capability {code} with {} octets", value.len()),
            OpenSubcode::Unspecific,
        )
    };
    let mut r = Reader::new(value);
    let cap = match code {
        CAP_MULTIPROTOCOL => {
            let (afi, _reserved, safi) = match (r.u16(), r.u8(), r.u8(), r.is_empty()) {
                (Some(afi), Some(res), Some(safi), true) => (afi, res, safi),
                _ => return Err(bad_len()),
            };
            Capability::Multiprotocol(AfiSafi { afi, safi })
        }
        CAP_ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
        CAP_EXTENDED_MESSAGE if value.is_empty() => Capability::ExtendedMessage,
        CAP_ROUTE_REFRESH | CAP_EXTENDED_MESSAGE => return Err(bad_len()),
        CAP_GRACEFUL_RESTART => {
            let flags = r.u16().ok_or_else(bad_len)?;
            if !r.remaining().is_multiple_of(4) {
                return Err(bad_len());
            }
            let mut families = Vec::new();
            while let (Some(afi), Some(safi), Some(f)) = (r.u16(), r.u8(), r.u8()) {
                families.push(GracefulRestartFamily {
                    family: AfiSafi { afi, safi },
                    forwarding_preserved: f & GR_FORWARDING != 0,
                });
            }
            Capability::GracefulRestart(GracefulRestart {
                restarting: flags & GR_RESTARTING != 0,
                notification: flags & GR_NOTIFICATION != 0,
                restart_time: flags & GR_TIME_MASK,
                families,
            })
        }
        CAP_FOUR_OCTET_AS => match (r.u32(), r.is_empty()) {
            (Some(asn), true) => Capability::FourOctetAs(asn),
            _ => return Err(bad_len()),
        },
        code => Capability::Unknown {
            code,
            value: value.to_vec(),
        },
    };
    Ok(cap)
}
