//! foca's custom-broadcast handler for our [`Item`]s: metadata parts and suspicion notes.
//!
//! foca asks the handler whether an item it received is news worth passing on. The answer
//! comes from the shared [`Inbox`]: a metadata part is news if it belongs to a version newer
//! than the one we hold (the [`MetaTable`] decides); a suspicion note is news the first time.
//! Items about ourselves coming back from the network are never news — only the driver adds
//! those (with [`Inbox::adding_local`] set).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use super::identity::NodeId;
use super::meta::{Item, ItemKey, MetaError, MetaTable, Offer, SuspicionNote};

/// Notes remembered to recognise repeats.
const MAX_NOTES: usize = 4096;

/// What the handler shares with the driver.
#[derive(Debug)]
pub struct Inbox {
    /// Our gossip address.
    pub me: SocketAddr,
    /// Set by the driver around its own `add_broadcast` calls.
    pub adding_local: bool,
    /// Everyone's metadata.
    pub table: MetaTable,
    /// A member's metadata version became complete since the driver last looked.
    pub meta_changed: bool,
    /// Suspicion notes from others, not yet seen by the driver.
    pub notes: Vec<SuspicionNote>,
    seen_notes: BTreeSet<SuspicionNote>,
    /// Test hook: ignore metadata parts unless they came directly (see `Faults`).
    pub ignore_broadcast_meta: bool,
    /// Set while the driver adds items that came directly (an answer to a request).
    direct: bool,
}

/// Marks the items added while it lives as sent directly, not broadcast.
pub struct Direct<'a>(&'a Mutex<Inbox>);

impl Direct<'_> {
    /// Marks until dropped.
    pub fn mark(inbox: &Mutex<Inbox>) -> Direct<'_> {
        lock(inbox).direct = true;
        Direct(inbox)
    }
}

impl Drop for Direct<'_> {
    fn drop(&mut self) {
        lock(self.0).direct = false;
    }
}

impl Inbox {
    /// A shared, empty inbox.
    pub fn shared(me: SocketAddr) -> Arc<Mutex<Inbox>> {
        Arc::new(Mutex::new(Inbox {
            me,
            adding_local: false,
            table: MetaTable::new(),
            meta_changed: false,
            notes: Vec::new(),
            seen_notes: BTreeSet::new(),
            ignore_broadcast_meta: false,
            direct: false,
        }))
    }
}

/// Locks the inbox; a poisoned lock (a panic elsewhere) still holds consistent data.
pub fn lock(inbox: &Mutex<Inbox>) -> MutexGuard<'_, Inbox> {
    inbox.lock().unwrap_or_else(|e| e.into_inner())
}

/// The handler foca owns.
#[derive(Debug, Clone)]
pub struct Handler {
    inbox: Arc<Mutex<Inbox>>,
}

impl Handler {
    /// A handler feeding `inbox`.
    pub fn new(inbox: Arc<Mutex<Inbox>>) -> Handler {
        Handler { inbox }
    }
}

impl foca::BroadcastHandler<NodeId> for Handler {
    type Key = ItemKey;
    type Error = MetaError;

    fn receive_item(
        &mut self,
        data: &[u8],
        _sender: Option<&NodeId>,
    ) -> Result<Option<ItemKey>, MetaError> {
        let item = Item::decode(data)?;
        let key = ItemKey::of(&item);
        let mut inbox = lock(&self.inbox);
        if inbox.adding_local {
            return Ok(Some(key));
        }
        match item {
            Item::Meta(part) => {
                if part.addr == inbox.me || (inbox.ignore_broadcast_meta && !inbox.direct) {
                    return Ok(None);
                }
                match inbox.table.offer(&part)? {
                    Offer::New { completed } => {
                        inbox.meta_changed |= completed;
                        Ok(Some(key))
                    }
                    Offer::Stale => Ok(None),
                }
            }
            Item::Suspicion(note) => {
                if note.by == inbox.me || inbox.seen_notes.contains(&note) {
                    return Ok(None);
                }
                if inbox.seen_notes.len() >= MAX_NOTES {
                    inbox.seen_notes.clear();
                }
                inbox.seen_notes.insert(note);
                inbox.notes.push(note);
                Ok(Some(key))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use foca::BroadcastHandler;

    use super::*;
    use crate::membership::meta::{split, Meta};

    #[test]
    fn news_once_own_items_never_from_the_network() {
        let me: SocketAddr = "10.0.0.1:7946".parse().unwrap();
        let inbox = Inbox::shared(me);
        let mut h = Handler::new(inbox.clone());
        let other = NodeId::new("n2", "10.0.0.2:7946".parse().unwrap(), 1);
        let part = Item::Meta(split(&other, 1, &Meta::default()).unwrap().remove(0)).encode();
        assert!(h.receive_item(&part, None).unwrap().is_some());
        assert!(h.receive_item(&part, None).unwrap().is_none());
        assert!(lock(&inbox).meta_changed);
        assert!(lock(&inbox).table.get(&other.addr).is_some());

        let mine = NodeId::new("n1", me, 1);
        let own = Item::Meta(split(&mine, 9, &Meta::default()).unwrap().remove(0)).encode();
        assert!(h.receive_item(&own, None).unwrap().is_none());
        lock(&inbox).adding_local = true;
        assert!(h.receive_item(&own, None).unwrap().is_some());
        lock(&inbox).adding_local = false;

        let note = SuspicionNote {
            by: other.addr,
            about: "10.0.0.3:7946".parse().unwrap(),
            boot: 1,
            incarnation: 0,
        };
        let n = Item::Suspicion(note).encode();
        assert!(h.receive_item(&n, None).unwrap().is_some());
        assert!(h.receive_item(&n, None).unwrap().is_none());
        assert_eq!(lock(&inbox).notes, vec![note]);
        assert!(h.receive_item(b"\xff\xff", None).is_err());
    }
}
