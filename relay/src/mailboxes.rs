//! Published mailboxes: what each recipient unit has waiting, as connection tasks see it.
//!
//! The commit thread adds an entry only after the alert, its mailbox entry and the audit
//! entry of the disclosure are durable (log before disclose), and removes it once the
//! unit acknowledges or the alert expires or is purged. An entry holds the committed
//! record itself (shared, immutable), so a delivery reads no storage. Each unit has a
//! `watch` channel holding its newest mailbox position, so that subscribed connections wake
//! at once. [`Mailboxes`] also holds the current state and history of every alert that has
//! changed since it was posted. Its mutexes are held only to copy a few pointers: never
//! across I/O or an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use filet_proto::alert::{AlertState, HistoryItem};
use filet_proto::{AlertId, Timestamp, UnitRef};
use tokio::sync::watch;

use crate::store::AlertRecord;

/// A published mailbox entry, as a reader took it.
#[derive(Clone)]
pub struct Published {
    /// Its mailbox position.
    pub seq: u64,
    /// The committed record (a snapshot: it never changes).
    pub rec: Arc<AlertRecord>,
    /// Whether it is still in the mailbox: cleared when it leaves it (acknowledged,
    /// expired, or purged — a purge clears it before its `purged` entry is written). A
    /// reader holding the snapshot checks it right before writing it to a node.
    pub live: Arc<AtomicBool>,
}

impl Published {
    /// Still in the mailbox.
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

struct UnitBox {
    pending: BTreeMap<u64, (Arc<AlertRecord>, Arc<AtomicBool>)>,
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

/// The state and history of an alert, as recipients see them.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadView {
    /// The original's sender unit: follow-ups are permitted under its rules.
    pub sender_unit: UnitRef,
    /// Current state.
    pub state: AlertState,
    /// The thread's current expiry (an update may move it): it governs every message of
    /// the thread but the closing one, which carries its own.
    pub expires_at: Timestamp,
    /// Life so far.
    pub history: Vec<HistoryItem>,
}

/// Every unit's published mailbox, and the alerts' current states.
#[derive(Default)]
pub struct Mailboxes {
    units: Mutex<HashMap<UnitRef, UnitBox>>,
    threads: Mutex<HashMap<AlertId, ThreadView>>,
    /// The audit size below which every entry, and every store record that refers only to
    /// entries below it, is durable: what may be served.
    published: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere while holding it; every operation here is a
    // single insert or remove, so the map is still consistent: go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mailboxes {
    fn with<R>(&self, unit: &UnitRef, f: impl FnOnce(&mut UnitBox) -> R) -> R {
        let mut units = lock(&self.units);
        let b = units.entry(unit.clone()).or_insert_with(UnitBox::new);
        f(b)
    }

    /// A receiver that changes whenever something is added to `unit`'s mailbox.
    pub fn subscribe(&self, unit: &UnitRef) -> watch::Receiver<u64> {
        self.with(unit, |b| b.newest.subscribe())
    }

    /// Up to `limit` waiting entries of `unit` after position `after`, oldest first.
    pub fn pending_after(&self, unit: &UnitRef, after: u64, limit: usize) -> Vec<Published> {
        self.with(unit, |b| {
            b.pending
                .range(after.saturating_add(1)..)
                .take(limit)
                .map(|(s, (r, l))| Published {
                    seq: *s,
                    rec: r.clone(),
                    live: l.clone(),
                })
                .collect()
        })
    }

    /// The still-in-the-mailbox flag of `unit`'s entry at `seq`, if it waits.
    pub fn live(&self, unit: &UnitRef, seq: u64) -> Option<Arc<AtomicBool>> {
        self.with(unit, |b| b.pending.get(&seq).map(|(_, l)| l.clone()))
    }

    /// Publishes a durable mailbox entry and wakes the unit's subscribers.
    pub fn add(&self, unit: &UnitRef, seq: u64, rec: Arc<AlertRecord>) {
        self.with(unit, |b| {
            b.pending
                .insert(seq, (rec, Arc::new(AtomicBool::new(true))));
            b.newest.send_if_modified(|v| {
                let changed = seq > *v;
                *v = (*v).max(seq);
                changed
            });
        })
    }

    /// Removes an acknowledged (expired, purged) entry; readers holding it see it gone.
    pub fn remove(&self, unit: &UnitRef, seq: u64) {
        self.with(unit, |b| {
            if let Some((_, live)) = b.pending.remove(&seq) {
                live.store(false, Ordering::Release);
            }
        })
    }

