//! Performs the allocator's [`Action`]s against the API, one at a time, only while this node
//! leads. A write refused because the Service changed (409) or failed for any other reason is
//! never retried blindly: the Service is read again and handed back to the main loop, which
//! decides again on the fresh object (re-read, re-decide, retry).

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use tokio::sync::{mpsc, watch};

use crate::allocator::{Action, Note, Severity};
use crate::kube::backoff::Backoff;
use crate::kube::events::{EventRecorder, EventType, ServiceEvent};
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
    while let Some(action) = actions.recv().await {
        if !*leading.borrow() {
            // Lost the Lease since deciding: the new holder decides from the API's state.
            continue;
        }
        let key = action.key().clone();
        match perform(&client, &events, action).await {
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

async fn perform(client: &Client, events: &EventRecorder, action: Action) -> Result<(), KubeError> {
    match action {
        Action::Write {
            key,
            resource_version,
            addresses,
            pool,
            status_changed,
            note,
        } => {
            if status_changed {
                status::write_ingress(client, &key, &resource_version, &addresses).await?;
                tracing::info!(service = %key, ?addresses, %pool, "addresses assigned");
            }
            let svc = status::annotate_pool(client, &key, Some(&pool)).await?;
            record(events, &svc, note);
            Ok(())
        }
        Action::Clear {
            key,
            resource_version,
            note,
        } => {
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
            events.record(ServiceEvent {
                namespace: key.namespace,
                name: key.name,
                uid,
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
        events.record(ServiceEvent::new(svc, kind, note.reason, note.message));
    }
}

async fn read(client: &Client, key: &ObjectKey) -> Result<ServiceInfo, KubeError> {
    let path = format!("/api/v1/namespaces/{}/services/{}", key.namespace, key.name);
    client
        .get::<Service>(&path, &[])
        .await
        .map(ServiceInfo::from)
}
