//! Start-up recovery: brings the stored records in step with the audit log after a stop
//! (clean or not), and rebuilds the ledger's index and the published mailboxes.
//!
//! Invariant restored: every stored record has durable audit entries; every `posted`
//! entry has a stored record or a later `voided` entry; every durable `expired` and
//! `purged` entry is applied to its record (a crash after the audit sync of a batch that
//! rewrote alerts, before its store write, leaves them in the log only: they are applied
//! again here, not logged twice).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use filet_proto::alert::{AlertState, HistoryItem, Kind};
use filet_proto::audit::{Entry, Event};
use filet_proto::{AlertId, Timestamp, UnitRef};

use crate::audit_log::LogFacts;
use crate::commit::{CommitError, Committer};
use crate::mailboxes::ThreadView;
use crate::store::AlertRecord;

/// What start-up recovery found.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Alerts in the store.
    pub alerts: usize,
    /// Store records removed because their audit entries were not durable.
    pub dropped_records: usize,
    /// Posts marked `voided` (logged, not stored).
    pub voided: Vec<AlertId>,
}

/// Brings the store in step with the audit log and rebuilds the ledger's index and the
/// published mailboxes. Appends `voided` entries (not yet committed: the caller syncs)
/// for posts the log holds but the store does not.
///
/// `stored_below` is what `store.mark` says: every post below that audit index reached
/// the store, so one missing from it means the store lost data.
///
/// # Errors
/// Storage errors, a damaged record, or a store that lacks posts whose receipt was given
/// ([`CommitError::StoreDamaged`]).
pub fn recover(
    c: &mut Committer,
    facts: &LogFacts,
    stored_below: Option<u64>,
) -> Result<Recovered, CommitError> {
    let mut out = Recovered::default();
    let size = c.storage.audit_size();
    // Records referring to later entries are dropped below: the rest may be served.
    c.mailboxes.set_published(size);
    if let Some(m) = stored_below.filter(|m| *m > size) {
        return Err(CommitError::StoreDamaged(format!(
            "store.mark says the alert store holds every post of the first {m} audit entries, but the audit log holds only {size}: the audit log lost entries; restore the data directory from a backup"
        )));
    }
    // Posts at or below this index are known to have reached the store.
    let proven = facts
        .proven
        .max(stored_below.and_then(|m| m.checked_sub(1)));
    let tail = log_tail(c, stored_below)?;
    let mut to_drop = Vec::new();
    let mut publish = Vec::new();
    let mut acks = c.storage.acks()?;
    // Acknowledgements written to the store in a batch whose audit sync did not complete.
    let stale: Vec<(AlertId, UnitRef)> = acks
        .iter()
        .filter(|(_, a)| a.audit_index >= size)
        .map(|(k, _)| k.clone())
        .collect();
    for (alert, unit) in &stale {
        acks.remove(&(*alert, unit.clone()));
        c.storage.remove_ack(alert, unit)?;
    }
    let mut follow_ups = Vec::new();
    let mut reapplied = Vec::new();
    // Every post the store holds, purged ones among them (which the index forgets).
    let mut stored = HashSet::new();
    for rec in c.storage.records() {
        let mut rec = rec?;
        for r in rec.recipients.iter_mut() {
            if let Some(a) = acks.get(&(rec.envelope.id, r.unit.clone())) {
                r.acked = Some(a.clone());
            }
        }
        if let Some(changes) = tail.get(&rec.envelope.id) {
            if reapply(&mut rec, changes) {
                reapplied.push(rec.clone());
            }
        }
        let max_index = rec
            .recipients
            .iter()
            .map(|r| r.disclosed_index)
            .chain(std::iter::once(rec.posted_index))
            .max()
            .unwrap_or(rec.posted_index);
        if max_index >= size {
            to_drop.push(rec.envelope.id);
            continue;
        }
        stored.insert(rec.envelope.id);
        // Originals first: a follow-up received in the same millisecond as its alert (or
        // after the clock stepped back) can sort before it by id.
        if rec.envelope.kind != Kind::Alert {
            follow_ups.push(Arc::new(rec));
            continue;
        }
        let rec = Arc::new(rec);
        for (unit, seq, _) in c.ledger.restore(&rec) {
            publish.push((unit, seq, rec.clone()));
        }
        if !rec.purged && (rec.state != AlertState::Active || rec.history.len() > 1) {
            c.mailboxes.set_thread(
                rec.envelope.id,
                ThreadView {
                    sender_unit: rec.envelope.sender.unit.clone(),
                    state: rec.state,
                    expires_at: rec.envelope.expires_at,
                    history: rec.history.clone(),
                },
            );
        }
        out.alerts += 1;
    }
    for rec in follow_ups {
        for (unit, seq, _) in c.ledger.restore(&rec) {
            publish.push((unit, seq, rec.clone()));
        }
        out.alerts += 1;
    }
    for id in &to_drop {
        c.storage.remove_record(id)?;
    }
    // Made durable by the caller's sync, with the start-up entries.
    let keep: Vec<&AlertRecord> = reapplied
        .iter()
        .filter(|r| !to_drop.contains(&r.envelope.id))
        .collect();
    c.storage.put_records(&keep)?;
    out.dropped_records = to_drop.len();
    // Posts the log holds but the store does not. After a crash only the last batch can
    // be missing (each batch reaches the store before the next one starts), and nothing
    // of it was delivered: those are voided. A missing post at or before one that was
    // delivered or acknowledged means the store lost committed data: refuse to start.
    let mut voids = Vec::new();
    for (i, alert) in &facts.posted {
        if stored.contains(alert) || facts.voided.contains(alert) {
            continue;
        }
        if proven.is_some_and(|p| *i <= p) {
            let missing = facts
                .posted
                .iter()
                .filter(|(j, a)| {
                    proven.is_some_and(|p| *j <= p)
                        && !stored.contains(a)
                        && !facts.voided.contains(a)
                })
                .count();
            return Err(CommitError::StoreDamaged(format!(
                "the alert store lacks {missing} post(s) whose receipt was given (the first: alert {alert}, audit entry {i}); the relay will not serve without them: restore the data directory from a backup"
            )));
        }
        let bytes = c.storage.entry(*i)?;
        if let Ok(Entry {
            event: Event::Posted { sender, .. },
            ..
        }) = Entry::from_bytes(&bytes)
        {
            voids.push((*alert, sender));
        }
    }
    for (alert, sender) in voids {
        c.append(Event::Voided {
            alert,
            sender,
            reason: "the relay stopped after logging this post and before storing it: no receipt was given and nothing was delivered".into(),
        });
        out.voided.push(alert);
    }
    for (unit, seq, rec) in publish {
        c.mailboxes.add(&unit, seq, rec);
    }
    Ok(out)
}

