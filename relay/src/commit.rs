//! Group commit: the one thread that writes the audit log and the alert store.
//!
//! Connection tasks send [`Op`]s on a bounded channel (a full channel makes them wait:
//! backpressure, never a drop). The commit thread takes everything queued (up to
//! `max_batch`), and for the whole batch:
//!
//! 1. decides each op against its private index (idempotency, mailbox limits, acks) and
//!    appends the audit entries;
//! 2. writes the entries and `fdatasync`s the audit log, and records in `store.mark` that
//!    the previous batch is in the store;
//! 3. writes the alert records (one atomic sled batch), acknowledgements and the audit
//!    watermark to sled, `flush`es it and `fdatasync`s its file;
//! 4. signs a checkpoint of the new tree size, then publishes new mailbox entries to the
//!    [`Hub`] (log before disclose) and answers every op of the batch.
//!
//! Steps 2 and 3 run in parallel when the batch only adds (new posts, acknowledgements,
//! deliveries): a crash may then leave store records or acknowledgements without durable
//! audit entries, which start-up removes (no receipt depended on them), or audit entries
//! of posts the store does not hold, which start-up marks `voided`. A batch that rewrites
//! alerts committed earlier (follow-ups, expiry, purge) runs step 3 after step 2, so the
//! store never holds a change the log does not (see [`recover`]). No lock is held across
//! I/O: the thread owns the log and the store writer outright.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use filet_proto::agreement::Agreement;
use filet_proto::alert::{
    AlertDraft, AlertState, Category, Envelope, FieldSet, HistoryItem, Kind, Status,
    DEFAULT_EXPIRY_MS,
};
use filet_proto::audit::{commitment, committed_content, Entry, Event, RefusalReason};
use filet_proto::checkpoint::{Checkpoint, NoteSigner};
use filet_proto::policy::{self, Disclosure};
use filet_proto::wire::{ErrorCode, Receipt, ReceiptRecipient, RelayError};
use filet_proto::{AlertId, Principal, Timestamp, UnitRef};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{mpsc, oneshot};

use crate::audit_log::{AuditLog, AuditLogError};
use crate::clock::Clock;
use crate::hub::{Hub, ThreadView};
use crate::store::{AckRecord, AlertRecord, RecipientRecord, Store, StoreError, StoreMark};

/// A request to the commit thread.
pub enum Op {
    /// Store a validated alert (or update, located, cancel) and disclose it.
    Post {
        /// The connection's principal (the sender).
        principal: Principal,
        /// The validated draft (`expires_at` filled in).
        draft: AlertDraft,
        /// Recipients and what each may see (a new alert), or the agreement to route a
        /// follow-up with against the original's recipients.
        route: Route,
        /// The sender's idempotency key.
        idempotency_key: [u8; 16],
        /// When the relay received it.
        received_at: Timestamp,
        /// The answer.
        reply: oneshot::Sender<Result<Receipt, RelayError>>,
    },
    /// A node acknowledges an alert for its unit.
    Ack {
        /// The node.
        principal: Principal,
        /// The alert.
        alert: AlertId,
        /// The index of the `acknowledged` entry.
        reply: oneshot::Sender<Result<u64, RelayError>>,
    },
    /// An alert was sent to a node (logged once per alert and node).
    Delivered {
        /// The alert.
        alert: AlertId,
        /// Its sender.
        sender: Principal,
        /// The node.
        node: Principal,
        /// The fields sent.
        fields: FieldSet,
        /// The rules under which the check at delivery time permitted it.
        rules: Vec<String>,
        /// The agreement in force then (id).
        agreement: String,
        /// Its version.
        agreement_version: u64,
    },
    /// A waiting alert was not delivered to a unit (logged once per alert and unit).
    Withheld {
        /// The alert.
        alert: AlertId,
        /// Its sender.
        sender: Principal,
        /// The unit.
        unit: UnitRef,
        /// Why.
        reason: String,
    },
    /// Run the timers now: expire alerts past their expiry, purge content past its
    /// retention. Sent every second by the relay, and by tests after moving the clock.
    Tick {
        /// Answered once the resulting entries are durable.
        reply: Option<oneshot::Sender<Result<u64, RelayError>>>,
    },
    /// Any other event (refusals, agreement loaded): appended, then the index is sent back.
    Audit {
        /// The event.
        event: Event,
        /// The index once durable, if the caller waits.
        reply: Option<oneshot::Sender<Result<u64, RelayError>>>,
    },
}

/// How a post's recipients are decided.
pub enum Route {
    /// A new alert, routed by the connection task.
    New(Vec<Disclosure>),
    /// An update, located or cancel: the original's recipient units that the current
    /// agreement still permits, decided by the commit thread (which knows the thread).
    FollowUp(Arc<Agreement>),
}

/// The same as a past participle: "updated", "marked as located", "cancelled".
fn participle(k: Kind) -> &'static str {
    match k {
        Kind::Alert => "posted",
        Kind::Update => "updated",
        Kind::Located => "marked as located",
        Kind::Cancel => "cancelled",
    }
}

/// Errors that stop the commit thread (and the relay): nothing after them is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The audit log failed.
    #[error(transparent)]
    Audit(#[from] AuditLogError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The checkpoint could not be signed.
    #[error("cannot sign checkpoint: {0}")]
    Sign(String),
    /// The system random source failed.
    #[error("system random source failed")]
    Random,
    /// The alert store lost data the audit log proves was committed.
    #[error("{0}")]
    StoreDamaged(String),
}

/// One recipient unit of one message, as the commit thread tracks it.
struct Slot {
    unit: UnitRef,
    seq: u64,
    /// The audit index of the unit's acknowledgement, once acknowledged.
    acked: Option<u64>,
    /// Still in the unit's mailbox (not acknowledged, expired or purged).
    pending: bool,
}

/// What the commit thread knows about one message (alert, update, located, cancel).
struct AlertMeta {
    sender: Principal,
    idempotency_key: [u8; 16],
    recipients: Vec<Slot>,
}

/// What the commit thread knows about one alert's life (its thread).
struct Thread {
    /// The original's sender unit: follow-ups are routed with its rules, so that every
    /// recipient of the original that the agreement still permits hears of them, whichever
    /// unit of the party posts them.
    sender_unit: UnitRef,
    category: Category,
    /// The original's status: its follow-ups keep it.
    status: Status,
    state: AlertState,
    expires_at: Timestamp,
    closed_at: Option<Timestamp>,
    purged: bool,
    /// The original's recipient units.
    recipients: Vec<UnitRef>,
    /// Every message of the thread, the original first.
    members: Vec<AlertId>,
    /// Longest retention of the rules that disclosed any message of the thread, ms.
    retention_ms: i64,
    /// Where the thread is filed in the timer queues.
    queued: Option<Queued>,
    /// The latest expiry of its closing messages (located, cancel), ms: the thread is
    /// kept (not purged) until then, so that units offline at closing still hear of it.
    keep_until: i64,
}

/// A thread's place in the timer queues.
#[derive(Clone, Copy)]
enum Queued {
    Expiry(i64),
    Purge(i64),
}

impl Thread {
    fn purge_at(&self) -> Option<i64> {
        self.closed_at
            .map(|c| c.0.saturating_add(self.retention_ms).max(self.keep_until))
    }
}

/// The commit thread's private index, rebuilt from the store at start-up.
pub struct Index {
    alerts: HashMap<AlertId, AlertMeta>,
    threads: HashMap<AlertId, Thread>,
    idempotency: HashMap<(Principal, [u8; 16]), AlertId>,
    mailbox_len: HashMap<UnitRef, usize>,
    /// Waiting entries per (recipient unit, sender unit): the per-sender quota.
    mailbox_from: HashMap<(UnitRef, UnitRef), usize>,
    next_seq: u64,
    /// Nodes each message was delivered to (a `delivered` entry is logged once per node);
    /// forgotten when the message leaves every mailbox.
    delivered: HashMap<AlertId, HashSet<Principal>>,
    withheld: HashSet<(AlertId, UnitRef)>,
    /// Open threads by expiry time (ms).
    expiry: BTreeSet<(i64, AlertId)>,
    /// Closed, unpurged threads by purge time (ms).
    purge: BTreeSet<(i64, AlertId)>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            alerts: HashMap::new(),
            threads: HashMap::new(),
            idempotency: HashMap::new(),
            mailbox_len: HashMap::new(),
            mailbox_from: HashMap::new(),
            // Mailbox positions start at 1: position 0 means "before the first entry".
            next_seq: 1,
            delivered: HashMap::new(),
            withheld: HashSet::new(),
            expiry: BTreeSet::new(),
            purge: BTreeSet::new(),
        }
    }
}

