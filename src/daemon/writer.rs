//! Performs the allocator's [`Action`]s against the API, one at a time, only while this node
//! leads. A write refused because the Service changed (409) or failed for any other reason is
//! never retried blindly: the Service is read again and handed back to the main loop, which
//! decides again on the fresh object (re-read, re-decide, retry).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use tokio::sync::{mpsc, watch};

use crate::allocator::{Action, Note, Severity};
use crate::kube::backoff::Backoff;
use crate::kube::events::{EventRecorder, EventType, Involved, ObjectEvent};
use crate::kube::objects::{ObjectKey, ServiceInfo};
use crate::kube::reflector::Update;
use crate::kube::{status, Client, KubeError};

/// Runs until the action channel closes.
pub async fn run(
    client: Client,
    events: EventRecorder,
    leading: watch::Receiver<bool>,
    mut actions: mpsc::UnboundedReceiver<Action>,
    reread: mpsc::Sender<Update<ServiceInfo>>,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
    let mut annotated = Annotated::default();
    while let Some(action) = actions.recv().await {
        if !*leading.borrow() {
            // Lost the Lease since deciding: the new holder decides from the API's state.
            continue;
        }
        let key = action.key().clone();
        match perform(&client, &events, &mut annotated, action).await {
            // The watch brings the written Service back in order; feeding our own response in
            // too could let an older watch event overtake it.
            Ok(()) => backoff.reset(),
            Err(error) if error.is_not_found() => {
                tracing::debug!(service = %key, "service gone before the write");
            }
            Err(error) => {
                let delay = if error.is_conflict() {
                    tracing::debug!(service = %key, "service changed since the decision; deciding again");
                    Duration::ZERO
                } else {
                    let delay = backoff.next_delay(fastrand::f64(), error.retry_after());
                    tracing::warn!(service = %key, %error, retry_in = ?delay, "status write failed");
                    delay
                };
                let client = client.clone();
                let reread = reread.clone();
                // Re-read in the background so one slow Service does not hold up the others.
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    match read(&client, &key).await {
                        Ok(svc) => {
                            let _ = reread.send(Update::Applied(svc)).await;
                        }
                        Err(e) if e.is_not_found() => {
                            let _ = reread.send(Update::Deleted(key)).await;
                        }
                        Err(e) => {
                            tracing::warn!(service = %key, error = %e, "re-read failed; the next watch event or resync decides again")
                        }
                    }
                });
            }
        }
    }
}

/// Services whose status this writer set and then annotated: the `resourceVersion` the status
/// write produced, and the pool. The watch brings that intermediate version (addresses, no
/// annotation yet) to the allocator, which asks for the annotation again; that request would be
/// a duplicate of the patch that already followed the status write, so it is skipped.
#[derive(Default)]
struct Annotated(HashMap<ObjectKey, (String, String)>);

/// Entries are consumed by the intermediate watch event; this bounds the map if one never comes
/// (e.g. a relist skipped it).
const ANNOTATED_MAX: usize = 4096;

impl Annotated {
    fn insert(&mut self, key: ObjectKey, status_rv: String, pool: String) {
        if self.0.len() >= ANNOTATED_MAX {
            self.0.clear();
        }
        self.0.insert(key, (status_rv, pool));
    }

    /// Whether the annotation write for `key` at `rv` with `pool` was already done.
    fn take(&mut self, key: &ObjectKey, rv: &str, pool: &str) -> bool {
        let done = self.0.get(key).is_some_and(|(r, p)| r == rv && p == pool);
        if done {
            self.0.remove(key);
        }
        done
    }
}

async fn perform(
    client: &Client,
    events: &EventRecorder,
    annotated: &mut Annotated,
    action: Action,
) -> Result<(), KubeError> {
    match action {
        Action::Write {
            key,
            resource_version,
            addresses,
            pool,
            status_changed,
            note,
        } => {
            let mut status_rv = None;
            if status_changed {
                let svc =
                    status::write_ingress(client, &key, &resource_version, &addresses).await?;
                tracing::info!(service = %key, ?addresses, %pool, "addresses assigned");
                status_rv = Some(svc.resource_version);
            } else if annotated.take(&key, &resource_version, &pool) {
                return Ok(());
            }
            let svc = status::annotate_pool(client, &key, Some(&pool)).await?;
            if let Some(rv) = status_rv {
                annotated.insert(key, rv, pool);
            }
            record(events, &svc, note);
            Ok(())
        }
        Action::Clear {
            key,
            resource_version,
            note,
        } => {
            annotated.0.remove(&key);
            status::write_ingress(client, &key, &resource_version, &[]).await?;
            let svc = status::annotate_pool(client, &key, None).await?;
            tracing::info!(service = %key, "addresses cleared");
            record(events, &svc, note);
            Ok(())
        }
        Action::Report { key, uid, note } => {
            tracing::warn!(service = %key, reason = note.reason, message = %note.message, "not allocated");
            let kind = match note.severity {
                Severity::Normal => EventType::Normal,
                Severity::Warning => EventType::Warning,
            };
            events.record(ObjectEvent {
                object: Involved::Service {
                    namespace: key.namespace,
                    name: key.name,
                    uid,
                },
                kind,
                reason: note.reason.to_string(),
                message: note.message,
            });
            Ok(())
        }
    }
}

fn record(events: &EventRecorder, svc: &ServiceInfo, note: Option<Note>) {
    if let Some(note) = note {
        let kind = match note.severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        };
        events.record(ObjectEvent::service(svc, kind, note.reason, note.message));
    }
}

async fn read(client: &Client, key: &ObjectKey) -> Result<ServiceInfo, KubeError> {
    let path = format!("/api/v1/namespaces/{}/services/{}", key.namespace, key.name);
    client
        .get::<Service>(&path, &[])
        .await
        .map(ServiceInfo::from)
}
