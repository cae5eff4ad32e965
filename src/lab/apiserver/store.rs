//! The object store: every object as JSON, one global `resourceVersion` counter, a bounded
//! history of changes (for watches that resume and for consistent paginated lists), and a
//! broadcast of changes to open watches.
//!
//! Writes happen in transactions (`Store::transact`): the closure sees a consistent store,
//! may read, put and delete several objects, and its changes are applied, numbered and
//! published only when it returns `Ok` (an `Err` rolls them back).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::Value;
use tokio::sync::broadcast;

use super::services::ServiceIndex;
use super::status::{ApiError, ApiResult};

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// An object was created.
    Added,
    /// An object was changed.
    Modified,
    /// An object was deleted.
    Deleted,
}

// === impl EventType ===

impl EventType {
    /// `ADDED`, `MODIFIED`, `DELETED`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as watches receive it.
#[derive(Debug)]
pub struct StoreEvent {
    /// The resourceVersion this change produced.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// The storage key (`services`).
    pub storage: &'static str,
    /// `""` for cluster-scoped objects.
    pub namespace: String,
    /// The object's name.
    pub name: String,
    /// The object after the change (for a delete: the last state, with `rv`).
    pub object: Arc<Value>,
    /// The object before the change (`None` for a create).
    pub prev: Option<Arc<Value>>,
}

type Key = (&'static str, String, String);

struct Inner {
    rv: u64,
    objects: BTreeMap<Key, Arc<Value>>,
    history: VecDeque<Arc<StoreEvent>>,
    history_limit: usize,
    /// Every change with a resourceVersion above `floor` is still in `history`.
    floor: u64,
    /// The cluster IPs and node ports of the stored Services.
    services: ServiceIndex,
}

/// The storage whose objects are indexed for allocation.
const INDEXED: &str = "services";

impl Inner {
    fn set(&mut self, key: Key, value: Option<Arc<Value>>) -> Option<Arc<Value>> {
        let indexed = key.0 == INDEXED;
        let prev = match value {
            Some(v) => {
                if indexed {
                    self.services.add(&v);
                }
                self.objects.insert(key, v)
            }
            None => self.objects.remove(&key),
        };
        if indexed {
            if let Some(p) = &prev {
                self.services.remove(p);
            }
        }
        prev
    }
}

/// The store. Cheap to share behind an `Arc`.
pub struct Store {
    inner: Mutex<Inner>,
    tx: broadcast::Sender<Arc<StoreEvent>>,
}

/// What a transaction sees and changes.
pub struct Txn<'a> {
    inner: &'a mut Inner,
    undo: Vec<(Key, Option<Arc<Value>>)>,
    events: Vec<Arc<StoreEvent>>,
    start_rv: u64,
}

/// A new watch: the changes after the requested version still in history, and the live feed.
pub struct Subscription {
    /// Changes with a resourceVersion above the requested one, oldest first.
    pub backlog: Vec<Arc<StoreEvent>>,
    /// Changes from now on.
    pub live: broadcast::Receiver<Arc<StoreEvent>>,
    /// The current resourceVersion when subscribing.
    pub rv: u64,
    /// For a watch from now: the objects that exist now (sent as ADDED first).
    pub snapshot: Vec<Arc<Value>>,
}

/// The watch capacity: a watcher this far behind is dropped (it resumes from its last version).
const BROADCAST_CAPACITY: usize = 16_384;

/// The real server's words for a version out of the window: `too old resource version: 5 (10)`.
pub fn too_old(requested: u64, floor: u64) -> ApiError {
    ApiError::expired(format!("too old resource version: {requested} ({floor})"))
}

// === impl Store ===

impl Store {
    /// An empty store keeping `history_limit` changes for watches and paginated lists.
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: BTreeMap::new(),
                history: VecDeque::new(),
                history_limit: history_limit.max(1),
                floor: 1,
                services: ServiceIndex::default(),
            }),
            tx,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the map half-written (all changes are
        // single inserts), so a poisoned lock is still consistent.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The oldest resourceVersion a watch may still resume from.
    pub fn floor(&self) -> u64 {
        self.lock().floor
    }

    /// Runs `f` as one transaction.
    pub fn transact<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> ApiResult<R>) -> ApiResult<R> {
        self.transact_opt(true, f)
    }

    /// Runs `f` as one transaction, committed when `commit` (else rolled back even on `Ok`:
    /// a dry run).
    pub fn transact_opt<R>(
        &self,
        commit: bool,
        f: impl FnOnce(&mut Txn<'_>) -> ApiResult<R>,
    ) -> ApiResult<R> {
        let mut inner = self.lock();
        let start_rv = inner.rv;
        let mut txn = Txn {
            inner: &mut inner,
            undo: Vec::new(),
            events: Vec::new(),
            start_rv,
        };
        match f(&mut txn) {
            Ok(r) if commit => {
                let events = std::mem::take(&mut txn.events);
                drop(txn);
                for ev in events {
                    inner.history.push_back(ev.clone());
                    while inner.history.len() > inner.history_limit {
                        if let Some(old) = inner.history.pop_front() {
                            inner.floor = old.rv;
                        }
                    }
                    // No receivers is fine.
                    let _ = self.tx.send(ev);
                }
                Ok(r)
            }
            result => {
                let undo = std::mem::take(&mut txn.undo);
                drop(txn);
                for (key, old) in undo.into_iter().rev() {
                    inner.set(key, old);
                }
                inner.rv = start_rv;
                result
            }
        }
    }

    /// One object.
    pub fn get(&self, storage: &'static str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(&(storage, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The objects of a storage (in one namespace, or all), sorted by namespace and name, with
    /// the resourceVersion they are current at.
    pub fn list(&self, storage: &'static str, namespace: Option<&str>) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let items = range(&inner.objects, storage, namespace).cloned().collect();
        (items, inner.rv)
    }

    /// The objects as they were at resourceVersion `rv` (reconstructed from history), or 410.
    pub fn list_at(
        &self,
        storage: &'static str,
        namespace: Option<&str>,
        rv: u64,
    ) -> ApiResult<Vec<Arc<Value>>> {
        let inner = self.lock();
        if rv >= inner.rv {
            return Ok(range(&inner.objects, storage, namespace).cloned().collect());
        }
        if rv < inner.floor {
            return Err(too_old(rv, inner.floor));
        }
        let mut state: BTreeMap<Key, Arc<Value>> = range(&inner.objects, storage, namespace)
            .map(|v| (key_of(storage, v), v.clone()))
            .collect();
        for ev in inner.history.iter().rev() {
            if ev.rv <= rv {
                break;
            }
            if ev.storage != storage || namespace.is_some_and(|ns| ns != ev.namespace) {
                continue;
            }
            let key = (storage, ev.namespace.clone(), ev.name.clone());
            match (&ev.kind, &ev.prev) {
                (EventType::Added, _) => {
                    state.remove(&key);
                }
                (_, Some(prev)) => {
                    state.insert(key, prev.clone());
                }
                (_, None) => {}
            }
        }
        Ok(state.into_values().collect())
    }

    /// Starts a watch after resourceVersion `from`, or 410 when the changes after `from` are
    /// no longer all in history. `None` starts from now, with a snapshot of the objects of
    /// `storage` (in `namespace`, or all).
    pub fn subscribe(
        &self,
        from: Option<u64>,
        storage: &'static str,
        namespace: Option<&str>,
    ) -> ApiResult<Subscription> {
        let inner = self.lock();
        let live = self.tx.subscribe();
        let (backlog, snapshot) = match from {
            None => (
                Vec::new(),
                range(&inner.objects, storage, namespace).cloned().collect(),
            ),
            Some(rv) if rv < inner.floor => return Err(too_old(rv, inner.floor)),
            Some(rv) => (
                inner
                    .history
                    .iter()
                    .filter(|e| e.rv > rv)
                    .cloned()
                    .collect(),
                Vec::new(),
            ),
        };
        Ok(Subscription {
            backlog,
            live,
            rv: inner.rv,
            snapshot,
        })
    }
}

fn key_of(storage: &'static str, v: &Value) -> Key {
    (
        storage,
        super::meta::meta_str(v, "namespace").to_string(),
        super::meta::meta_str(v, "name").to_string(),
    )
}

fn range<'a>(
    objects: &'a BTreeMap<Key, Arc<Value>>,
    storage: &'static str,
    namespace: Option<&'a str>,
) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
    let start = (storage, namespace.unwrap_or("").to_string(), String::new());
    objects
        .range(start..)
        .take_while(move |((s, ns, _), _)| *s == storage && namespace.is_none_or(|n| n == ns))
        .map(|(_, v)| v)
}

