//! The Kubernetes side: connecting (kubeconfig, token file, CA, client certificates), the HTTP
//! client with its rate limit, reflectors that keep slim copies of Services, EndpointSlices and
//! Nodes, status writes, Events and the allocator Lease. Knows nothing of announcing.

pub mod backoff;
pub mod client;
pub mod connection;
pub mod error;
pub mod events;
pub mod kubeconfig;
pub mod lease;
pub mod objects;
pub mod ratelimit;
pub mod reflector;
pub mod status;
pub mod store;

pub use client::{Client, PatchType, WatchEvent};
pub use connection::{Connection, Pem, TokenSource};
pub use error::{ApiStatus, KubeError, KubeconfigError};
pub use objects::{EndpointInfo, EndpointSliceInfo, NodeInfo, ObjectKey, ServiceInfo, ServicePort};