impl Index {
    /// Adds a stored message (originals before their follow-ups, as the store's id order
    /// gives them); returns the mailbox entries to publish.
    pub fn insert(&mut self, rec: &AlertRecord) -> Vec<(UnitRef, u64, AlertId)> {
        let id = rec.envelope.id;
        let root = rec.root();
        if rec.purged {
            // Nothing more happens to a purged message: only its mailbox positions count.
            for r in &rec.recipients {
                self.next_seq = self.next_seq.max(r.seq + 1);
            }
            return Vec::new();
        }
        let retention = rec
            .recipients
            .iter()
            .map(|r| r.retention_ms)
            .max()
            .unwrap_or(0);
        if rec.envelope.kind == Kind::Alert {
            let t = Thread {
                sender_unit: rec.envelope.sender.unit.clone(),
                category: rec.envelope.category,
                status: rec.envelope.status,
                state: rec.state,
                expires_at: rec.envelope.expires_at,
                closed_at: rec.closed_at,
                purged: rec.purged,
                recipients: rec.recipients.iter().map(|r| r.unit.clone()).collect(),
                members: vec![id],
                retention_ms: retention,
                queued: None,
                keep_until: i64::MIN,
            };
            self.threads.insert(id, t);
            self.reschedule(id);
        } else if let Some(t) = self.threads.get_mut(&root) {
            t.members.push(id);
            t.retention_ms = t.retention_ms.max(retention);
            if matches!(rec.envelope.kind, Kind::Located | Kind::Cancel) {
                t.keep_until = t.keep_until.max(rec.envelope.expires_at.0);
            }
            self.reschedule(root);
        }
        let (expired, purged) = self
            .threads
            .get(&root)
            .map(|t| (t.state == AlertState::Expired, t.purged))
            .unwrap_or((false, false));
        let mut pending = Vec::new();
        let mut slots = Vec::new();
        for r in &rec.recipients {
            let acked = r.acked.as_ref().map(|a| a.audit_index);
            let is_pending = acked.is_none() && !expired && !purged && !rec.purged;
            if is_pending {
                *self.mailbox_len.entry(r.unit.clone()).or_default() += 1;
                *self
                    .mailbox_from
                    .entry((r.unit.clone(), rec.envelope.sender.unit.clone()))
                    .or_default() += 1;
                pending.push((r.unit.clone(), r.seq, id));
            }
            self.next_seq = self.next_seq.max(r.seq + 1);
            slots.push(Slot {
                unit: r.unit.clone(),
                seq: r.seq,
                acked,
                pending: is_pending,
            });
        }
        self.idempotency
            .insert((rec.envelope.sender.clone(), rec.idempotency_key), id);
        self.alerts.insert(
            id,
            AlertMeta {
                sender: rec.envelope.sender.clone(),
                idempotency_key: rec.idempotency_key,
                recipients: slots,
            },
        );
        pending
    }

    /// Files a thread in the timer queues after its state, expiry or retention changed:
    /// open threads by expiry time, closed unpurged ones by purge time.
    fn reschedule(&mut self, root: AlertId) {
        let Some(t) = self.threads.get_mut(&root) else {
            return;
        };
        match t.queued.take() {
            Some(Queued::Expiry(at)) => {
                self.expiry.remove(&(at, root));
            }
            Some(Queued::Purge(at)) => {
                self.purge.remove(&(at, root));
            }
            None => {}
        }
        if !t.state.is_closed() {
            self.expiry.insert((t.expires_at.0, root));
            t.queued = Some(Queued::Expiry(t.expires_at.0));
        } else if !t.purged {
            if let Some(at) = t.purge_at() {
                self.purge.insert((at, root));
                t.queued = Some(Queued::Purge(at));
            }
        }
    }

    /// Counts one entry from `sender` out of `unit`'s mailbox.
    fn leave_mailbox(&mut self, unit: &UnitRef, sender: &UnitRef) {
        if let Some(n) = self.mailbox_len.get_mut(unit) {
            *n = n.saturating_sub(1);
        }
        let key = (unit.clone(), sender.clone());
        if let Some(n) = self.mailbox_from.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.mailbox_from.remove(&key);
            }
        }
    }

    /// Takes a message's pending mailbox entries out; returns them to unpublish.
    fn unpend(&mut self, id: &AlertId) -> Vec<(UnitRef, u64)> {
        let mut out = Vec::new();
        let mut left = Vec::new();
        if let Some(m) = self.alerts.get_mut(id) {
            for s in m.recipients.iter_mut().filter(|s| s.pending) {
                s.pending = false;
                left.push((s.unit.clone(), m.sender.unit.clone()));
                out.push((s.unit.clone(), s.seq));
            }
        }
        for (unit, sender) in left {
            self.leave_mailbox(&unit, &sender);
        }
        self.delivered.remove(id);
        out
    }

    /// Forgets a purged thread and every message of it: nothing of it waits in a mailbox
    /// and nothing more can happen to it (a follow-up or an acknowledgement of it is
    /// answered from its purged record in the store).
    /// Returns the mailbox entries still to unpublish (none once every member is purged).
    fn forget_thread(&mut self, root: &AlertId) -> Vec<(UnitRef, u64)> {
        let mut out = Vec::new();
        let Some(t) = self.threads.remove(root) else {
            return out;
        };
        match t.queued {
            Some(Queued::Expiry(at)) => {
                self.expiry.remove(&(at, *root));
            }
            Some(Queued::Purge(at)) => {
                self.purge.remove(&(at, *root));
            }
            None => {}
        }
        for m in &t.members {
            out.extend(self.unpend(m));
            let Some(meta) = self.alerts.remove(m) else {
                continue;
            };
            let key = (meta.sender, meta.idempotency_key);
            if self.idempotency.get(&key) == Some(m) {
                self.idempotency.remove(&key);
            }
            for unit in meta
                .recipients
                .iter()
                .map(|s| &s.unit)
                .chain(t.recipients.iter())
            {
                self.withheld.remove(&(*m, unit.clone()));
            }
        }
        out
    }

    /// Forgets per-node delivery records of a message no longer waiting anywhere (or
    /// forgotten: purged).
    fn forget_delivered_if_done(&mut self, id: &AlertId) {
        if self
            .alerts
            .get(id)
            .is_none_or(|m| m.recipients.iter().all(|s| !s.pending))
        {
            self.delivered.remove(id);
        }
    }
}

/// Most updates of one alert: the next one is refused ([`ErrorCode::InvalidAlert`]); `located`
/// and `cancel` are still accepted (they close the thread).
pub const MAX_FOLLOW_UPS: usize = 100;
/// Most bytes of an alert's history (encoded): an update that would make it longer is
/// refused ([`ErrorCode::InvalidAlert`], naming the limit); `located` and `cancel` may pass
/// it by their one step, an expiry by its own.
pub const MAX_HISTORY_BYTES: usize = 120 * 1024;
/// Most bytes of one new message's stored record (encoded): a post whose record would be
/// larger is refused alone. With [`MAX_HISTORY_BYTES`] it keeps every message, with its
/// thread's history, within one frame: what a node is sent of a message (its envelope,
/// content, note, rules) is part of its record, and the history is bounded apart.
pub const MAX_RECORD_BYTES: usize = 112 * 1024;

/// Settings of the commit thread.
pub struct CommitConfig {
    /// Most ops in one batch.
    pub max_batch: usize,
    /// Most unacknowledged alerts per unit; a post to a full mailbox is refused.
    pub mailbox_max: usize,
    /// Most unacknowledged alerts from one sender unit in one unit's mailbox.
    pub mailbox_max_per_sender: usize,
    /// Most updates per alert ([`MAX_FOLLOW_UPS`]).
    pub max_follow_ups: usize,
    /// Most history bytes per alert ([`MAX_HISTORY_BYTES`]).
    pub max_history_bytes: usize,
    /// Most bytes of a new message's record ([`MAX_RECORD_BYTES`]; never above the frame
    /// limit).
    pub max_record_bytes: usize,
}

impl CommitConfig {
    /// The relay's limits with this batch size and mailbox limits.
    pub fn new(max_batch: usize, mailbox_max: usize, mailbox_max_per_sender: usize) -> Self {
        CommitConfig {
            max_batch,
            mailbox_max,
            mailbox_max_per_sender,
            max_follow_ups: MAX_FOLLOW_UPS,
            max_history_bytes: MAX_HISTORY_BYTES,
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }
}

/// The commit thread's state.
pub struct Committer {
    log: AuditLog,
    store: Store,
    signer: NoteSigner,
    origin: String,
    subject_key: ring::hmac::Key,
    index: Index,
    hub: Arc<Hub>,
    latest_checkpoint: Arc<RwLock<String>>,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    cfg: CommitConfig,
    /// Statistics: batches committed and ops in them.
    pub stats: Arc<CommitStats>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Acknowledgements of this batch, written with it.
    acks: Vec<(AlertId, UnitRef, AckRecord)>,
    /// Alerts whose state or history changed in this batch (their records are in the
    /// batch's records), published with it.
    changed_threads: Vec<AlertId>,
    /// Random bytes drawn from the system in blocks, handed out for ids and salts.
    entropy: Vec<u8>,
    /// The size and checkpoint of the last durable batch, recorded in the store with the
    /// next one.
    last_durable: Option<(u64, String)>,
    /// `store.mark`: the audit size below which every post is durable in the store.
    mark: StoreMark,
    /// This batch rewrites alerts committed earlier (a follow-up, an expiry, a purge): its
    /// store writes must wait for its audit entries (see [`Committer::durable`]).
    rewrites: bool,
}

/// Counters the benchmark and metrics read.
#[derive(Default, Debug)]
pub struct CommitStats {
    /// Batches committed.
    pub batches: std::sync::atomic::AtomicU64,
    /// Posts committed.
    pub posts: std::sync::atomic::AtomicU64,
    /// Ops committed.
    pub ops: std::sync::atomic::AtomicU64,
}

/// Something to do once the batch is durable.
enum After {
    Receipt {
        reply: oneshot::Sender<Result<Receipt, RelayError>>,
        receipt: Receipt,
    },
    Refusal {
        reply: oneshot::Sender<Result<Receipt, RelayError>>,
        error: RelayError,
    },
    Index {
        reply: oneshot::Sender<Result<u64, RelayError>>,
        result: Result<u64, RelayError>,
    },
    Publish {
        unit: UnitRef,
        seq: u64,
        alert: AlertId,
    },
    Unpublish {
        unit: UnitRef,
        seq: u64,
    },
    /// A purged thread: the hub forgets its state.
    Forget {
        root: AlertId,
    },
}

fn internal(e: &CommitError) -> RelayError {
    RelayError::new(
        ErrorCode::Internal,
        format!("the relay could not store this and is stopping; nothing was acknowledged ({e})"),
    )
}

impl Committer {
    /// Builds the commit thread's state. `index` must come from [`recover`].
    #[allow(clippy::too_many_arguments)] // one-time wiring of the relay's parts
    pub fn new(
        log: AuditLog,
        store: Store,
        signer: NoteSigner,
        origin: String,
        subject_key: Vec<u8>,
        index: Index,
        hub: Arc<Hub>,
        latest_checkpoint: Arc<RwLock<String>>,
        clock: Arc<dyn Clock>,
        cfg: CommitConfig,
        metrics: Arc<crate::metrics::Metrics>,
        mark: StoreMark,
    ) -> Self {
        Committer {
            log,
            store,
            signer,
            origin,
            subject_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &subject_key),
            index,
            hub,
            latest_checkpoint,
            clock,
            rng: SystemRandom::new(),
            cfg,
            stats: Arc::new(CommitStats::default()),
            metrics,
            acks: Vec::new(),
            changed_threads: Vec::new(),
            entropy: Vec::new(),
            last_durable: None,
            mark,
            rewrites: false,
        }
    }

