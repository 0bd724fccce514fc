//! Group commit: the one thread that writes the durable state, through the ledger.
//!
//! Connection tasks send [`Op`]s on a bounded channel (a full channel makes them wait:
//! backpressure, never a drop). The commit thread takes everything queued (up to
//! `max_batch`), and for the whole batch:
//!
//! 1. runs each op through the [`Ledger`] (idempotency, follow-ups, limits, acks, timers),
//!    which adds the op's audit entries, records and mailbox changes to the batch and
//!    returns its answer (a purge also takes its messages out of readers' hands now);
//! 2. commits the batch through [`Storage::commit`]: atomically and durably (see the
//!    storage's durability contract), returning the new log size and its checkpoint;
//! 3. then, and only then, publishes the new mailbox entries to the [`Mailboxes`] (log before
//!    disclose) and answers every op of the batch (no receipt before durability).
//!
//! A storage error stops the thread: every op of the failed batch is answered with
//! [`ErrorCode::Internal`] and the relay stops. No lock is held across I/O: the thread
//! owns the ledger and the storage outright. Start-up recovery is in [`crate::recovery`].

use std::sync::{Arc, RwLock};

use filet_proto::alert::{AlertDraft, FieldSet};
use filet_proto::audit::Event;
use filet_proto::wire::{ErrorCode, Receipt, RelayError};
use filet_proto::{AlertId, Principal, Timestamp, UnitRef};
use ring::rand::{SecureRandom, SystemRandom};
use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::ledger::{
    self, Answer, Entropy, Input, Ledger, LedgerError, Limits, Publication, Records,
};
use crate::mailboxes::{Mailboxes, ThreadView};
use crate::storage::{Storage, StorageError};
use crate::store::AlertRecord;

pub use crate::ledger::{
    receipt_of, Route, CLOSING_NOTICE, MAX_FOLLOW_UPS, MAX_HISTORY_BYTES, MAX_RECORD_BYTES,
};
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

/// Errors that stop the commit thread (and the relay): nothing after them is acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The ledger could not decide an op (a record unreadable, no randomness).
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The alert store lost data the audit log proves was committed.
    #[error("{0}")]
    StoreDamaged(String),
}

/// Settings of the commit thread.
pub struct CommitConfig {
    /// Most ops in one batch.
    pub max_batch: usize,
    /// The ledger's limits.
    pub limits: Limits,
}

impl CommitConfig {
    /// The relay's limits with this batch size and mailbox limits.
    pub fn new(max_batch: usize, mailbox_max: usize, mailbox_max_per_sender: usize) -> Self {
        CommitConfig {
            max_batch,
            limits: Limits::new(mailbox_max, mailbox_max_per_sender),
        }
    }
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

/// The system's CSPRNG, drawn 4 KiB at a time (one system call per ~100 posts instead of
/// two per post).
struct SystemEntropy {
    rng: SystemRandom,
    block: Vec<u8>,
}

impl SystemEntropy {
    fn new() -> Self {
        SystemEntropy {
            rng: SystemRandom::new(),
            block: Vec::new(),
        }
    }
}

impl Entropy for SystemEntropy {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), LedgerError> {
        let n = buf.len();
        if self.block.len() < n {
            let mut block = vec![0u8; 4096.max(n)];
            self.rng.fill(&mut block).map_err(|_| LedgerError::Random)?;
            self.block = block;
        }
        let at = self.block.len() - n;
        buf.copy_from_slice(&self.block[at..]);
        // Never hand out the same bytes twice.
        self.block.truncate(at);
        Ok(())
    }
}

/// The storage's records, as the ledger reads them.
struct Stored<'a>(&'a dyn Storage);

impl Records for Stored<'_> {
    fn record(&self, id: &AlertId) -> Result<Option<AlertRecord>, LedgerError> {
        self.0
            .record(id)
            .map_err(|e| LedgerError::Read(Box::new(e)))
    }
}

/// Where an op's answer goes.
enum Reply {
    Receipt(oneshot::Sender<Result<Receipt, RelayError>>),
    Index(oneshot::Sender<Result<u64, RelayError>>),
    None,
}

