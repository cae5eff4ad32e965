//! What a packet's body holds (after the envelope is opened): a foca message, metadata items
//! sent directly to one member, or a request for a member's metadata. Pure.
//!
//! ```text
//! kind 1: foca message      | 0x01 | foca bytes ...                        |
//! kind 2: items             | 0x02 | len u16 | item | len u16 | item | ... |
//! kind 3: metadata request  | 0x03 | postcard(SocketAddr to reply to)     |
//! kind 4: liveness check    | 0x04 | postcard(Check)                       |
//! kind 5: check answer      | 0x05 | postcard(nonce: u64)                  |
//! kind 6: metadata digest   | 0x06 | postcard(Digest)                      |
//! ```
//!
//! Checks are Lifeguard's buddy system and independent confirmation, outside foca: a member
//! that suspects another, or hears that someone does, asks the suspect directly; the suspect
//! answers (and, told it is suspected, refutes at once); no answer within the probe timeout
//! from a member that only heard of the suspicion confirms it.
//!
//! Digests are anti-entropy for metadata (memberlist's push-pull, in small): broadcasts are
//! sent a bounded number of times, so a member can miss a version for good (packets lost, a
//! busy moment). Every second each member tells a random other which metadata versions it
//! holds; whoever learns that a member published a newer version asks that member for it.

use std::net::SocketAddr;

const KIND_FOCA: u8 = 1;
const KIND_ITEMS: u8 = 2;
const KIND_META_REQUEST: u8 = 3;
const KIND_CHECK: u8 = 4;
const KIND_CHECK_ACK: u8 = 5;
const KIND_META_DIGEST: u8 = 6;

/// "Are you alive?" — optionally "…you are suspected in this incarnation".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    /// Echoed in the answer (0: no answer wanted).
    pub nonce: u64,
    /// Whom the check is for (a receiver with another address ignores it).
    pub about: SocketAddr,
    /// The incarnation the receiver is suspected in, if it is.
    pub suspected: Option<u16>,
    /// Where to answer.
    pub reply_to: SocketAddr,
}

/// Which version of a member's metadata the sender of a [`Digest`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DigestEntry {
    /// The member's gossip address.
    pub addr: SocketAddr,
    /// Its boot id.
    pub boot: u64,
    /// The metadata version held.
    pub version: u64,
}

/// "These are the metadata versions I hold" (anti-entropy).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    /// The sender's gossip address (answers go there).
    pub reply_to: SocketAddr,
    /// Answer with your own digest if I am behind on something (a push-pull round);
    /// answers do not ask for answers.
    pub reply: bool,
    /// Versions held; the sender's own first.
    pub entries: Vec<DigestEntry>,
}

/// A decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body<'a> {
    /// Hand to foca.
    Foca(&'a [u8]),
    /// Custom-broadcast items (metadata parts), sent directly.
    Items(Vec<&'a [u8]>),
    /// "Send me your metadata" — to this address.
    MetaRequest(SocketAddr),
    /// A liveness check.
    Check(Check),
    /// The answer to a check.
    CheckAck(u64),
    /// Metadata versions the sender holds.
    Digest(Digest),
}

/// A body that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BodyError {
    /// Empty.
    #[error("empty body")]
    Empty,
    /// Unknown kind byte.
    #[error("unknown body kind {0}")]
    Kind(u8),
    /// Lengths do not add up.
    #[error("malformed body")]
    Malformed,
}

