//! NOTIFICATION (RFC 4271 §4.5): error codes and subcodes as enums, plus the data field.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | Error code    | Error subcode |   Data (variable)             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::fmt;

use bytes::{BufMut, BytesMut};

/// Declares a subcode enum with a catch-all `Other(u8)`, so every received value round-trips.
macro_rules! subcode_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this codec has no name for (kept as received).
            Other(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    other => Self::Other(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                match value {
                    $($name::$variant => $value,)*
                    $name::Other(other) => other,
                }
            }
        }
    };
}

subcode_enum! {
    /// Subcodes of error code 1, Message Header Error (RFC 4271 §6.1).
    HeaderSubcode {
        /// 0: no more specific subcode applies.
        Unspecific = 0,
        /// 1: the marker is not all ones.
        ConnectionNotSynchronized = 1,
        /// 2: the length field is out of range for the message type; data = the length field.
        BadMessageLength = 2,
        /// 3: unknown message type; data = the type octet.
        BadMessageType = 3,
    }
}

subcode_enum! {
    /// Subcodes of error code 2, OPEN Message Error (RFC 4271 §6.2, RFC 5492).
    OpenSubcode {
        /// 0: no more specific subcode applies.
        Unspecific = 0,
        /// 1: version not 4; data = the largest supported version (2 octets).
        UnsupportedVersionNumber = 1,
        /// 2: the peer's AS is not the configured one (or is 0).
        BadPeerAs = 2,
        /// 3: the BGP Identifier is not acceptable (0).
        BadBgpIdentifier = 3,
        /// 4: an optional parameter type is not understood.
        UnsupportedOptionalParameter = 4,
        /// 6: hold time 1 or 2 seconds (or refused by local policy).
        UnacceptableHoldTime = 6,
        /// 7: a required capability is missing (RFC 5492).
        UnsupportedCapability = 7,
    }
}

subcode_enum! {
    /// Subcodes of error code 3, UPDATE Message Error (RFC 4271 §6.3).
    UpdateSubcode {
        /// 0: no more specific subcode applies.
        Unspecific = 0,
        /// 1: lengths inconsistent, or a path attribute appears twice where that is fatal.
        MalformedAttributeList = 1,
        /// 2: a well-known attribute this speaker does not know; data = the attribute.
        UnrecognizedWellKnownAttribute = 2,
        /// 3: a mandatory well-known attribute is missing; data = its type code.
        MissingWellKnownAttribute = 3,
        /// 4: attribute flags conflict with the type; data = the attribute.
        AttributeFlagsError = 4,
        /// 5: attribute length conflicts with the type; data = the attribute.
        AttributeLengthError = 5,
        /// 6: undefined ORIGIN value.
        InvalidOriginAttribute = 6,
        /// 8: NEXT_HOP syntactically wrong.
        InvalidNextHopAttribute = 8,
        /// 9: an optional attribute is malformed; data = the attribute.
        OptionalAttributeError = 9,
        /// 10: the NLRI (or withdrawn routes) field is syntactically wrong.
        InvalidNetworkField = 10,
        /// 11: AS_PATH is malformed.
        MalformedAsPath = 11,
    }
}

subcode_enum! {
    /// Subcodes of error code 5, Finite State Machine Error (RFC 6608).
    FsmSubcode {
        /// 0: unspecified.
        Unspecified = 0,
        /// 1: unexpected message in OpenSent.
        UnexpectedInOpenSent = 1,
        /// 2: unexpected message in OpenConfirm.
        UnexpectedInOpenConfirm = 2,
        /// 3: unexpected message in Established.
        UnexpectedInEstablished = 3,
    }
}

subcode_enum! {
    /// Subcodes of error code 6, Cease (RFC 4486, RFC 8538, RFC 9384).
    CeaseSubcode {
        /// 0: no more specific subcode applies.
        Unspecific = 0,
        /// 1: maximum number of prefixes reached.
        MaximumPrefixesReached = 1,
        /// 2: administrative shutdown (data may carry a message, RFC 9003).
        AdministrativeShutdown = 2,
        /// 3: peer de-configured.
        PeerDeconfigured = 3,
        /// 4: administrative reset.
        AdministrativeReset = 4,
        /// 5: connection rejected.
        ConnectionRejected = 5,
        /// 6: other configuration change.
        OtherConfigurationChange = 6,
        /// 7: connection collision resolution.
        ConnectionCollisionResolution = 7,
        /// 8: out of resources.
        OutOfResources = 8,
        /// 9: hard reset (RFC 8538).
        HardReset = 9,
        /// 10: BFD down (RFC 9384).
        BfdDown = 10,
    }
}