impl Reply {
    /// Sends `answer` (the receipt carrying `checkpoint`).
    fn send(self, answer: Answer, checkpoint: &str) {
        match (self, answer) {
            (Reply::Receipt(tx), Answer::Receipt(mut receipt)) => {
                receipt.checkpoint = checkpoint.to_owned();
                let _ = tx.send(Ok(receipt));
            }
            (Reply::Receipt(tx), Answer::Refused(e) | Answer::Index(Err(e))) => {
                let _ = tx.send(Err(e));
            }
            (Reply::Index(tx), Answer::Index(r)) => {
                let _ = tx.send(r);
            }
            (Reply::Index(tx), Answer::Refused(e)) => {
                let _ = tx.send(Err(e));
            }
            (Reply::Receipt(tx), _) => {
                let _ = tx.send(Err(RelayError::new(ErrorCode::Internal, "no receipt")));
            }
            (Reply::Index(tx), _) => {
                let _ = tx.send(Err(RelayError::new(ErrorCode::Internal, "no audit index")));
            }
            (Reply::None, _) => {}
        }
    }

    fn fail(self, error: RelayError) {
        match self {
            Reply::Receipt(tx) => {
                let _ = tx.send(Err(error));
            }
            Reply::Index(tx) => {
                let _ = tx.send(Err(error));
            }
            Reply::None => {}
        }
    }
}

impl Op {
    /// The ledger's input and where its answer goes.
    fn split(self) -> (Input, Reply) {
        match self {
            Op::Post {
                principal,
                draft,
                route,
                idempotency_key,
                received_at,
                reply,
            } => (
                Input::Post {
                    principal,
                    draft,
                    route,
                    idempotency_key,
                    received_at,
                },
                Reply::Receipt(reply),
            ),
            Op::Ack {
                principal,
                alert,
                reply,
            } => (Input::Ack { principal, alert }, Reply::Index(reply)),
            Op::Delivered {
                alert,
                sender,
                node,
                fields,
                rules,
                agreement,
                agreement_version,
            } => (
                Input::Delivered {
                    alert,
                    sender,
                    node,
                    fields,
                    rules,
                    agreement,
                    agreement_version,
                },
                Reply::None,
            ),
            Op::Withheld {
                alert,
                sender,
                unit,
                reason,
            } => (
                Input::Withheld {
                    alert,
                    sender,
                    unit,
                    reason,
                },
                Reply::None,
            ),
            Op::Tick { reply } => (Input::Tick, reply.map_or(Reply::None, Reply::Index)),
            Op::Audit { event, reply } => (
                Input::Audit { event },
                reply.map_or(Reply::None, Reply::Index),
            ),
        }
    }
}

fn internal(e: &CommitError) -> RelayError {
    RelayError::new(
        ErrorCode::Internal,
        format!("the relay could not store this and is stopping; nothing was acknowledged ({e})"),
    )
}

/// The commit thread's state: the ledger, the storage, and where answers and mailboxes go.
pub struct Committer {
    pub(crate) storage: Box<dyn Storage>,
    pub(crate) ledger: Ledger,
    pub(crate) mailboxes: Arc<Mailboxes>,
    latest_checkpoint: Arc<RwLock<String>>,
    clock: Arc<dyn Clock>,
    entropy: SystemEntropy,
    max_batch: usize,
    /// Statistics: batches committed and ops in them.
    pub stats: Arc<CommitStats>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Entries appended outside a batch (start-up), committed by [`Committer::sync`].
    pending: ledger::Batch,
}