    /// Runs until every sender of `rx` is gone (then the store and log are flushed) or a
    /// storage error happens (returned; the relay must stop).
    ///
    /// # Errors
    /// The first storage error; every op of the failed batch is answered with
    /// [`ErrorCode::Internal`].
    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) -> Result<(), CommitError> {
        let mut batch = Vec::with_capacity(self.cfg.max_batch);
        while let Some(op) = rx.blocking_recv() {
            batch.push(op);
            while batch.len() < self.cfg.max_batch {
                match rx.try_recv() {
                    Ok(op) => batch.push(op),
                    Err(_) => break,
                }
            }
            self.commit_batch(&mut batch)?;
        }
        // A clean stop: every post before this entry is in the store (start-up uses it to
        // tell a store that lost data from a crash that cut the last batch).
        self.append(Event::RelayStopped {
            software: format!("filet-relay {}", env!("CARGO_PKG_VERSION")),
        })?;
        self.durable(&HashMap::new())?;
        if let Some((size, note)) = self.last_durable.clone() {
            self.store.set_audit_state(size, &note)?;
            self.store.flush()?;
            self.mark.set_and_sync(size)?;
        } else {
            self.store.flush()?;
        }
        Ok(())
    }

    /// Appends one event (outside a batch: start-up entries). Durable after the next
    /// [`Committer::sync`].
    ///
    /// # Errors
    /// Audit log errors.
    pub fn append(&mut self, event: Event) -> Result<u64, CommitError> {
        let now = self.clock.now();
        self.metrics.event(&event);
        let e = Entry::new(self.log.size(), now, event);
        Ok(self.log.append(&e.to_bytes())?)
    }

    /// Commits what [`Committer::append`] added: audit sync, checkpoint, store flush.
    ///
    /// # Errors
    /// Storage errors.
    pub fn sync(&mut self) -> Result<String, CommitError> {
        self.durable(&HashMap::new())
    }

    /// Makes the batch durable. The audit log's write and `fdatasync`, then the signed
    /// checkpoint of the new size recorded in `answered` (`fdatasync`ed: the checkpoint
    /// the answers carry), run on a helper thread while this one writes the store and
    /// flushes it (sled `flush`, then `fdatasync` of its file); the answers wait for both.
    /// A crash between the two leaves store records or acknowledgements whose audit
    /// entries were not synced: start-up recovery removes them (no receipt depended on
    /// them). The store records the checkpoint of the previous batch (whose audit entries
    /// were synced then): the one it holds never covers more than the log. Once both are
    /// done, `store.mark` says the batch is in the store.
    ///
    /// A batch that rewrites alerts committed earlier (a follow-up changes its original's
    /// state, an expiry, a purge) writes the store only after its audit entries are
    /// durable: removing a rewritten record would lose the alert, so the store must never
    /// hold a change the log does not. Its records go to sled in one atomic batch; after
    /// a crash between the two steps, [`recover`] finds the log ahead of the store and
    /// voids or re-applies what the log holds. sled's own background flush (every
    /// 500 ms) cannot reorder this: nothing reaches sled before the audit sync.
    fn durable(&mut self, records: &HashMap<AlertId, AlertRecord>) -> Result<String, CommitError> {
        let started = std::time::Instant::now();
        let previous = self.last_durable.clone();
        let acks = std::mem::take(&mut self.acks);
        let serial = std::mem::take(&mut self.rewrites);
        let (log, store) = (&mut self.log, &mut self.store);
        let (signer, origin) = (&self.signer, &self.origin);
        // The checkpoint of the synced log, recorded durably before anyone is answered
        // with it (see `AuditLog::answer`).
        let sign_and_record = move |log: &mut AuditLog, size: u64| -> Result<String, CommitError> {
            let root = log.root(size)?;
            let cp = Checkpoint {
                origin: origin.clone(),
                size,
                root,
                extensions: Vec::new(),
            };
            let note = signer
                .sign(&cp.to_text())
                .map_err(|e| CommitError::Sign(e.to_string()))?;
            log.answer(size, &note)?;
            Ok(note)
        };
        let mut write_store = move || -> Result<(), StoreError> {
            store.put_all(records.values())?;
            for (alert, unit, ack) in &acks {
                store.put_ack(alert, unit, ack)?;
            }
            if let Some((size, note)) = &previous {
                store.set_audit_state(*size, note)?;
            }
            store.flush()
        };
        let (audit, stored) = if serial {
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
            Err(_) => return Err(CommitError::Sign("the audit log writer panicked".into())),
        };
        stored?;
        // The store holds every post of the first `size` entries now.
        self.mark.set(size)?;
        self.hub.set_published(size);
        self.last_durable = Some((size, note.clone()));
        self.metrics.flush.observe(started.elapsed().as_secs_f64());
        *self
            .latest_checkpoint
            .write()
            .unwrap_or_else(|p| p.into_inner()) = note.clone();
        Ok(note)
    }

    fn commit_batch(&mut self, batch: &mut Vec<Op>) -> Result<(), CommitError> {
        let mut after = Vec::with_capacity(batch.len() * 2);
        let mut records: HashMap<AlertId, AlertRecord> = HashMap::new();
        let n_ops = batch.len() as u64;
        let size_before = self.log.size();
        let mut posts = 0u64;
        let mut failure = None;
        for op in batch.drain(..) {
            if failure.is_some() {
                fail_op(op, failure.as_ref());
                continue;
            }
            if let Op::Post { .. } = op {
                posts += 1;
            }
            if let Err(e) = self.apply(op, &mut records, &mut after) {
                failure = Some(e);
            }
        }
        let note = match failure {
            Some(e) => Err(e),
            // Nothing new (a timer tick with nothing due, a duplicate post): no commit.
            None if records.is_empty()
                && self.acks.is_empty()
                && self.log.size() == size_before =>
            {
                Ok(self
                    .latest_checkpoint
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone())
            }
            None => self.durable(&records),
        };
        let note = match note {
            Ok(n) => n,
            Err(e) => {
                for a in after {
                    fail_after(a, &e);
                }
                return Err(e);
            }
        };
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.batches.fetch_add(1, Relaxed);
        self.metrics.batch.observe(n_ops as f64);
        self.stats.ops.fetch_add(n_ops, Relaxed);
        self.stats.posts.fetch_add(posts, Relaxed);
        // Publish first, then answer: a node that acts on an answer sees the new state.
        // The hub holds the committed records themselves: deliveries read no storage.
        let records: HashMap<AlertId, Arc<AlertRecord>> =
            records.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
        for root in self.changed_threads.drain(..) {
            if let Some(r) = records.get(&root) {
                self.hub.set_thread(
                    root,
                    ThreadView {
                        sender_unit: r.envelope.sender.unit.clone(),
                        state: r.state,
                        expires_at: r.envelope.expires_at,
                        history: r.history.clone(),
                    },
                );
            }
        }
        for a in &after {
            match a {
                After::Publish { unit, seq, alert } => {
                    if let Some(r) = records.get(alert) {
                        self.hub.add(unit, *seq, r.clone());
                    }
                }
                After::Unpublish { unit, seq } => self.hub.remove(unit, *seq),
                After::Forget { root } => self.hub.forget_thread(root),
                _ => {}
            }
        }
        for a in after {
            match a {
                After::Receipt { reply, mut receipt } => {
                    receipt.checkpoint = note.clone();
                    let _ = reply.send(Ok(receipt));
                }
                After::Refusal { reply, error } => {
                    let _ = reply.send(Err(error));
                }
                After::Index { reply, result } => {
                    let _ = reply.send(result);
                }
                After::Publish { .. } | After::Unpublish { .. } | After::Forget { .. } => {}
            }
        }
        Ok(())
    }

    fn entry(&mut self, event: Event) -> Result<u64, CommitError> {
        self.append(event)
    }

    fn record(
        &self,
        id: &AlertId,
        records: &HashMap<AlertId, AlertRecord>,
    ) -> Result<Option<AlertRecord>, CommitError> {
        if let Some(r) = records.get(id) {
            return Ok(Some(r.clone()));
        }
        Ok(self.store.get(id)?)
    }

    /// `N` random bytes from the system's CSPRNG, fetched 4 KiB at a time (one system
    /// call per ~100 posts instead of two per post).
    fn random<const N: usize>(&mut self) -> Result<[u8; N], CommitError> {
        if self.entropy.len() < N {
            let mut block = vec![0u8; 4096];
            self.rng.fill(&mut block).map_err(|_| CommitError::Random)?;
            self.entropy = block;
        }
        let mut b = [0u8; N];
        let at = self.entropy.len() - N;
        b.copy_from_slice(&self.entropy[at..]);
        // Never hand out the same bytes twice.
        self.entropy.truncate(at);
        Ok(b)
    }

    fn refuse_post(
        &mut self,
        reply: oneshot::Sender<Result<Receipt, RelayError>>,
        after: &mut Vec<After>,
        event: Event,
        error: RelayError,
    ) -> Result<(), CommitError> {
        self.entry(event)?;
        after.push(After::Refusal { reply, error });
        Ok(())
    }

    fn apply(
        &mut self,
        op: Op,
        records: &mut HashMap<AlertId, AlertRecord>,
        after: &mut Vec<After>,
    ) -> Result<(), CommitError> {
        match op {
            Op::Post {
                principal,
                draft,
                route,
                idempotency_key,
                received_at,
                reply,
            } => self.post(
                principal,
                draft,
                route,
                idempotency_key,
                received_at,
                reply,
                records,
                after,
            ),
            Op::Ack {
                principal,
                alert,
                reply,
            } => {
                let unit = principal.unit.clone();
                let found = self.index.alerts.get(&alert).and_then(|m| {
                    m.recipients
                        .iter()
                        .position(|s| s.unit == unit)
                        .map(|i| (m.sender.clone(), i))
                });
                let not_sent = || {
                    RelayError::new(
                        ErrorCode::UnknownAlert,
                        format!("alert {alert} was not sent to {unit}"),
                    )
                };
                let Some((sender, pos)) = found else {
                    // A purged alert is forgotten by the index: say so to its recipients.
                    let purged = self
                        .store
                        .get(&alert)?
                        .filter(|r| r.purged && r.recipients.iter().any(|x| x.unit == unit));
                    let error = match purged {
                        Some(_) => RelayError::new(
                            ErrorCode::Closed,
                            format!("alert {alert} was purged at the end of its retention: nothing of it waits for {unit} to acknowledge"),
                        ),
                        None => not_sent(),
                    };
                    after.push(After::Index {
                        reply,
                        result: Err(error),
                    });
                    return Ok(());
                };
                let (seq, already) = match self
                    .index
                    .alerts
                    .get(&alert)
                    .and_then(|m| m.recipients.get(pos))
                {
                    Some(slot) => (slot.seq, slot.acked),
                    None => {
                        after.push(After::Index {
                            reply,
                            result: Err(not_sent()),
                        });
                        return Ok(());
                    }
                };
                if let Some(i) = already {
                    // Already acknowledged by this unit: idempotent, no new entry.
                    after.push(After::Index {
                        reply,
                        result: Ok(i),
                    });
                    return Ok(());
                }
                let sender_unit = sender.unit.clone();
                let idx = self.entry(Event::Acknowledged {
                    alert,
                    sender,
                    recipient: principal.clone(),
                })?;
                // One small key per acknowledgement: the alert's record is not rewritten.
                self.acks.push((
                    alert,
                    unit.clone(),
                    AckRecord {
                        node: principal,
                        at: self.clock.now(),
                        audit_index: idx,
                    },
                ));
                let mut was_pending = false;
                if let Some(slot) = self
                    .index
                    .alerts
                    .get_mut(&alert)
                    .and_then(|m| m.recipients.get_mut(pos))
                {
                    slot.acked = Some(idx);
                    was_pending = std::mem::replace(&mut slot.pending, false);
                }
                if was_pending {
                    self.index.leave_mailbox(&unit, &sender_unit);
                    after.push(After::Unpublish { unit, seq });
                }
                self.index.forget_delivered_if_done(&alert);
                after.push(After::Index {
                    reply,
                    result: Ok(idx),
                });
                Ok(())
            }
            Op::Delivered {
                alert,
                sender,
                node,
                fields,
                rules,
                agreement,
                agreement_version,
            } => {
                // Log each delivery to a node once. The record of who got it is kept only
                // while the message still waits somewhere (it is forgotten then).
                let first = self
                    .index
                    .delivered
                    .entry(alert)
                    .or_default()
                    .insert(node.clone());
                self.index.forget_delivered_if_done(&alert);
                if first {
                    self.entry(Event::Delivered {
                        alert,
                        sender,
                        recipient: node,
                        fields,
                        rules,
                        agreement: Some(agreement),
                        agreement_version: Some(agreement_version),
                    })?;
                }
                Ok(())
            }
            Op::Withheld {
                alert,
                sender,
                unit,
                reason,
            } => {
                // An alert the index forgot (purged) is logged, not remembered.
                let known = self.index.alerts.contains_key(&alert);
                if !known || self.index.withheld.insert((alert, unit.clone())) {
                    self.entry(Event::Withheld {
                        alert,
                        sender,
                        recipient: unit,
                        reason,
                    })?;
                }
                Ok(())
            }
            Op::Tick { reply } => {
                self.timers(records, after)?;
                if let Some(reply) = reply {
                    after.push(After::Index {
                        reply,
                        result: Ok(self.log.size()),
                    });
                }
                Ok(())
            }
            Op::Audit { event, reply } => {
                let idx = self.entry(event)?;
                if let Some(reply) = reply {
                    after.push(After::Index {
                        reply,
                        result: Ok(idx),
                    });
                }
                Ok(())
            }
        }
    }

    #[allow(clippy::too_many_arguments)] // the fields of Op::Post, unpacked
    fn post(
        &mut self,
        principal: Principal,
        mut draft: AlertDraft,
        route: Route,
        idempotency_key: [u8; 16],
        received_at: Timestamp,
        reply: oneshot::Sender<Result<Receipt, RelayError>>,
        records: &mut HashMap<AlertId, AlertRecord>,
        after: &mut Vec<After>,
    ) -> Result<(), CommitError> {
        if let Some(id) = self
            .index
            .idempotency
            .get(&(principal.clone(), idempotency_key))
            .copied()
        {
            let receipt = self.record(&id, records)?.map(|r| receipt_of(&r, true));
            match receipt {
                Some(receipt) => after.push(After::Receipt { reply, receipt }),
                None => after.push(After::Refusal {
                    reply,
                    error: RelayError::new(
                        ErrorCode::UnknownAlert,
                        format!("alert {id} of this idempotency key is gone"),
                    ),
                }),
            }
            return Ok(());
        }
        let refused = |reason, detail: String, recipient: Option<String>, draft: &AlertDraft| {
            Event::Refused {
                principal: Some(principal.to_string()),
                reason,
                detail,
                category: Some(draft.category),
                recipient,
                alert: draft.references,
            }
        };
        // Decide the recipients.
        let mut withheld: Vec<(UnitRef, String)> = Vec::new();
        let disclosures = match route {
            Route::New(d) => d,
            Route::FollowUp(agreement) => {
                let Some(root) = draft.references else {
                    let e = RelayError::new(
                        ErrorCode::BadRequest,
                        "references: required for an update, located or cancel",
                    );
                    return self.refuse_post(
                        reply,
                        after,
                        refused(RefusalReason::Invalid, e.message.clone(), None, &draft),
                        e,
                    );
                };
                let Some(t) = self.index.threads.get(&root) else {
                    // A purged thread is forgotten by the index; its record says it is closed.
                    let purged = self
                        .record(&root, records)?
                        .filter(|r| r.purged && r.envelope.kind == Kind::Alert);
                    if let Some(r) = purged {
                        let owner = policy::may_follow_up_purged(
                            &principal,
                            draft.kind,
                            root,
                            r.envelope.sender.party(),
                        );
                        let (code, reason, message) = if let Err(refusal) = owner {
                            (refusal.code(), refusal.reason(), refusal.to_string())
                        } else {
                            (
                                ErrorCode::Closed,
                                RefusalReason::Closed,
                                format!(
                                    "{principal}: alert {root} is already {} and its content purged: it cannot be {} any more; nothing was posted",
                                    r.state,
                                    participle(draft.kind)
                                ),
                            )
                        };
                        let e = RelayError::new(code, message);
                        return self.refuse_post(
                            reply,
                            after,
                            refused(reason, e.message.clone(), None, &draft),
                            e,
                        );
                    }
                    let original = self
                        .index
                        .threads
                        .iter()
                        .find(|(_, t)| t.members.contains(&root))
                        .map(|(id, _)| *id);
                    let e = RelayError::new(
                        ErrorCode::UnknownAlert,
                        match original {
                            Some(o) => format!("{principal}: {root} is a follow-up of alert {o}: updates, located and cancel refer to the original alert's id, {o}"),
                            None => format!("{principal}: {root} is not an alert of this relay (updates, located and cancel refer to the original alert's id)"),
                        },
                    );
                    return self.refuse_post(
                        reply,
                        after,
                        refused(RefusalReason::UnknownAlert, e.message.clone(), None, &draft),
                        e,
                    );
                };
                let thread = policy::Thread {
                    alert: root,
                    sender_unit: &t.sender_unit,
                    category: t.category,
                    recipients: &t.recipients,
                };
                if let Err(refusal) =
                    policy::may_follow_up(&agreement, &principal, draft.kind, &thread)
                {
                    let e = RelayError::new(refusal.code(), refusal.to_string());
                    return self.refuse_post(
                        reply,
                        after,
                        refused(refusal.reason(), e.message.clone(), None, &draft),
                        e,
                    );
                }
                if t.state.is_closed() {
                    let e = RelayError::new(
                        ErrorCode::Closed,
                        format!(
                            "{principal}: alert {root} is already {}: it cannot be {} any more; nothing was posted",
                            t.state,
                            participle(draft.kind)
                        ),
                    );
                    return self.refuse_post(
                        reply,
                        after,
                        refused(RefusalReason::Closed, e.message.clone(), None, &draft),
                        e,
                    );
                }
                // An exercise stays an exercise: a follow-up may not turn it into a real
                // alert (nor a real one into an exercise or a test).
                if draft.status != t.status {
                    let problem = format!(
                        "alert {root} is {} and its follow-ups keep that status (not {})",
                        t.status, draft.status
                    );
                    let message = format!("invalid alert: status: {problem}; nothing was posted");
                    let e = RelayError {
                        code: ErrorCode::InvalidAlert,
                        message: message.clone(),
                        retry_after_ms: None,
                        invalid: Some(filet_proto::alert::InvalidAlert {
                            errors: vec![filet_proto::alert::FieldError {
                                path: "status".into(),
                                problem,
                            }],
                        }),
                    };
                    return self.refuse_post(
                        reply,
                        after,
                        refused(RefusalReason::Invalid, message, None, &draft),
                        e,
                    );
                }
                // A follow-up keeps the category of its alert and lives as long as it.
                draft.category = t.category;
                let original_received = t
                    .members
                    .first()
                    .map(|m| m.unix_ms() as i64)
                    .unwrap_or(received_at.0);
                draft.expires_at = Some(match (draft.kind, draft.expires_at) {
                    (Kind::Update, Some(e))
                        if e.0 <= original_received + filet_proto::alert::MAX_EXPIRY_MS =>
                    {
                        e
                    }
                    _ => t.expires_at,
                });
                if matches!(draft.kind, Kind::Located | Kind::Cancel) {
                    // The closing message must reach nodes that connect later, even if
                    // the alert would have expired sooner.
                    draft.expires_at = Some(Timestamp(
                        t.expires_at.0.max(received_at.0 + DEFAULT_EXPIRY_MS),
                    ));
                }
                let closing = matches!(draft.kind, Kind::Located | Kind::Cancel);
                // The original's disclosures, for the closing notices.
                let told: Vec<RecipientRecord> = if closing {
                    self.record(&root, records)?
                        .map(|o| o.recipients)
                        .unwrap_or_default()
                } else {
                    Vec::new()
                };
                let told: Vec<policy::Told> = told
                    .iter()
                    .map(|r| policy::Told {
                        unit: &r.unit,
                        rules: &r.rules,
                        retention_ms: r.retention_ms,
                    })
                    .collect();
                let route = policy::route_follow_up(
                    &agreement,
                    &principal.unit,
                    draft.kind,
                    &thread,
                    &told,
                );
                withheld.extend(
                    route
                        .withheld
                        .iter()
                        .map(|w| (w.why.recipient.clone(), w.to_string())),
                );
                route.disclosures
            }
        };
        // A closing message (located, cancel) is always accepted, even into a full
        // mailbox: a unit told of an alert must hear that it ended. There is at most one
        // per alert, so they cannot fill a mailbox.
        let closing = matches!(draft.kind, Kind::Located | Kind::Cancel);
        let full = |d: &&Disclosure| {
            self.index
                .mailbox_len
                .get(&d.recipient)
                .copied()
                .unwrap_or(0)
                >= self.cfg.mailbox_max
        };
        if let Some(full) = disclosures.iter().find(full).filter(|_| !closing) {
            let detail = format!(
                "the mailbox of {} is full ({} alerts waiting, the limit is {}); nothing was posted",
                full.recipient, self.cfg.mailbox_max, self.cfg.mailbox_max
            );
            let ev = refused(
                RefusalReason::MailboxFull,
                detail.clone(),
                Some(full.recipient.to_string()),
                &draft,
            );
            return self.refuse_post(
                reply,
                after,
                ev,
                RelayError::new(ErrorCode::MailboxFull, detail),
            );
        }
        // One sender unit holds at most its quota of each mailbox: one sender cannot fill
        // a unit's mailbox alone.
        let from = |d: &Disclosure| {
            self.index
                .mailbox_from
                .get(&(d.recipient.clone(), principal.unit.clone()))
                .copied()
                .unwrap_or(0)
        };
        if let Some(over) = disclosures
            .iter()
            .find(|d| from(d) >= self.cfg.mailbox_max_per_sender)
            .filter(|_| !closing)
        {
            let detail = format!(
                "the mailbox of {} holds {} alerts from {} waiting, the limit per sender is {} (limits.mailbox_max_per_sender); nothing was posted",
                over.recipient,
                from(over),
                principal.unit,
                self.cfg.mailbox_max_per_sender
            );
            let ev = refused(
                RefusalReason::MailboxFull,
                detail.clone(),
                Some(over.recipient.to_string()),
                &draft,
            );
            return self.refuse_post(
                reply,
                after,
                ev,
                RelayError::new(ErrorCode::MailboxFull, detail),
            );
        }
        // Bounded threads: an alert takes at most `max_follow_ups` updates. A closing
        // message (located, cancel) is always accepted: it ends the thread.
        if draft.kind == Kind::Update {
            let updates = draft
                .references
                .and_then(|r| self.index.threads.get(&r))
                .map(|t| t.members.len().saturating_sub(1))
                .unwrap_or(0);
            if updates >= self.cfg.max_follow_ups {
                let detail = format!(
                    "{principal}: alert {} already has {updates} updates, the limit per alert is {}; post a new alert, or mark this one as located or cancel it; nothing was posted",
                    draft.references.map(|r| r.to_string()).unwrap_or_default(),
                    self.cfg.max_follow_ups
                );
                return self.refuse_post(
                    reply,
                    after,
                    refused(RefusalReason::Invalid, detail.clone(), None, &draft),
                    RelayError::new(ErrorCode::InvalidAlert, detail),
                );
            }
        }
        let id = AlertId::from_parts(received_at.0.max(0) as u64, self.random()?);
        let salt: [u8; 32] = self.random()?;
        // The note is content: committed with the rest.
        let content_json = committed_content(&draft.content, draft.note.as_deref());
        let expires_at = draft.expires_at.unwrap_or(received_at);
        let envelope = Envelope {
            id,
            kind: draft.kind,
            references: draft.references,
            category: draft.category,
            status: draft.status,
            risk: draft.risk,
            language: draft.language,
            sender: principal.clone(),
            received_at,
            expires_at,
        };
        let subject_ref = draft.content.subject.reference.as_deref().map(|r| {
            filet_proto::audit::hex(ring::hmac::sign(&self.subject_key, r.as_bytes()).as_ref())
        });
        // Build every record this post writes before any audit entry: a post whose
        // records cannot be stored is refused alone, and the batch goes on. The entries'
        // indices and the mailbox positions are the next ones (this thread is the only
        // writer).
        let base = self.log.size();
        let first_seq = self.index.next_seq;
        let recipients: Vec<RecipientRecord> = disclosures
            .iter()
            .enumerate()
            .map(|(i, d)| RecipientRecord::new(d, first_seq + i as u64, base + 1 + i as u64))
            .collect();
        let kind = draft.kind;
        let root = draft.references.unwrap_or(id);
        let note = draft.note.clone();
        let mut rec = AlertRecord {
            envelope,
            content: Some(draft.content.clone()),
            note: draft.note.clone(),
            salt,
            idempotency_key,
            posted_index: base,
            recipients,
            state: AlertState::Active,
            history: if kind == Kind::Alert {
                vec![HistoryItem {
                    kind: Some(Kind::Alert),
                    id,
                    at: received_at,
                    note: None,
                }]
            } else {
                Vec::new()
            },
            closed_at: None,
            purged: false,
        };
        // A follow-up: the original records the step and its new state.
        let orig = if kind == Kind::Alert {
            None
        } else {
            self.record(&root, records)?.map(|mut orig| {
                orig.history.push(HistoryItem {
                    kind: Some(kind),
                    id,
                    at: received_at,
                    note,
                });
                orig.state = match kind {
                    Kind::Located => AlertState::Located,
                    Kind::Cancel => AlertState::Cancelled,
                    _ => AlertState::Updated,
                };
                if kind == Kind::Update {
                    orig.envelope.expires_at = expires_at;
                }
                if orig.state.is_closed() {
                    orig.closed_at = Some(received_at);
                }
                orig
            })
        };
        let too_large = |detail: String| {
            (
                refused(RefusalReason::Invalid, detail.clone(), None, &draft),
                RelayError::new(ErrorCode::InvalidAlert, detail),
            )
        };
        let mut refusal = None;
        if let (Some(o), Kind::Update) = (&orig, kind) {
            let bytes =
                filet_proto::codec::encode_value(&o.history).map_or(usize::MAX, |v| v.len());
            if bytes > self.cfg.max_history_bytes {
                refusal = Some(too_large(format!(
                    "{principal}: with this update the history of alert {root} would take {} bytes, the limit per alert is {} bytes; post a new alert, or mark this one as located or cancel it; nothing was posted",
                    if bytes == usize::MAX { "too many".to_string() } else { bytes.to_string() },
                    self.cfg.max_history_bytes
                )));
            }
        }
        if refusal.is_none() {
            // Its own record within `max_record_bytes`; the original's rewritten record
            // (its own, already checked, and the bounded history) within the store's limit.
            let own = self
                .cfg
                .max_record_bytes
                .min(filet_proto::codec::MAX_FRAME_LEN);
            for (what, r, limit) in
                std::iter::once(("its record", &rec, own)).chain(orig.iter().map(|o| {
                    (
                        "the record of its alert",
                        o,
                        filet_proto::codec::MAX_FRAME_LEN,
                    )
                }))
            {
                let problem = match filet_proto::codec::encode_value(r) {
                    Ok(v) if v.len() <= limit => continue,
                    Ok(v) => format!("{} bytes, the limit is {limit}", v.len()),
                    Err(e) => e.to_string(),
                };
                refusal = Some(too_large(format!(
                    "{principal}: this {} cannot be stored: {what} would be too large ({problem}); nothing was posted",
                    kind
                )));
                break;
            }
        }
        if let Some((event, error)) = refusal {
            return self.refuse_post(reply, after, event, error);
        }
        let posted_index = self.entry(Event::Posted {
            alert: id,
            kind,
            references: draft.references,
            category: draft.category,
            status: draft.status,
            risk: draft.risk,
            sender: principal.clone(),
            expires_at,
            commitment: commitment(&salt, &content_json),
            subject_ref,
            recipients: disclosures.iter().map(|d| d.recipient.clone()).collect(),
        })?;
        rec.posted_index = posted_index;
        for (d, r) in disclosures.iter().zip(rec.recipients.iter_mut()) {
            self.index.next_seq = r.seq + 1;
            r.disclosed_index = self.entry(Event::Disclosed {
                alert: id,
                sender: principal.clone(),
                recipient: d.recipient.clone(),
                category: draft.category,
                status: draft.status,
                rules: d.rules.clone(),
                legal_bases: d.legal_bases.clone(),
                fields: d.fields,
            })?;
            after.push(After::Publish {
                unit: d.recipient.clone(),
                seq: r.seq,
                alert: id,
            });
        }
        for (unit, reason) in withheld {
            self.index.withheld.insert((id, unit.clone()));
            self.entry(Event::Withheld {
                alert: id,
                sender: principal.clone(),
                recipient: unit,
                reason,
            })?;
        }
        self.index.insert(&rec);
        after.push(After::Receipt {
            reply,
            receipt: receipt_of(&rec, false),
        });
        records.insert(id, rec);
        if let Some(orig) = orig {
            if let Some(t) = self.index.threads.get_mut(&root) {
                t.state = orig.state;
                t.closed_at = orig.closed_at;
                if kind == Kind::Update {
                    t.expires_at = expires_at;
                }
            }
            self.index.reschedule(root);
            records.insert(root, orig);
            self.changed_threads.push(root);
            self.rewrites = true;
        }
        Ok(())
    }

    /// Expires open alerts past their expiry time and purges closed ones past retention.
    fn timers(
        &mut self,
        records: &mut HashMap<AlertId, AlertRecord>,
        after: &mut Vec<After>,
    ) -> Result<(), CommitError> {
        let now = self.clock.now();
        let due: Vec<AlertId> = self
            .index
            .expiry
            .range(..=(now.0, AlertId([0xff; 16])))
            .map(|(_, id)| *id)
            .collect();
        for root in due {
            let Some(mut orig) = self.record(&root, records)? else {
                continue;
            };
            let members = self
                .index
                .threads
                .get(&root)
                .map(|t| t.members.clone())
                .unwrap_or_default();
            self.entry(Event::Expired {
                alert: root,
                sender: orig.envelope.sender.clone(),
            })?;
            orig.state = AlertState::Expired;
            orig.closed_at = Some(now);
            orig.history.push(HistoryItem {
                kind: None,
                id: root,
                at: now,
                note: None,
            });
            if let Some(t) = self.index.threads.get_mut(&root) {
                t.state = AlertState::Expired;
                t.closed_at = Some(now);
            }
            self.index.reschedule(root);
            records.insert(root, orig);
            self.changed_threads.push(root);
            self.rewrites = true;
            // Expired alerts are no longer delivered: out of every mailbox.
            for m in members {
                for (unit, seq) in self.index.unpend(&m) {
                    after.push(After::Unpublish { unit, seq });
                }
            }
        }
        let due: Vec<AlertId> = self
            .index
            .purge
            .range(..=(now.0, AlertId([0xff; 16])))
            .map(|(_, id)| *id)
            .collect();
        for root in due {
            let members = self
                .index
                .threads
                .get(&root)
                .map(|t| t.members.clone())
                .unwrap_or_default();
            for m in members {
                let Some(mut rec) = self.record(&m, records)? else {
                    continue;
                };
                if rec.purged {
                    continue;
                }
                self.entry(Event::Purged {
                    alert: m,
                    sender: rec.envelope.sender.clone(),
                })?;
                rec.content = None;
                rec.note = None;
                rec.salt = [0; 32];
                rec.purged = true;
                for h in rec.history.iter_mut() {
                    h.note = None;
                }
                // Out of the mailboxes now, before the `purged` entry is durable: a reader
                // holding the record checks this right before writing it to a node, so
                // none writes the content after the entry (hiding it early is safe: a
                // crash before the entry is durable publishes it again at start-up).
                for (unit, seq) in self.index.unpend(&m) {
                    self.hub.remove(&unit, seq);
                }
                records.insert(m, rec);
                self.rewrites = true;
            }
            if let Some(t) = self.index.threads.get_mut(&root) {
                t.purged = true;
            }
            self.index.reschedule(root);
            for (unit, seq) in self.index.forget_thread(&root) {
                self.hub.remove(&unit, seq);
            }
            after.push(After::Forget { root });
        }
        Ok(())
    }
}

