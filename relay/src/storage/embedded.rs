//! The embedded storage: the audit log files ([`AuditLog`]) and the alert store on sled
//! ([`Store`], with `store.mark`), in the data directory.
//!
//! A commit writes the audit entries and `fdatasync`s the log, then records the signed
//! checkpoint of the new size (`audit/answered`, `fdatasync`ed: the checkpoint answers
//! carry); meanwhile it writes the records and acknowledgements to sled in one atomic
//! batch, with the size and checkpoint of the previous batch, `flush`es sled and
//! `fdatasync`s its data file. Both steps run in parallel when the batch only adds (new
//! posts, acknowledgements, deliveries): a crash may then leave store records or
//! acknowledgements without durable audit entries, which start-up removes (no receipt
//! depended on them), or audit entries of posts the store does not hold, which start-up
//! marks `voided`. A batch that rewrites alerts committed earlier (follow-ups, expiry,
//! purge) writes the store only after its audit entries are durable, so the store never
//! holds a change the log does not. Once both are done, `store.mark` says the batch is
//! in the store. sled's own background flush (every 500 ms) cannot reorder this: nothing
//! reaches sled before the audit entries are written.

use std::collections::HashMap;

use filet_proto::checkpoint::{Checkpoint, NoteSigner};
use filet_proto::merkle::Hash;
use filet_proto::{AlertId, UnitRef};

use super::{Batch, Committed, Storage, StorageError};
use crate::audit_log::{AuditLog, AuditReader};
use crate::store::{AckRecord, AlertRecord, Store, StoreError, StoreMark};

/// The data directory's audit log and alert store.
pub struct Embedded {
    log: AuditLog,
    store: Store,
    signer: NoteSigner,
    origin: String,
    /// `store.mark`: the audit size below which every post is durable in the store.
    mark: StoreMark,
    /// The size and checkpoint of the last durable batch, recorded in the store with the
    /// next one.
    last_durable: Option<(u64, String)>,
}

impl Embedded {
    /// The opened log, store and mark; `signer` signs checkpoints of `origin`.
    pub fn new(
        log: AuditLog,
        store: Store,
        mark: StoreMark,
        signer: NoteSigner,
        origin: String,
    ) -> Self {
        Embedded {
            log,
            store,
            signer,
            origin,
            mark,
            last_durable: None,
        }
    }

    /// A reader of the committed audit log (for the connection tasks).
    pub fn audit_reader(&self) -> AuditReader {
        self.log.reader()
    }