impl Committer {
    /// Builds the commit thread's state over `storage`; [`crate::recovery::recover`]
    /// then rebuilds the ledger's index from it.
    pub fn new(
        storage: Box<dyn Storage>,
        subject_key: &[u8],
        mailboxes: Arc<Mailboxes>,
        latest_checkpoint: Arc<RwLock<String>>,
        clock: Arc<dyn Clock>,
        cfg: CommitConfig,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Self {
        let ledger = Ledger::new(cfg.limits, subject_key, storage.audit_size());
        Committer {
            storage,
            ledger,
            mailboxes,
            latest_checkpoint,
            clock,
            entropy: SystemEntropy::new(),
            max_batch: cfg.max_batch,
            stats: Arc::new(CommitStats::default()),
            metrics,
            pending: ledger::Batch::default(),
        }
    }

    /// Runs until every sender of `rx` is gone (then the storage is closed cleanly) or a
    /// storage error happens (returned; the relay must stop).
    ///
    /// # Errors
    /// The first storage error; every op of the failed batch is answered with
    /// [`ErrorCode::Internal`].
    pub fn run(mut self, mut rx: mpsc::Receiver<Op>) -> Result<(), CommitError> {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(op) = rx.blocking_recv() {
            batch.push(op);
            while batch.len() < self.max_batch {
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
        });
        self.sync()?;
        self.storage.close()?;
        Ok(())
    }

    /// Appends one event (outside a batch: start-up entries); returns its index. Durable
    /// after the next [`Committer::sync`].
    pub fn append(&mut self, event: Event) -> u64 {
        let now = self.clock.now();
        self.metrics.event(&event);
        self.ledger.log(&mut self.pending, now, event)
    }

    /// Commits what [`Committer::append`] added (and repaired records): returns the
    /// checkpoint.
    ///
    /// # Errors
    /// Storage errors.
    pub fn sync(&mut self) -> Result<String, CommitError> {
        let mut pending = std::mem::take(&mut self.pending);
        self.durable(&mut pending)
    }

    /// The audit log size (appended, maybe not yet committed).
    pub fn audit_size(&self) -> u64 {
        self.ledger.next_index()
    }

    /// Commits `batch` through the storage; then readers may see its entries.
    fn durable(&mut self, batch: &mut ledger::Batch) -> Result<String, CommitError> {
        let started = std::time::Instant::now();
        let committed = self.storage.commit(crate::storage::Batch {
            entries: &batch.entries,
            records: &batch.records,
            acks: &batch.acks,
            rewrites: batch.rewrites,
        })?;
        self.mailboxes.set_published(committed.size);
        self.metrics.flush.observe(started.elapsed().as_secs_f64());
        *self
            .latest_checkpoint
            .write()
            .unwrap_or_else(|p| p.into_inner()) = committed.checkpoint.clone();
        Ok(committed.checkpoint)
    }

    /// Runs one input through the ledger into `batch`; takes a purge's messages out of
    /// readers' hands at once.
    fn apply(&mut self, input: Input, batch: &mut ledger::Batch) -> Result<Answer, CommitError> {
        let before = batch.entries.len();
        let now = self.clock.now();
        let answer = self.ledger.apply(
            input,
            now,
            &mut self.entropy,
            &Stored(self.storage.as_ref()),
            batch,
        )?;
        for e in &batch.entries[before..] {
            self.metrics.event(&e.event);
        }
        for (unit, seq) in batch.hide_now.drain(..) {
            self.mailboxes.remove(&unit, seq);
        }
        Ok(answer)
    }

    fn commit_batch(&mut self, ops: &mut Vec<Op>) -> Result<(), CommitError> {
        let mut batch = ledger::Batch::default();
        let mut answers = Vec::with_capacity(ops.len());
        let n_ops = ops.len() as u64;
        let mut posts = 0u64;
        let mut failure = None;
        for op in ops.drain(..) {
            if let Op::Post { .. } = op {
                posts += 1;
            }
            let (input, reply) = op.split();
            if let Some(e) = &failure {
                reply.fail(internal(e));
                continue;
            }
            match self.apply(input, &mut batch) {
                Ok(answer) => answers.push((reply, answer)),
                Err(e) => {
                    reply.fail(internal(&e));
                    failure = Some(e);
                }
            }
        }
        let note = match failure {
            Some(e) => Err(e),
            // Nothing new (a timer tick with nothing due, a duplicate post): no commit.
            None if batch.is_empty() => Ok(self
                .latest_checkpoint
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()),
            None => self.durable(&mut batch),
        };
        let note = match note {
            Ok(n) => n,
            Err(e) => {
                for (reply, _) in answers {
                    reply.fail(internal(&e));
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
        // The mailboxes hold the committed records themselves: deliveries read no storage.
        let records: std::collections::HashMap<AlertId, Arc<AlertRecord>> = batch
            .records
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        for root in batch.changed_threads.drain(..) {
            if let Some(r) = records.get(&root) {
                self.mailboxes.set_thread(
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
        for p in &batch.publications {
            match p {
                Publication::Publish { unit, seq, alert } => {
                    if let Some(r) = records.get(alert) {
                        self.mailboxes.add(unit, *seq, r.clone());
                    }
                }
                Publication::Unpublish { unit, seq } => self.mailboxes.remove(unit, *seq),
                Publication::Forget { root } => self.mailboxes.forget_thread(root),
            }
        }
        for (reply, answer) in answers {
            reply.send(answer, &note);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::audit_log::AuditLog;
    use crate::clock::ManualClock;
    use crate::ledger::Batch;
    use crate::recovery::recover;
    use crate::storage::embedded::Embedded;
    use crate::store::{Store, StoreMark};
    use filet_proto::agreement::Agreement;
    use filet_proto::alert::{AlertFile, AlertState, Category, Kind, Risk};
    use filet_proto::checkpoint::NoteSigner;
    use std::path::{Path, PathBuf};

    /// 2026-12-03, after the example alert's `last_seen.at`.
    const T0: i64 = 1_796_300_000_000;

    /// A commit thread on a temporary data directory, driven batch by batch.
    struct Bench {
        _tmp: tempfile::TempDir,
        dir: PathBuf,
        c: Committer,
        /// The alert store the commit thread writes (a handle to the same sled database).
        store: Store,
        agreement: Arc<Agreement>,
        clock: ManualClock,
        keys: u64,
    }

    type Answer = oneshot::Receiver<Result<Receipt, RelayError>>;

    fn open(dir: &Path, clock: &ManualClock, cfg: CommitConfig) -> (Committer, Store) {
        let (log, rec) = AuditLog::open(&dir.join("audit")).unwrap();
        let store = Store::open(&dir.join("store")).unwrap();
        let (mark, below) = StoreMark::open(&dir.join("store.mark")).unwrap();
        let signer = NoteSigner::from_seed("test.relay", &[7; 32]).unwrap();
        let storage = Embedded::new(log, store.clone(), mark, signer, "test.relay".into());
        let mut c = Committer::new(
            Box::new(storage),
            &[1; 32],
            Arc::new(Mailboxes::default()),
            Arc::new(RwLock::new(String::new())),
            Arc::new(clock.clone()),
            cfg,
            Arc::new(crate::metrics::Metrics::new()),
        );
        recover(&mut c, &rec.facts, below).unwrap();
        (c, store)
    }

    impl Bench {
        fn new(cfg: CommitConfig) -> Bench {
            let tmp = tempfile::tempdir().unwrap();
            let dir = tmp.path().to_owned();
            let clock = ManualClock::new(Timestamp(T0));
            let (c, store) = open(&dir, &clock, cfg);
            Bench {
                _tmp: tmp,
                dir,
                c,
                store,
                agreement: Arc::new(
                    Agreement::parse(crate::examples::AGREEMENT, "agreement.toml").unwrap(),
                ),
                clock,
                keys: 0,
            }
        }

        /// Stops the commit thread cleanly and starts another on the same directory.
        fn restart(&mut self, cfg: CommitConfig) {
            let (tx, rx) = mpsc::channel(1);
            drop(tx);
            let (spare, spare_store) = open(
                &self.dir.join("spare"),
                &self.clock,
                CommitConfig::new(8, 8, 8),
            );
            let c = std::mem::replace(&mut self.c, spare);
            self.store = spare_store;
            c.run(rx).unwrap();
            let (c, store) = open(&self.dir, &self.clock, cfg);
            self.c = c;
            self.store = store;
        }

        fn post(&mut self, sender: &str, draft: AlertDraft) -> (Op, Answer) {
            let principal: Principal = sender.parse().unwrap();
            let draft = draft.validate(self.clock.now()).unwrap();
            let route = if draft.kind == Kind::Alert {
                Route::New(
                    filet_proto::policy::route_alert(
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
        AlertFile::from_toml(crate::examples::RUNAWAY)
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

    /// Everything the commit thread and the mailboxes remember of an alert.
    fn remembered(b: &Bench, id: &AlertId) -> Vec<&'static str> {
        let i = &b.c.ledger.index;
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
        if b.c.mailboxes.thread(id).is_some() {
            held.push("mailboxes.threads");
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
        assert!(b.store.get(&root).unwrap().unwrap().purged);
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
            let rec = b.store.get(id).unwrap().unwrap();
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
        let held = b.c.mailboxes.pending_after(&unit, 0, 10);
        assert_eq!(held.len(), 2);
        assert!(held.iter().all(|p| p.is_live() && p.rec.content.is_some()));
        b.clock.advance(91 * 24 * 3600 * 1000);
        // The purge decided, its `purged` entries appended but not yet durable: the
        // records are already out of the readers' hands.
        let mut batch = Batch::default();
        let durable = b.c.storage.audit_size();
        b.c.apply(Input::Tick, &mut batch).unwrap();
        assert!(
            batch
                .entries
                .iter()
                .any(|e| matches!(e.event, Event::Purged { .. })),
            "no purged entry appended"
        );
        assert_eq!(b.c.storage.audit_size(), durable, "durable already");
        assert!(batch.records.values().all(|r| r.purged));
        for p in &held {
            assert!(!p.is_live(), "{} still taken for live", p.rec.envelope.id);
        }
        b.c.durable(&mut batch).unwrap();
    }

    #[test]
    fn a_record_is_not_served_before_its_audit_entries_are_durable() {
        let mut b = Bench::new(CommitConfig::new(64, 100, 100));
        b.one(SENDER, runaway()).unwrap();
        let (op, _rx) = b.post(SENDER, runaway());
        let mut batch = Batch::default();
        b.c.apply(op.split().0, &mut batch).unwrap();
        let rec = batch.records.values().next().unwrap().clone();
        // Appended, not durable: even were the store to show it (the store and the log are
        // written in parallel), it is not served.
        b.store.put_all([&rec]).unwrap();
        assert!(b.store.get(&rec.envelope.id).unwrap().is_some());
        assert!(
            !b.c.mailboxes.is_published(&rec),
            "served before its entries are durable"
        );
        b.c.durable(&mut batch).unwrap();
        assert!(b.c.mailboxes.is_published(&rec));
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
        let stored = b.store.get(&root).unwrap().unwrap();
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
        cfg.limits.max_history_bytes = 8 * 1024;
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
        cfg.limits.max_record_bytes = 1500;
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
            let rec = b.store.get(&r.alert).unwrap().unwrap();
            assert_eq!(rec.posted_index, r.posted_index);
            for rr in &r.recipients {
                assert_eq!(b.c.mailboxes.depth(&rr.unit), 2);
            }
        }
        b.restart(CommitConfig::new(1024, 10_000, 1000));
        assert_eq!(b.store.iter().count(), 2);
    }

    /// Storage in memory that fails on demand (the disk is full): the driver's order
    /// without a data directory.
    #[derive(Default)]
    struct MemStorage {
        entries: Vec<Vec<u8>>,
        records: HashMap<AlertId, AlertRecord>,
        full: bool,
    }

    use crate::storage::{Batch as Writes, Committed};
    use filet_proto::merkle::Hash;
    use std::collections::HashMap;

    impl Storage for MemStorage {
        fn audit_size(&self) -> u64 {
            self.entries.len() as u64
        }
        fn record(&self, id: &AlertId) -> Result<Option<AlertRecord>, StorageError> {
            Ok(self.records.get(id).cloned())
        }
        fn commit(&mut self, batch: Writes<'_>) -> Result<Committed, StorageError> {
            if self.full {
                return Err(StorageError::Sign("no space left on device".into()));
            }
            self.entries
                .extend(batch.entries.iter().map(|e| e.to_bytes()));
            for (id, r) in batch.records {
                self.records.insert(*id, r.clone());
            }
            Ok(Committed {
                size: self.audit_size(),
                checkpoint: format!("checkpoint of {}", self.audit_size()),
            })
        }
        fn close(&mut self) -> Result<(), StorageError> {
            Ok(())
        }
        fn entry(&self, index: u64) -> Result<Vec<u8>, StorageError> {
            Ok(self.entries[index as usize].clone())
        }
        fn root(&self, _: u64) -> Result<Hash, StorageError> {
            Ok([0; 32])
        }
        fn inclusion_proof(&self, _: u64, _: u64) -> Result<Vec<Hash>, StorageError> {
            Ok(Vec::new())
        }
        fn consistency_proof(&self, _: u64, _: u64) -> Result<Vec<Hash>, StorageError> {
            Ok(Vec::new())
        }
        fn recorded_size(&self) -> Result<u64, StorageError> {
            Ok(self.audit_size())
        }
        fn records(&self) -> Box<dyn Iterator<Item = Result<AlertRecord, StorageError>> + '_> {
            Box::new(self.records.values().cloned().map(Ok))
        }
        fn acks(
            &self,
        ) -> Result<HashMap<(AlertId, UnitRef), crate::store::AckRecord>, StorageError> {
            Ok(HashMap::new())
        }
        fn remove_ack(&mut self, _: &AlertId, _: &UnitRef) -> Result<(), StorageError> {
            Ok(())
        }
        fn remove_record(&mut self, id: &AlertId) -> Result<(), StorageError> {
            self.records.remove(id);
            Ok(())
        }
        fn put_records(&mut self, records: &[&AlertRecord]) -> Result<(), StorageError> {
            for r in records {
                self.records.insert(r.envelope.id, (*r).clone());
            }
            Ok(())
        }
    }

    #[test]
    fn a_batch_the_storage_cannot_commit_is_answered_internal_op_by_op_and_nothing_is_published() {
        let clock = ManualClock::new(Timestamp(T0));
        let mailboxes = Arc::new(Mailboxes::default());
        let mut c = Committer::new(
            Box::new(MemStorage::default()),
            &[1; 32],
            mailboxes.clone(),
            Arc::new(RwLock::new(String::new())),
            Arc::new(clock.clone()),
            CommitConfig::new(64, 100, 100),
            Arc::new(crate::metrics::Metrics::new()),
        );
        let mut b = Bench::new(CommitConfig::new(64, 100, 100));
        // A batch that commits: answered with the storage's checkpoint, then published.
        let (op, mut rx) = b.post(SENDER, runaway());
        c.commit_batch(&mut vec![op]).unwrap();
        let r = rx.try_recv().unwrap().unwrap();
        assert_eq!(
            r.checkpoint,
            format!("checkpoint of {}", 1 + r.recipients.len())
        );
        let unit = r.recipients[0].unit.clone();
        assert_eq!(mailboxes.depth(&unit), 1);
        // The disk is full: every op of the batch is refused, nothing reaches a mailbox,
        // and the thread stops.
        c.storage = Box::new(MemStorage {
            full: true,
            ..MemStorage::default()
        });
        let (p1, mut r1) = b.post(SENDER, runaway());
        let (p2, mut r2) = b.post(SENDER, runaway());
        let (reply, mut r3) = oneshot::channel();
        let ack = Op::Ack {
            principal: format!("{unit}/n1").parse().unwrap(),
            alert: r.alert,
            reply,
        };
        let e = c.commit_batch(&mut vec![p1, ack, p2]).unwrap_err();
        assert!(e.to_string().contains("no space left on device"), "{e}");
        for e in [
            r1.try_recv().unwrap().unwrap_err(),
            r2.try_recv().unwrap().unwrap_err(),
        ]
        .into_iter()
        .chain([r3.try_recv().unwrap().unwrap_err()])
        {
            assert_eq!(e.code, ErrorCode::Internal);
            assert!(
                e.message.contains("nothing was acknowledged"),
                "{}",
                e.message
            );
        }
        assert_eq!(mailboxes.depth(&unit), 1, "published before durable");
    }
}
