//! Writes to Services: the load-balancer status (through the `/status` subresource, with the
//! `resourceVersion` the decision was made on as a precondition, so a stale allocator is
//! refused with 409 rather than believed) and the `ip-allocated-from-pool` annotation.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use super::client::{Client, PatchType};
use super::error::KubeError;
use super::objects::{ObjectKey, ServiceInfo};

/// The annotation naming the pool a Service's addresses came from (MetalLB writes
/// `metallb.io/ip-allocated-from-pool`; tools that read either find ours by the same suffix).
pub const POOL_ANNOTATION: &str = "ferrolb.io/ip-allocated-from-pool";

fn service_path(key: &ObjectKey) -> String {
    format!("/api/v1/namespaces/{}/services/{}", key.namespace, key.name)
}

/// Sets `status.loadBalancer.ingress` to `addresses` (empty clears it), if the Service is still
/// at `resource_version`. Returns the Service as written.
pub async fn write_ingress(
    client: &Client,
    key: &ObjectKey,
    resource_version: &str,
    addresses: &[IpAddr],
) -> Result<ServiceInfo, KubeError> {
    let ingress = if addresses.is_empty() {
        serde_json::Value::Null
    } else {
        addresses
            .iter()
            .map(|ip| json!({ "ip": ip.to_string(), "ipMode": "VIP" }))
            .collect()
    };
    let patch = json!({
        "metadata": { "resourceVersion": resource_version },
        "status": { "loadBalancer": { "ingress": ingress } },
    });
    let path = format!("{}/status", service_path(key));
    let svc: Service = client.patch(&path, PatchType::Merge, &patch).await?;
    Ok(svc.into())
}

/// Sets (or with `None` removes) the pool annotation. No precondition: it only records where
/// the addresses in the status came from.
pub async fn annotate_pool(
    client: &Client,
    key: &ObjectKey,
    pool: Option<&str>,
) -> Result<ServiceInfo, KubeError> {
    let patch = json!({ "metadata": { "annotations": { POOL_ANNOTATION: pool } } });
    let svc: Service = client
        .patch(&service_path(key), PatchType::Merge, &patch)
        .await?;
    Ok(svc.into())
}
