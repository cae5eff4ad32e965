//! An in-memory Kubernetes API server for tests and `ferrolb lab`, over HTTP and HTTPS, that
//! real `kubectl` works against.
//!
//! It serves discovery, OpenAPI (as much as `kubectl apply` needs), and these resources with
//! the real server's semantics (one global `resourceVersion`, list and watch with bookmarks and
//! 410 Gone, 409 Conflict, `/status` subresources, merge / strategic-merge / JSON patches,
//! label and field selectors, Service cluster IP and node port allocation, server-side Table
//! printing): `core/v1` services, nodes, endpoints, events, namespaces, configmaps, secrets,
//! serviceaccounts; `discovery.k8s.io/v1` endpointslices; `coordination.k8s.io/v1` leases;
//! `events.k8s.io/v1` events; `rbac.authorization.k8s.io/v1` roles, rolebindings,
//! clusterroles, clusterrolebindings (stored, not enforced); `apps/v1` deployments (stored, not
//! run).
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use ferrolb::lab::apiserver::{ApiServer, ApiServerConfig};
//! let sim = ApiServer::start(ApiServerConfig {
//!     https: vec!["127.0.0.1:0".parse()?],
//!     token: Some("secret".into()),
//!     ..ApiServerConfig::default()
//! })
//! .await?;
//! sim.write_kubeconfig("/tmp/kubeconfig".as_ref(), true)?;
//! sim.faults().fail_next(3, ferrolb::lab::apiserver::Failure::Internal);
//! sim.shutdown();
//! # Ok(()) }
//! ```
//!
//! Run it alone with `ferrolb lab apiserver --https-listen 127.0.0.1:6443 --token T
//! --write-kubeconfig ./kubeconfig` (see `cli`); a test in another process drives its faults
//! and reads its request log through `/_sim/…` (see `sim`).
//!
//! One concept per file: `store` (objects, resourceVersion, history, Service allocation
//! index), `watch`, `handler` (authentication, faults, routing), `verbs` (get, list, create,
//! update, patch, delete), `strategy` (what create and update do to an object), `services`
//! (Service defaulting and allocation), `controllers` (the token controller), `endpoints` (the
//! lab's endpoint controller), `discovery`,
//! `openapi`, `tables`, `patch`, `selectors`, `protobuf` (request bodies of kubectl's typed
//! `create`), `faults`, `reqlog`, `tls`, `server` (listeners, restarts), `sim` (the `/_sim/…`
//! endpoints), `cli`.
//!
//! # Where it differs from a real API server
//!
//! - Authentication is one bearer token (none: anyone); plain HTTP lets requests without a
//!   token in unless `http_requires_token`. Nothing is authorized: RBAC objects are stored,
//!   not enforced (the request log records verb, group, resource, subresource and namespace
//!   so tests can check a client against its rules).
//! - HTTP/1.1 only; answers are JSON only. Protobuf request bodies are decoded for the kinds
//!   kubectl's typed `create` subcommands send (Namespace, ConfigMap, Secret, ServiceAccount,
//!   Service, Deployment, RBAC kinds), other protobuf bodies get 415. Server-side apply
//!   (`application/apply-patch+yaml`) gets 415; `managedFields` are not kept.
//! - Strategic merge patches merge lists by keys from a built-in table (Service ports by
//!   `port`, containers by `name`, conditions by `type`, …), not from schemas. Directives are
//!   honoured and never stored.
//! - The OpenAPI documents have paths but no schemas (`kubectl explain` shows little).
//!   `fieldValidation` detects unknown top-level and `metadata` fields only; deeper unknown
//!   fields are stored. Validation covers names, Services, Secret data and metadata types;
//!   other kinds take any `spec`.
//! - Deletion is immediate: no finalizers, no graceful deletion, no `deletionTimestamp`, no
//!   garbage collection; a Namespace is deleted with its contents at once.
//! - No controllers run but the service-account token controller (and, with
//!   `lab_endpoints`, the lab's endpoint controller, see `endpoints`): Deployments are not
//!   scaled, Services get no Endpoints (nor EndpointSlices without `lab_endpoints`), there is
//!   no `kubernetes` Service,
//!   nothing emits Events, Leases are plain objects (as they are in a real cluster).
//! - The watch history is a number of changes (`history`), not a time window. Bookmarks come
//!   every `bookmark_interval`. A list with `resourceVersion=N` (NotOlderThan) answers the
//!   current state, also for an N in the future (the real server waits, then 504s); a watch
//!   from a future N starts after it. `Exact` lists and continue tokens are served from the
//!   history and get 410 when it no longer reaches back.
//! - `limit` applies after selectors (the real server may return short pages with
//!   selectors); `remainingItemCount` is set only without selectors.
//! - Deleting a Service, Node or Namespace answers the object; other kinds a `Status`.

