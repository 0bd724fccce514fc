//! The ledger: the alert lifecycle as a state machine, with no files, no channels and no
//! clock of its own (the model: quinn-proto's connection state without I/O).
//!
//! It holds the [`Index`] (every live thread and message, the mailboxes' accounting, the
//! expiry and purge schedule, idempotency keys) and the [`Limits`]. [`Ledger::apply`]
//! decides one [`Input`] at the time `now` it is given, with random bytes it is handed
//! ([`Entropy`]) and committed records it may read ([`Records`]), and adds what the input
//! produces to a [`Batch`]: the audit entries to append (numbered from the log's size),
//! the records and acknowledgements to write, and the mailbox changes to publish once
//! the batch is durable; it returns the [`Answer`] to send then. The group-commit driver
//! ([`crate::commit`]) runs it, commits the batch through [`crate::storage`], and only
//! then answers and publishes.
//!
//! Follow-ups are routed in one place, [`Ledger::route_follow_up`]; new alerts arrive
//! routed ([`Route::New`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use filet_proto::agreement::Agreement;
use filet_proto::alert::{
    AlertDraft, AlertState, Category, Envelope, FieldSet, HistoryItem, Kind, Status,
    DEFAULT_EXPIRY_MS,
};
use filet_proto::audit::{commitment, committed_content, Entry, Event, RefusalReason};
use filet_proto::policy::{self, Disclosure};
use filet_proto::wire::{ErrorCode, Receipt, ReceiptRecipient, RelayError};
use filet_proto::{AlertId, Principal, Timestamp, UnitRef};

use crate::record::{AckRecord, AlertRecord, RecipientRecord};

/// How a post's recipients are decided.
pub enum Route {
    /// A new alert, routed by the connection task.
    New(Vec<Disclosure>),
    /// An update, located or cancel: the original's recipient units that the current
    /// agreement still permits, decided by the ledger (which knows the thread).
    FollowUp(Arc<Agreement>),
}

/// One operation on the ledger: an [`crate::commit::Op`] without its reply channel.
pub enum Input {
    /// Store a validated alert (or update, located, cancel) and disclose it.
    Post {
        /// The connection's principal (the sender).
        principal: Principal,
        /// The validated draft (`expires_at` filled in).
        draft: AlertDraft,
        /// Recipients and what each may see, or the agreement to route a follow-up with.
        route: Route,
        /// The sender's idempotency key.
        idempotency_key: [u8; 16],
        /// When the relay received it.
        received_at: Timestamp,
    },
    /// A node acknowledges an alert for its unit.
    Ack {
        /// The node.
        principal: Principal,
        /// The alert.
        alert: AlertId,
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
    /// Run the timers at `now`: expire alerts past their expiry, purge content past its
    /// retention.
    Tick,
    /// Any other event (refusals, agreement loaded): appended.
    Audit {
        /// The event.
        event: Event,
    },
}

/// What to answer once the batch is durable (never before).
#[derive(Debug)]
pub enum Answer {
    /// The post is stored and disclosed (the driver fills in the checkpoint).
    Receipt(Receipt),
    /// The post is refused (its refusal is in the batch's entries, if audited).
    Refused(RelayError),
    /// An audit index (acknowledged, tick, audit), or a refusal.
    Index(Result<u64, RelayError>),
    /// Nothing to answer (delivered, withheld).
    Nothing,
}

/// A change to the published mailboxes, made once the batch is durable (log before
/// disclose), in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// The message enters the unit's mailbox at `seq`.
    Publish {
        /// The recipient unit.
        unit: UnitRef,
        /// Its mailbox position.
        seq: u64,
        /// The message (its record is in the batch).
        alert: AlertId,
    },
    /// The entry at `seq` leaves the unit's mailbox (acknowledged, expired).
    Unpublish {
        /// The unit.
        unit: UnitRef,
        /// The mailbox position.
        seq: u64,
    },
    /// A purged thread: the published thread state is forgotten.
    Forget {
        /// The original alert.
        root: AlertId,
    },
}

/// What a batch of inputs produces: everything the storage commits in one transaction,
/// and what is published once it is durable.
#[derive(Default)]
pub struct Batch {
    /// Audit entries to append, numbered from the log's size (in order, no gap).
    pub entries: Vec<Entry>,
    /// Alert records to write (new messages, and originals rewritten by a follow-up, an
    /// expiry or a purge).
    pub records: HashMap<AlertId, AlertRecord>,
    /// Acknowledgements to write (one small key each: the record is not rewritten).
    pub acks: Vec<(AlertId, UnitRef, AckRecord)>,
    /// The batch rewrites alerts committed earlier (a follow-up, an expiry, a purge): the
    /// storage must never hold its records without its audit entries.
    pub rewrites: bool,
    /// Threads whose state or history changed (their originals are in `records`).
    pub changed_threads: Vec<AlertId>,
    /// Mailbox changes to publish once durable, in order.
    pub publications: Vec<Publication>,
    /// Mailbox entries to take out of readers' hands now, before the batch is durable (a
    /// purge: hiding early is safe, a crash publishes them again at start-up).
    pub hide_now: Vec<(UnitRef, u64)>,
}

impl Batch {
    /// Nothing to commit (a tick with nothing due, a duplicate post).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty() && self.records.is_empty() && self.acks.is_empty()
    }
}

/// Why the ledger cannot decide an input: the relay stops (nothing is acknowledged).
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// A committed record could not be read.
    #[error(transparent)]
    Read(Box<dyn std::error::Error + Send + Sync>),
    /// The random source failed.
    #[error("system random source failed")]
    Random,
}

/// Committed alert records, as the storage holds them (the ledger reads, never writes).
pub trait Records {
    /// The record of `id`, if stored.
    ///
    /// # Errors
    /// The storage's read error.
    fn record(&self, id: &AlertId) -> Result<Option<AlertRecord>, LedgerError>;
}

