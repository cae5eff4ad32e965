//! The request log and counters tests read: every API request (not the simulator's own
//! `/_sim/…` ones) with its method, path, query, user agent and status, and what Kubernetes
//! verb and resource it was (to check a client against its RBAC rules).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// One request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (`""` when none).
    pub query: String,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// The HTTP status answered.
    pub status: u16,
    /// Whether it came over HTTPS.
    pub tls: bool,
    /// The Kubernetes verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`); for non-resource requests (`resource` empty: `/version`, `/api`,
    /// `/openapi/v3`, …) the lowercased HTTP method, as RBAC's `nonResourceURLs` rules see it.
    pub verb: String,
    /// The API group (`""` for core).
    pub api_group: String,
    /// The resource plural (`services`), `""` for non-resource requests.
    pub resource: String,
    /// The subresource (`status`), if any.
    pub subresource: String,
    /// The namespace, if any.
    pub namespace: String,
    /// The object name, if any.
    pub name: String,
    /// The request's `Content-Type` (writes), `""` when none.
    pub content_type: String,
    /// Whether a write carried a `metadata.resourceVersion` precondition (PUT and JSON merge
    /// or strategic merge PATCH bodies; a JSON patch `test` of `/metadata/resourceVersion`
    /// counts too).
    pub precondition: bool,
}

/// Counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    /// API requests received (`/_sim/…` not counted).
    pub requests: u64,
    /// Requests answered with a failure injected by a fault.
    pub injected_failures: u64,
    /// Watch streams opened.
    pub watches_opened: u64,
    /// Watch streams open now.
    pub watches_active: u64,
    /// Watch events sent (BOOKMARK and ERROR included).
    pub watch_events: u64,
    /// BOOKMARK events sent.
    pub bookmarks: u64,
    /// Connections accepted.
    pub connections: u64,
    /// Restarts (`restart`).
    pub restarts: u64,
}

/// The log.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Mutex<Vec<RequestRecord>>,
    seq: AtomicU64,
    pub(crate) injected_failures: AtomicU64,
    pub(crate) watches_opened: AtomicU64,
    pub(crate) watches_active: AtomicU64,
    pub(crate) watch_events: AtomicU64,
    pub(crate) bookmarks: AtomicU64,
    pub(crate) connections: AtomicU64,
    pub(crate) restarts: AtomicU64,
}

/// Keeps the log bounded (oldest half dropped past this).
const MAX_RECORDS: usize = 200_000;

// === impl RequestLog ===

impl RequestLog {
    /// Records a request; returns its sequence number.
    pub fn record(&self, mut rec: RequestRecord) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed) + 1;
        rec.seq = seq;
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= MAX_RECORDS {
            records.drain(..MAX_RECORDS / 2);
        }
        records.push(rec);
        seq
    }

    /// Every recorded request, oldest first.
    pub fn records(&self) -> Vec<RequestRecord> {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Forgets the recorded requests (the counters stay).
    pub fn clear(&self) {
        self.records
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            requests: get(&self.seq),
            injected_failures: get(&self.injected_failures),
            watches_opened: get(&self.watches_opened),
            watches_active: get(&self.watches_active),
            watch_events: get(&self.watch_events),
            bookmarks: get(&self.bookmarks),
            connections: get(&self.connections),
            restarts: get(&self.restarts),
        }
    }

    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
