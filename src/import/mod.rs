//! Converters from other load balancers' configuration to ferrolb's.

pub mod metallb;