impl Records for HashMap<AlertId, AlertRecord> {
    fn record(&self, id: &AlertId) -> Result<Option<AlertRecord>, LedgerError> {
        Ok(self.get(id).cloned())
    }
}

/// Random bytes for alert ids and commitment salts.
pub trait Entropy {
    /// Fills `buf`.
    ///
    /// # Errors
    /// [`LedgerError::Random`].
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), LedgerError>;
}

/// What a follow-up does, as a past participle: "updated", "marked as located", "cancelled".
fn participle(k: Kind) -> &'static str {
    match k {
        Kind::Alert => "posted",
        Kind::Update => "updated",
        Kind::Located => "marked as located",
        Kind::Cancel => "cancelled",
    }
}

/// One recipient unit of one message, as the ledger tracks it.
pub(crate) struct Slot {
    unit: UnitRef,
    seq: u64,
    /// The audit index of the unit's acknowledgement, once acknowledged.
    acked: Option<u64>,
    /// Still in the unit's mailbox (not acknowledged, expired or purged).
    pending: bool,
}

/// What the ledger knows about one message (alert, update, located, cancel).
pub(crate) struct AlertMeta {
    sender: Principal,
    idempotency_key: [u8; 16],
    recipients: Vec<Slot>,
}

/// What the ledger knows about one alert's life (its thread).
pub(crate) struct Thread {
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
    pub(crate) members: Vec<AlertId>,
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

/// The ledger's index of live threads and messages, rebuilt from the store at start-up.
pub struct Index {
    pub(crate) alerts: HashMap<AlertId, AlertMeta>,
    pub(crate) threads: HashMap<AlertId, Thread>,
    pub(crate) idempotency: HashMap<(Principal, [u8; 16]), AlertId>,
    mailbox_len: HashMap<UnitRef, usize>,
    /// Waiting entries per (recipient unit, sender unit): the per-sender quota.
    mailbox_from: HashMap<(UnitRef, UnitRef), usize>,
    next_seq: u64,
    /// Nodes each message was delivered to (a `delivered` entry is logged once per node);
    /// forgotten when the message leaves every mailbox.
    pub(crate) delivered: HashMap<AlertId, HashSet<Principal>>,
    pub(crate) withheld: HashSet<(AlertId, UnitRef)>,
    /// Open threads by expiry time (ms).
    pub(crate) expiry: BTreeSet<(i64, AlertId)>,
    /// Closed, unpurged threads by purge time (ms).
    pub(crate) purge: BTreeSet<(i64, AlertId)>,
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

pub use filet_proto::policy::CLOSING_NOTICE;

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

/// The ledger's limits.
#[derive(Debug, Clone)]
pub struct Limits {
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

impl Limits {
    /// The relay's limits with these mailbox limits.
    pub fn new(mailbox_max: usize, mailbox_max_per_sender: usize) -> Self {
        Limits {
            mailbox_max,
            mailbox_max_per_sender,
            max_follow_ups: MAX_FOLLOW_UPS,
            max_history_bytes: MAX_HISTORY_BYTES,
            max_record_bytes: MAX_RECORD_BYTES,
        }
    }
}

/// The alert lifecycle: the index and the limits, and the next audit index.
pub struct Ledger {
    pub(crate) index: Index,
    limits: Limits,
    subject_key: ring::hmac::Key,
    /// The index the next audit entry gets (the log's size, entries of the batch included).
    next_index: u64,
}

/// A post refused: the audited refusal and the answer.
struct Refusal {
    event: Event,
    error: RelayError,
}

impl Ledger {
    /// An empty ledger over a log of `audit_size` entries; `subject_key` keys the HMAC of
    /// subject references. [`crate::recovery`] fills it from the store.
    pub fn new(limits: Limits, subject_key: &[u8], audit_size: u64) -> Self {
        Ledger {
            index: Index::default(),
            limits,
            subject_key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, subject_key),
            next_index: audit_size,
        }
    }

    /// The index the next audit entry gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Adds a stored message at start-up (originals before their follow-ups); returns the
    /// mailbox entries to publish.
    pub fn restore(&mut self, rec: &AlertRecord) -> Vec<(UnitRef, u64, AlertId)> {
        self.index.insert(rec)
    }

    /// Appends `event` to the batch's entries at `now`; returns its audit index.
    pub fn log(&mut self, batch: &mut Batch, now: Timestamp, event: Event) -> u64 {
        let index = self.next_index;
        batch.entries.push(Entry::new(index, now, event));
        self.next_index += 1;
        index
    }

    /// A record as this batch left it, or as committed.
    fn record(
        &self,
        id: &AlertId,
        batch: &Batch,
        records: &dyn Records,
    ) -> Result<Option<AlertRecord>, LedgerError> {
        if let Some(r) = batch.records.get(id) {
            return Ok(Some(r.clone()));
        }
        records.record(id)
    }