/// A change to an alert that a durable audit entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Logged {
    Expired,
    Purged,
}

/// The `expired` and `purged` entries of the log's tail: from the audit size the store
/// last recorded (or `store.mark`, if lower), the batches whose store write a crash may
/// have cut. After a clean stop the tail is empty.
fn log_tail(
    c: &Committer,
    stored_below: Option<u64>,
) -> Result<HashMap<AlertId, Vec<(Timestamp, Logged)>>, CommitError> {
    let recorded = c.storage.recorded_size()?;
    let from = stored_below.map_or(recorded, |m| m.min(recorded));
    let mut tail: HashMap<AlertId, Vec<(Timestamp, Logged)>> = HashMap::new();
    for i in from..c.storage.audit_size() {
        let bytes = c.storage.entry(i)?;
        let Ok(e) = Entry::from_bytes(&bytes) else {
            continue;
        };
        match e.event {
            Event::Expired { alert, .. } => {
                tail.entry(alert)
                    .or_default()
                    .push((e.time, Logged::Expired));
            }
            Event::Purged { alert, .. } => {
                tail.entry(alert)
                    .or_default()
                    .push((e.time, Logged::Purged));
            }
            _ => {}
        }
    }
    Ok(tail)
}

/// Applies to `rec` the logged changes it does not show yet, as the timers do; returns
/// whether it changed.
fn reapply(rec: &mut AlertRecord, changes: &[(Timestamp, Logged)]) -> bool {
    let mut changed = false;
    for (at, what) in changes {
        match what {
            Logged::Expired if !rec.state.is_closed() => {
                rec.state = AlertState::Expired;
                rec.closed_at = Some(*at);
                rec.history.push(HistoryItem {
                    kind: None,
                    id: rec.envelope.id,
                    at: *at,
                    note: None,
                });
                changed = true;
            }
            Logged::Purged if !rec.purged => {
                rec.content = None;
                rec.note = None;
                rec.salt = [0; 32];
                rec.purged = true;
                for h in rec.history.iter_mut() {
                    h.note = None;
                }
                changed = true;
            }
            _ => {}
        }
    }
    changed
}
