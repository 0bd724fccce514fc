//! Published mailboxes: what each recipient unit has waiting, as connection tasks see it.
//!
//! The commit thread adds an entry only after the alert, its mailbox entry and the audit
//! entry of the disclosure are durable (log before disclose), and removes it once the
//! unit acknowledges. Each unit has a `watch` channel holding its newest mailbox position,
//! so that subscribed connections wake at once. The mutex is held only to copy a few ids:
//! never across I/O or an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use filet_proto::{AlertId, UnitRef};
use tokio::sync::watch;

struct UnitBox {
    pending: BTreeMap<u64, AlertId>,
    newest: watch::Sender<u64>,
}

impl UnitBox {
    fn new() -> Self {
        UnitBox {
            pending: BTreeMap::new(),
            newest: watch::Sender::new(0),
        }
    }
}

/// Every unit's published mailbox.
#[derive(Default)]
pub struct Hub {
    units: Mutex<HashMap<UnitRef, UnitBox>>,
}

impl Hub {
    fn with<R>(&self, unit: &UnitRef, f: impl FnOnce(&mut UnitBox) -> R) -> R {
        // A poisoned lock means a panic elsewhere while holding it; the map itself is
        // still consistent (every operation is a single insert or remove), so go on.
        let mut units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        let b = units.entry(unit.clone()).or_insert_with(UnitBox::new);
        f(b)
    }

    /// A receiver that changes whenever something is added to `unit`'s mailbox.
    pub fn subscribe(&self, unit: &UnitRef) -> watch::Receiver<u64> {
        self.with(unit, |b| b.newest.subscribe())
    }

    /// Up to `limit` waiting entries of `unit` after position `after`, oldest first.
    pub fn pending_after(&self, unit: &UnitRef, after: u64, limit: usize) -> Vec<(u64, AlertId)> {
        self.with(unit, |b| {
            b.pending
                .range(after.saturating_add(1)..)
                .take(limit)
                .map(|(s, id)| (*s, *id))
                .collect()
        })
    }

    /// Publishes a durable mailbox entry and wakes the unit's subscribers.
    pub fn add(&self, unit: &UnitRef, seq: u64, id: AlertId) {
        self.with(unit, |b| {
            b.pending.insert(seq, id);
            b.newest.send_if_modified(|v| {
                let changed = seq > *v;
                *v = (*v).max(seq);
                changed
            });
        })
    }

    /// Removes an acknowledged (or closed) entry.
    pub fn remove(&self, unit: &UnitRef, seq: u64) {
        self.with(unit, |b| {
            b.pending.remove(&seq);
        })
    }

    /// How many entries wait, for every unit that has had a mailbox.
    pub fn depths(&self) -> Vec<(UnitRef, usize)> {
        let units = self.units.lock().unwrap_or_else(|p| p.into_inner());
        units
            .iter()
            .map(|(u, b)| (u.clone(), b.pending.len()))
            .collect()
    }

    /// How many entries wait for `unit`.
    pub fn depth(&self, unit: &UnitRef) -> usize {
        self.with(unit, |b| b.pending.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_in_order_and_wakes_subscribers() {
        let hub = Hub::default();
        let u: UnitRef = "DPJ/RTS".parse().unwrap();
        let mut rx = hub.subscribe(&u);
        assert!(!rx.has_changed().unwrap());
        hub.add(&u, 7, AlertId([7; 16]));
        hub.add(&u, 3, AlertId([3; 16]));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 7);
        assert_eq!(
            hub.pending_after(&u, 0, 10),
            vec![(3, AlertId([3; 16])), (7, AlertId([7; 16]))]
        );
        assert_eq!(hub.pending_after(&u, 3, 10), vec![(7, AlertId([7; 16]))]);
        hub.remove(&u, 3);
        assert_eq!(hub.depth(&u), 1);
        assert_eq!(
            hub.pending_after(&"DPJ/PIVOT".parse().unwrap(), 0, 10),
            vec![]
        );
    }
}
