//! Storage at the batch: what the group-commit driver needs from the durable state.
//!
//! One [`Storage::commit`] takes everything a batch produced (audit entries, alert
//! records, acknowledgements) and makes it durable atomically, then returns the new log
//! size and its signed checkpoint. The driver answers and publishes only after it returns
//! `Ok`. Reads: alert records ([`Storage::record`]), audit entries and proof hashes.
//! Recovery ([`crate::recovery`]) uses the repair methods at start-up, before the first
//! batch.
//!
//! The first implementation, [`embedded::Embedded`], is today's data directory: sled for
//! records (`store.rs`, `sealed.rs`) and the audit log files (`audit_log.rs`).
//!
//! # Durability contract
//!
//! `commit` returning `Ok` means every entry, record and acknowledgement of the batch
//! survives a process crash and a power loss: the audit entries are `fdatasync`ed, the
//! checkpoint given in answers is recorded durably, and the records are durable (for sled:
//! `flush` returned and its data file was `fdatasync`ed). An `Err` means nothing of the
//! batch may be acknowledged; the relay stops. After a crash inside `commit`, the storage
//! may hold part of the batch: recovery must bring it back to a state where every record
//! has durable audit entries, and every durable `posted` entry has its record or a later
//! `voided` entry (see [`crate::recovery::recover`]).
//!
//! # A transactional backend
//!
//! A database implements `commit` as one transaction: insert the entries (checking that
//! the first index of the batch is the log's size inside the transaction: the ledger
//! numbers them from [`Storage::audit_size`], and a second writer makes the check fail),
//! upsert the records and acknowledgements, store the new tree size and checkpoint, and
//! commit. Its repair methods then have nothing to repair (a transaction is all or
//! nothing) and may return empty results.

pub mod embedded;

use std::collections::HashMap;

use filet_proto::audit::Entry;
use filet_proto::merkle::Hash;
use filet_proto::{AlertId, UnitRef};

use crate::audit_log::AuditLogError;
use crate::store::{AckRecord, AlertRecord, StoreError};

/// A storage failure: the relay stops (nothing after the last receipt is acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditLogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint could not be signed.
    #[error("cannot sign checkpoint: {0}")]
    Sign(String),
    /// The batch does not continue the log (another writer, or a ledger out of step).
    #[error("the batch's first audit entry is {first}, but the audit log holds {size} entries")]
    OutOfStep {
        /// The batch's first index.
        first: u64,
        /// The log's size.
        size: u64,
    },
}

/// What one batch writes.
pub struct Batch<'a> {
    /// Audit entries, numbered from [`Storage::audit_size`].
    pub entries: &'a [Entry],
    /// Alert records to insert or replace.
    pub records: &'a HashMap<AlertId, AlertRecord>,
    /// Acknowledgements to add.
    pub acks: &'a [(AlertId, UnitRef, AckRecord)],
    /// The batch rewrites records committed earlier: the records must not become durable
    /// before the entries (a backend that commits both atomically may ignore it).
    pub rewrites: bool,
}

/// A durable batch.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The log's size.
    pub size: u64,
    /// The signed checkpoint of that size (a C2SP signed note), recorded durably: the one
    /// answers carry.
    pub checkpoint: String,
}

/// The relay's durable state, written by the commit thread alone.
pub trait Storage: Send {
    /// Audit entries committed (the index the next batch's first entry gets).
    fn audit_size(&self) -> u64;

    /// The committed record of an alert.
    ///
    /// # Errors
    /// Read errors.
    fn record(&self, id: &AlertId) -> Result<Option<AlertRecord>, StorageError>;

    /// Makes the batch durable, atomically (see the module's durability contract).
    ///
    /// # Errors
    /// Any failure: nothing of the batch may be acknowledged.
    fn commit(&mut self, batch: Batch<'_>) -> Result<Committed, StorageError>;

    /// A clean stop, after the last commit: whatever start-up needs to know the stop was
    /// clean is durable.
    ///
    /// # Errors
    /// Write errors.
    fn close(&mut self) -> Result<(), StorageError>;

    /// The bytes of audit entry `index` (committed).
    ///
    /// # Errors
    /// Read errors, an index past the log.
    fn entry(&self, index: u64) -> Result<Vec<u8>, StorageError>;

    /// The Merkle root of the first `size` entries.
    ///
    /// # Errors
    /// Read errors.
    fn root(&self, size: u64) -> Result<Hash, StorageError>;

    /// The inclusion proof of entry `index` in the tree of `size` entries.
    ///
    /// # Errors
    /// Read errors, indices out of range.
    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StorageError>;

    /// The consistency proof between the trees of `old` and `new` entries.
    ///
    /// # Errors
    /// Read errors, sizes out of range.
    fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, StorageError>;

    // Repair, at start-up only (see `crate::recovery`).

    /// The audit size up to which the records are known to be in step with the log (the
    /// start of the tail a crash may have cut).
    ///
    /// # Errors
    /// Read errors.
    fn recorded_size(&self) -> Result<u64, StorageError>;

    /// Every stored record (acknowledgements not merged in).
    fn records(&self) -> Box<dyn Iterator<Item = Result<AlertRecord, StorageError>> + '_>;

    /// Every stored acknowledgement.
    ///
    /// # Errors
    /// Read errors.
    fn acks(&self) -> Result<HashMap<(AlertId, UnitRef), AckRecord>, StorageError>;

    /// Removes an acknowledgement (its entry is not durable).
    ///
    /// # Errors
    /// Write errors.
    fn remove_ack(&mut self, alert: &AlertId, unit: &UnitRef) -> Result<(), StorageError>;

    /// Removes a record (its entries are not durable).
    ///
    /// # Errors
    /// Write errors.
    fn remove_record(&mut self, id: &AlertId) -> Result<(), StorageError>;

    /// Writes repaired records; durable with the next commit.
    ///
    /// # Errors
    /// Write errors.
    fn put_records(&mut self, records: &[&AlertRecord]) -> Result<(), StorageError>;
}
