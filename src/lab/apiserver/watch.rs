//! Watch streams: newline-delimited JSON events (`ADDED`, `MODIFIED`, `DELETED`, `BOOKMARK`,
//! `ERROR`) from a resourceVersion, with label and field selectors applied to both the old
//! and the new object (an object leaving the selection is `DELETED`, one entering it
//! `ADDED`), periodic bookmarks, `timeoutSeconds`, and 410 Expired as an ERROR event.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::body::{ChannelBody, ResponseBody};
use super::handler::{Query, Render, Target};
use super::meta::{meta_str, random_u64};
use super::reqlog::RequestLog;
use super::resources::ResourceDef;
use super::selectors::{FieldSelector, LabelSelector};
use super::server::Shared;
use super::status::{ApiError, ApiResult};
use super::store::{too_old, EventType, StoreEvent, Subscription};
use super::tables;

struct Filter {
    def: &'static ResourceDef,
    namespace: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    render: Render,
}

impl Filter {
    fn matches(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }
}

struct Stream {
    /// Changes at or below this version are not sent (a watch from a future version starts
    /// after it).
    after: u64,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Bytes>,
    filter: Filter,
    headers_sent: bool,
    progress: u64,
}

/// Starts a watch: answers 200 at once and streams events from a task.
pub fn start(
    shared: Arc<Shared>,
    target: &Target,
    query: &Query,
    render: Render,
) -> ApiResult<Response<ResponseBody>> {
    let def = target.def;
    let labels = LabelSelector::parse(query.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(query.get("fieldSelector").map_or("", String::as_str), def)?;
    let bookmarks = matches!(
        query.get("allowWatchBookmarks").map(String::as_str),
        Some("1" | "true" | "True")
    );
    // Streaming lists (`sendInitialEvents=true`): the current objects, then a bookmark
    // annotated `k8s.io/initial-events-end`, then changes.
    let initial_events = matches!(
        query.get("sendInitialEvents").map(String::as_str),
        Some("1" | "true" | "True")
    );
    if initial_events {
        if !bookmarks {
            return Err(ApiError::invalid_simple(
                "sendInitialEvents",
                "Forbidden: sendInitialEvents is forbidden for watch unless allowWatchBookmarks=true",
            ));
        }
        if query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
            return Err(ApiError::invalid_simple(
                "resourceVersionMatch",
                "Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
    }
    let from = match query.get("resourceVersion").map(String::as_str) {
        _ if initial_events => None,
        None | Some("") | Some("0") => None,
        Some(s) => Some(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s:?}")))?,
        ),
    };
    let timeout = match query.get("timeoutSeconds").filter(|s| !s.is_empty()) {
        Some(s) => Duration::from_secs(
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds {s:?}")))?,
        ),
        // The real server's default: a random time between 30 and 60 minutes.
        None => Duration::from_secs(1800 + random_u64() % 1800),
    };
    RequestLog::bump(&shared.log.watches_opened);
    let (tx, body) = ChannelBody::channel(64);
    let filter = Filter {
        def,
        namespace: target.namespace.clone(),
        labels,
        fields,
        render,
    };
    let forced = shared.faults.take_watch_expiry();
    let sub = if forced {
        // As if the history had just been compacted up to now.
        let now = shared.store.resource_version();
        Err(too_old(from.unwrap_or(0), now))
    } else {
        shared
            .store
            .subscribe(from, def.storage, target.namespace.as_deref())
    };
    let mut stream = Stream {
        after: from.unwrap_or(0),
        shared: shared.clone(),
        tx,
        filter,
        headers_sent: false,
        progress: 0,
    };
    tokio::spawn(async move {
        RequestLog::bump(&stream.shared.log.watches_active);
        match sub {
            Ok(sub) => stream.run(sub, bookmarks, initial_events, timeout).await,
            Err(err) => {
                let line = json!({"type": "ERROR", "object": err.to_status()});
                stream.send_line(&line).await;
            }
        }
        stream
            .shared
            .log
            .watches_active
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    });
    let mut resp = Response::new(body);
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(
        "cache-control",
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(resp)
}

// === impl Stream ===

impl Stream {
    async fn send_line(&mut self, line: &Value) -> bool {
        self.shared.faults.wait_if_stalled().await;
        let mut bytes = serde_json::to_vec(line).unwrap_or_default();
        bytes.push(b'\n');
        RequestLog::bump(&self.shared.log.watch_events);
        self.tx.send(Bytes::from(bytes)).await.is_ok()
    }

    fn render(&mut self, stored: &Value) -> Value {
        let def = self.filter.def;
        let view = def.to_view(stored);
        match self.filter.render {
            Render::Plain => view,
            Render::Metadata => tables::partial_metadata(&view),
            Render::Table(include) => {
                let rv = meta_str(&view, "resourceVersion").to_string();
                let row = tables::row(def, stored, &view, include);
                let headers = !self.headers_sent;
                self.headers_sent = true;
                tables::table(def, vec![row], headers, json!({"resourceVersion": rv}))
            }
        }
    }

    async fn send_event(&mut self, kind: EventType, stored: &Value) -> bool {
        let object = self.render(stored);
        self.send_line(&json!({"type": kind.as_str(), "object": object}))
            .await
    }

    /// Sends a change if it concerns this watch; false when the client is gone.
    async fn process(&mut self, ev: &StoreEvent) -> bool {
        self.progress = self.progress.max(ev.rv);
        if ev.rv <= self.after {
            return true;
        }
        let f = &self.filter;
        if ev.storage != f.def.storage
            || f.namespace.as_deref().is_some_and(|ns| ns != ev.namespace)
        {
            return true;
        }
        let now = f.matches(&ev.object);
        let before = ev.prev.as_deref().is_some_and(|p| f.matches(p));
        let kind = match (ev.kind, before, now) {
            (EventType::Added, _, true) => EventType::Added,
            (EventType::Deleted, true, _) => EventType::Deleted,
            (EventType::Modified, true, true) => EventType::Modified,
            (EventType::Modified, false, true) => EventType::Added,
            (EventType::Modified, true, false) => EventType::Deleted,
            _ => return true,
        };
        self.send_event(kind, &ev.object).await
    }

    fn bookmark(&self, initial_events_end: bool) -> Value {
        let mut metadata =
            json!({"resourceVersion": self.progress.to_string(), "creationTimestamp": null});
        if initial_events_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        json!({"type": "BOOKMARK", "object": {
            "kind": self.filter.def.kind,
            "apiVersion": self.filter.def.api_version(),
            "metadata": metadata,
        }})
    }

    async fn run(
        &mut self,
        sub: Subscription,
        bookmarks: bool,
        initial_events: bool,
        timeout: Duration,
    ) {
        let Subscription {
            backlog,
            mut live,
            rv,
            snapshot,
        } = sub;
        self.progress = rv;
        let mut drops = self.shared.faults.watch_drops();
        drops.borrow_and_update();
        for obj in &snapshot {
            if self.filter.matches(obj) && !self.send_event(EventType::Added, obj).await {
                return;
            }
        }
        if initial_events {
            let end = self.bookmark(true);
            RequestLog::bump(&self.shared.log.bookmarks);
            if !self.send_line(&end).await {
                return;
            }
        }
        for ev in &backlog {
            if !self.process(ev).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let period = self
            .shared
            .config
            .bookmark_interval
            .max(Duration::from_millis(10));
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = drops.changed() => return,
                _ = self.tx.closed() => return,
                _ = tick.tick(), if bookmarks => {
                    let bookmark = self.bookmark(false);
                    RequestLog::bump(&self.shared.log.bookmarks);
                    if !self.send_line(&bookmark).await {
                        return;
                    }
                }
                r = live.recv() => match r {
                    Ok(ev) => {
                        if !self.process(&ev).await {
                            return;
                        }
                    }
                    // Too slow a reader, or the store is gone: end the watch (the client
                    // resumes from its last version).
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
            }
        }
    }
}
