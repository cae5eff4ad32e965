//! foca's wire codec: postcard (foca's own `postcard-codec`), watched for one thing the
//! driver needs and foca does not expose — our own incarnation, which foca raises when it
//! refutes a suspicion about us (a Lifeguard local-health signal).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{Buf, BufMut};
use foca::{Header, Member, PostcardCodec};

use super::identity::NodeId;

/// The codec foca owns.
#[derive(Debug, Clone, Default)]
pub struct Codec {
    own_incarnation: Arc<AtomicU32>,
}

impl Codec {
    /// A codec; `own_incarnation` receives the incarnation of every header we encode.
    pub fn new(own_incarnation: Arc<AtomicU32>) -> Codec {
        Codec { own_incarnation }
    }
}

impl foca::Codec<NodeId> for Codec {
    type Error = postcard::Error;

    fn encode_header(
        &mut self,
        header: &Header<NodeId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        self.own_incarnation
            .store(u32::from(header.src_incarnation), Ordering::Relaxed);
        PostcardCodec.encode_header(header, buf)
    }

    fn decode_header(&mut self, buf: impl Buf) -> Result<Header<NodeId>, Self::Error> {
        PostcardCodec.decode_header(buf)
    }

    fn encode_member(
        &mut self,
        member: &Member<NodeId>,
        buf: impl BufMut,
    ) -> Result<(), Self::Error> {
        PostcardCodec.encode_member(member, buf)
    }

    fn decode_member(&mut self, buf: impl Buf) -> Result<Member<NodeId>, Self::Error> {
        PostcardCodec.decode_member(buf)
    }
}
