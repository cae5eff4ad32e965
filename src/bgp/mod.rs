//! BGP-4: the wire codec (pure). The session state machine and the speaker come next.

pub mod codec;