    /// The alert store (for the connection tasks: they read records).
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl Storage for Embedded {
    fn audit_size(&self) -> u64 {
        self.log.size()
    }

    fn record(&self, id: &AlertId) -> Result<Option<AlertRecord>, StorageError> {
        Ok(self.store.get(id)?)
    }

    fn commit(&mut self, batch: Batch<'_>) -> Result<Committed, StorageError> {
        if let Some(first) = batch.entries.first() {
            if first.index != self.log.size() {
                return Err(StorageError::OutOfStep {
                    first: first.index,
                    size: self.log.size(),
                });
            }
        }
        for e in batch.entries {
            self.log.append(&e.to_bytes())?;
        }
        let previous = self.last_durable.clone();
        let (log, store) = (&mut self.log, &mut self.store);
        let (signer, origin) = (&self.signer, &self.origin);
        let (records, acks) = (batch.records, batch.acks);
        // The checkpoint of the synced log, recorded durably before anyone is answered
        // with it (see `AuditLog::answer`).
        let sign_and_record =
            move |log: &mut AuditLog, size: u64| -> Result<String, StorageError> {
                let root = log.root(size)?;
                let cp = Checkpoint {
                    origin: origin.clone(),
                    size,
                    root,
                    extensions: Vec::new(),
                };
                let note = signer
                    .sign(&cp.to_text())
                    .map_err(|e| StorageError::Sign(e.to_string()))?;
                log.answer(size, &note)?;
                Ok(note)
            };
        let mut write_store = move || -> Result<(), StoreError> {
            store.put_all(records.values())?;
            for (alert, unit, ack) in acks {
                store.put_ack(alert, unit, ack)?;
            }
            if let Some((size, note)) = &previous {
                store.set_audit_state(*size, note)?;
            }
            store.flush()
        };
        let (audit, stored) = if batch.rewrites {
            // The store waits for the log; recording the answer overlaps the store write.
            let size = log.commit()?;
            std::thread::scope(|sc| {
                let audit = sc.spawn(move || sign_and_record(log, size).map(|n| (size, n)));
                let stored = write_store();
                (audit.join(), stored)
            })
        } else {
            std::thread::scope(|sc| {
                let audit = sc.spawn(move || {
                    let size = log.commit()?;
                    sign_and_record(log, size).map(|n| (size, n))
                });
                let stored = write_store();
                (audit.join(), stored)
            })
        };
        let (size, note) = match audit {
            Ok(r) => r?,
            Err(_) => return Err(StorageError::Sign("the audit log writer panicked".into())),
        };
        stored?;
        // The store holds every post of the first `size` entries now.
        self.mark.set(size)?;
        self.last_durable = Some((size, note.clone()));
        Ok(Committed {
            size,
            checkpoint: note,
        })
    }

    fn close(&mut self) -> Result<(), StorageError> {
        if let Some((size, note)) = self.last_durable.clone() {
            self.store.set_audit_state(size, &note)?;
            self.store.flush()?;
            self.mark.set_and_sync(size)?;
        } else {
            self.store.flush()?;
        }
        Ok(())
    }

    fn entry(&self, index: u64) -> Result<Vec<u8>, StorageError> {
        Ok(self.log.reader().entry(index)?)
    }

    fn root(&self, size: u64) -> Result<Hash, StorageError> {
        Ok(self.log.root(size)?)
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StorageError> {
        Ok(self.log.reader().inclusion_proof(index, size)?)
    }

    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StorageError> {
        Ok(self.log.reader().consistency_proof(old, new)?)
    }

    fn recorded_size(&self) -> Result<u64, StorageError> {
        Ok(self.store.audit_state()?.0)
    }

    fn records(&self) -> Box<dyn Iterator<Item = Result<AlertRecord, StorageError>> + '_> {
        Box::new(self.store.iter().map(|r| r.map_err(StorageError::from)))
    }

    fn acks(&self) -> Result<HashMap<(AlertId, UnitRef), AckRecord>, StorageError> {
        Ok(self.store.acks()?)
    }

    fn remove_ack(&mut self, alert: &AlertId, unit: &UnitRef) -> Result<(), StorageError> {
        Ok(self.store.remove_ack(alert, unit)?)
    }

    fn remove_record(&mut self, id: &AlertId) -> Result<(), StorageError> {
        Ok(self.store.remove(id)?)
    }

    fn put_records(&mut self, records: &[&AlertRecord]) -> Result<(), StorageError> {
        Ok(self.store.put_all(records.iter().copied())?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use filet_proto::audit::{Entry, Event};
    use filet_proto::checkpoint::{open_checkpoint, NoteVerifier};
    use filet_proto::Timestamp;

    fn open(dir: &std::path::Path) -> (Embedded, String) {
        let (log, _) = AuditLog::open(&dir.join("audit")).unwrap();
        let store = Store::open(&dir.join("store")).unwrap();
        let (mark, _) = StoreMark::open(&dir.join("store.mark")).unwrap();
        let signer = NoteSigner::from_seed("test.relay", &[7; 32]).unwrap();
        let key = signer.verifier_key();
        (
            Embedded::new(log, store, mark, signer, "test.relay".into()),
            key,
        )
    }

    fn entry(index: u64) -> Entry {
        Entry::new(
            index,
            Timestamp(1_796_300_000_000),
            Event::RelayStopped {
                software: "test".into(),
            },
        )
    }

    fn batch(entries: &[Entry]) -> Batch<'_> {
        static NONE: std::sync::OnceLock<HashMap<AlertId, AlertRecord>> =
            std::sync::OnceLock::new();
        Batch {
            entries,
            records: NONE.get_or_init(HashMap::new),
            acks: &[],
            rewrites: false,
        }
    }

    #[test]
    fn a_commit_returns_the_new_size_with_its_signed_checkpoint_and_a_batch_out_of_step_is_refused()
    {
        let tmp = tempfile::tempdir().unwrap();
        let (mut s, key) = open(tmp.path());
        let verifier = NoteVerifier::parse(&key).unwrap();
        let entries = [entry(0), entry(1)];
        let c = s.commit(batch(&entries)).unwrap();
        assert_eq!(c.size, 2);
        assert_eq!(s.audit_size(), 2);
        let cp = open_checkpoint(&c.checkpoint, &verifier).unwrap();
        assert_eq!((cp.size, cp.root), (2, s.root(2).unwrap()));
        assert_eq!(s.entry(1).unwrap(), entries[1].to_bytes());
        // A batch that does not continue the log (another writer): refused, nothing added.
        let stale = [entry(1)];
        let e = s.commit(batch(&stale)).unwrap_err();
        assert!(
            matches!(e, StorageError::OutOfStep { first: 1, size: 2 }),
            "{e}"
        );
        assert_eq!(s.audit_size(), 2);
        // A clean stop, then the store says it caught up with the log.
        s.close().unwrap();
        drop(s);
        let (s, _) = open(tmp.path());
        assert_eq!(s.audit_size(), 2);
        assert_eq!(s.recorded_size().unwrap(), 2);
    }
}