fn with_rv(mut obj: Value, rv: u64) -> Value {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
    obj
}

fn same_ignoring_rv(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
        }
        v
    };
    strip(a) == strip(b)
}

// === impl Txn ===

impl Txn<'_> {
    /// One object.
    pub fn get(&self, storage: &'static str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.inner
            .objects
            .get(&(storage, namespace.to_string(), name.to_string()))
            .cloned()
    }

    /// The objects of a storage (in one namespace, or all).
    pub fn iter<'b>(
        &'b self,
        storage: &'static str,
        namespace: Option<&'b str>,
    ) -> impl Iterator<Item = &'b Arc<Value>> + 'b {
        range(&self.inner.objects, storage, namespace)
    }

    /// The cluster IPs and node ports the stored Services hold.
    pub fn service_index(&self) -> &ServiceIndex {
        &self.inner.services
    }

    /// The resourceVersion before this transaction.
    pub fn start_rv(&self) -> u64 {
        self.start_rv
    }

    /// Creates or replaces an object, giving it the next resourceVersion. An object equal to
    /// the stored one (ignoring `resourceVersion`) is left alone: no new version, no event.
    pub fn put(
        &mut self,
        storage: &'static str,
        namespace: &str,
        name: &str,
        obj: Value,
    ) -> Arc<Value> {
        let key: Key = (storage, namespace.to_string(), name.to_string());
        let prev = self.inner.objects.get(&key).cloned();
        if let Some(p) = &prev {
            if same_ignoring_rv(p, &obj) {
                return p.clone();
            }
        }
        self.inner.rv += 1;
        let rv = self.inner.rv;
        let stored = Arc::new(with_rv(obj, rv));
        self.undo.push((key.clone(), prev.clone()));
        self.inner.set(key, Some(stored.clone()));
        self.events.push(Arc::new(StoreEvent {
            rv,
            kind: if prev.is_some() {
                EventType::Modified
            } else {
                EventType::Added
            },
            storage,
            namespace: namespace.to_string(),
            name: name.to_string(),
            object: stored.clone(),
            prev,
        }));
        stored
    }

    /// Deletes an object; returns its last state carrying the deletion's resourceVersion.
    pub fn delete(
        &mut self,
        storage: &'static str,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let key: Key = (storage, namespace.to_string(), name.to_string());
        let prev = self.inner.set(key.clone(), None)?;
        self.inner.rv += 1;
        let rv = self.inner.rv;
        let last = Arc::new(with_rv((*prev).clone(), rv));
        self.undo.push((key, Some(prev.clone())));
        self.events.push(Arc::new(StoreEvent {
            rv,
            kind: EventType::Deleted,
            storage,
            namespace: namespace.to_string(),
            name: name.to_string(),
            object: last.clone(),
            prev: Some(prev),
        }));
        Some(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(name: &str, v: i64) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "data": {"v": v}})
    }

    #[test]
    fn versions_are_global_and_monotonic() {
        let s = Store::new(100);
        let a = s
            .transact(|t| Ok(t.put("configmaps", "default", "a", obj("a", 1))))
            .unwrap();
        let b = s
            .transact(|t| Ok(t.put("services", "default", "b", obj("b", 1))))
            .unwrap();
        assert_eq!(a["metadata"]["resourceVersion"], "2");
        assert_eq!(b["metadata"]["resourceVersion"], "3");
        // No change, no new version.
        let again = s
            .transact(|t| Ok(t.put("services", "default", "b", obj("b", 1))))
            .unwrap();
        assert_eq!(again["metadata"]["resourceVersion"], "3");
        assert_eq!(s.resource_version(), 3);
    }

    #[test]
    fn failed_transactions_roll_back() {
        let s = Store::new(100);
        s.transact(|t| Ok(t.put("configmaps", "default", "a", obj("a", 1))))
            .unwrap();
        let r: ApiResult<()> = s.transact(|t| {
            t.put("configmaps", "default", "a", obj("a", 2));
            t.delete("configmaps", "default", "a");
            t.put("configmaps", "default", "b", obj("b", 2));
            Err(ApiError::internal("no"))
        });
        assert!(r.is_err());
        assert_eq!(s.resource_version(), 2);
        assert_eq!(s.get("configmaps", "default", "a").unwrap()["data"]["v"], 1);
        assert!(s.get("configmaps", "default", "b").is_none());
    }

    #[test]
    fn the_service_index_follows_writes_and_rollbacks() {
        use crate::lab::apiserver::services::Used;
        let svc = |ip: &str, port: u16| {
            json!({"metadata": {"name": "s", "namespace": "default"},
            "spec": {"clusterIP": ip, "ports": [{"port": 80, "nodePort": port}]}})
        };
        let s = Store::new(100);
        s.transact(|t| Ok(t.put("services", "default", "s", svc("10.96.0.5", 30001))))
            .unwrap();
        let r: ApiResult<()> = s.transact(|t| {
            t.put("services", "default", "s", svc("10.96.0.6", 30002));
            t.delete("services", "default", "s");
            Err(ApiError::internal("no"))
        });
        assert!(r.is_err());
        s.transact(|t| {
            let idx = t.service_index();
            let used = Used::new(idx);
            assert!(
                format!("{used:?}").contains("10.96.0.5") && format!("{used:?}").contains("30001")
            );
            assert!(!format!("{used:?}").contains("30002"));
            Ok(())
        })
        .unwrap();
        s.transact(|t| Ok(t.delete("services", "default", "s")))
            .unwrap();
        s.transact(|t| {
            assert!(!format!("{:?}", t.service_index()).contains("30001"));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn history_window_and_past_lists() {
        let s = Store::new(3);
        for i in 0..5 {
            s.transact(|t| Ok(t.put("configmaps", "default", "a", obj("a", i))))
                .unwrap();
        }
        // rv 2..6; history keeps 4,5,6; floor 3.
        assert_eq!(s.floor(), 3);
        assert!(s.subscribe(Some(2), "configmaps", None).is_err());
        let sub = s.subscribe(Some(3), "configmaps", None).unwrap();
        assert_eq!(sub.backlog.len(), 3);
        let past = s.list_at("configmaps", None, 4).unwrap();
        assert_eq!(past[0]["data"]["v"], 2);
        let err = s.list_at("configmaps", None, 2).unwrap_err();
        assert_eq!(err.code, 410);
        assert_eq!(err.message, "too old resource version: 2 (3)");
    }

    #[test]
    fn list_at_undoes_creates_and_deletes() {
        let s = Store::new(100);
        s.transact(|t| Ok(t.put("configmaps", "default", "a", obj("a", 1))))
            .unwrap();
        let rv = s.resource_version();
        s.transact(|t| {
            t.put("configmaps", "default", "b", obj("b", 1));
            t.delete("configmaps", "default", "a");
            Ok(())
        })
        .unwrap();
        let past = s.list_at("configmaps", Some("default"), rv).unwrap();
        assert_eq!(past.len(), 1);
        assert_eq!(past[0]["metadata"]["name"], "a");
        assert_eq!(s.list("configmaps", Some("default")).0.len(), 1);
        assert_eq!(s.list("configmaps", Some("other")).0.len(), 0);
    }
}
