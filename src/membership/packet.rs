//! The gossip wire envelope: every datagram is sealed with AES-256-GCM (ring) under a
//! per-session key, and checked against replays. Pure: the clock and the session's random
//! salt come in as values.
//!
//! ```text
//!  0       1       2               6                              22              30              38
//! +-------+-------+---------------+------------------------------+---------------+---------------+----------------------+
//! | ver 1 | flags | key id (4)    | session (16 random bytes)    | counter (u64) | time ms (u64) | body ‖ GCM tag (16)  |
//! +-------+-------+---------------+------------------------------+---------------+---------------+----------------------+
//! ```
//!
//! - `flags` bit 0 (`SEALED`): the body is encrypted and followed by the tag. Other bits must be
//!   zero. With `cluster.insecure = true` the flag is clear, the key id is zero and the body is
//!   plaintext (no tag); a node that has keys drops such packets, and an insecure node drops
//!   sealed ones.
//! - The AEAD key is `HKDF-SHA256(salt = session, ikm = cluster key)`, and the nonce is
//!   `0u32 ‖ counter`. A session is one sender's lifetime (a random 16-byte id drawn at start),
//!   so (key, nonce) never repeats without any coordination between nodes — random 96-bit
//!   nonces under one shared key would hit the birthday bound after 2^32 packets cluster-wide,
//!   which a busy cluster reaches in weeks.
//! - The whole 38-byte header is the authenticated data: changing any bit of it, of the body
//!   or of the tag makes the packet fail authentication. Such packets are rejected before
//!   anything else looks at them ([`Reject::Auth`]).
//! - Replays: per session, the counter must be new within a sliding window of
//!   [`REPLAY_WINDOW`] counters (IPsec/WireGuard style: UDP may reorder a little, never by
//!   128 packets on a LAN). A session this node does not know yet (the sender is new, or this
//!   node restarted and forgot it) is accepted only if its packet's time is within
//!   [`MAX_CLOCK_SKEW_MS`] of ours, and known sessions are remembered for [`SESSION_TTL_MS`]
//!   after their last packet (longer than the skew allowance), so a captured packet replayed
//!   later is refused either as a repeat or as stale. The price: gossip needs the nodes'
//!   clocks within a minute of each other (NTP); a node whose clock is off shows up in the
//!   `stale` counter. A copy of a packet sent to another member is not caught here (counters
//!   are per sender, not per pair) — the destination is inside the sealed payload and SWIM
//!   ignores messages addressed to someone else; meta items are versioned and idempotent.

use std::collections::HashMap;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;

use super::keys::{Key, KeyId, Keyring};

/// The envelope version this code speaks.
pub const VERSION: u8 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 38;
/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Bytes a sealed packet adds to its body.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// The largest datagram sent or accepted: below a 1500-byte Ethernet MTU with IPv6 and UDP
/// headers and some tunnel overhead to spare.
pub const MAX_DATAGRAM: usize = 1400;
/// Counters remembered per session for replay detection.
pub const REPLAY_WINDOW: u64 = 128;
/// How far a new session's packet time may be from ours.
pub const MAX_CLOCK_SKEW_MS: u64 = 60_000;
/// How long a session is remembered after its last packet.
pub const SESSION_TTL_MS: u64 = 180_000;
/// Sessions remembered at most (each is a sender lifetime; far above any cluster's need).
pub const MAX_SESSIONS: usize = 4096;

const FLAG_SEALED: u8 = 0x01;
const HKDF_INFO: &[u8] = b"ferrolb gossip v1 aes-256-gcm";

/// A sender lifetime's random id (the HKDF salt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 16]);

/// The fixed header of every packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Whether the body is encrypted and authenticated.
    pub sealed: bool,
    /// The key the body is sealed with (zero when not sealed).
    pub key_id: KeyId,
    /// The sender's session.
    pub session: SessionId,
    /// The sender's packet counter in this session (from 1).
    pub counter: u64,
    /// The sender's wall clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

impl Header {
    /// The 38 header bytes.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0] = VERSION;
        b[1] = if self.sealed { FLAG_SEALED } else { 0 };
        b[2..6].copy_from_slice(&self.key_id.0);
        b[6..22].copy_from_slice(&self.session.0);
        b[22..30].copy_from_slice(&self.counter.to_be_bytes());
        b[30..38].copy_from_slice(&self.time_ms.to_be_bytes());
        b
    }

    /// Parses the header at the start of `packet`.
    pub fn decode(packet: &[u8]) -> Result<Header, Reject> {
        let h: &[u8; HEADER_LEN] = packet
            .get(..HEADER_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(Reject::Truncated)?;
        if h[0] != VERSION {
            return Err(Reject::Version(h[0]));
        }
        if h[1] & !FLAG_SEALED != 0 {
            return Err(Reject::Flags(h[1]));
        }
        let mut key_id = [0; 4];
        key_id.copy_from_slice(&h[2..6]);
        let mut session = [0; 16];
        session.copy_from_slice(&h[6..22]);
        let mut counter = [0; 8];
        counter.copy_from_slice(&h[22..30]);
        let mut time = [0; 8];
        time.copy_from_slice(&h[30..38]);
        Ok(Header {
            sealed: h[1] & FLAG_SEALED != 0,
            key_id: KeyId(key_id),
            session: SessionId(session),
            counter: u64::from_be_bytes(counter),
            time_ms: u64::from_be_bytes(time),
        })
    }
}

