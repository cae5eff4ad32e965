//! The lab: what tests and `ferrolb lab` run ferrolb against. For now the Kubernetes API
//! simulator (`apiserver`) and the node's stand-in for kube-proxy and a pod (`responder`); the
//! namespace topology joins them later.

pub mod apiserver;
pub mod demo;
pub mod responder;
