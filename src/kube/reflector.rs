//! Reflectors: keep a consumer's view of one resource in step with the API server — list, then
//! watch from the list's `resourceVersion` with bookmarks; on a closed watch resume from the last
//! version seen; on 410 Gone relist; on errors back off with jitter (honouring `Retry-After`);
//! relist periodically as a safety net. With `watch = false`, poll by listing at an interval
//! instead (for API paths behind proxies that cut long-lived connections).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::backoff::Backoff;
use super::client::{Client, ObjectList, WatchEvent};
use super::error::KubeError;
use super::objects::{EndpointSliceInfo, NodeInfo, ObjectKey, ServiceInfo};

/// A resource the daemon reflects, with its slim in-memory form.
pub trait Reflected: Clone + Send + Sync + 'static {
    /// The API type as served.
    type Raw: DeserializeOwned + Metadata<Ty = ObjectMeta> + Send + 'static;
    /// The collection path across all namespaces.
    const PATH: &'static str;
    /// A short name for logs.
    const KIND: &'static str;
    /// Converts (and slims) an object.
    fn from_raw(raw: Self::Raw) -> Self;
    /// The object's key in the consumer's map.
    fn key(&self) -> ObjectKey;
}

impl Reflected for ServiceInfo {
    type Raw = k8s_openapi::api::core::v1::Service;
    const PATH: &'static str = "/api/v1/services";
    const KIND: &'static str = "services";
    fn from_raw(raw: Self::Raw) -> Self {
        raw.into()
    }
    fn key(&self) -> ObjectKey {
        self.key.clone()
    }
}

impl Reflected for NodeInfo {
    type Raw = k8s_openapi::api::core::v1::Node;
    const PATH: &'static str = "/api/v1/nodes";
    const KIND: &'static str = "nodes";
    fn from_raw(raw: Self::Raw) -> Self {
        raw.into()
    }
    fn key(&self) -> ObjectKey {
        ObjectKey {
            namespace: String::new(),
            name: self.name.clone(),
        }
    }
}

impl Reflected for EndpointSliceInfo {
    type Raw = k8s_openapi::api::discovery::v1::EndpointSlice;
    const PATH: &'static str = "/apis/discovery.k8s.io/v1/endpointslices";
    const KIND: &'static str = "endpointslices";
    fn from_raw(raw: Self::Raw) -> Self {
        raw.into()
    }
    fn key(&self) -> ObjectKey {
        self.key.clone()
    }
}

/// What a reflector tells its consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum Update<T> {
    /// A complete, fresh list: replace everything known of this kind with it.
    Replaced(Vec<T>),
    /// An object was added or changed.
    Applied(T),
    /// An object was deleted.
    Deleted(ObjectKey),
}

/// How a reflector behaves.
#[derive(Debug, Clone)]
pub struct ReflectorSettings {
    /// Watch (true) or poll (false).
    pub watch: bool,
    /// Interval between lists when polling.
    pub poll_interval: Duration,
    /// Relist this often even when watching.
    pub resync_interval: Duration,
    /// Items per list page.
    pub page_size: u32,
    /// First retry delay.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_max: Duration,
    /// A watch that delivers nothing (not even a bookmark) for this long is reopened.
    pub watch_idle: Duration,
    /// Where the reflector counts restarts and errors (shared by the daemon's reflectors).
    pub health: Arc<Health>,
}

/// How the reflectors are doing, for metrics: atomics, updated as they go.
#[derive(Debug, Default)]
pub struct Health {
    watch_restarts: AtomicU64,
    errors: AtomicU64,
    /// Milliseconds since the Unix epoch of the last successful list, event or bookmark.
    last_ok_ms: AtomicU64,
}

/// A copy of [`Health`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Watches reopened (ended, expired, failed) or replaced by a relist.
    pub watch_restarts: u64,
    /// Lists and watches that failed.
    pub errors: u64,
    /// When the API last answered usefully (ms since the Unix epoch); 0: never.
    pub last_ok_ms: u64,
}

impl Health {
    /// The counts now.
    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            watch_restarts: self.watch_restarts.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_ok_ms: self.last_ok_ms.load(Ordering::Relaxed),
        }
    }

    fn ok(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.last_ok_ms.store(now, Ordering::Relaxed);
    }

    fn error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    fn restart(&self) {
        self.watch_restarts.fetch_add(1, Ordering::Relaxed);
    }
}

impl Default for ReflectorSettings {
    fn default() -> Self {
        ReflectorSettings {
            watch: true,
            poll_interval: Duration::from_secs(30),
            resync_interval: Duration::from_secs(600),
            page_size: 500,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            watch_idle: Duration::from_secs(150),
            health: Arc::default(),
        }
    }
}