/// Why a packet was dropped. Every variant is counted by the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    /// Shorter than a header (and tag).
    #[error("truncated packet")]
    Truncated,
    /// Longer than [`MAX_DATAGRAM`].
    #[error("oversized packet")]
    Oversized,
    /// An envelope version we do not speak.
    #[error("unknown envelope version {0}")]
    Version(u8),
    /// Unknown flag bits.
    #[error("unknown flags {0:#04x}")]
    Flags(u8),
    /// A plaintext packet reached a node that has keys.
    #[error("plaintext packet, but this node requires encryption")]
    Plaintext,
    /// A sealed packet reached a node running with `cluster.insecure`.
    #[error("encrypted packet, but this node runs insecure (no key)")]
    Sealed,
    /// Sealed with a key this node does not have.
    #[error("sealed with unknown key {0}")]
    UnknownKey(KeyId),
    /// Failed authentication: forged, corrupted, or a different key with the same id.
    #[error("failed authentication")]
    Auth,
    /// A counter already seen in this session, or too far behind.
    #[error("replayed packet")]
    Replay,
    /// A new session whose packet time is too far from ours.
    #[error("stale packet (time {skew_ms} ms away from ours)")]
    Stale {
        /// Distance between the packet's time and ours.
        skew_ms: u64,
    },
}

/// How this node seals: with the cluster keys, or not at all.
#[derive(Debug, Clone)]
pub enum Security {
    /// AES-256-GCM with these keys (the first seals).
    Keys(Keyring),
    /// `cluster.insecure = true`: plaintext, same framing.
    Insecure,
}

fn session_key(key: &Key, session: SessionId) -> Option<LessSafeKey> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &session.0).extract(key.bytes());
    // expand() fails only for outputs longer than 255 hash lengths; 32 bytes never are.
    let okm = prk.expand(&[HKDF_INFO], &AES_256_GCM).ok()?;
    Some(LessSafeKey::new(UnboundKey::from(okm)))
}

/// The session key could not be derived (ring refused HKDF; not expected to happen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot derive the gossip session key")]
pub struct KeyDerivationError;

fn nonce(counter: u64) -> Nonce {
    let mut n = [0u8; aead::NONCE_LEN];
    n[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(n)
}

/// Seals this node's packets: one session, one counter.
pub struct Sealer {
    session: SessionId,
    counter: u64,
    key: Option<(KeyId, LessSafeKey)>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("session", &self.session)
            .field("counter", &self.counter)
            .field("key", &self.key.as_ref().map(|(id, _)| *id))
            .finish()
    }
}

impl Sealer {
    /// A sealer for a new session (`session` must be fresh randomness).
    pub fn new(security: &Security, session: SessionId) -> Result<Sealer, KeyDerivationError> {
        let key = match security {
            Security::Keys(ring) => Some((
                ring.primary().id(),
                session_key(ring.primary(), session).ok_or(KeyDerivationError)?,
            )),
            Security::Insecure => None,
        };
        Ok(Sealer {
            session,
            counter: 0,
            key,
        })
    }

    /// The packet carrying `body`, stamped with `now_ms`.
    pub fn seal(&mut self, body: &[u8], now_ms: u64) -> Vec<u8> {
        self.counter += 1;
        let header = Header {
            sealed: self.key.is_some(),
            key_id: self.key.as_ref().map_or(KeyId([0; 4]), |(id, _)| *id),
            session: self.session,
            counter: self.counter,
            time_ms: now_ms,
        }
        .encode();
        let mut out = Vec::with_capacity(HEADER_LEN + body.len() + TAG_LEN);
        out.extend_from_slice(&header);
        out.extend_from_slice(body);
        if let Some((_, key)) = &self.key {
            let mut sealed = out.split_off(HEADER_LEN);
            if key
                .seal_in_place_append_tag(nonce(self.counter), Aad::from(&header), &mut sealed)
                .is_err()
            {
                // ring fails only for bodies beyond GCM's 64 GiB limit; send nothing usable.
                sealed.clear();
            }
            out.extend_from_slice(&sealed);
        }
        out
    }
}

/// Per-session replay state: the highest counter seen and a bitmap of the ones below it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayWindow {
    top: u64,
    seen: u128,
}

