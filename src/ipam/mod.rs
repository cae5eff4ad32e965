//! IPAM: which addresses each LoadBalancer Service gets. Pure — no IO, no clocks.

pub mod range;

pub use range::{Family, IpRange, RangeError};