/// Runs one reflector until the consumer drops its receiver.
pub async fn run<T: Reflected>(
    client: Client,
    settings: ReflectorSettings,
    tx: mpsc::Sender<Update<T>>,
) {
    let mut backoff = Backoff::new(settings.backoff_base, settings.backoff_max);
    loop {
        let version = match list::<T>(&client, settings.page_size).await {
            Ok((items, version)) => {
                backoff.reset();
                settings.health.ok();
                tracing::debug!(kind = T::KIND, items = items.len(), %version, "listed");
                if tx.send(Update::Replaced(items)).await.is_err() {
                    return;
                }
                version
            }
            Err(error) => {
                settings.health.error();
                let delay = backoff.next_delay(fastrand::f64(), error.retry_after());
                tracing::warn!(kind = T::KIND, %error, retry_in = ?delay, "list failed");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        if !settings.watch {
            tokio::time::sleep(settings.poll_interval).await;
            continue;
        }
        match watch_until_relist(&client, &settings, &tx, version, &mut backoff).await {
            WatchEnd::Relist => {}
            WatchEnd::ConsumerGone => return,
        }
    }
}

enum WatchEnd {
    Relist,
    ConsumerGone,
}

/// Watches from `version`, reopening the watch as needed, until a relist is due.
async fn watch_until_relist<T: Reflected>(
    client: &Client,
    settings: &ReflectorSettings,
    tx: &mpsc::Sender<Update<T>>,
    mut version: String,
    backoff: &mut Backoff,
) -> WatchEnd {
    let resync_at = Instant::now() + settings.resync_interval;
    while Instant::now() < resync_at {
        // Like client-go, ask the server to end each watch after a random 5–10 minutes so
        // connections through load balancers get rebalanced.
        let timeout = 300 + fastrand::u64(0..300);
        let query = [
            ("resourceVersion", version.clone()),
            ("allowWatchBookmarks", "true".to_string()),
            ("timeoutSeconds", timeout.to_string()),
        ];
        let opened = Instant::now();
        let stream = match client
            .watch::<T::Raw>(T::PATH, &query, settings.watch_idle)
            .await
        {
            Ok(stream) => stream,
            Err(error) if error.is_gone() => {
                settings.health.restart();
                tracing::info!(kind = T::KIND, "watch version expired; relisting");
                return WatchEnd::Relist;
            }
            Err(error) => {
                settings.health.error();
                settings.health.restart();
                let delay = backoff.next_delay(fastrand::f64(), error.retry_after());
                tracing::warn!(kind = T::KIND, %error, retry_in = ?delay, "watch failed");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let mut stream = std::pin::pin!(stream);
        let mut delivered = false;
        let mut failure: Option<KubeError> = None;
        while let Some(event) = futures_util::StreamExt::next(&mut stream).await {
            let update = match event {
                Ok(WatchEvent::Added(raw)) | Ok(WatchEvent::Modified(raw)) => {
                    remember_version(&mut version, raw.metadata());
                    Update::Applied(T::from_raw(raw))
                }
                Ok(WatchEvent::Deleted(raw)) => {
                    remember_version(&mut version, raw.metadata());
                    Update::Deleted(T::from_raw(raw).key())
                }
                Ok(WatchEvent::Bookmark(rv)) => {
                    settings.health.ok();
                    if !rv.is_empty() {
                        version = rv;
                    }
                    delivered = true;
                    continue;
                }
                Ok(WatchEvent::Error(status)) if status.code == 410 => {
                    settings.health.restart();
                    tracing::info!(kind = T::KIND, message = %status.message, "watch expired; relisting");
                    return WatchEnd::Relist;
                }
                Ok(WatchEvent::Error(status)) => {
                    settings.health.error();
                    tracing::warn!(kind = T::KIND, code = status.code, reason = %status.reason, message = %status.message, "watch ended with an error");
                    break;
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            };
            delivered = true;
            settings.health.ok();
            if tx.send(update).await.is_err() {
                return WatchEnd::ConsumerGone;
            }
        }
        // A watch that ends at once without delivering anything counts as a failure, so a
        // server that keeps dropping watches is not re-watched in a tight loop.
        settings.health.restart();
        if failure.is_some() {
            settings.health.error();
        }
        if delivered && failure.is_none() || opened.elapsed() > Duration::from_secs(30) {
            backoff.reset();
            tracing::debug!(kind = T::KIND, %version, "watch closed; resuming");
        } else {
            let delay = backoff.next_delay(fastrand::f64(), None);
            match failure {
                Some(error) => {
                    tracing::warn!(kind = T::KIND, %error, retry_in = ?delay, "watch broke")
                }
                None => tracing::debug!(kind = T::KIND, retry_in = ?delay, "watch closed early"),
            }
            tokio::time::sleep(delay).await;
        }
    }
    WatchEnd::Relist
}

fn remember_version(version: &mut String, meta: &ObjectMeta) {
    if let Some(rv) = &meta.resource_version {
        version.clone_from(rv);
    }
}

/// Lists every object, page by page, returning them with the list's `resourceVersion`. If a
/// continue token expires mid-list (410), the whole list starts again.
pub async fn list<T: Reflected>(
    client: &Client,
    page_size: u32,
) -> Result<(Vec<T>, String), KubeError> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("limit", page_size.to_string())];
        if let Some(t) = &token {
            query.push(("continue", t.clone()));
        }
        let page: ObjectList<T::Raw> = client.get(T::PATH, &query).await?;
        items.extend(page.items.into_iter().map(T::from_raw));
        match page.metadata.continue_token {
            Some(t) if !t.is_empty() => token = Some(t),
            _ => return Ok((items, page.metadata.resource_version)),
        }
    }
}
