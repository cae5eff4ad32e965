//! L2 mode: answering ARP and NDP for the Service addresses this node owns.
//!
//! [`frame`], [`arp`], [`ndp`] and [`bpf`] are pure: bytes in, bytes out, no sockets. So are
//! [`interfaces`] (which interfaces an address is announced on), [`assign`] (where every
//! address goes, and what changed), [`announce`] (when takeover announcements are sent) and
//! the decision in [`kernel`]. The IO around them: [`netlink`] keeps the interface table,
//! `socket`/`sys` open filtered `AF_PACKET` sockets, `responder` runs one thread per
//! (interface, protocol), [`multicast`] holds solicited-node group memberships, and
//! [`speaker`] ties them together behind [`Speaker`].

pub mod announce;
pub mod arp;
pub mod assign;
pub mod bpf;
mod counters;
pub mod frame;
pub mod interfaces;
pub mod kernel;
pub mod multicast;
pub mod ndp;
pub mod netlink;
mod responder;
pub mod socket;
pub mod speaker;
mod sys;

pub use counters::Counters;
pub use frame::MacAddr;
pub use speaker::{Announcement, CounterHandle, L2Error, L2Event, Speaker, SpeakerSettings};