    /// Publishes the new state and history of an alert.
    pub fn set_thread(&self, root: AlertId, view: ThreadView) {
        lock(&self.threads).insert(root, view);
    }

    /// Records that the audit log and the store are durable up to audit size `size`
    /// (set by the commit thread once a batch is durable, before it publishes it).
    pub fn set_published(&self, size: u64) {
        self.published.fetch_max(size, Ordering::AcqRel);
    }

    /// Whether `rec` may be served: every audit entry it refers to (its `posted` and
    /// `disclosed` entries) is durable. A record the store shows before then (the store
    /// and the log are written in parallel) is not served yet.
    pub fn is_published(&self, rec: &AlertRecord) -> bool {
        let size = self.published.load(Ordering::Acquire);
        rec.recipients
            .iter()
            .map(|r| r.disclosed_index)
            .chain(std::iter::once(rec.posted_index))
            .all(|i| i < size)
    }

    /// Forgets the state of a purged alert.
    pub fn forget_thread(&self, root: &AlertId) {
        lock(&self.threads).remove(root);
    }

    /// The state and history of the alert `root`, if it changed since it was posted.
    pub fn thread(&self, root: &AlertId) -> Option<ThreadView> {
        lock(&self.threads).get(root).cloned()
    }

    /// How many entries wait, for every unit that has had a mailbox.
    pub fn depths(&self) -> Vec<(UnitRef, usize)> {
        lock(&self.units)
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
    use filet_proto::alert::{Category, Envelope, Kind, Language, Risk, Status};

    fn rec(n: u8) -> Arc<AlertRecord> {
        Arc::new(AlertRecord {
            envelope: Envelope {
                id: AlertId([n; 16]),
                kind: Kind::Alert,
                references: None,
                category: Category::Runaway,
                status: Status::Actual,
                risk: Risk::Minor,
                language: Language::FrCa,
                sender: "A/B/c".parse().unwrap(),
                received_at: Timestamp(0),
                expires_at: Timestamp(1),
            },
            content: None,
            note: None,
            salt: [0; 32],
            idempotency_key: [0; 16],
            posted_index: 0,
            recipients: Vec::new(),
            state: AlertState::Active,
            history: Vec::new(),
            closed_at: None,
            purged: false,
        })
    }

    #[test]
    fn a_reader_holding_a_snapshot_sees_that_its_entry_left_the_mailbox() {
        let mailboxes = Mailboxes::default();
        let u: UnitRef = "DPJ/RTS".parse().unwrap();
        mailboxes.add(&u, 1, rec(1));
        let taken = mailboxes.pending_after(&u, 0, 10);
        assert_eq!(taken.len(), 1);
        assert!(taken[0].is_live());
        assert!(mailboxes.live(&u, 1).is_some());
        // Purged (or acknowledged, expired) while the reader still holds the record.
        mailboxes.remove(&u, 1);
        assert!(!taken[0].is_live(), "the snapshot is still taken for live");
        assert!(mailboxes.live(&u, 1).is_none());
    }

    #[test]
    fn publishes_in_order_and_wakes_subscribers() {
        let mailboxes = Mailboxes::default();
        let u: UnitRef = "DPJ/RTS".parse().unwrap();
        let mut rx = mailboxes.subscribe(&u);
        assert!(!rx.has_changed().unwrap());
        mailboxes.add(&u, 7, rec(7));
        mailboxes.add(&u, 3, rec(3));
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 7);
        let ids = |v: Vec<Published>| {
            v.iter()
                .map(|p| (p.seq, p.rec.envelope.id))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            ids(mailboxes.pending_after(&u, 0, 10)),
            vec![(3, AlertId([3; 16])), (7, AlertId([7; 16]))]
        );
        assert_eq!(
            ids(mailboxes.pending_after(&u, 3, 10)),
            vec![(7, AlertId([7; 16]))]
        );
        mailboxes.remove(&u, 3);
        assert_eq!(mailboxes.depth(&u), 1);
        assert!(mailboxes
            .pending_after(&"DPJ/PIVOT".parse().unwrap(), 0, 10)
            .is_empty());
        assert_eq!(mailboxes.thread(&AlertId([7; 16])), None);
        mailboxes.set_thread(
            AlertId([7; 16]),
            ThreadView {
                sender_unit: "A/B".parse().unwrap(),
                state: AlertState::Located,
                expires_at: Timestamp(1),
                history: Vec::new(),
            },
        );
        assert_eq!(
            mailboxes.thread(&AlertId([7; 16])).unwrap().state,
            AlertState::Located
        );
    }
}
