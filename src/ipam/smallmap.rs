//! An ordered map that is a sorted `Vec` while small and a `BTreeMap` once large.
//!
//! Most addresses have one holder and use a port or two, and a `BTreeMap` allocates a whole
//! node (eleven slots) for its first entry; but a few addresses may be shared by thousands of
//! Services, where a `Vec`'s `O(n)` insertions would make every join `O(n)`. This map is
//! compact for the first case and `O(log n)` for the second.

use std::collections::BTreeMap;

/// Entries kept in the `Vec` before switching to a `BTreeMap`.
const SMALL: usize = 8;

/// An ordered map, small or large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SmallMap<K: Ord, V> {
    /// Sorted by key, at most [`SMALL`] entries.
    Small(Vec<(K, V)>),
    /// More than [`SMALL`] entries (once large, it stays large).
    Large(BTreeMap<K, V>),
}

impl<K: Ord, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Small(Vec::new())
    }
}

impl<K: Ord, V> SmallMap<K, V> {
    /// The value of `key`.
    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        match self {
            SmallMap::Small(v) => v
                .binary_search_by(|(k, _)| k.cmp(key))
                .ok()
                .and_then(|i| v.get(i))
                .map(|(_, value)| value),
            SmallMap::Large(m) => m.get(key),
        }
    }

    /// Whether `key` is present.
    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// Inserts `key` unless present; returns whether it was inserted.
    pub(crate) fn insert_new(&mut self, key: K, value: V) -> bool {
        match self {
            SmallMap::Small(v) => match v.binary_search_by(|(k, _)| k.cmp(&key)) {
                Ok(_) => false,
                Err(i) if v.len() < SMALL => {
                    v.insert(i, (key, value));
                    true
                }
                Err(_) => {
                    let mut m: BTreeMap<K, V> = std::mem::take(v).into_iter().collect();
                    m.insert(key, value);
                    *self = SmallMap::Large(m);
                    true
                }
            },
            SmallMap::Large(m) => match m.entry(key) {
                std::collections::btree_map::Entry::Occupied(_) => false,
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(value);
                    true
                }
            },
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        match self {
            SmallMap::Small(v) => {
                let i = v.binary_search_by(|(k, _)| k.cmp(key)).ok()?;
                Some(v.remove(i).1)
            }
            SmallMap::Large(m) => m.remove(key),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Small(v) => v.len(),
            SmallMap::Large(m) => m.len(),
        }
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entries in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> + '_ {
        let (small, large) = match self {
            SmallMap::Small(v) => (Some(v.iter().map(|(k, value)| (k, value))), None),
            SmallMap::Large(m) => (None, Some(m.iter())),
        };
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
    }

    /// The keys in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The smallest key.
    pub(crate) fn first_key(&self) -> Option<&K> {
        self.keys().next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Agrees with a `BTreeMap` through any sequence of insertions and removals.
        #[test]
        fn agrees_with_a_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u8..40), 0..200)) {
            let mut small: SmallMap<u8, u32> = SmallMap::default();
            let mut model: BTreeMap<u8, u32> = BTreeMap::new();
            for (n, (insert, k)) in ops.into_iter().enumerate() {
                if insert {
                    let fresh = !model.contains_key(&k);
                    if fresh {
                        model.insert(k, n as u32);
                    }
                    prop_assert_eq!(small.insert_new(k, n as u32), fresh);
                } else {
                    prop_assert_eq!(small.remove(&k), model.remove(&k));
                }
                prop_assert_eq!(small.len(), model.len());
                prop_assert!(small.iter().eq(model.iter()));
                prop_assert_eq!(small.first_key(), model.keys().next());
                prop_assert_eq!(small.get(&k), model.get(&k));
                prop_assert_eq!(small.contains_key(&k), model.contains_key(&k));
                prop_assert_eq!(small.is_empty(), model.is_empty());
            }
        }
    }
}
