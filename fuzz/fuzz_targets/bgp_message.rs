//! Any byte stream through the BGP codec, under every negotiated context: framing, then each
//! message. Never panics; a NOTIFICATION we would send fits the limit; what decodes encodes,
//! and decodes again to the same value; a treat-as-withdraw result announces nothing.
#![no_main]
use ferrolb::bgp::codec::{frame_len, Context, DecodeError, Message};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8], ctx: &Context) {
    match Message::decode(bytes, ctx) {
        Ok(mut msg) => {
            if let Message::Update(u) = &mut msg {
                // RFC 6793 AS4_PATH merging is lossy by design: no value round trip there.
                if !ctx.four_octet_as {
                    return;
                }
                u.discarded.clear();
            }
            let again = msg.encode(ctx).expect("a decoded message encodes");
            assert_eq!(Message::decode(&again, ctx), Ok(msg));
        }
        Err(DecodeError::SessionReset { notification, .. }) => {
            let sent = Message::Notification(notification).encode(ctx);
            assert!(sent.is_ok_and(|b| b.len() <= ctx.max_message_len()));
        }
        Err(DecodeError::TreatAsWithdraw { withdraw, .. }) => {
            assert!(withdraw.nlri.is_empty() && withdraw.mp_reach.is_none());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else {
        return;
    };
    let ctx = Context {
        four_octet_as: flags & 1 != 0,
        extended_messages: flags & 2 != 0,
    };
    // The input as a stream of messages, cut the way a session cuts it.
    let mut rest = stream;
    while let Ok(Some(len)) = frame_len(rest, &ctx) {
        check(&rest[..len], &ctx);
        rest = &rest[len..];
    }
    // The input as one message body of each type, behind a correct header.
    if stream.len() + 19 <= ctx.max_message_len() {
        for kind in 1..=5u8 {
            let mut msg = vec![0xff; 16];
            msg.extend_from_slice(&((stream.len() + 19) as u16).to_be_bytes());
            msg.push(kind);
            msg.extend_from_slice(stream);
            check(&msg, &ctx);
        }
    }
});