impl<'a> Body<'a> {
    /// Parses a body.
    pub fn decode(body: &'a [u8]) -> Result<Body<'a>, BodyError> {
        let (&kind, rest) = body.split_first().ok_or(BodyError::Empty)?;
        match kind {
            KIND_FOCA => Ok(Body::Foca(rest)),
            KIND_ITEMS => {
                let mut items = Vec::new();
                let mut r = rest;
                while !r.is_empty() {
                    let (len, tail) = r.split_first_chunk::<2>().ok_or(BodyError::Malformed)?;
                    let len = usize::from(u16::from_be_bytes(*len));
                    if len == 0 || tail.len() < len {
                        return Err(BodyError::Malformed);
                    }
                    items.push(&tail[..len]);
                    r = &tail[len..];
                }
                if items.is_empty() {
                    return Err(BodyError::Malformed);
                }
                Ok(Body::Items(items))
            }
            KIND_META_REQUEST => match postcard::take_from_bytes::<SocketAddr>(rest) {
                Ok((addr, [])) => Ok(Body::MetaRequest(addr)),
                _ => Err(BodyError::Malformed),
            },
            KIND_CHECK => match postcard::take_from_bytes::<Check>(rest) {
                Ok((c, [])) => Ok(Body::Check(c)),
                _ => Err(BodyError::Malformed),
            },
            KIND_CHECK_ACK => match postcard::take_from_bytes::<u64>(rest) {
                Ok((n, [])) => Ok(Body::CheckAck(n)),
                _ => Err(BodyError::Malformed),
            },
            KIND_META_DIGEST => match postcard::take_from_bytes::<Digest>(rest) {
                Ok((d, [])) => Ok(Body::Digest(d)),
                _ => Err(BodyError::Malformed),
            },
            k => Err(BodyError::Kind(k)),
        }
    }
}

/// The body for a foca message.
pub fn foca(data: &[u8]) -> Vec<u8> {
    let mut b = Vec::with_capacity(data.len() + 1);
    b.push(KIND_FOCA);
    b.extend_from_slice(data);
    b
}

/// Bodies carrying `items`, each body at most `budget` bytes (an item larger than that gets
/// a body of its own).
pub fn items(items: &[Vec<u8>], budget: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut cur = vec![KIND_ITEMS];
    for item in items {
        let Ok(len) = u16::try_from(item.len()) else {
            continue;
        };
        if item.is_empty() {
            continue;
        }
        if cur.len() > 1 && cur.len() + 2 + item.len() > budget {
            out.push(std::mem::replace(&mut cur, vec![KIND_ITEMS]));
        }
        cur.extend_from_slice(&len.to_be_bytes());
        cur.extend_from_slice(item);
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// The body asking for the receiver's metadata, to be sent to `reply_to`.
pub fn meta_request(reply_to: SocketAddr) -> Vec<u8> {
    let mut b = vec![KIND_META_REQUEST];
    b.extend(postcard::to_allocvec(&reply_to).unwrap_or_default());
    b
}

/// The body of a liveness check.
pub fn check(c: &Check) -> Vec<u8> {
    let mut b = vec![KIND_CHECK];
    b.extend(postcard::to_allocvec(c).unwrap_or_default());
    b
}

/// The answer to check `nonce`.
pub fn check_ack(nonce: u64) -> Vec<u8> {
    let mut b = vec![KIND_CHECK_ACK];
    b.extend(postcard::to_allocvec(&nonce).unwrap_or_default());
    b
}

/// The body of digest `d`, dropping entries after the sender's own until it fits `budget`
/// (the receiver learns about the rest from a later digest).
pub fn digest(d: &Digest, budget: usize) -> Vec<u8> {
    let mut d = d.clone();
    loop {
        let mut b = vec![KIND_META_DIGEST];
        b.extend(postcard::to_allocvec(&d).unwrap_or_default());
        if b.len() <= budget || d.entries.len() <= 1 {
            return b;
        }
        // Shrink proportionally (at least one entry) rather than one by one.
        let keep = (d.entries.len() * budget / b.len()).clamp(1, d.entries.len() - 1);
        d.entries.truncate(keep);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn bodies_round_trip() {
        assert_eq!(Body::decode(&foca(b"abc")), Ok(Body::Foca(b"abc")));
        let a: SocketAddr = "[fd00::1]:7946".parse().unwrap();
        assert_eq!(Body::decode(&meta_request(a)), Ok(Body::MetaRequest(a)));
        let c = Check {
            nonce: 7,
            about: a,
            suspected: Some(3),
            reply_to: "10.0.0.1:7946".parse().unwrap(),
        };
        assert_eq!(Body::decode(&check(&c)), Ok(Body::Check(c)));
        assert_eq!(
            Body::decode(&check_ack(u64::MAX)),
            Ok(Body::CheckAck(u64::MAX))
        );
        let its = vec![vec![1; 600], vec![2; 600], vec![3; 10]];
        let bodies = items(&its, 1000);
        assert_eq!(bodies.len(), 2);
        let mut back = Vec::new();
        for b in &bodies {
            assert!(b.len() <= 1000);
            match Body::decode(b) {
                Ok(Body::Items(v)) => back.extend(v.into_iter().map(<[u8]>::to_vec)),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, its);
    }

    #[test]
    fn digests_round_trip_and_fit_the_budget() {
        let entry = |i: u16| DigestEntry {
            addr: SocketAddr::new("fd00::1".parse().unwrap(), 7000 + i),
            boot: 1_795_710_832_489 + u64::from(i),
            version: u64::from(i) * 1000,
        };
        let d = Digest {
            reply_to: "10.0.0.1:7946".parse().unwrap(),
            reply: true,
            entries: (0..10).map(entry).collect(),
        };
        assert_eq!(Body::decode(&digest(&d, 1400)), Ok(Body::Digest(d.clone())));
        let big = Digest {
            entries: (0..500).map(entry).collect(),
            ..d
        };
        let b = digest(&big, 1000);
        assert!(b.len() <= 1000, "{}", b.len());
        match Body::decode(&b) {
            Ok(Body::Digest(got)) => {
                assert!(got.entries.len() > 20, "{}", got.entries.len());
                assert_eq!(got.entries[..], big.entries[..got.entries.len()]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(Body::decode(b""), Err(BodyError::Empty));
        assert_eq!(Body::decode(b"\x09"), Err(BodyError::Kind(9)));
        assert_eq!(Body::decode(b"\x02"), Err(BodyError::Malformed));
        assert_eq!(Body::decode(b"\x02\x00\x05ab"), Err(BodyError::Malformed));
        assert_eq!(Body::decode(b"\x02\x00\x00"), Err(BodyError::Malformed));
        assert_eq!(Body::decode(b"\x03\xff"), Err(BodyError::Malformed));
        assert_eq!(Body::decode(b"\x04\x01"), Err(BodyError::Malformed));
        assert_eq!(Body::decode(b"\x05\x01\x00"), Err(BodyError::Malformed));
        assert_eq!(Body::decode(b"\x06\x00"), Err(BodyError::Malformed));
    }

    proptest! {
        #[test]
        fn prop_decode_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Body::decode(&b);
        }
    }
}
