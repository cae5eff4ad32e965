//! Events on Services, in MetalLB's reasons and message style so `kubectl describe svc` reads
//! the same (`IPAllocated`, `AllocationFailed`, `ClearAssignment`, `nodeAssigned`, …). Sending is
//! asynchronous and best-effort: a bounded queue drained by one task, so an API outage never
//! blocks a decision and never piles up memory. A repeat of the same event on the same object
//! bumps the existing Event's `count` instead of creating another, as client-go does.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;
use tokio::sync::mpsc;

use super::client::{Client, PatchType};
use super::objects::ServiceInfo;

/// Events queued beyond this are dropped (and logged).
const QUEUE: usize = 256;
/// Remembered events for aggregation; forgotten wholesale when exceeded.
const REMEMBERED: usize = 4096;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Something worked.
    Normal,
    /// Something the user should look at.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One event to record on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEvent {
    /// Namespace of the Service.
    pub namespace: String,
    /// Name of the Service.
    pub name: String,
    /// Its uid.
    pub uid: String,
    /// `Normal` or `Warning`.
    pub kind: EventType,
    /// Short CamelCase reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

impl ServiceEvent {
    /// An event about `svc`.
    pub fn new(svc: &ServiceInfo, kind: EventType, reason: &str, message: String) -> Self {
        ServiceEvent {
            namespace: svc.key.namespace.clone(),
            name: svc.key.name.clone(),
            uid: svc.uid.clone(),
            kind,
            reason: reason.to_string(),
            message,
        }
    }
}

/// The sending side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<ServiceEvent>,
}

impl EventRecorder {
    /// Starts the sending task; `component` is e.g. `ferrolb-allocator`, `host` the node name.
    pub fn spawn(client: Client, component: String, host: String) -> EventRecorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send_loop(client, component, host, rx));
        EventRecorder { tx }
    }

    /// Queues an event; drops it (with a log line) when the queue is full.
    pub fn record(&self, event: ServiceEvent) {
        if let Err(error) = self.tx.try_send(event) {
            tracing::debug!(%error, "event dropped");
        }
    }
}

async fn send_loop(
    client: Client,
    component: String,
    host: String,
    mut rx: mpsc::Receiver<ServiceEvent>,
) {
    // (uid, reason, message) → (event name, count)
    let mut seen: HashMap<(String, String, String), (String, i32)> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let now = Timestamp::now();
        let key = (ev.uid.clone(), ev.reason.clone(), ev.message.clone());
        let collection = format!("/api/v1/namespaces/{}/events", ev.namespace);
        if let Some((name, count)) = seen.get_mut(&key) {
            *count += 1;
            let patch = json!({ "count": *count, "lastTimestamp": Time(now) });
            let path = format!("{collection}/{name}");
            match client.patch::<Event>(&path, PatchType::Merge, &patch).await {
                Ok(_) => continue,
                // Expired (events have a TTL) or never created: create a new one below.
                Err(error) => tracing::debug!(%error, "event aggregation failed"),
            }
        }
        let name = format!(
            "{}.{:x}{:04x}",
            ev.name,
            now.as_nanosecond(),
            fastrand::u16(..)
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(ev.namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(ev.namespace.clone()),
                name: Some(ev.name.clone()),
                uid: Some(ev.uid.clone()),
                ..ObjectReference::default()
            },
            type_: Some(ev.kind.as_str().into()),
            reason: Some(ev.reason.clone()),
            message: Some(ev.message.clone()),
            count: Some(1),
            first_timestamp: Some(Time(now)),
            last_timestamp: Some(Time(now)),
            reporting_component: Some(component.clone()),
            reporting_instance: Some(host.clone()),
            source: Some(EventSource {
                component: Some(component.clone()),
                host: Some(host.clone()),
            }),
            ..Event::default()
        };
        match client.create::<Event>(&collection, &event).await {
            Ok(_) => {
                if seen.len() >= REMEMBERED {
                    seen.clear();
                }
                seen.insert(key, (name, 1));
            }
            Err(error) => {
                tracing::warn!(service = %format!("{}/{}", ev.namespace, ev.name), reason = %ev.reason, %error, "could not record event")
            }
        }
    }
}
