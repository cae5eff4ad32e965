//! NOTIFICATION codes the state machine sends or reasons about (RFC 4271 §4.5, RFC 4486,
//! RFC 6608). Plain numbers, so the codec layer maps them onto its own types without the FSM
//! depending on it.

/// A NOTIFICATION to send (or one received): error code, subcode and data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code (see [`code`]).
    pub code: u8,
    /// Error subcode; its meaning depends on `code`.
    pub subcode: u8,
    /// Data, as the error requires (often empty).
    pub data: Vec<u8>,
}

impl Notification {
    /// A NOTIFICATION without data.
    pub fn new(code: u8, subcode: u8) -> Notification {
        Notification {
            code,
            subcode,
            data: Vec::new(),
        }
    }

    /// The same NOTIFICATION carrying `data`.
    pub fn with_data(mut self, data: Vec<u8>) -> Notification {
        self.data = data;
        self
    }

    /// Cease (code 6) with an RFC 4486 subcode.
    pub fn cease(subcode: u8) -> Notification {
        Notification::new(code::CEASE, subcode)
    }

    /// OPEN Message Error (code 2) with a subcode from [`open_error`].
    pub fn open_error(subcode: u8) -> Notification {
        Notification::new(code::OPEN_MESSAGE, subcode)
    }

    /// Finite State Machine Error (code 5) with an RFC 6608 subcode from [`fsm_error`].
    pub fn fsm_error(subcode: u8) -> Notification {
        Notification::new(code::FSM, subcode)
    }
}

/// Error codes (RFC 4271 §4.5).
pub mod code {
    /// Message Header Error.
    pub const MESSAGE_HEADER: u8 = 1;
    /// OPEN Message Error.
    pub const OPEN_MESSAGE: u8 = 2;
    /// UPDATE Message Error.
    pub const UPDATE_MESSAGE: u8 = 3;
    /// Hold Timer Expired.
    pub const HOLD_TIMER_EXPIRED: u8 = 4;
    /// Finite State Machine Error.
    pub const FSM: u8 = 5;
    /// Cease.
    pub const CEASE: u8 = 6;
}

/// OPEN Message Error subcodes (RFC 4271 §6.2, RFC 5492).
pub mod open_error {
    /// Unsupported Version Number; data: the largest version we support, 2 octets.
    pub const UNSUPPORTED_VERSION: u8 = 1;
    /// Bad Peer AS.
    pub const BAD_PEER_AS: u8 = 2;
    /// Bad BGP Identifier.
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    /// Unsupported Optional Parameter.
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    /// Unacceptable Hold Time.
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    /// Unsupported Capability (RFC 5492).
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Finite State Machine Error subcodes (RFC 6608).
pub mod fsm_error {
    /// Unspecified error.
    pub const UNSPECIFIED: u8 = 0;
    /// Receive Unexpected Message in OpenSent State.
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    /// Receive Unexpected Message in OpenConfirm State.
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    /// Receive Unexpected Message in Established State.
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Cease subcodes (RFC 4486).
pub mod cease {
    /// Maximum Number of Prefixes Reached.
    pub const MAX_PREFIXES: u8 = 1;
    /// Administrative Shutdown: the session is stopped and stays down.
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    /// Peer De-configured.
    pub const PEER_DECONFIGURED: u8 = 3;
    /// Administrative Reset: the session is restarted.
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    /// Connection Rejected: a transport connection we do not want.
    pub const CONNECTION_REJECTED: u8 = 5;
    /// Other Configuration Change.
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    /// Connection Collision Resolution (RFC 4271 §6.8).
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    /// Out of Resources.
    pub const OUT_OF_RESOURCES: u8 = 8;
}
