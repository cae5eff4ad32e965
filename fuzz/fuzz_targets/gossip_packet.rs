//! Any datagram through the gossip decoder: the envelope (keyed and insecure), then the body,
//! the metadata items and the foca message inside. Never panics; under a key nothing but a
//! packet sealed with it opens; what a sealer produces opens to the same body.
#![no_main]
use ferrolb::membership::meta::{Item, MetaTable};
use ferrolb::membership::packet::{Opener, Sealer, Security, SessionId};
use ferrolb::membership::wire::Body;
use ferrolb::membership::{Key, Keyring, NodeId};
use foca::PostcardCodec;
use libfuzzer_sys::fuzz_target;

const NOW: u64 = 1_700_000_000_000;

fn inspect(body: &[u8]) {
    match Body::decode(body) {
        Ok(Body::Foca(mut data)) => {
            let _ = foca::Codec::<NodeId>::decode_header(&mut PostcardCodec, &mut data);
            let _ = foca::Codec::<NodeId>::decode_member(&mut PostcardCodec, &mut data);
        }
        Ok(Body::Items(items)) => {
            let mut table = MetaTable::new();
            for item in items {
                if let Ok(Item::Meta(part)) = Item::decode(item) {
                    let _ = table.offer(&part);
                }
            }
        }
        Ok(Body::MetaRequest(_) | Body::Check(_) | Body::CheckAck(_) | Body::Digest(_)) | Err(_) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let keyed = Security::Keys(Keyring::new(vec![Key::new([7; 32])]).expect("one key"));
    let mut opener = Opener::new(keyed.clone());
    assert!(opener.open(data, NOW).is_err(), "unsealed input authenticated");

    let mut insecure = Opener::new(Security::Insecure);
    if let Ok(opened) = insecure.open(data, NOW) {
        inspect(&opened.body);
        // Opening the same packet twice is a replay.
        assert!(insecure.open(data, NOW).is_err());
    }

    // The input as a body: sealed, it opens to itself; its content decodes without panics.
    if data.len() <= 1300 {
        let mut sealer = Sealer::new(&keyed, SessionId([1; 16])).expect("key derivation");
        let packet = sealer.seal(data, NOW);
        let opened = Opener::new(keyed).open(&packet, NOW).expect("own packet opens");
        assert_eq!(opened.body, data);
        inspect(data);
    }
});