mod body;
pub mod cli;
mod controllers;
pub mod discovery;
pub mod endpoints;
pub mod faults;
mod handler;
pub mod meta;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod reqlog;
pub mod resources;
pub mod selectors;
mod server;
pub mod services;
mod sim;
pub mod status;
pub mod store;
mod strategy;
pub mod tables;
pub mod tls;
mod verbs;
mod watch;

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use cli::{run_cli, ApiserverArgs};
pub use faults::{Failure, Faults};
pub use reqlog::{Counters, RequestRecord};
pub use server::{ApiServerConfig, StartError};
pub use services::ServiceRanges;

/// Starts a simulator (same as [`ApiServer::start`]).
pub async fn start(config: ApiServerConfig) -> Result<ApiServer, StartError> {
    ApiServer::start(config).await
}

/// A running simulator. Dropping it shuts it down.
pub struct ApiServer {
    shared: Arc<server::Shared>,
    ca_pem: String,
}

fn url(scheme: &str, addr: &SocketAddr) -> String {
    let ip = if addr.ip().is_unspecified() {
        if addr.is_ipv4() {
            "127.0.0.1".parse().unwrap_or(addr.ip())
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        }
    } else {
        addr.ip()
    };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

fn yaml_quote(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

// === impl ApiServer ===

impl ApiServer {
    /// Starts listening on the configured addresses (port 0 picks a free port; see
    /// `http_addrs`/`https_addrs` for the real ones). Needs a tokio runtime.
    pub async fn start(config: ApiServerConfig) -> Result<ApiServer, StartError> {
        let (shared, ca_pem) = server::start(config).await?;
        Ok(ApiServer { shared, ca_pem })
    }

    /// The plain HTTP addresses.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.shared.http_addrs
    }

    /// The HTTPS addresses.
    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.shared.https_addrs
    }

    /// `http://ip:port` of the first HTTP listener.
    pub fn http_url(&self) -> Option<String> {
        self.shared.http_addrs.first().map(|a| url("http", a))
    }

    /// `https://ip:port` of the first HTTPS listener.
    pub fn https_url(&self) -> Option<String> {
        self.shared.https_addrs.first().map(|a| url("https", a))
    }

    /// The CA certificate (PEM) that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The bearer token, if one is required.
    pub fn token(&self) -> Option<&str> {
        self.shared.config.token.as_deref()
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.records()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.shared.log.clear();
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.shared.log.counters()
    }

    /// The store's current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.resource_version()
    }

    /// The object store (to seed or inspect objects without HTTP).
    pub fn store(&self) -> &store::Store {
        &self.shared.store
    }

    /// Sends one request through the simulator in-process: the same routing, verbs, faults
    /// and request log as over HTTP (with the token, when one is set). A body is sent as
    /// `application/json`, or `application/merge-patch+json` for PATCH. Returns the status
    /// code and the JSON answer (a `Status` on errors).
    pub async fn request(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        use http_body_util::{BodyExt, Full};
        let content_type = if method.eq_ignore_ascii_case("PATCH") {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap_or_default())
            .unwrap_or_default();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("user-agent", "ferrolb-lab/in-process")
            .header("content-type", content_type);
        if let Some(t) = self.token() {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match req.body(Full::new(bytes::Bytes::from(bytes))) {
            Ok(r) => r,
            Err(e) => {
                let err = status::ApiError::bad_request(format!("invalid request: {e}"));
                return (err.code, err.to_status());
            }
        };
        let resp = handler::handle(self.shared.clone(), req, true).await;
        let code = resp.status().as_u16();
        let body = match resp.into_body().collect().await {
            Ok(c) => c.to_bytes(),
            Err(never) => match never {},
        };
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    /// The object at an API path (`/api/v1/namespaces/default/services/web`), read from the
    /// store directly: not logged, no faults, no auth (for tests that wait for a state
    /// without adding to the request log they check). `None` when there is none.
    pub fn object(&self, path: &str) -> Option<Value> {
        let t = handler::target_of(path)?;
        let name = t.name.as_deref()?;
        let ns = t.namespace.as_deref().unwrap_or("");
        let stored = self.shared.store.get(t.def.storage, ns, name)?;
        Some(t.def.to_view(&stored))
    }

    /// The objects at a collection path (`/api/v1/services`,
    /// `/apis/coordination.k8s.io/v1/namespaces/kube-system/leases`), read from the store
    /// directly like [`ApiServer::object`].
    pub fn objects(&self, path: &str) -> Vec<Value> {
        let Some(t) = handler::target_of(path).filter(|t| t.name.is_none()) else {
            return Vec::new();
        };
        let (items, _) = self
            .shared
            .store
            .list(t.def.storage, t.namespace.as_deref());
        items.iter().map(|o| t.def.to_view(o)).collect()
    }

    /// Waits until `done` holds for the objects at `path` (a collection path, or an object
    /// path: then the slice holds that object, or nothing), reading the store directly like
    /// [`ApiServer::objects`]. Returns the objects that satisfied it, or the last ones seen
    /// after `timeout`.
    pub async fn wait_for(
        &self,
        path: &str,
        timeout: Duration,
        mut done: impl FnMut(&[Value]) -> bool,
    ) -> Result<Vec<Value>, Vec<Value>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let now = match handler::target_of(path) {
                Some(t) if t.name.is_some() => self.object(path).into_iter().collect(),
                _ => self.objects(path),
            };
            if done(&now) {
                return Ok(now);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(now);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Creates an object (its `apiVersion`, `kind` and `metadata.namespace` say where), as
    /// `POST` does; returns the stored object or the error `Status`.
    pub async fn create(&self, obj: &Value) -> Result<Value, Value> {
        let api_version = obj["apiVersion"].as_str().unwrap_or("");
        let kind = obj["kind"].as_str().unwrap_or("");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let Some(def) = resources::RESOURCES
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
        else {
            return Err(status::ApiError::bad_request(format!(
                "no resource serves {api_version} {kind}"
            ))
            .to_status());
        };
        let ns = obj["metadata"]["namespace"].as_str().unwrap_or("default");
        let path = if def.namespaced {
            format!(
                "{}/namespaces/{ns}/{}",
                def.group_version_path(),
                def.plural
            )
        } else {
            format!("{}/{}", def.group_version_path(), def.plural)
        };
        match self.request("POST", &path, Some(obj)).await {
            (201, v) => Ok(v),
            (_, v) => Err(v),
        }
    }

    /// Simulates an API server restart: closes every connection and listener, refuses
    /// connections for `down`, then listens on the same addresses again. Data and
    /// resourceVersions are kept.
    pub async fn restart(&self, down: Duration) -> io::Result<()> {
        self.shared.restart(down).await
    }

    /// Stops listening and closes every connection.
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// A kubeconfig for this server (HTTPS with the CA and token when `https`, else plain HTTP).
    pub fn kubeconfig(&self, https: bool) -> Option<String> {
        use base64::Engine;
        let server = if https {
            self.https_url()?
        } else {
            self.http_url()?
        };
        let mut cluster = format!("    server: {}\n", yaml_quote(&server));
        if https {
            let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
            cluster.push_str(&format!("    certificate-authority-data: {ca}\n"));
        }
        let user = match (https, self.token()) {
            (true, Some(t)) => format!("  user:\n    token: {}\n", yaml_quote(t)),
            _ => "  user: {}\n".to_string(),
        };
        Some(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: ferrolb-lab\n  cluster:\n{cluster}\
             users:\n- name: ferrolb-lab\n{user}\
             contexts:\n- name: ferrolb-lab\n  context:\n    cluster: ferrolb-lab\n    user: ferrolb-lab\n    namespace: default\n\
             current-context: ferrolb-lab\npreferences: {{}}\n"
        ))
    }

    /// Writes `kubeconfig(https)` to `path` (mode 0600).
    pub fn write_kubeconfig(&self, path: &Path, https: bool) -> io::Result<()> {
        let text = self.kubeconfig(https).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                if https {
                    "no HTTPS listener"
                } else {
                    "no HTTP listener"
                },
            )
        })?;
        write_private(path, text.as_bytes())
    }

    /// Writes the CA certificate (PEM) to `path`.
    pub fn write_ca(&self, path: &Path) -> io::Result<()> {
        std::fs::write(path, self.ca_pem.as_bytes())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}
