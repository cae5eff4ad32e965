//! The lab: what tests and `ferrolb lab` run ferrolb against — the Kubernetes API simulator
//! (`apiserver`), the node's stand-in for kube-proxy and a pod (`responder`), and the network
//! namespace lab of `ferrolb lab up` / `down` / `kubectl` / `fail` / `heal` / `status`
//! (`topology`, `network`, `state`, `nodes`, `frr`, `up`, `down`, `kubectl`, `fault`, `status`).

pub mod apiserver;
pub mod demo;
pub mod down;
pub mod error;
pub mod fault;
pub mod frr;
pub mod kubectl;
pub mod network;
pub mod nodes;
pub mod probe;
pub mod responder;
pub mod state;
pub mod status;
pub mod topology;
pub mod up;

pub use error::LabError;
