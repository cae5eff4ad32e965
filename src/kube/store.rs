//! The consumer side of a reflector: the current objects of one kind, keyed, and what each
//! update changed. A relist (`Replaced`) is diffed against what was known, so consumers see the
//! same per-key changes whether they came from a watch or a relist.

use std::collections::HashMap;

use super::objects::ObjectKey;
use super::reflector::{Reflected, Update};

/// The objects of one kind as last seen.
#[derive(Debug, Clone)]
pub struct Store<T> {
    objects: HashMap<ObjectKey, T>,
    synced: bool,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store {
            objects: HashMap::new(),
            synced: false,
        }
    }
}

impl<T: Reflected + PartialEq> Store<T> {
    /// Applies an update; returns the keys whose object appeared, changed or went away.
    pub fn apply(&mut self, update: Update<T>) -> Vec<ObjectKey> {
        match update {
            Update::Applied(obj) => {
                let key = obj.key();
                match self.objects.get(&key) {
                    Some(old) if *old == obj => Vec::new(),
                    _ => {
                        self.objects.insert(key.clone(), obj);
                        vec![key]
                    }
                }
            }
            Update::Deleted(key) => self.objects.remove(&key).map(|_| key).into_iter().collect(),
            Update::Replaced(list) => {
                self.synced = true;
                let mut fresh: HashMap<ObjectKey, T> =
                    list.into_iter().map(|o| (o.key(), o)).collect();
                let mut changed: Vec<ObjectKey> = self
                    .objects
                    .keys()
                    .filter(|k| !fresh.contains_key(*k))
                    .cloned()
                    .collect();
                for (key, obj) in &fresh {
                    if self.objects.get(key) != Some(obj) {
                        changed.push(key.clone());
                    }
                }
                std::mem::swap(&mut self.objects, &mut fresh);
                changed.sort();
                changed
            }
        }
    }
}

impl<T> Store<T> {
    /// Whether a full list has been received at least once.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// The object under `key`.
    pub fn get(&self, key: &ObjectKey) -> Option<&T> {
        self.objects.get(key)
    }

    /// Every object, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.objects.values()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::objects::NodeInfo;

    fn node(name: &str, ready: bool) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            labels: Default::default(),
            ready: Some(ready),
            network_unavailable: false,
            internal_ips: vec![],
        }
    }

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            namespace: String::new(),
            name: name.into(),
        }
    }

    #[test]
    fn relist_reports_exactly_the_differences() {
        let mut s = Store::default();
        assert!(!s.synced());
        assert_eq!(
            s.apply(Update::Replaced(vec![node("a", true), node("b", true)])),
            vec![key("a"), key("b")]
        );
        assert!(s.synced());
        assert_eq!(
            s.apply(Update::Applied(node("a", true))),
            Vec::<ObjectKey>::new()
        );
        assert_eq!(s.apply(Update::Applied(node("a", false))), vec![key("a")]);
        // b vanished while we were not watching, c appeared, a unchanged.
        assert_eq!(
            s.apply(Update::Replaced(vec![node("a", false), node("c", true)])),
            vec![key("b"), key("c")]
        );
        assert_eq!(s.apply(Update::Deleted(key("c"))), vec![key("c")]);
        assert_eq!(s.apply(Update::Deleted(key("c"))), Vec::<ObjectKey>::new());
        assert_eq!(s.len(), 1);
    }
}
