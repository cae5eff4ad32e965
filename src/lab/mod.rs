//! The lab: what tests and `ferrolb lab` run ferrolb against. For now the Kubernetes API
//! simulator (`apiserver`); the namespace topology joins it later.

pub mod apiserver;
pub mod demo;
