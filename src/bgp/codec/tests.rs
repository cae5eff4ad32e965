//! Tests of the codec: byte vectors written from the RFCs (`vectors`), messages captured from
//! real speakers (`captured`), and property tests (`props`).

mod captured;
mod errors;
mod props;
mod vectors;

use super::{frame_len, Context, DecodeError, Message};

const CTX4: Context = Context {
    four_octet_as: true,
    extended_messages: false,
};
const CTX2: Context = Context {
    four_octet_as: false,
    extended_messages: false,
};

/// A whole message: marker, length, type, body.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&u16::try_from(19 + body.len()).unwrap().to_be_bytes());
    out.push(kind);
    out.extend_from_slice(body);
    out
}

/// An UPDATE body from its three fields.
fn update_body(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(withdrawn.len()).unwrap().to_be_bytes());
    out.extend_from_slice(withdrawn);
    out.extend_from_slice(&u16::try_from(attrs.len()).unwrap().to_be_bytes());
    out.extend_from_slice(attrs);
    out.extend_from_slice(nlri);
    out
}

fn decode(bytes: &[u8], ctx: &Context) -> Result<Message, DecodeError> {
    assert_eq!(
        frame_len(bytes, ctx).ok().flatten().unwrap_or(bytes.len()),
        bytes.len()
    );
    Message::decode(bytes, ctx)
}