    /// Decides `input` at `now`; adds what it produces to `batch` and returns the answer
    /// to give once the batch is durable.
    ///
    /// # Errors
    /// A record that cannot be read, a failed random source: the batch must not commit.
    pub fn apply(
        &mut self,
        input: Input,
        now: Timestamp,
        entropy: &mut dyn Entropy,
        records: &dyn Records,
        batch: &mut Batch,
    ) -> Result<Answer, LedgerError> {
        match input {
            Input::Post {
                principal,
                draft,
                route,
                idempotency_key,
                received_at,
            } => {
                let post = Post {
                    principal,
                    draft,
                    route,
                    idempotency_key,
                    received_at,
                };
                self.post(post, now, entropy, records, batch)
            }
            Input::Ack { principal, alert } => self.ack(principal, alert, now, records, batch),
            Input::Delivered {
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
                    self.log(
                        batch,
                        now,
                        Event::Delivered {
                            alert,
                            sender,
                            recipient: node,
                            fields,
                            rules,
                            agreement: Some(agreement),
                            agreement_version: Some(agreement_version),
                        },
                    );
                }
                Ok(Answer::Nothing)
            }
            Input::Withheld {
                alert,
                sender,
                unit,
                reason,
            } => {
                // An alert the index forgot (purged) is logged, not remembered.
                let known = self.index.alerts.contains_key(&alert);
                if !known || self.index.withheld.insert((alert, unit.clone())) {
                    self.log(
                        batch,
                        now,
                        Event::Withheld {
                            alert,
                            sender,
                            recipient: unit,
                            reason,
                        },
                    );
                }
                Ok(Answer::Nothing)
            }
            Input::Tick => {
                self.timers(now, records, batch)?;
                Ok(Answer::Index(Ok(self.next_index)))
            }
            Input::Audit { event } => Ok(Answer::Index(Ok(self.log(batch, now, event)))),
        }
    }

