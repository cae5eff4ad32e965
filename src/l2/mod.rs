//! L2 mode: answering ARP and NDP for the Service addresses this node owns.
//!
//! [`frame`], [`arp`], [`ndp`] and [`bpf`] are pure: bytes in, bytes out, no sockets.

pub mod arp;
pub mod bpf;
pub mod frame;
pub mod ndp;