impl ReplayWindow {
    /// Whether `counter` is new: above everything seen, or inside the window and not seen.
    pub fn is_fresh(&self, counter: u64) -> bool {
        if counter == 0 {
            return false;
        }
        if counter > self.top {
            return true;
        }
        let back = self.top - counter;
        back < REPLAY_WINDOW && self.seen & (1u128 << back) == 0
    }

    /// Records `counter` as seen (call only after [`Self::is_fresh`] and authentication).
    pub fn record(&mut self, counter: u64) {
        if counter > self.top {
            let shift = counter - self.top;
            self.seen = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.top = counter;
        } else {
            let back = self.top - counter;
            if back < REPLAY_WINDOW {
                self.seen |= 1u128 << back;
            }
        }
    }
}

struct Session {
    key: Option<LessSafeKey>,
    window: ReplayWindow,
    last_ms: u64,
}

/// An authenticated, fresh packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Its header.
    pub header: Header,
    /// The decrypted body.
    pub body: Vec<u8>,
}

/// Opens received packets: authenticates, decrypts, refuses replays.
pub struct Opener {
    security: Security,
    sessions: HashMap<(KeyId, SessionId), Session>,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Opener {
    /// An opener that accepts what `security` allows.
    pub fn new(security: Security) -> Opener {
        Opener {
            security,
            sessions: HashMap::new(),
        }
    }

    /// Sessions currently remembered.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// Authenticates and decrypts `packet`, received at `now_ms`. Nothing of a packet that
    /// fails is kept: only authenticated packets create or advance sessions.
    pub fn open(&mut self, packet: &[u8], now_ms: u64) -> Result<Opened, Reject> {
        if packet.len() > MAX_DATAGRAM {
            return Err(Reject::Oversized);
        }
        let header = Header::decode(packet)?;
        let aad: [u8; HEADER_LEN] = header.encode();
        let sid = (header.key_id, header.session);
        let payload = &packet[HEADER_LEN..];
        let (body, new_key) = match (&self.security, header.sealed) {
            (Security::Keys(_), false) => return Err(Reject::Plaintext),
            (Security::Insecure, true) => return Err(Reject::Sealed),
            (Security::Insecure, false) => (payload.to_vec(), None),
            (Security::Keys(ring), true) => {
                if payload.len() < TAG_LEN {
                    return Err(Reject::Truncated);
                }
                match self.sessions.get(&sid).and_then(|s| s.key.as_ref()) {
                    Some(key) => (open_with(key, &header, &aad, payload)?, None),
                    None => {
                        let mut found = None;
                        let mut any = false;
                        for k in ring.with_id(header.key_id) {
                            any = true;
                            let Some(key) = session_key(k, header.session) else {
                                continue;
                            };
                            if let Ok(body) = open_with(&key, &header, &aad, payload) {
                                found = Some((body, key));
                                break;
                            }
                        }
                        match found {
                            Some((body, key)) => (body, Some(key)),
                            None if any => return Err(Reject::Auth),
                            None => return Err(Reject::UnknownKey(header.key_id)),
                        }
                    }
                }
            }
        };
        // Authenticated (or insecure): now the replay checks, then remember the session.
        match self.sessions.get_mut(&sid) {
            Some(s) => {
                if !s.window.is_fresh(header.counter) {
                    return Err(Reject::Replay);
                }
                s.window.record(header.counter);
                s.last_ms = s.last_ms.max(now_ms);
            }
            None => {
                let skew_ms = header.time_ms.abs_diff(now_ms);
                if skew_ms > MAX_CLOCK_SKEW_MS {
                    return Err(Reject::Stale { skew_ms });
                }
                if header.counter == 0 {
                    return Err(Reject::Replay);
                }
                if self.sessions.len() >= MAX_SESSIONS {
                    self.expire(now_ms);
                }
                if self.sessions.len() >= MAX_SESSIONS {
                    self.evict_oldest();
                }
                let mut window = ReplayWindow::default();
                window.record(header.counter);
                self.sessions.insert(
                    sid,
                    Session {
                        key: new_key,
                        window,
                        last_ms: now_ms,
                    },
                );
            }
        }
        Ok(Opened { header, body })
    }

    /// Forgets sessions silent for longer than [`SESSION_TTL_MS`].
    pub fn expire(&mut self, now_ms: u64) {
        self.sessions
            .retain(|_, s| now_ms.saturating_sub(s.last_ms) <= SESSION_TTL_MS);
    }

    fn evict_oldest(&mut self) {
        if let Some(oldest) = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_ms)
            .map(|(k, _)| *k)
        {
            self.sessions.remove(&oldest);
        }
    }
}

fn open_with(
    key: &LessSafeKey,
    header: &Header,
    aad: &[u8; HEADER_LEN],
    payload: &[u8],
) -> Result<Vec<u8>, Reject> {
    let mut buf = payload.to_vec();
    let n = key
        .open_in_place(nonce(header.counter), Aad::from(aad), &mut buf)
        .map_err(|_| Reject::Auth)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

#[cfg(test)]
mod tests;