    fn ack(
        &mut self,
        principal: Principal,
        alert: AlertId,
        now: Timestamp,
        records: &dyn Records,
        batch: &mut Batch,
    ) -> Result<Answer, LedgerError> {
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
            let purged = records
                .record(&alert)?
                .filter(|r| r.purged && r.recipients.iter().any(|x| x.unit == unit));
            let error = match purged {
                Some(_) => RelayError::new(
                    ErrorCode::Closed,
                    format!("alert {alert} was purged at the end of its retention: nothing of it waits for {unit} to acknowledge"),
                ),
                None => not_sent(),
            };
            return Ok(Answer::Index(Err(error)));
        };
        let (seq, already) = match self
            .index
            .alerts
            .get(&alert)
            .and_then(|m| m.recipients.get(pos))
        {
            Some(slot) => (slot.seq, slot.acked),
            None => return Ok(Answer::Index(Err(not_sent()))),
        };
        if let Some(i) = already {
            // Already acknowledged by this unit: idempotent, no new entry.
            return Ok(Answer::Index(Ok(i)));
        }
        let sender_unit = sender.unit.clone();
        let idx = self.log(
            batch,
            now,
            Event::Acknowledged {
                alert,
                sender,
                recipient: principal.clone(),
            },
        );
        // One small key per acknowledgement: the alert's record is not rewritten.
        batch.acks.push((
            alert,
            unit.clone(),
            AckRecord {
                node: principal,
                at: now,
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
            batch
                .publications
                .push(Publication::Unpublish { unit, seq });
        }
        self.index.forget_delivered_if_done(&alert);
        Ok(Answer::Index(Ok(idx)))
    }

    /// Logs a refused post and answers it.
    fn refuse(&mut self, batch: &mut Batch, now: Timestamp, r: Refusal) -> Answer {
        self.log(batch, now, r.event);
        Answer::Refused(r.error)
    }

    /// Routes a follow-up (update, located, cancel) of the alert it references: who may
    /// post it, to which of the original's recipients the agreement in force still lets
    /// it go (a closing notice, envelope only, to those it no longer permits), and to
    /// which it is withheld. Fills in the draft's category and expiry from the thread.
    /// Every follow-up disclosure decision is here.
    fn route_follow_up(
        &self,
        principal: &Principal,
        draft: &mut AlertDraft,
        agreement: &Agreement,
        received_at: Timestamp,
        batch: &Batch,
        records: &dyn Records,
    ) -> Result<Result<FollowUpRoute, Refusal>, LedgerError> {
        let refuse = |reason, error: RelayError, draft: &AlertDraft| {
            Ok(Err(Refusal {
                event: refused(principal, reason, error.message.clone(), None, draft),
                error,
            }))
        };
        let Some(root) = draft.references else {
            let e = RelayError::new(
                ErrorCode::BadRequest,
                "references: required for an update, located or cancel",
            );
            return refuse(RefusalReason::Invalid, e, draft);
        };
        let Some(t) = self.index.threads.get(&root) else {
            // A purged thread is forgotten by the index; its record says it is closed.
            let purged = self
                .record(&root, batch, records)?
                .filter(|r| r.purged && r.envelope.kind == Kind::Alert);
            if let Some(r) = purged {
                let owner = policy::may_follow_up_purged(
                    principal,
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
                return refuse(reason, RelayError::new(code, message), draft);
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
            return refuse(RefusalReason::UnknownAlert, e, draft);
        };
        let thread = policy::Thread {
            alert: root,
            sender_unit: &t.sender_unit,
            category: t.category,
            recipients: &t.recipients,
        };
        if let Err(refusal) = policy::may_follow_up(agreement, principal, draft.kind, &thread) {
            let e = RelayError::new(refusal.code(), refusal.to_string());
            return refuse(refusal.reason(), e, draft);
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
            return refuse(RefusalReason::Closed, e, draft);
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
            return refuse(RefusalReason::Invalid, e, draft);
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
            self.record(&root, batch, records)?
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
        let decided =
            policy::route_follow_up(agreement, &principal.unit, draft.kind, &thread, &told);
        let route = FollowUpRoute {
            withheld: decided
                .withheld
                .iter()
                .map(|w| (w.why.recipient.clone(), w.to_string()))
                .collect(),
            disclosures: decided.disclosures,
        };
        Ok(Ok(route))
    }

    /// The mailbox limits and the thread cap, for a post to `disclosures`.
    fn check_limits(
        &self,
        principal: &Principal,
        draft: &AlertDraft,
        disclosures: &[Disclosure],
    ) -> Option<Refusal> {
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
                >= self.limits.mailbox_max
        };
        if let Some(full) = disclosures.iter().find(full).filter(|_| !closing) {
            let detail = format!(
                "the mailbox of {} is full ({} alerts waiting, the limit is {}); nothing was posted",
                full.recipient, self.limits.mailbox_max, self.limits.mailbox_max
            );
            return Some(Refusal {
                event: refused(
                    principal,
                    RefusalReason::MailboxFull,
                    detail.clone(),
                    Some(full.recipient.to_string()),
                    draft,
                ),
                error: RelayError::new(ErrorCode::MailboxFull, detail),
            });
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
            .find(|d| from(d) >= self.limits.mailbox_max_per_sender)
            .filter(|_| !closing)
        {
            let detail = format!(
                "the mailbox of {} holds {} alerts from {} waiting, the limit per sender is {} (limits.mailbox_max_per_sender); nothing was posted",
                over.recipient,
                from(over),
                principal.unit,
                self.limits.mailbox_max_per_sender
            );
            return Some(Refusal {
                event: refused(
                    principal,
                    RefusalReason::MailboxFull,
                    detail.clone(),
                    Some(over.recipient.to_string()),
                    draft,
                ),
                error: RelayError::new(ErrorCode::MailboxFull, detail),
            });
        }
        // Bounded threads: an alert takes at most `max_follow_ups` updates. A closing
        // message (located, cancel) is always accepted: it ends the thread.
        if draft.kind == Kind::Update {
            let updates = draft
                .references
                .and_then(|r| self.index.threads.get(&r))
                .map(|t| t.members.len().saturating_sub(1))
                .unwrap_or(0);
            if updates >= self.limits.max_follow_ups {
                let detail = format!(
                    "{principal}: alert {} already has {updates} updates, the limit per alert is {}; post a new alert, or mark this one as located or cancel it; nothing was posted",
                    draft.references.map(|r| r.to_string()).unwrap_or_default(),
                    self.limits.max_follow_ups
                );
                return Some(Refusal {
                    event: refused(
                        principal,
                        RefusalReason::Invalid,
                        detail.clone(),
                        None,
                        draft,
                    ),
                    error: RelayError::new(ErrorCode::InvalidAlert, detail),
                });
            }
        }
        None
    }

    /// `N` random bytes.
    fn random<const N: usize>(entropy: &mut dyn Entropy) -> Result<[u8; N], LedgerError> {
        let mut b = [0u8; N];
        entropy.fill(&mut b)?;
        Ok(b)
    }

    fn post(
        &mut self,
        p: Post,
        now: Timestamp,
        entropy: &mut dyn Entropy,
        records: &dyn Records,
        batch: &mut Batch,
    ) -> Result<Answer, LedgerError> {
        let Post {
            principal,
            mut draft,
            route,
            idempotency_key,
            received_at,
        } = p;
        if let Some(id) = self
            .index
            .idempotency
            .get(&(principal.clone(), idempotency_key))
            .copied()
        {
            return Ok(match self.record(&id, batch, records)? {
                Some(r) => Answer::Receipt(receipt_of(&r, true)),
                None => Answer::Refused(RelayError::new(
                    ErrorCode::UnknownAlert,
                    format!("alert {id} of this idempotency key is gone"),
                )),
            });
        }
        // Decide the recipients.
        let (disclosures, withheld) = match route {
            Route::New(d) => (d, Vec::new()),
            Route::FollowUp(agreement) => match self.route_follow_up(
                &principal,
                &mut draft,
                &agreement,
                received_at,
                batch,
                records,
            )? {
                Ok(r) => (r.disclosures, r.withheld),
                Err(r) => return Ok(self.refuse(batch, now, r)),
            },
        };
        if let Some(r) = self.check_limits(&principal, &draft, &disclosures) {
            return Ok(self.refuse(batch, now, r));
        }
        let id = AlertId::from_parts(received_at.0.max(0) as u64, Self::random(entropy)?);
        let salt: [u8; 32] = Self::random(entropy)?;
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
        // indices and the mailbox positions are the next ones (the ledger numbers them).
        let base = self.next_index;
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
            self.record(&root, batch, records)?.map(|mut orig| {
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
        if let Some(r) = self.check_sizes(&principal, &draft, &rec, orig.as_ref()) {
            return Ok(self.refuse(batch, now, r));
        }
        let posted_index = self.log(
            batch,
            now,
            Event::Posted {
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
            },
        );
        rec.posted_index = posted_index;
        for (d, r) in disclosures.iter().zip(rec.recipients.iter_mut()) {
            self.index.next_seq = r.seq + 1;
            r.disclosed_index = self.log(
                batch,
                now,
                Event::Disclosed {
                    alert: id,
                    sender: principal.clone(),
                    recipient: d.recipient.clone(),
                    category: draft.category,
                    status: draft.status,
                    rules: d.rules.clone(),
                    legal_bases: d.legal_bases.clone(),
                    fields: d.fields,
                },
            );
            batch.publications.push(Publication::Publish {
                unit: d.recipient.clone(),
                seq: r.seq,
                alert: id,
            });
        }
        for (unit, reason) in withheld {
            self.index.withheld.insert((id, unit.clone()));
            self.log(
                batch,
                now,
                Event::Withheld {
                    alert: id,
                    sender: principal.clone(),
                    recipient: unit,
                    reason,
                },
            );
        }
        self.index.insert(&rec);
        let answer = Answer::Receipt(receipt_of(&rec, false));
        batch.records.insert(id, rec);
        if let Some(orig) = orig {
            if let Some(t) = self.index.threads.get_mut(&root) {
                t.state = orig.state;
                t.closed_at = orig.closed_at;
                if kind == Kind::Update {
                    t.expires_at = expires_at;
                }
            }
            self.index.reschedule(root);
            batch.records.insert(root, orig);
            batch.changed_threads.push(root);
            batch.rewrites = true;
        }
        Ok(answer)
    }

    /// The history cap of an update, and the record sizes (its own within
    /// `max_record_bytes`; the original's rewritten record within the frame limit).
    fn check_sizes(
        &self,
        principal: &Principal,
        draft: &AlertDraft,
        rec: &AlertRecord,
        orig: Option<&AlertRecord>,
    ) -> Option<Refusal> {
        let kind = draft.kind;
        let root = draft.references.unwrap_or(rec.envelope.id);
        let too_large = |detail: String| Refusal {
            event: refused(
                principal,
                RefusalReason::Invalid,
                detail.clone(),
                None,
                draft,
            ),
            error: RelayError::new(ErrorCode::InvalidAlert, detail),
        };
        if let (Some(o), Kind::Update) = (orig, kind) {
            let bytes =
                filet_proto::codec::encode_value(&o.history).map_or(usize::MAX, |v| v.len());
            if bytes > self.limits.max_history_bytes {
                return Some(too_large(format!(
                    "{principal}: with this update the history of alert {root} would take {} bytes, the limit per alert is {} bytes; post a new alert, or mark this one as located or cancel it; nothing was posted",
                    if bytes == usize::MAX { "too many".to_string() } else { bytes.to_string() },
                    self.limits.max_history_bytes
                )));
            }
        }
        // Its own record within `max_record_bytes`; the original's rewritten record
        // (its own, already checked, and the bounded history) within the store's limit.
        let own = self
            .limits
            .max_record_bytes
            .min(filet_proto::codec::MAX_FRAME_LEN);
        for (what, r, limit) in std::iter::once(("its record", rec, own)).chain(orig.map(|o| {
            (
                "the record of its alert",
                o,
                filet_proto::codec::MAX_FRAME_LEN,
            )
        })) {
            let problem = match filet_proto::codec::encode_value(r) {
                Ok(v) if v.len() <= limit => continue,
                Ok(v) => format!("{} bytes, the limit is {limit}", v.len()),
                Err(e) => e.to_string(),
            };
            return Some(too_large(format!(
                "{principal}: this {} cannot be stored: {what} would be too large ({problem}); nothing was posted",
                kind
            )));
        }
        None
    }

    /// Expires open alerts past their expiry time and purges closed ones past retention.
    fn timers(
        &mut self,
        now: Timestamp,
        records: &dyn Records,
        batch: &mut Batch,
    ) -> Result<(), LedgerError> {
        let due: Vec<AlertId> = self
            .index
            .expiry
            .range(..=(now.0, AlertId([0xff; 16])))
            .map(|(_, id)| *id)
            .collect();
        for root in due {
            let Some(mut orig) = self.record(&root, batch, records)? else {
                continue;
            };
            let members = self
                .index
                .threads
                .get(&root)
                .map(|t| t.members.clone())
                .unwrap_or_default();
            self.log(
                batch,
                now,
                Event::Expired {
                    alert: root,
                    sender: orig.envelope.sender.clone(),
                },
            );
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
            batch.records.insert(root, orig);
            batch.changed_threads.push(root);
            batch.rewrites = true;
            // Expired alerts are no longer delivered: out of every mailbox.
            for m in members {
                for (unit, seq) in self.index.unpend(&m) {
                    batch
                        .publications
                        .push(Publication::Unpublish { unit, seq });
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
                let Some(mut rec) = self.record(&m, batch, records)? else {
                    continue;
                };
                if rec.purged {
                    continue;
                }
                self.log(
                    batch,
                    now,
                    Event::Purged {
                        alert: m,
                        sender: rec.envelope.sender.clone(),
                    },
                );
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
                batch.hide_now.extend(self.index.unpend(&m));
                batch.records.insert(m, rec);
                batch.rewrites = true;
            }
            if let Some(t) = self.index.threads.get_mut(&root) {
                t.purged = true;
            }
            self.index.reschedule(root);
            batch.hide_now.extend(self.index.forget_thread(&root));
            batch.publications.push(Publication::Forget { root });
        }
        Ok(())
    }
}

/// A post, unpacked from [`Input::Post`].
struct Post {
    principal: Principal,
    draft: AlertDraft,
    route: Route,
    idempotency_key: [u8; 16],
    received_at: Timestamp,
}

/// Where a follow-up goes.
#[derive(Default)]
struct FollowUpRoute {
    /// The recipients and what each may see (closing notices included).
    disclosures: Vec<Disclosure>,
    /// Recipients of the original the agreement no longer permits, and why.
    withheld: Vec<(UnitRef, String)>,
}

/// The `refused` entry of a post.
fn refused(
    principal: &Principal,
    reason: RefusalReason,
    detail: String,
    recipient: Option<String>,
    draft: &AlertDraft,
) -> Event {
    Event::Refused {
        principal: Some(principal.to_string()),
        reason,
        detail,
        category: Some(draft.category),
        recipient,
        alert: draft.references,
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

#[cfg(test)]
mod tests {
    //! The ledger alone, in memory: no files, no threads. A "commit" is copying the
    //! batch's records into a map.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use filet_proto::alert::{AlertFile, Risk};

    /// 2026-12-03, after the example alert's `last_seen.at`.
    const T0: i64 = 1_796_300_000_000;
    const DAY: i64 = 24 * 3600 * 1000;
    const SENDER: &str = "SPVQ/ESM/poste-1";

    /// Random bytes that never repeat.
    struct Counter(u64);

    impl Entropy for Counter {
        fn fill(&mut self, buf: &mut [u8]) -> Result<(), LedgerError> {
            // A counter in the first bytes: no two fills are the same.
            self.0 += 1;
            let n = buf.len().min(8);
            buf[..n].copy_from_slice(&self.0.to_be_bytes()[8 - n..]);
            for b in buf[n..].iter_mut() {
                *b = 0x5a;
            }
            Ok(())
        }
    }

    /// A ledger over an in-memory store.
    struct Mem {
        ledger: Ledger,
        stored: HashMap<AlertId, AlertRecord>,
        entropy: Counter,
        now: Timestamp,
        agreement: Arc<Agreement>,
        keys: u64,
    }

    impl Mem {
        fn new(limits: Limits) -> Mem {
            Mem {
                // A log that already holds 7 entries (start-up entries).
                ledger: Ledger::new(limits, &[1; 32], 7),
                stored: HashMap::new(),
                entropy: Counter(0),
                now: Timestamp(T0),
                agreement: Arc::new(
                    Agreement::parse(crate::examples::AGREEMENT, "agreement.toml").unwrap(),
                ),
                keys: 0,
            }
        }

        /// Applies `inputs` as one batch and "commits" it.
        fn batch(&mut self, inputs: Vec<Input>) -> (Batch, Vec<Answer>) {
            let mut batch = Batch::default();
            let mut answers = Vec::new();
            for i in inputs {
                let a = self
                    .ledger
                    .apply(i, self.now, &mut self.entropy, &self.stored, &mut batch)
                    .unwrap();
                answers.push(a);
            }
            for (id, r) in &batch.records {
                self.stored.insert(*id, r.clone());
            }
            (batch, answers)
        }

        fn one(&mut self, input: Input) -> (Batch, Answer) {
            let (b, mut a) = self.batch(vec![input]);
            (b, a.remove(0))
        }

        fn post(&mut self, sender: &str, draft: AlertDraft, to: Option<Vec<Disclosure>>) -> Input {
            let draft = draft.validate(self.now).unwrap();
            let route = match to {
                Some(d) => Route::New(d),
                None => Route::FollowUp(self.agreement.clone()),
            };
            self.keys += 1;
            let mut idempotency_key = [0u8; 16];
            idempotency_key[..8].copy_from_slice(&self.keys.to_be_bytes());
            Input::Post {
                principal: sender.parse().unwrap(),
                draft,
                route,
                idempotency_key,
                received_at: self.now,
            }
        }

        /// Posts the example alert from `sender` to `units`; returns its receipt.
        fn alert(&mut self, sender: &str, units: &[&str]) -> Receipt {
            let input = self.post(
                sender,
                runaway(),
                Some(units.iter().map(|u| to(u)).collect()),
            );
            match self.one(input).1 {
                Answer::Receipt(r) => r,
                a => panic!("{a:?}"),
            }
        }

        fn follow_up(&mut self, kind: Kind, root: AlertId) -> (Batch, Answer) {
            let input = self.post(SENDER, follow_up(kind, root), None);
            self.one(input)
        }
    }

    fn runaway() -> AlertDraft {
        AlertFile::from_toml(crate::examples::RUNAWAY)
            .unwrap()
            .into_draft()
    }

    fn follow_up(kind: Kind, root: AlertId) -> AlertDraft {
        let mut d = AlertDraft::new(Category::Runaway, Risk::Severe, "unused", "418 555-0100");
        d.kind = kind;
        d.references = Some(root);
        if kind != Kind::Update {
            d.content = filet_proto::Content::default();
        }
        if kind == Kind::Cancel {
            d.note = Some("posted in error".into());
        }
        d
    }

    /// A disclosure of every field to `unit`, kept 90 days.
    fn to(unit: &str) -> Disclosure {
        Disclosure {
            recipient: unit.parse().unwrap(),
            rules: vec!["police-vers-protection".into()],
            legal_bases: vec!["LPJ".into()],
            fields: FieldSet::all(),
            retention_ms: 90 * DAY,
        }
    }

    fn refused(a: Answer) -> RelayError {
        match a {
            Answer::Refused(e) => e,
            a => panic!("not refused: {a:?}"),
        }
    }

    fn kinds(b: &Batch) -> Vec<&'static str> {
        b.entries.iter().map(|e| e.event.name()).collect()
    }

    #[test]
    fn a_post_to_three_units_produces_one_record_three_disclosed_entries_and_three_publications() {
        let mut m = Mem::new(Limits::new(100, 100));
        let input = m.post(
            SENDER,
            runaway(),
            Some(vec![to("DPJ/RTS"), to("CJQ/PIVOT"), to("SPVQ/IKAT")]),
        );
        let (b, a) = m.one(input);
        let Answer::Receipt(r) = a else {
            panic!("{a:?}")
        };
        assert_eq!(kinds(&b), ["posted", "disclosed", "disclosed", "disclosed"]);
        // Numbered from the log's size, with no gap.
        let indices: Vec<u64> = b.entries.iter().map(|e| e.index).collect();
        assert_eq!(indices, [7, 8, 9, 10]);
        assert_eq!(m.ledger.next_index(), 11);
        assert_eq!(b.records.len(), 1);
        let rec = &b.records[&r.alert];
        assert_eq!(rec.posted_index, 7);
        assert_eq!(r.posted_index, 7);
        let disclosed: Vec<u64> = rec.recipients.iter().map(|x| x.disclosed_index).collect();
        assert_eq!(disclosed, [8, 9, 10]);
        assert_eq!(
            r.recipients
                .iter()
                .map(|x| x.audit_index)
                .collect::<Vec<_>>(),
            disclosed
        );
        assert_eq!(
            b.publications,
            ["DPJ/RTS", "CJQ/PIVOT", "SPVQ/IKAT"]
                .iter()
                .zip(1u64..)
                .map(|(u, seq)| Publication::Publish {
                    unit: u.parse().unwrap(),
                    seq,
                    alert: r.alert,
                })
                .collect::<Vec<_>>()
        );
        assert!(!b.rewrites, "a new alert rewrites nothing");
        assert!(b.acks.is_empty() && b.hide_now.is_empty());
    }

    #[test]
    fn the_same_idempotency_key_gets_the_same_receipt_marked_duplicate_and_no_entry() {
        let mut m = Mem::new(Limits::new(100, 100));
        let input = m.post(SENDER, runaway(), Some(vec![to("DPJ/RTS")]));
        let Input::Post {
            principal,
            draft,
            idempotency_key,
            received_at,
            ..
        } = input
        else {
            panic!()
        };
        let again = |d: &AlertDraft| Input::Post {
            principal: principal.clone(),
            draft: d.clone(),
            route: Route::New(vec![to("DPJ/RTS")]),
            idempotency_key,
            received_at,
        };
        let (b, answers) = m.batch(vec![again(&draft), again(&draft)]);
        assert_eq!(kinds(&b), ["posted", "disclosed"]);
        let [Answer::Receipt(first), Answer::Receipt(second)] = &answers[..] else {
            panic!("{answers:?}")
        };
        assert_eq!(first.alert, second.alert);
        assert!(!first.duplicate && second.duplicate);
    }

    #[test]
    fn an_acknowledgement_is_logged_once_takes_the_alert_out_of_the_mailbox_and_only_its_recipients_may_give_it(
    ) {
        let mut m = Mem::new(Limits::new(100, 100));
        let r = m.alert(SENDER, &["DPJ/RTS"]);
        let node: Principal = "DPJ/RTS/n1".parse().unwrap();
        let ack = |p: &Principal| Input::Ack {
            principal: p.clone(),
            alert: r.alert,
        };
        let (b, a) = m.one(ack(&node));
        assert_eq!(kinds(&b), ["acknowledged"]);
        let Answer::Index(Ok(i)) = a else {
            panic!("{a:?}")
        };
        assert_eq!(i, b.entries[0].index);
        assert_eq!(b.acks.len(), 1);
        assert_eq!(b.acks[0].2.audit_index, i);
        assert_eq!(
            b.publications,
            [Publication::Unpublish {
                unit: "DPJ/RTS".parse().unwrap(),
                seq: 1
            }]
        );
        // Again: the same index, nothing new.
        let (b, a) = m.one(ack(&node));
        assert!(b.is_empty());
        assert!(matches!(a, Answer::Index(Ok(j)) if j == i), "{a:?}");
        // A unit the alert was not sent to.
        let (b, a) = m.one(ack(&"CJQ/PIVOT/n1".parse().unwrap()));
        assert!(b.is_empty());
        let Answer::Index(Err(e)) = a else {
            panic!("{a:?}")
        };
        assert_eq!(e.code, ErrorCode::UnknownAlert);
        assert!(
            e.message.contains("was not sent to CJQ/PIVOT"),
            "{}",
            e.message
        );
    }

    #[test]
    fn a_full_mailbox_refuses_a_post_naming_the_mailbox_and_still_takes_the_closing_message() {
        let mut m = Mem::new(Limits::new(2, 100));
        let first = m.alert(SENDER, &["DPJ/RTS"]).alert;
        m.alert(SENDER, &["DPJ/RTS"]);
        let input = m.post(SENDER, runaway(), Some(vec![to("DPJ/RTS")]));
        let (b, a) = m.one(input);
        let e = refused(a);
        assert_eq!(e.code, ErrorCode::MailboxFull);
        assert!(
            e.message
                .contains("the mailbox of DPJ/RTS is full (2 alerts waiting, the limit is 2)"),
            "{}",
            e.message
        );
        // The refusal is audited, and nothing else is written.
        assert_eq!(kinds(&b), ["refused"]);
        assert!(b.records.is_empty() && b.publications.is_empty());
        let (_, a) = m.follow_up(Kind::Located, first);
        assert!(matches!(a, Answer::Receipt(_)), "{a:?}");
    }

    #[test]
    fn one_sender_holds_at_most_its_quota_of_a_mailbox_and_another_sender_is_still_received() {
        let mut m = Mem::new(Limits::new(100, 1));
        m.alert(SENDER, &["DPJ/RTS"]);
        let input = m.post(SENDER, runaway(), Some(vec![to("DPJ/RTS")]));
        let e = refused(m.one(input).1);
        assert_eq!(e.code, ErrorCode::MailboxFull);
        assert!(
            e.message.contains("from SPVQ/ESM")
                && e.message.contains("limits.mailbox_max_per_sender"),
            "{}",
            e.message
        );
        m.alert("SQ/EILP/poste-2", &["DPJ/RTS"]);
    }

    #[test]
    fn an_update_past_the_thread_cap_is_refused_naming_the_limit_and_a_cancel_still_closes_it() {
        let mut limits = Limits::new(100, 100);
        limits.max_follow_ups = 2;
        let mut m = Mem::new(limits);
        let root = m.alert(SENDER, &["DPJ/RTS"]).alert;
        for _ in 0..2 {
            let (b, a) = m.follow_up(Kind::Update, root);
            assert!(matches!(a, Answer::Receipt(_)), "{a:?}");
            // The update and the original's rewritten record.
            assert_eq!(b.records.len(), 2);
            assert!(b.rewrites);
            assert_eq!(b.changed_threads, [root]);
        }
        let e = refused(m.follow_up(Kind::Update, root).1);
        assert_eq!(e.code, ErrorCode::InvalidAlert);
        assert!(
            e.message.contains(&format!(
                "alert {root} already has 2 updates, the limit per alert is 2"
            )),
            "{}",
            e.message
        );
        let (_, a) = m.follow_up(Kind::Cancel, root);
        assert!(matches!(a, Answer::Receipt(_)), "{a:?}");
        assert_eq!(m.stored[&root].state, AlertState::Cancelled);
        assert_eq!(m.stored[&root].history.len(), 1 + 2 + 1);
    }

    #[test]
    fn a_follow_up_goes_where_the_agreement_still_permits_and_a_closing_notice_to_the_others() {
        let mut m = Mem::new(Limits::new(100, 100));
        // ULAVAL/RECHERCHE appears in no rule: told of the alert (under an older
        // agreement), it is withheld the update and told, envelope only, of the end.
        let root = m.alert(SENDER, &["DPJ/RTS", "ULAVAL/RECHERCHE"]).alert;
        let (b, a) = m.follow_up(Kind::Update, root);
        let Answer::Receipt(r) = a else {
            panic!("{a:?}")
        };
        assert_eq!(kinds(&b), ["posted", "disclosed", "withheld"]);
        assert_eq!(r.recipients.len(), 1);
        assert_eq!(r.recipients[0].unit.to_string(), "DPJ/RTS");
        let Event::Withheld {
            recipient, reason, ..
        } = &b.entries[2].event
        else {
            panic!()
        };
        assert_eq!(recipient.to_string(), "ULAVAL/RECHERCHE");
        assert!(
            reason.contains("no rule of agreement table-regionale-quebec-esj v1 permits SPVQ/ESM to send runaway alerts to ULAVAL/RECHERCHE"),
            "{reason}"
        );
        let (b, a) = m.follow_up(Kind::Located, root);
        let Answer::Receipt(r) = a else {
            panic!("{a:?}")
        };
        assert_eq!(kinds(&b), ["posted", "disclosed", "disclosed"]);
        let notice = r
            .recipients
            .iter()
            .find(|x| x.unit.to_string() == "ULAVAL/RECHERCHE")
            .expect("a closing notice");
        assert_eq!(notice.fields, FieldSet::EMPTY);
        let Event::Disclosed { legal_bases, .. } = &b.entries[2].event else {
            panic!()
        };
        assert_eq!(legal_bases, &[CLOSING_NOTICE.to_string()]);
    }

    #[test]
    fn a_follow_up_of_another_party_or_of_a_follow_up_is_refused_naming_the_alert() {
        let mut m = Mem::new(Limits::new(100, 100));
        let root = m.alert(SENDER, &["DPJ/RTS"]).alert;
        let input = m.post("SQ/EILP/poste-2", follow_up(Kind::Update, root), None);
        let e = refused(m.one(input).1);
        assert_eq!(e.code, ErrorCode::NotOwner);
        assert!(
            e.message
                .contains(&format!("only party SPVQ may update alert {root}")),
            "{}",
            e.message
        );
        let (_, a) = m.follow_up(Kind::Update, root);
        let Answer::Receipt(update) = a else {
            panic!("{a:?}")
        };
        let e = refused(m.follow_up(Kind::Update, update.alert).1);
        assert_eq!(e.code, ErrorCode::UnknownAlert);
        assert!(
            e.message
                .contains(&format!("{} is a follow-up of alert {root}", update.alert)),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_open_alert_past_its_expiry_is_expired_by_the_tick_and_leaves_every_mailbox() {
        let mut m = Mem::new(Limits::new(100, 100));
        let r = m.alert(SENDER, &["DPJ/RTS", "CJQ/PIVOT"]);
        // Nothing is due yet: nothing is written.
        let (b, _) = m.one(Input::Tick);
        assert!(b.is_empty());
        m.now = Timestamp(r.expires_at.0 + 1);
        let (b, a) = m.one(Input::Tick);
        assert_eq!(kinds(&b), ["expired"]);
        assert!(
            matches!(a, Answer::Index(Ok(i)) if i == m.ledger.next_index()),
            "{a:?}"
        );
        let rec = &b.records[&r.alert];
        assert_eq!(rec.state, AlertState::Expired);
        assert_eq!(rec.closed_at, Some(m.now));
        assert!(b.rewrites);
        assert_eq!(
            b.publications,
            [
                Publication::Unpublish {
                    unit: "DPJ/RTS".parse().unwrap(),
                    seq: 1
                },
                Publication::Unpublish {
                    unit: "CJQ/PIVOT".parse().unwrap(),
                    seq: 2
                },
            ]
        );
        // Expired: a follow-up is refused as closed.
        let e = refused(m.follow_up(Kind::Update, r.alert).1);
        assert_eq!(e.code, ErrorCode::Closed);
    }

    #[test]
    fn a_located_on_a_purged_thread_is_refused_naming_the_alert() {
        let mut m = Mem::new(Limits::new(100, 100));
        let root = m.alert(SENDER, &["DPJ/RTS"]).alert;
        let (_, a) = m.follow_up(Kind::Cancel, root);
        let Answer::Receipt(cancel) = a else {
            panic!("{a:?}")
        };
        // Past the retention (90 days) of the closed thread: purged, every message.
        m.now = Timestamp(m.now.0 + 91 * DAY);
        let (b, _) = m.one(Input::Tick);
        assert_eq!(kinds(&b), ["purged", "purged"]);
        for id in [root, cancel.alert] {
            let rec = &b.records[&id];
            assert!(
                rec.purged && rec.content.is_none() && rec.salt == [0; 32],
                "{id}"
            );
        }
        assert_eq!(b.publications, [Publication::Forget { root }]);
        assert!(!m.ledger.index.threads.contains_key(&root), "still indexed");
        let (b, a) = m.follow_up(Kind::Located, root);
        let e = refused(a);
        assert_eq!(e.code, ErrorCode::Closed);
        assert!(
            e.message.contains(&format!(
                "alert {root} is already cancelled and its content purged"
            )),
            "{}",
            e.message
        );
        let Event::Refused { alert, reason, .. } = &b.entries[0].event else {
            panic!("{:?}", kinds(&b))
        };
        assert_eq!(*alert, Some(root));
        assert_eq!(*reason, RefusalReason::Closed);
    }
}
