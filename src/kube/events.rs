//! Events on Services, in MetalLB's reasons and message style so `kubectl describe svc` reads
//! the same (`IPAllocated`, `AllocationFailed`, `ClearAssignment`, `nodeAssigned`, …), and on
//! this node's Node (`ConfigMismatch`), which `kubectl describe node` shows. Sending is
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

/// The object an Event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Involved {
    /// A Service.
    Service {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// Its uid.
        uid: String,
    },
    /// A Node. Nodes have no namespace: their Events go to `default` and carry the node's
    /// name as uid, as the kubelet's do (so they show in `kubectl describe node`).
    Node {
        /// Its name.
        name: String,
    },
}

impl Involved {
    /// The namespace the Event is created in.
    fn event_namespace(&self) -> &str {
        match self {
            Involved::Service { namespace, .. } => namespace,
            Involved::Node { .. } => "default",
        }
    }

    fn name(&self) -> &str {
        match self {
            Involved::Service { name, .. } | Involved::Node { name } => name,
        }
    }

    fn reference(&self) -> ObjectReference {
        match self {
            Involved::Service {
                namespace,
                name,
                uid,
            } => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Service".into()),
                namespace: Some(namespace.clone()),
                name: Some(name.clone()),
                uid: Some(uid.clone()),
                ..ObjectReference::default()
            },
            Involved::Node { name } => ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(name.clone()),
                uid: Some(name.clone()),
                ..ObjectReference::default()
            },
        }
    }
}

impl std::fmt::Display for Involved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Involved::Service {
                namespace, name, ..
            } => write!(f, "service {namespace}/{name}"),
            Involved::Node { name } => write!(f, "node {name}"),
        }
    }
}

/// One event to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectEvent {
    /// What it is about.
    pub object: Involved,
    /// `Normal` or `Warning`.
    pub kind: EventType,
    /// Short CamelCase reason.
    pub reason: String,
    /// The message.
    pub message: String,
}

impl ObjectEvent {
    /// An event about `svc`.
    pub fn service(svc: &ServiceInfo, kind: EventType, reason: &str, message: String) -> Self {
        ObjectEvent {
            object: Involved::Service {
                namespace: svc.key.namespace.clone(),
                name: svc.key.name.clone(),
                uid: svc.uid.clone(),
            },
            kind,
            reason: reason.to_string(),
            message,
        }
    }

    /// An event about the Node `node`.
    pub fn node(node: &str, kind: EventType, reason: &str, message: String) -> Self {
        ObjectEvent {
            object: Involved::Node {
                name: node.to_string(),
            },
            kind,
            reason: reason.to_string(),
            message,
        }
    }
}

/// The sending side: cheap to clone, never blocks.
#[derive(Clone, Debug)]
pub struct EventRecorder {
    tx: mpsc::Sender<ObjectEvent>,
}

impl EventRecorder {
    /// Starts the sending task; `component` is e.g. `ferrolb-allocator`, `host` the node name.
    pub fn spawn(client: Client, component: String, host: String) -> EventRecorder {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(send_loop(client, component, host, rx));
        EventRecorder { tx }
    }

    /// Queues an event; drops it (with a log line) when the queue is full.
    pub fn record(&self, event: ObjectEvent) {
        if let Err(error) = self.tx.try_send(event) {
            tracing::debug!(%error, "event dropped");
        }
    }
}

async fn send_loop(
    client: Client,
    component: String,
    host: String,
    mut rx: mpsc::Receiver<ObjectEvent>,
) {
    // (object, reason, message) → (event name, count)
    let mut seen: HashMap<(Involved, String, String), (String, i32)> = HashMap::new();
    while let Some(ev) = rx.recv().await {
        let now = Timestamp::now();
        let key = (ev.object.clone(), ev.reason.clone(), ev.message.clone());
        let namespace = ev.object.event_namespace();
        let collection = format!("/api/v1/namespaces/{namespace}/events");
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
            ev.object.name(),
            now.as_nanosecond(),
            fastrand::u16(..)
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(namespace.to_string()),
                ..ObjectMeta::default()
            },
            involved_object: ev.object.reference(),
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
                tracing::warn!(object = %ev.object, reason = %ev.reason, %error, "could not record event")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_events_go_to_default_and_name_the_node_as_the_kubelet_does() {
        let node = Involved::Node {
            name: "node1".into(),
        };
        assert_eq!(node.event_namespace(), "default");
        let r = node.reference();
        assert_eq!(r.kind.as_deref(), Some("Node"));
        assert_eq!(r.name.as_deref(), Some("node1"));
        assert_eq!(r.uid.as_deref(), Some("node1"));
        assert_eq!(r.namespace, None);
        let svc = Involved::Service {
            namespace: "shop".into(),
            name: "web".into(),
            uid: "u-1".into(),
        };
        assert_eq!(svc.event_namespace(), "shop");
        assert_eq!(svc.reference().namespace.as_deref(), Some("shop"));
        assert_eq!(svc.to_string(), "service shop/web");
    }
}
