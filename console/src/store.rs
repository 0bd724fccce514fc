//! The alerts this unit received in this console's life, in delivery order, grouped in
//! threads (an alert and its follow-ups). Deliveries are at least once: a message seen
//! again (same delivery sequence) is kept once.

use std::collections::{BTreeMap, HashSet};

use filet_proto::alert::{Disclosed, Kind};
use filet_proto::AlertId;

/// Received messages by delivery sequence, and which were acknowledged.
#[derive(Default)]
pub struct Store {
    by_seq: BTreeMap<u64, Disclosed>,
    acked: HashSet<AlertId>,
}

/// An alert and its follow-ups, as received.
pub struct Thread<'a> {
    /// The original alert's id.
    pub root: AlertId,
    /// The messages, in delivery order (at least one).
    pub messages: Vec<&'a Disclosed>,
    /// Messages not yet acknowledged.
    pub unacked: Vec<AlertId>,
}

impl Thread<'_> {
    /// The newest message (its state is the thread's state).
    pub fn latest(&self) -> &Disclosed {
        self.messages[self.messages.len() - 1]
    }

    /// The newest message carrying content (the alert or its latest update).
    pub fn content(&self) -> &Disclosed {
        self.messages
            .iter()
            .rev()
            .find(|d| matches!(d.envelope.kind, Kind::Alert | Kind::Update))
            .copied()
            .unwrap_or_else(|| self.latest())
    }

    /// The newest delivery sequence of the thread.
    pub fn seq(&self) -> u64 {
        self.latest().seq
    }
}

/// The thread a message belongs to.
pub fn root_of(d: &Disclosed) -> AlertId {
    d.envelope.references.unwrap_or(d.envelope.id)
}

impl Store {
    /// Keeps a delivery; false when it was already kept (a redelivery).
    pub fn insert(&mut self, d: Disclosed) -> bool {
        if self.by_seq.contains_key(&d.seq) {
            return false;
        }
        self.by_seq.insert(d.seq, d);
        true
    }

    /// Records an acknowledgement.
    pub fn mark_acked(&mut self, id: AlertId) {
        self.acked.insert(id);
    }

    /// The highest delivery sequence kept (0 when none).
    pub fn max_seq(&self) -> u64 {
        self.by_seq.keys().next_back().copied().unwrap_or(0)
    }

    /// Messages after `seq`, in order: (sequence, thread).
    pub fn after(&self, seq: u64) -> Vec<(u64, AlertId)> {
        self.by_seq
            .range(seq.saturating_add(1)..)
            .map(|(s, d)| (*s, root_of(d)))
            .collect()
    }

    /// One thread.
    pub fn thread(&self, root: AlertId) -> Option<Thread<'_>> {
        let messages: Vec<&Disclosed> = self
            .by_seq
            .values()
            .filter(|d| root_of(d) == root)
            .collect();
        if messages.is_empty() {
            return None;
        }
        let unacked = messages
            .iter()
            .map(|d| d.envelope.id)
            .filter(|id| !self.acked.contains(id))
            .collect();
        Some(Thread {
            root,
            messages,
            unacked,
        })
    }

    /// Every thread, the most recently changed first.
    pub fn threads(&self) -> Vec<Thread<'_>> {
        let mut roots: Vec<AlertId> = Vec::new();
        for d in self.by_seq.values().rev() {
            let r = root_of(d);
            if !roots.contains(&r) {
                roots.push(r);
            }
        }
        roots.into_iter().filter_map(|r| self.thread(r)).collect()
    }
}