fn fail_op(op: Op, e: Option<&CommitError>) {
    let err = match e {
        Some(e) => internal(e),
        None => RelayError::new(ErrorCode::Internal, "the relay is stopping"),
    };
    match op {
        Op::Post { reply, .. } => {
            let _ = reply.send(Err(err));
        }
        Op::Ack { reply, .. } => {
            let _ = reply.send(Err(err));
        }
        Op::Audit {
            reply: Some(reply), ..
        } => {
            let _ = reply.send(Err(err));
        }
        Op::Tick { reply: Some(reply) } => {
            let _ = reply.send(Err(err));
        }
        Op::Audit { reply: None, .. }
        | Op::Tick { reply: None }
        | Op::Delivered { .. }
        | Op::Withheld { .. } => {}
    }
}

fn fail_after(a: After, e: &CommitError) {
    match a {
        After::Receipt { reply, .. } | After::Refusal { reply, .. } => {
            let _ = reply.send(Err(internal(e)));
        }
        After::Index { reply, .. } => {
            let _ = reply.send(Err(internal(e)));
        }
        After::Publish { .. } | After::Unpublish { .. } | After::Forget { .. } => {}
    }
}

/// The receipt of a stored alert (its checkpoint is filled in after the commit).
pub fn receipt_of(rec: &AlertRecord, duplicate: bool) -> Receipt {
    Receipt {
        alert: rec.envelope.id,
        received_at: rec.envelope.received_at,
        expires_at: rec.envelope.expires_at,
        posted_index: rec.posted_index,
        recipients: rec
            .recipients
            .iter()
            .map(|r| ReceiptRecipient {
                unit: r.unit.clone(),
                rules: r.rules.clone(),
                fields: r.fields,
                audit_index: r.disclosed_index,
            })
            .collect(),
        checkpoint: String::new(),
        duplicate,
    }
}

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

