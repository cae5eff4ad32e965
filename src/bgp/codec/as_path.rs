//! AS_PATH and AS4_PATH (RFC 4271 §4.3, RFC 6793): segments of AS numbers, held with 4-octet
//! ASes and written with 2 or 4 octets depending on the session.
//!
//! ```text
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! | segment type  | number of ASes|  AS numbers (2 or 4 octets each) ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use bytes::{BufMut, BytesMut};

use super::error::EncodeError;
use super::open::AS_TRANS;
use super::reader::Reader;

/// The type of an AS_PATH segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentKind {
    /// 1: AS_SET, an unordered set (from aggregation).
    Set,
    /// 2: AS_SEQUENCE, ordered, nearest AS first.
    Sequence,
    /// 3: AS_CONFED_SEQUENCE (RFC 5065).
    ConfedSequence,
    /// 4: AS_CONFED_SET (RFC 5065).
    ConfedSet,
}

impl SegmentKind {
    fn from_wire(value: u8) -> Option<Self> {
        match value {
            1 => Some(Self::Set),
            2 => Some(Self::Sequence),
            3 => Some(Self::ConfedSequence),
            4 => Some(Self::ConfedSet),
            _ => None,
        }
    }

    fn to_wire(self) -> u8 {
        match self {
            Self::Set => 1,
            Self::Sequence => 2,
            Self::ConfedSequence => 3,
            Self::ConfedSet => 4,
        }
    }

    fn is_confed(self) -> bool {
        matches!(self, Self::ConfedSequence | Self::ConfedSet)
    }
}

/// One AS_PATH segment: 1 to 255 AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentKind,
    /// AS numbers, 4-octet.
    pub asns: Vec<u32>,
}

/// AS_PATH (type 2), always held with 4-octet AS numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// Segments in order.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (empty for iBGP: `AsPath::sequence([])`).
    pub fn sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        let segments = if asns.is_empty() {
            Vec::new()
        } else {
            vec![AsSegment {
                kind: SegmentKind::Sequence,
                asns,
            }]
        };
        Self { segments }
    }

    /// Path length as RFC 6793 §4.2.3 counts it: an AS_SET counts one, confederation
    /// segments nothing.
    fn count(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentKind::Sequence => s.asns.len(),
                SegmentKind::Set => 1,
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => 0,
            })
            .sum()
    }

    pub(crate) fn has_four_octet(&self) -> bool {
        self.segments
            .iter()
            .flat_map(|s| &s.asns)
            .any(|&a| a > u32::from(u16::MAX))
    }

    /// Encodes the segments with 2- or 4-octet AS numbers (an AS over 65535 becomes
    /// [`AS_TRANS`] in the 2-octet form), skipping confederation segments if asked (AS4_PATH).
    pub(crate) fn encode(
        &self,
        four_octet: bool,
        skip_confed: bool,
    ) -> Result<BytesMut, EncodeError> {
        let mut out = BytesMut::new();
        for seg in &self.segments {
            if skip_confed && seg.kind.is_confed() {
                continue;
            }
            let n = u8::try_from(seg.asns.len()).ok().filter(|&n| n > 0).ok_or(
                EncodeError::Invalid("an AS_PATH segment holds 1 to 255 AS numbers"),
            )?;
            out.put_u8(seg.kind.to_wire());
            out.put_u8(n);
            for &asn in &seg.asns {
                if four_octet {
                    out.put_u32(asn);
                } else {
                    out.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                }
            }
        }
        Ok(out)
    }

    /// Decodes AS_PATH / AS4_PATH; `None` if malformed (RFC 7606 §7.2: unknown segment type,
    /// empty segment, or overrun).
    pub(crate) fn decode(value: &[u8], four_octet: bool) -> Option<Self> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = SegmentKind::from_wire(r.u8()?)?;
            let n = r.u8()?;
            if n == 0 {
                return None;
            }
            let mut asns = Vec::with_capacity(usize::from(n));
            for _ in 0..n {
                asns.push(if four_octet {
                    r.u32()?
                } else {
                    u32::from(r.u16()?)
                });
            }
            segments.push(AsSegment { kind, asns });
        }
        Some(Self { segments })
    }

    /// RFC 6793 §4.2.3: rebuilds the 4-octet path from a 2-octet AS_PATH and an AS4_PATH —
    /// the leading ASes of AS_PATH that AS4_PATH does not cover, then AS4_PATH. An AS4_PATH
    /// longer than AS_PATH is ignored.
    pub(crate) fn merge_as4(self, as4: AsPath) -> Self {
        let (have, tail) = (self.count(), as4.count());
        if have < tail {
            return self;
        }
        let mut keep = have - tail;
        let mut segments = Vec::new();
        for seg in self.segments {
            if keep == 0 {
                break;
            }
            match seg.kind {
                SegmentKind::Sequence if seg.asns.len() > keep => {
                    segments.push(AsSegment {
                        kind: seg.kind,
                        asns: seg.asns[..keep].to_vec(),
                    });
                    keep = 0;
                }
                SegmentKind::Sequence => {
                    keep -= seg.asns.len();
                    segments.push(seg);
                }
                SegmentKind::Set => {
                    keep -= 1;
                    segments.push(seg);
                }
                SegmentKind::ConfedSequence | SegmentKind::ConfedSet => segments.push(seg),
            }
        }
        segments.extend(as4.segments);
        Self { segments }
    }
}
