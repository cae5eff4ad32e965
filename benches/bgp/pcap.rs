//! Just enough pcap reading to count BGP messages on the wire: Ethernet / IPv4 / TCP records
//! of a `tcpdump -w` file, each direction of each connection reassembled by sequence number,
//! then cut into messages with ferrolb's codec.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use ferrolb::bgp::codec::{frame_len, Context, Message};

/// One direction of a TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Flow {
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Flow {
    fn reverse(self) -> Flow {
        Flow {
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

#[derive(Default)]
struct Segments {
    isn: Option<u32>,
    /// (sequence number, capture time, payload).
    data: Vec<(u32, Duration, Vec<u8>)>,
}

/// A direction's bytes in order, and when each stretch of them was captured.
#[derive(Default)]
pub struct Stream {
    pub bytes: Vec<u8>,
    /// (end offset of a segment's data, its capture time), ascending.
    pub times: Vec<(usize, Duration)>,
}

impl Stream {
    /// When the byte before `offset` was captured.
    fn time_of(&self, offset: usize) -> Duration {
        self.times
            .iter()
            .find(|(end, _)| *end >= offset)
            .map_or(Duration::ZERO, |(_, t)| *t)
    }
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize, le: bool) -> Option<u32> {
    let a: [u8; 4] = b.get(i..i + 4)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(a)
    } else {
        u32::from_be_bytes(a)
    })
}

/// Every TCP flow in a pcap file (Ethernet link type, IPv4), reassembled.
pub fn streams(file: &[u8]) -> Result<BTreeMap<Flow, Stream>, String> {
    let magic = file.get(..4).ok_or("no pcap header")?;
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => return Err(format!("not a pcap file (magic {magic:02x?})")),
    };
    if u32_at(file, 20, le) != Some(1) {
        return Err("link type is not Ethernet".into());
    }
    let mut flows: BTreeMap<Flow, Segments> = BTreeMap::new();
    let mut at = 24;
    while let (Some(sec), Some(frac), Some(len)) = (
        u32_at(file, at, le),
        u32_at(file, at + 4, le),
        u32_at(file, at + 8, le),
    ) {
        let start = at + 16;
        let frame = file
            .get(start..start + len as usize)
            .ok_or("truncated record")?;
        at = start + len as usize;
        let ts = Duration::new(
            u64::from(sec),
            if nanos {
                frac
            } else {
                frac.saturating_mul(1000)
            },
        );
        let Some((flow, seq, syn, payload)) = tcp_segment(frame) else {
            continue;
        };
        let s = flows.entry(flow).or_default();
        if syn {
            s.isn = Some(seq);
        }
        if !payload.is_empty() {
            s.data.push((seq, ts, payload.to_vec()));
        }
    }
    Ok(flows
        .into_iter()
        .map(|(flow, s)| (flow, reassemble(s)))
        .collect())
}

/// (flow, sequence number, SYN, payload) of an Ethernet/IPv4/TCP frame.
fn tcp_segment(frame: &[u8]) -> Option<(Flow, u32, bool, &[u8])> {
    if u16_at(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let total = usize::from(u16_at(ip, 2)?);
    if *ip.get(9)? != 6 {
        return None;
    }
    let src = Ipv4Addr::from(u32_at(ip, 12, false)?);
    let dst = Ipv4Addr::from(u32_at(ip, 16, false)?);
    let tcp = ip.get(ihl..total)?;
    let doff = usize::from(tcp.get(12)? >> 4) * 4;
    let flow = Flow {
        src,
        sport: u16_at(tcp, 0)?,
        dst,
        dport: u16_at(tcp, 2)?,
    };
    let seq = u32_at(tcp, 4, false)?;
    let syn = tcp.get(13)? & 0x02 != 0;
    Some((flow, seq, syn, tcp.get(doff..)?))
}

/// Puts the segments in sequence order, dropping retransmitted bytes; stops at a gap.
fn reassemble(mut s: Segments) -> Stream {
    let base = match s.isn {
        Some(isn) => isn.wrapping_add(1),
        None => s.data.iter().map(|d| d.0).min().unwrap_or(0),
    };
    s.data.sort_by_key(|d| (d.0.wrapping_sub(base), d.1));
    let mut out = Stream::default();
    for (seq, ts, payload) in s.data {
        let rel = seq.wrapping_sub(base) as usize;
        if rel > out.bytes.len() {
            break; // not captured: the rest cannot be framed
        }
        let fresh = payload.get(out.bytes.len() - rel..).unwrap_or_default();
        if !fresh.is_empty() {
            out.bytes.extend_from_slice(fresh);
            out.times.push((out.bytes.len(), ts));
        }
    }
    out
}

/// One BGP message of a stream: when its last byte was captured, its length, the message.
pub struct Captured {
    pub at: Duration,
    pub len: usize,
    pub message: Message,
}

/// The messages of `stream`, decoded in the context its OPEN and the peer's (`reverse`)
/// negotiated.
pub fn messages(stream: &Stream, reverse: &Stream) -> Result<Vec<Captured>, String> {
    let loose = Context {
        four_octet_as: true,
        extended_messages: true,
    };
    let first_open = |s: &Stream| -> Result<_, String> {
        let len = frame_len(&s.bytes, &loose)
            .map_err(|e| format!("{e}"))?
            .ok_or("no complete first message")?;
        match Message::decode(&s.bytes[..len], &loose).map_err(|e| format!("{e}"))? {
            Message::Open(o) => Ok(o),
            other => Err(format!("first message is not an OPEN: {other:?}")),
        }
    };
    let ctx = Context::negotiated(&first_open(stream)?, &first_open(reverse)?);
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = frame_len(&stream.bytes[at..], &ctx).map_err(|e| format!("{e}"))? {
        let message = Message::decode(&stream.bytes[at..at + len], &ctx)
            .map_err(|e| format!("message at offset {at}: {e}"))?;
        out.push(Captured {
            at: stream.time_of(at + len),
            len,
            message,
        });
        at += len;
    }
    Ok(out)
}

/// The flow from `src` to `dst` that carried the most bytes (the connection that won a
/// collision), with its reverse.
pub fn busiest(
    all: &BTreeMap<Flow, Stream>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
) -> Option<(&Stream, &Stream)> {
    let (flow, stream) = all
        .iter()
        .filter(|(f, _)| f.src == src && f.dst == dst)
        .max_by_key(|(_, s)| s.bytes.len())?;
    Some((stream, all.get(&flow.reverse())?))
}