/// Brings the store in step with the audit log after a stop (clean or not) and rebuilds
/// the commit index and the published mailboxes. Appends `voided` entries (not yet
/// synced: the caller syncs) for posts the log holds but the store does not.
///
/// Invariant restored: every store record has durable audit entries; every `posted`
/// entry has a store record or a later `voided` entry; every durable `expired` and
/// `purged` entry is applied to its record (a crash after the audit sync of a batch that
/// rewrote alerts, before its store write, leaves them in the log only: they are applied
/// again here, not logged twice).
///
/// `stored_below` is what `store.mark` says: every post below that audit index reached
/// the store, so one missing from it means the store lost data.
///
/// # Errors
/// Storage errors, a damaged record, or a store that lacks posts whose receipt was given
/// ([`CommitError::StoreDamaged`]).
pub fn recover(
    c: &mut Committer,
    facts: &crate::audit_log::LogFacts,
    stored_below: Option<u64>,
) -> Result<Recovered, CommitError> {
    let mut out = Recovered::default();
    let size = c.log.size();
    // Records referring to later entries are dropped below: the rest may be served.
    c.hub.set_published(size);
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
    let size_now = c.log.size();
    let mut acks = c.store.acks()?;
    // Acknowledgements written to the store in a batch whose audit sync did not complete.
    let stale: Vec<(AlertId, UnitRef)> = acks
        .iter()
        .filter(|(_, a)| a.audit_index >= size_now)
        .map(|(k, _)| k.clone())
        .collect();
    for (alert, unit) in &stale {
        acks.remove(&(*alert, unit.clone()));
        c.store.remove_ack(alert, unit)?;
    }
    let mut follow_ups = Vec::new();
    let mut reapplied = Vec::new();
    // Every post the store holds, purged ones among them (which the index forgets).
    let mut stored = HashSet::new();
    for rec in c.store.iter() {
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
        if rec.envelope.kind != filet_proto::alert::Kind::Alert {
            follow_ups.push(Arc::new(rec));
            continue;
        }
        let rec = Arc::new(rec);
        for (unit, seq, _) in c.index.insert(&rec) {
            publish.push((unit, seq, rec.clone()));
        }
        if rec.envelope.kind == filet_proto::alert::Kind::Alert
            && !rec.purged
            && (rec.state != AlertState::Active || rec.history.len() > 1)
        {
            c.hub.set_thread(
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
        for (unit, seq, _) in c.index.insert(&rec) {
            publish.push((unit, seq, rec.clone()));
        }
        out.alerts += 1;
    }
    for id in &to_drop {
        c.store.remove(id)?;
    }
    // Made durable by the caller's sync, with the start-up entries.
    c.store.put_all(
        reapplied
            .iter()
            .filter(|r| !to_drop.contains(&r.envelope.id)),
    )?;
    out.dropped_records = to_drop.len();
    // Posts the log holds but the store does not. After a crash only the last batch can
    // be missing (each batch reaches the store before the next one starts), and nothing
    // of it was delivered: those are voided. A missing post at or before one that was
    // delivered or acknowledged means the store lost committed data: refuse to start.
    let reader = c.log.reader();
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
        let bytes = reader.entry(*i)?;
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
        })?;
        out.voided.push(alert);
    }
    for (unit, seq, rec) in publish {
        c.hub.add(&unit, seq, rec);
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
    let (recorded, _) = c.store.audit_state()?;
    let from = stored_below.map_or(recorded, |m| m.min(recorded));
    let reader = c.log.reader();
    let mut tail: HashMap<AlertId, Vec<(Timestamp, Logged)>> = HashMap::new();
    for i in from..c.log.size() {
        let bytes = reader.entry(i)?;
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

impl Committer {
    /// The audit log size (appended, maybe not yet synced).
    pub fn audit_size(&self) -> u64 {
        self.log.size()
    }

    /// A reader of the committed audit log.
    pub fn audit_reader(&self) -> crate::audit_log::AuditReader {
        self.log.reader()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::clock::ManualClock;
    use filet_proto::alert::{AlertFile, Risk};
    use std::path::{Path, PathBuf};

    /// 2026-12-03, after the example alert's `last_seen.at`.
    const T0: i64 = 1_796_300_000_000;

    /// A commit thread on a temporary data directory, driven batch by batch.
    struct Bench {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        c: Committer,
        agreement: Arc<Agreement>,
        clock: ManualClock,
        keys: u64,
    }

    type Answer = oneshot::Receiver<Result<Receipt, RelayError>>;

    fn open(dir: &Path, clock: &ManualClock, cfg: CommitConfig) -> Committer {
        let (log, rec) = AuditLog::open(&dir.join("audit")).unwrap();
        let store = Store::open(&dir.join("store")).unwrap();
        let (mark, below) = StoreMark::open(&dir.join("store.mark")).unwrap();
        let signer = NoteSigner::from_seed("test.relay", &[7; 32]).unwrap();
        let mut c = Committer::new(
            log,
            store,
            signer,
            "test.relay".into(),
            vec![1; 32],
            Index::default(),
            Arc::new(Hub::default()),
            Arc::new(RwLock::new(String::new())),
            Arc::new(clock.clone()),
            cfg,
            Arc::new(crate::metrics::Metrics::new()),
            mark,
        );
        recover(&mut c, &rec.facts, below).unwrap();
        c
    }

    impl Bench {
        fn new(cfg: CommitConfig) -> Bench {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().to_owned();
            let clock = ManualClock::new(Timestamp(T0));
            let c = open(&dir, &clock, cfg);
            Bench {
                _tmp: tmp,
                dir,
                c,
                agreement: Arc::new(
                    Agreement::parse(crate::demo::AGREEMENT, "agreement.toml").unwrap(),
                ),
                clock,
                keys: 0,
            }
        }

        /// Stops the commit thread cleanly and starts another on the same directory.
        fn restart(&mut self, cfg: CommitConfig) {
            let (tx, rx) = mpsc::channel(1);
            drop(tx);
            let c = std::mem::replace(
                &mut self.c,
                open(
                    &self.dir.join("spare"),
                    &self.clock,
                    CommitConfig::new(8, 8, 8),
                ),
            );
            c.run(rx).unwrap();
            self.c = open(&self.dir, &self.clock, cfg);
        }

        fn post(&mut self, sender: &str, draft: AlertDraft) -> (Op, Answer) {
            let principal: Principal = sender.parse().unwrap();
            let draft = draft.validate(self.clock.now()).unwrap();
            let route = if draft.kind == Kind::Alert {
                Route::New(
                    policy::route_alert(
                        &self.agreement,
                        &principal.unit,
                        draft.category,
                        &draft.to,
                    )
                    .unwrap(),
                )
            } else {
                Route::FollowUp(self.agreement.clone())
            };
            self.keys += 1;
            let mut idempotency_key = [0u8; 16];
            idempotency_key[..8].copy_from_slice(&self.keys.to_be_bytes());
            let (reply, rx) = oneshot::channel();
            (
                Op::Post {
                    principal,
                    draft,
                    route,
                    idempotency_key,
                    received_at: self.clock.now(),
                    reply,
                },
                rx,
            )
        }

        /// Commits `ops` as one batch.
        fn batch(&mut self, ops: Vec<Op>) -> Result<(), CommitError> {
            let mut ops = ops;
            self.c.commit_batch(&mut ops)
        }

        /// Posts one op alone and returns its answer.
        fn one(&mut self, sender: &str, draft: AlertDraft) -> Result<Receipt, RelayError> {
            let (op, mut rx) = self.post(sender, draft);
            self.batch(vec![op]).unwrap();
            rx.try_recv().unwrap()
        }
    }

    fn runaway() -> AlertDraft {
        AlertFile::from_toml(crate::demo::RUNAWAY)
            .unwrap()
            .into_draft()
    }

    fn follow_up(kind: Kind, root: AlertId, note: Option<String>) -> AlertDraft {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Severe, "unused", "418 555-0100");
        d.kind = kind;
        d.references = Some(root);
        if kind != Kind::Update {
            d.content = filet_proto::Content::default();
        }
        d.note = note;
        d
    }

    const SENDER: &str = "SPVQ/ESM/poste-1";

    /// 280 characters of 4 bytes: the longest note in bytes.
    fn widest_note() -> String {
        "🚨".repeat(filet_proto::alert::MAX_NOTE)
    }

    /// Everything the commit thread and the hub remember of an alert.
    fn remembered(b: &Bench, id: &AlertId) -> Vec<&'static str> {
        let i = &b.c.index;
        let mut held = Vec::new();
        if i.alerts.contains_key(id) {
            held.push("index.alerts");
        }
        if i.threads.contains_key(id) || i.threads.values().any(|t| t.members.contains(id)) {
            held.push("index.threads");
        }
        if i.idempotency.values().any(|a| a == id) {
            held.push("index.idempotency");
        }
        if i.delivered.contains_key(id) {
            held.push("index.delivered");
        }
        if i.withheld.iter().any(|(a, _)| a == id) {
            held.push("index.withheld");
        }
        if i.expiry.iter().chain(i.purge.iter()).any(|(_, a)| a == id) {
            held.push("index.timers");
        }
        if b.c.hub.thread(id).is_some() {
            held.push("hub.threads");
        }
        held
    }

    #[test]
    fn a_purged_thread_is_forgotten_by_the_index_and_the_hub_and_stays_forgotten_after_a_restart() {
        let mut b = Bench::new(CommitConfig::new(64, 100, 100));
        let root = b.one(SENDER, runaway()).unwrap();
        let unit = root.recipients[0].unit.clone();
        let root = root.alert;
        // Delivered to a node, withheld from a unit, acknowledged, then located.
        let node: Principal = format!("{unit}/n1").parse().unwrap();
        let (reply, _ack) = oneshot::channel();
        let ops = vec![
            Op::Delivered {
                alert: root,
                sender: SENDER.parse().unwrap(),
                node: node.clone(),
                fields: FieldSet::EMPTY,
                rules: vec!["enquete-vers-patrouille".into()],
                agreement: "a".into(),
                agreement_version: 1,
            },
            Op::Withheld {
                alert: root,
                sender: SENDER.parse().unwrap(),
                unit: "CJQ/PIVOT".parse().unwrap(),
                reason: "test".into(),
            },
            Op::Ack {
                principal: node,
                alert: root,
                reply,
            },
        ];
        b.batch(ops).unwrap();
        let located = b
            .one(SENDER, follow_up(Kind::Located, root, None))
            .unwrap()
            .alert;
        for id in [root, located] {
            assert!(!remembered(&b, &id).is_empty(), "{id} not indexed");
        }
        // Past the longest retention (90 days) of the closed thread: purged.
        b.clock.advance(91 * 24 * 3600 * 1000);
        b.batch(vec![Op::Tick { reply: None }]).unwrap();
        assert!(b.c.store.get(&root).unwrap().unwrap().purged);
        for id in [root, located] {
            assert_eq!(remembered(&b, &id), Vec::<&str>::new(), "{id}");
        }
        // A delivery or a withholding written just before the purge, logged after it, is
        // logged and not remembered.
        let late = |alert| {
            vec![
                Op::Delivered {
                    alert,
                    sender: SENDER.parse().unwrap(),
                    node: format!("{unit}/n2").parse().unwrap(),
                    fields: FieldSet::EMPTY,
                    rules: Vec::new(),
                    agreement: "a".into(),
                    agreement_version: 1,
                },
                Op::Withheld {
                    alert,
                    sender: SENDER.parse().unwrap(),
                    unit: "CJQ/PIVOT".parse().unwrap(),
                    reason: "test".into(),
                },
            ]
        };
        b.batch(late(root)).unwrap();
        assert_eq!(
            remembered(&b, &root),
            Vec::<&str>::new(),
            "after a late delivery"
        );
        b.restart(CommitConfig::new(64, 100, 100));
        for id in [root, located] {
            assert_eq!(
                remembered(&b, &id),
                Vec::<&str>::new(),
                "{id} after a restart"
            );
        }
        // What the index forgot is still answered: a follow-up is refused as closed, and
        // mailbox positions keep increasing.
        let e = b
            .one(SENDER, follow_up(Kind::Update, root, None))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Closed, "{}", e.message);
        let next = b.one(SENDER, runaway()).unwrap().alert;
        let seqs = |id: &AlertId| -> Vec<u64> {
            let rec = b.c.store.get(id).unwrap().unwrap();
            rec.recipients.iter().map(|r| r.seq).collect()
        };
        let old = seqs(&located).into_iter().max().unwrap();
        assert!(
            seqs(&next).iter().all(|s| *s > old),
            "{:?} after {old}",
            seqs(&next)
        );
    }

    #[test]
    fn a_purge_takes_the_record_out_of_the_hands_of_readers_before_its_purged_entry_is_durable() {
        let mut b = Bench::new(CommitConfig::new(64, 100, 100));
        let r = b.one(SENDER, runaway()).unwrap();
        let unit = r.recipients[0].unit.clone();
        b.one(SENDER, follow_up(Kind::Located, r.alert, None))
            .unwrap();
        // A slow reader took the mailbox (content included) and has not written it yet.
        let held = b.c.hub.pending_after(&unit, 0, 10);
        assert_eq!(held.len(), 2);
        assert!(held.iter().all(|p| p.is_live() && p.rec.content.is_some()));
        b.clock.advance(91 * 24 * 3600 * 1000);
        // The purge decided, its `purged` entries appended but not yet durable: the
        // records are already out of the readers' hands.
        let (mut records, mut after) = (HashMap::new(), Vec::new());
        let durable = b.c.log.size();
        b.c.apply(Op::Tick { reply: None }, &mut records, &mut after)
            .unwrap();
        assert!(b.c.log.size() > durable, "no purged entry appended");
        assert!(records.values().all(|r| r.purged));
        for p in &held {
            assert!(!p.is_live(), "{} still taken for live", p.rec.envelope.id);
        }
        b.c.durable(&records).unwrap();
    }

    #[test]
    fn a_record_is_not_served_before_its_audit_entries_are_durable() {
        let mut b = Bench::new(CommitConfig::new(64, 100, 100));
        b.one(SENDER, runaway()).unwrap();
        let (op, _rx) = b.post(SENDER, runaway());
        let (mut records, mut after) = (HashMap::new(), Vec::new());
        b.c.apply(op, &mut records, &mut after).unwrap();
        let rec = records.values().next().unwrap().clone();
        // Appended, not durable: even were the store to show it (the store and the log are
        // written in parallel), it is not served.
        b.c.store.put_all([&rec]).unwrap();
        assert!(b.c.store.get(&rec.envelope.id).unwrap().is_some());
        assert!(
            !b.c.hub.is_published(&rec),
            "served before its entries are durable"
        );
        b.c.durable(&records).unwrap();
        assert!(b.c.hub.is_published(&rec));
    }

    #[test]
    fn a_burst_of_updates_past_the_thread_cap_is_refused_update_by_update_and_the_batch_commits() {
        let mut b = Bench::new(CommitConfig::new(1024, 10_000, 1000));
        let root = b.one(SENDER, runaway()).unwrap().alert;
        // 240 updates with the widest notes in one batch: their history alone would be
        // over the frame limit, so the original's record could not be stored.
        let mut answers = Vec::new();
        let mut ops = Vec::new();
        for _ in 0..240 {
            let (op, rx) = b.post(SENDER, follow_up(Kind::Update, root, Some(widest_note())));
            ops.push(op);
            answers.push(rx);
        }
        b.batch(ops)
            .expect("the batch commits: the commit thread keeps serving");
        let mut accepted = 0;
        for (i, mut rx) in answers.into_iter().enumerate() {
            match rx.try_recv().unwrap() {
                Ok(_) => {
                    assert!(i < MAX_FOLLOW_UPS, "update {i} accepted past the cap");
                    accepted += 1;
                }
                Err(e) => {
                    assert!(i >= MAX_FOLLOW_UPS, "update {i} refused under the cap: {e}");
                    assert_eq!(e.code, ErrorCode::InvalidAlert);
                    assert!(
                        e.message.contains("the limit per alert is 100"),
                        "{}",
                        e.message
                    );
                }
            }
        }
        assert_eq!(accepted, MAX_FOLLOW_UPS);
        // The thread can still be closed, and the relay restarts on what it stored.
        b.one(SENDER, follow_up(Kind::Cancel, root, Some(widest_note())))
            .expect("a cancel is accepted past the cap");
        b.restart(CommitConfig::new(1024, 10_000, 1000));
        let stored = b.c.store.get(&root).unwrap().unwrap();
        assert_eq!(stored.state, AlertState::Cancelled);
        assert_eq!(stored.history.len(), 1 + MAX_FOLLOW_UPS + 1);
        let e = b
            .one(SENDER, follow_up(Kind::Update, root, None))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Closed, "{}", e.message);
        b.one(SENDER, runaway())
            .expect("new alerts are still posted");
    }

    #[test]
    fn an_update_past_the_history_bytes_cap_is_refused_naming_the_limit() {
        let mut cfg = CommitConfig::new(1024, 10_000, 1000);
        cfg.max_history_bytes = 8 * 1024;
        let mut b = Bench::new(cfg);
        let root = b.one(SENDER, runaway()).unwrap().alert;
        let mut n = 0;
        let e = loop {
            match b.one(SENDER, follow_up(Kind::Update, root, Some(widest_note()))) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
            assert!(n < 100, "never refused");
        };
        assert_eq!(e.code, ErrorCode::InvalidAlert);
        assert!(
            e.message.contains("the limit per alert is 8192 bytes"),
            "{}",
            e.message
        );
        assert!(n >= 5, "{n} updates accepted");
        b.one(SENDER, follow_up(Kind::Located, root, Some(widest_note())))
            .expect("located is accepted past the cap");
    }

    #[test]
    fn an_op_whose_record_cannot_be_stored_is_refused_alone_and_the_rest_of_its_batch_is_receipted()
    {
        let mut cfg = CommitConfig::new(1024, 10_000, 1000);
        // Room for the example alert, not for one with the longest description in bytes.
        cfg.max_record_bytes = 1500;
        let mut b = Bench::new(cfg);
        let mut wide = runaway();
        wide.content.subject.description = Some("🚨".repeat(filet_proto::alert::MAX_DESCRIPTION));
        let (a, mut ra) = b.post(SENDER, runaway());
        let (w, mut rw) = b.post(SENDER, wide);
        let (c, mut rc) = b.post(SENDER, runaway());
        b.batch(vec![a, w, c]).expect("the batch commits");
        let first = ra.try_recv().unwrap().expect("the first post is receipted");
        let last = rc.try_recv().unwrap().expect("the last post is receipted");
        let e = rw.try_recv().unwrap().unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidAlert);
        assert!(
            e.message.contains("cannot be stored") && e.message.contains("the limit is 1500"),
            "{}",
            e.message
        );
        // Both receipted alerts are stored and published, with their audit entries.
        for r in [&first, &last] {
            let rec = b.c.store.get(&r.alert).unwrap().unwrap();
            assert_eq!(rec.posted_index, r.posted_index);
            for rr in &r.recipients {
                assert_eq!(b.c.hub.depth(&rr.unit), 2);
            }
        }
        b.restart(CommitConfig::new(1024, 10_000, 1000));
        assert_eq!(b.c.store.iter().count(), 2);
    }
}