subcode_enum! {
    /// Subcodes of error code 7, ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefreshSubcode {
        /// 0: reserved.
        Reserved = 0,
        /// 1: invalid message length.
        InvalidMessageLength = 1,
    }
}

/// Error code and subcode of a NOTIFICATION.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader(HeaderSubcode),
    /// 2: OPEN Message Error.
    Open(OpenSubcode),
    /// 3: UPDATE Message Error.
    Update(UpdateSubcode),
    /// 4: Hold Timer Expired (the subcode is normally 0).
    HoldTimerExpired(u8),
    /// 5: Finite State Machine Error.
    Fsm(FsmSubcode),
    /// 6: Cease.
    Cease(CeaseSubcode),
    /// 7: ROUTE-REFRESH Message Error.
    RouteRefresh(RouteRefreshSubcode),
    /// Any other code (kept as received).
    Other {
        /// The error code.
        code: u8,
        /// The error subcode.
        subcode: u8,
    },
}

impl ErrorCode {
    /// Interprets a code/subcode pair from the wire.
    pub fn from_wire(code: u8, subcode: u8) -> Self {
        match code {
            1 => Self::MessageHeader(subcode.into()),
            2 => Self::Open(subcode.into()),
            3 => Self::Update(subcode.into()),
            4 => Self::HoldTimerExpired(subcode),
            5 => Self::Fsm(subcode.into()),
            6 => Self::Cease(subcode.into()),
            7 => Self::RouteRefresh(subcode.into()),
            code => Self::Other { code, subcode },
        }
    }

    /// The code/subcode pair as sent on the wire.
    pub fn to_wire(self) -> (u8, u8) {
        match self {
            Self::MessageHeader(s) => (1, s.into()),
            Self::Open(s) => (2, s.into()),
            Self::Update(s) => (3, s.into()),
            Self::HoldTimerExpired(s) => (4, s),
            Self::Fsm(s) => (5, s.into()),
            Self::Cease(s) => (6, s.into()),
            Self::RouteRefresh(s) => (7, s.into()),
            Self::Other { code, subcode } => (code, subcode),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageHeader(s) => write!(f, "message header error ({s:?})"),
            Self::Open(s) => write!(f, "OPEN message error ({s:?})"),
            Self::Update(s) => write!(f, "UPDATE message error ({s:?})"),
            Self::HoldTimerExpired(_) => f.write_str("hold timer expired"),
            Self::Fsm(s) => write!(f, "finite state machine error ({s:?})"),
            Self::Cease(s) => write!(f, "cease ({s:?})"),
            Self::RouteRefresh(s) => write!(f, "ROUTE-REFRESH message error ({s:?})"),
            Self::Other { code, subcode } => write!(f, "error code {code} subcode {subcode}"),
        }
    }
}

/// A NOTIFICATION message: why the sender is closing the session.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code and subcode.
    pub code: ErrorCode,
    /// Diagnostic data; its meaning depends on the code.
    pub data: Vec<u8>,
}

impl Notification {
    /// A notification with data.
    pub fn new(code: ErrorCode, data: impl Into<Vec<u8>>) -> Self {
        Self {
            code,
            data: data.into(),
        }
    }

    /// Cease with a subcode and no data (e.g. administrative shutdown before a planned stop).
    pub fn cease(subcode: CeaseSubcode) -> Self {
        Self::new(ErrorCode::Cease(subcode), Vec::new())
    }

    /// Hold Timer Expired.
    pub fn hold_timer_expired() -> Self {
        Self::new(ErrorCode::HoldTimerExpired(0), Vec::new())
    }

    /// OPEN error Bad Peer AS, for the session layer when the peer's AS is not the configured
    /// one; data = the AS field as received (RFC 4271 §6.2 leaves it empty; we add nothing).
    pub fn bad_peer_as() -> Self {
        Self::new(ErrorCode::Open(OpenSubcode::BadPeerAs), Vec::new())
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        let (code, subcode) = self.code.to_wire();
        out.put_u8(code);
        out.put_u8(subcode);
        out.put_slice(&self.data);
    }

    /// Decodes a NOTIFICATION body; the header check guarantees at least 2 octets, and a
    /// shorter body yields `None`.
    pub(crate) fn decode_body(body: &[u8]) -> Option<Self> {
        match body {
            [code, subcode, data @ ..] => {
                Some(Self::new(ErrorCode::from_wire(*code, *subcode), data))
            }
            _ => None,
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.data.is_empty() {
            write!(f, ", {} octets of data", self.data.len())?;
        }
        Ok(())
    }
}
