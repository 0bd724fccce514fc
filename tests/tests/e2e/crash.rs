//! Crash consistency (requirements §6 and §7, issue 5): the `filet-relay serve` binary as a child
//! process, SIGKILLed at random moments while several nodes post, receive and acknowledge,
//! restarted on the same data directory; and damaged files in a stopped relay's data
//! directory.
//!
//! After every crash the relay must restart (sled reopens, the audit log opens) and:
//! - every post that got a receipt is stored: it waits in each recipient's mailbox unless
//!   the unit acknowledged it, and the `posted` entry and each `disclosed` entry the
//!   receipt names are in the log, saying what the receipt says;
//! - the audit log verifies (signed checkpoint, root recomputed from every entry), its
//!   entries are numbered by position (no index duplicated or skipped), and it only grew:
//!   a consistency proof from every checkpoint seen so far (each receipt's, each round's)
//!   to the new one verifies;
//! - every alert a node received has a durable `disclosed` entry for the node's unit (log
//!   before disclose), and every acknowledgement the relay confirmed has its entry.
//!
//! # Running longer
//!
//! The rounds are seeded: `FILET_CRASH_ROUNDS` (default 6, about 10 to 20 s in a debug
//! build) and `FILET_CRASH_SEED` (default fixed; the seed is printed) choose how many
//! crashes and after how many receipts each (the exact instant also depends on scheduling).
//! A soak: `FILET_CRASH_ROUNDS=200 cargo test -p filet-tests --release --test e2e -- crash::sigkill`
//! (add `--include-ignored` for the variant that does not rebuild the derived files).
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;

use filet_client::Node;
use filet_proto::audit::{Entry, Event};
use filet_proto::checkpoint::{open_checkpoint, Checkpoint, NoteVerifier};
use filet_proto::merkle::{verify_consistency, MemoryTree};
use filet_proto::wire::Receipt;
use filet_proto::{AlertId, Category, UnitRef};
use filet_tests::*;
use tokio::sync::mpsc;

/// Units that post (each routes a runaway alert to 2 to 4 units).
const POSTERS: [&str; 3] = ["SPVQ/ESM", "SPVQ/IJP", "SQ/EILP"];
/// Units whose nodes subscribe and acknowledge about half of what they receive.
const RECEIVERS: [&str; 2] = ["DPJ/RTS", "CJQ/PIVOT"];
/// Posts in flight per poster.
const IN_FLIGHT: usize = 4;
/// Bound on the posts of one loop in one round (the kill comes long before).
const MAX_PER_LOOP: usize = 200;

/// splitmix64: a small seeded generator, enough to choose crash moments reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What the nodes saw, over every round.
#[derive(Default)]
struct History {
    /// The relay's audit verifier key (the same across restarts).
    key: String,
    /// Receipts received (the relay's promises).
    receipts: Vec<Receipt>,
    /// Signed checkpoints seen (receipts' and each round's), by tree size.
    checkpoints: BTreeMap<u64, String>,
    /// Alerts pushed to a receiver node: (unit, alert).
    delivered: BTreeSet<(String, AlertId)>,
    /// Acknowledgements sent (answered or not): (unit, alert).
    ack_sent: HashSet<(String, AlertId)>,
    /// Acknowledgements the relay confirmed: (unit, alert, audit index).
    acked: Vec<(String, AlertId, u64)>,
}

enum Seen {
    Receipt(Receipt),
    Delivered(String, AlertId),
    AckSent(String, AlertId),
    Acked(String, AlertId, u64),
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

async fn start_child(net: &Arc<TestNet>) -> ChildRelay {
    let net = net.clone();
    blocking(move || {
        let data_dir = net.data_dir();
        ChildRelay::start(&net, &data_dir)
    })
    .await
}

/// One round: posters post, receivers receive and acknowledge; after `kill_after`
/// receipts the relay is SIGKILLed with posts, deliveries and acknowledgements in flight.
async fn crash_round(
    net: &Arc<TestNet>,
    relay: ChildRelay,
    round: u64,
    kill_after: usize,
    h: &mut History,
) {
    let (tx, mut rx) = mpsc::channel::<Seen>(POSTERS.len() * IN_FLIGHT * MAX_PER_LOOP * 4);
    let mut tasks = tokio::task::JoinSet::new();
    for unit in RECEIVERS {
        let node = Arc::new(net.node(unit, relay.addr).await);
        let mut deliveries = node.subscribe().await.unwrap();
        let tx = tx.clone();
        tasks.spawn(async move {
            while let Some(d) = deliveries.recv().await {
                let id = d.envelope.id;
                if tx.send(Seen::Delivered(unit.into(), id)).await.is_err() {
                    return;
                }
                // Acknowledge about half, chosen by the id's random bits.
                if id.0[15] % 2 == 0 {
                    let _ = tx.send(Seen::AckSent(unit.into(), id)).await;
                    match node.ack(id).await {
                        Ok(index) => {
                            let _ = tx.send(Seen::Acked(unit.into(), id, index)).await;
                        }
                        Err(_) => return,
                    }
                }
            }
        });
    }
    for (p, unit) in POSTERS.iter().enumerate() {
        let node = Arc::new(net.node(unit, relay.addr).await);
        for l in 0..IN_FLIGHT {
            let (node, tx) = (node.clone(), tx.clone());
            tasks.spawn(async move {
                for i in 0..MAX_PER_LOOP {
                    let reference = format!("C{round}-{p}-{l}-{i}");
                    match node.post(alert(Category::Runaway, &reference)).await {
                        Ok(r) => {
                            if tx.send(Seen::Receipt(r)).await.is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        }
    }
    drop(tx);
    let mut receipts = 0;
    let record = |s: Seen, h: &mut History, receipts: &mut usize| match s {
        Seen::Receipt(r) => {
            let cp = open_checkpoint(&r.checkpoint, &verifier_of(&h.key))
                .unwrap_or_else(|e| panic!("the receipt of {} has a bad checkpoint: {e}", r.alert));
            h.checkpoints.insert(cp.size, r.checkpoint.clone());
            h.receipts.push(r);
            *receipts += 1;
        }
        Seen::Delivered(u, a) => {
            h.delivered.insert((u, a));
        }
        Seen::AckSent(u, a) => {
            h.ack_sent.insert((u, a));
        }
        Seen::Acked(u, a, i) => h.acked.push((u, a, i)),
    };
    while receipts < kill_after {
        let s = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("the nodes keep seeing things")
            .expect("the load is still running");
        record(s, h, &mut receipts);
    }

    let (status, _) = blocking(move || relay.kill()).await;

    assert_eq!(status.signal(), Some(9));
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    // Everything the nodes saw before the crash.
    while let Ok(s) = rx.try_recv() {
        record(s, h, &mut receipts);
    }
}

fn verifier_of(key: &str) -> NoteVerifier {
    NoteVerifier::parse(key).unwrap()
}

/// The whole log, verified here, independently of the client library: the signed
/// checkpoint opens with the relay's key, every entry is numbered by its position, and the
/// root recomputed from the entries is the checkpoint's. Pages of 100 entries (see
/// audit_paging.rs for why not the relay's full pages).
async fn verified_log(auditor: &Node, verifier: &NoteVerifier) -> (Vec<Entry>, Checkpoint, String) {
    let note = auditor.checkpoint().await.unwrap();
    let cp = open_checkpoint(&note, verifier).unwrap();
    let mut tree = MemoryTree::new();
    let mut entries = Vec::new();
    let mut start = 0;
    while start < cp.size {
        let end = (start + 100).min(cp.size);
        let (page, next) = auditor
            .audit_entries(start, end, cp.size, false)
            .await
            .unwrap();
        assert!(next > start, "no progress at {start}");
        for e in page {
            assert_eq!(
                e.index,
                entries.len() as u64,
                "an index duplicated or skipped"
            );
            tree.push_leaf(&e.entry);
            let parsed = Entry::from_bytes(&e.entry).unwrap();
            assert_eq!(
                parsed.index, e.index,
                "entry {} says index {}",
                e.index, parsed.index
            );
            entries.push(parsed);
        }
        start = next;
    }
    assert_eq!(entries.len() as u64, cp.size);
    assert_eq!(
        tree.root(),
        cp.root,
        "the entries do not hash to the signed root"
    );
    (entries, cp, note)
}

/// The checks after a restart (see the module doc). Returns the log.
async fn check_after_restart(net: &TestNet, relay: &ChildRelay, h: &mut History) -> Vec<Entry> {
    let verifier = verifier_of(&relay.logged_key);
    // Mailboxes first (reading them logs deliveries), then the log as it stands.
    let mut promised: BTreeMap<String, Vec<AlertId>> = BTreeMap::new();
    for r in &h.receipts {
        for x in &r.recipients {
            let unit = x.unit.to_string();
            if !h.ack_sent.contains(&(unit.clone(), r.alert)) {
                promised.entry(unit).or_default().push(r.alert);
            }
        }
    }
    for (unit, alerts) in &promised {
        let node = net.node(unit, relay.addr).await;
        let waiting: HashSet<AlertId> = inbox_ids(&node).await.into_iter().collect();
        for a in alerts {
            assert!(
                waiting.contains(a),
                "alert {a} had a receipt but is gone from the mailbox of {unit}"
            );
        }
        for (u, a, _) in &h.acked {
            if u == unit {
                assert!(
                    !waiting.contains(a),
                    "acknowledged {a} is back in the mailbox of {unit}"
                );
            }
        }
        node.close().await;
    }

    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let (log, now, now_note) = verified_log(&auditor, &verifier).await;
    // Only grows: from every checkpoint seen to the current one.
    for (size, note) in &h.checkpoints {
        let old = open_checkpoint(note, &verifier).unwrap();
        assert_eq!(old.size, *size);
        assert!(
            old.size <= now.size,
            "the log shrank from {} to {}",
            old.size,
            now.size
        );
        let proof = auditor.consistency_proof(old.size, now.size).await.unwrap();
        verify_consistency(old.size, now.size, &old.root, &now.root, &proof).unwrap_or_else(|e| {
            panic!(
                "checkpoint {} is not consistent with {}: {e}",
                old.size, now.size
            )
        });
    }
    h.checkpoints.insert(now.size, now_note);
    auditor.close().await;

    // Every receipt's entries say what the receipt says; none was voided.
    let voided: HashSet<AlertId> = log
        .iter()
        .filter_map(|e| match &e.event {
            Event::Voided { alert, .. } => Some(*alert),
            _ => None,
        })
        .collect();
    for r in &h.receipts {
        assert!(
            !voided.contains(&r.alert),
            "alert {} had a receipt but was voided",
            r.alert
        );
        match at(&log, r.posted_index) {
            Event::Posted {
                alert, recipients, ..
            } => {
                assert_eq!(*alert, r.alert);
                let units: Vec<UnitRef> = r.recipients.iter().map(|x| x.unit.clone()).collect();
                assert_eq!(*recipients, units);
            }
            other => panic!("entry {} of {} is {other:?}", r.posted_index, r.alert),
        }
        for x in &r.recipients {
            match at(&log, x.audit_index) {
                Event::Disclosed {
                    alert,
                    recipient,
                    rules,
                    fields,
                    ..
                } => assert_eq!(
                    (alert, recipient, rules, fields),
                    (&r.alert, &x.unit, &x.rules, &x.fields)
                ),
                other => panic!("entry {} of {} is {other:?}", x.audit_index, r.alert),
            }
        }
    }
    // Log before disclose: whatever a node received was durably disclosed to its unit.
    let disclosed: HashSet<(String, AlertId)> = log
        .iter()
        .filter_map(|e| match &e.event {
            Event::Disclosed {
                alert, recipient, ..
            } => Some((recipient.to_string(), *alert)),
            _ => None,
        })
        .collect();
    for (unit, a) in &h.delivered {
        assert!(
            disclosed.contains(&(unit.clone(), *a)),
            "{unit} received {a} but its disclosure is not in the log"
        );
    }
    for (unit, a, index) in &h.acked {
        match at(&log, *index) {
            Event::Acknowledged {
                alert, recipient, ..
            } => {
                assert_eq!((alert, recipient.unit.to_string()), (a, unit.clone()));
            }
            other => panic!("acknowledgement {index} of {a} is {other:?}"),
        }
    }
    log
}

/// With the relay stopped: every receipt's alert is in the store (sled reopens), and
/// every `posted` entry has its record or a `voided` entry.
fn check_store(data_dir: &Path, receipts: &[Receipt]) {
    let log = offline_log(data_dir);
    let store = filet_relay::store::Store::open(&data_dir.join("store")).unwrap();
    for r in receipts {
        assert!(
            store.get(&r.alert).unwrap().is_some(),
            "alert {} is not in the store",
            r.alert
        );
    }
    let voided: HashSet<AlertId> = log
        .iter()
        .filter_map(|e| match &e.event {
            Event::Voided { alert, .. } => Some(*alert),
            _ => None,
        })
        .collect();
    for e in &log {
        if let Event::Posted { alert, .. } = &e.event {
            let stored = store.get(alert).unwrap().is_some();
            assert!(
                stored != voided.contains(alert),
                "posted {alert}: stored {stored}, voided {}",
                voided.contains(alert)
            );
        }
    }
}

/// Removes the audit log's derived files (`entries.idx`, `level-*.hashes`): the relay
/// rebuilds them from `entries.log` at start-up, as after losing them.
fn remove_derived_files(data_dir: &Path) {
    for e in std::fs::read_dir(data_dir.join("audit")).unwrap() {
        let path = e.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name == "entries.idx" || name.ends_with(".hashes") {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// `FILET_CRASH_ROUNDS` rounds of load and SIGKILL, each followed by a restart on the same
/// data directory and every check; with `rebuild`, the derived files of the audit log are
/// removed before each restart (see the tests below for why).
async fn crash_rounds(rebuild: bool) {
    let rounds = env_u64("FILET_CRASH_ROUNDS", 6);
    let seed = env_u64("FILET_CRASH_SEED", 0x5EED_F11E7);
    eprintln!("crash rounds: {rounds}, seed: {seed} (FILET_CRASH_ROUNDS, FILET_CRASH_SEED)");
    let mut rng = Rng(seed);
    let net = Arc::new(TestNet::new());
    let mut relay = start_child(&net).await;
    let mut h = History {
        key: relay.logged_key.clone(),
        ..History::default()
    };
    for round in 0..rounds {
        // Somewhere between the first receipt and a few dozen.
        let kill_after = 1 + rng.below(40) as usize;
        crash_round(&net, relay, round, kill_after, &mut h).await;
        if rebuild {
            remove_derived_files(&net.data_dir());
        }
        relay = start_child(&net).await;
        assert_eq!(relay.logged_key, h.key, "the same audit key after a crash");
        check_after_restart(&net, &relay, &mut h).await;
    }
    assert!(
        h.receipts.len() as u64 >= rounds,
        "every round had receipts"
    );
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    check_store(&net.data_dir(), &h.receipts);
}

/// The harness as it should run: crash, restart, check. It fails now and then (twice in
/// about fifteen runs here, both under load) when the kill lands between the writes of
/// two hash levels; that bug is pinned deterministically by
/// `a_hash_level_that_lags_after_a_crash_is_rebuilt_from_the_entries`.
#[tokio::test]
async fn sigkill_at_random_moments_loses_nothing_acknowledged_and_the_log_only_grows() {
    crash_rounds(false).await;
}

/// The same rounds and checks, with the audit log's derived files removed before each
/// restart (the relay rebuilds them from `entries.log`), which steps around the pinned
/// hash-level bug so that every other invariant is checked on every run.
#[tokio::test]
async fn sigkill_at_random_moments_with_the_audit_index_rebuilt_loses_nothing_acknowledged() {
    crash_rounds(true).await;
}

// ---- damaged files ---------------------------------------------------------------------

/// Posts `n` alerts from `SPVQ/ESM` (DPJ/RTS acknowledges the first), stops the relay
/// gracefully, and returns the receipts and the verifier key.
async fn seed_data(net: &Arc<TestNet>, n: usize) -> (Vec<Receipt>, String) {
    let relay = start_child(net).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut receipts = Vec::new();
    for i in 0..n {
        receipts.push(
            esm.post(alert(Category::Runaway, &format!("SEED-{i}")))
                .await
                .unwrap(),
        );
    }
    rts.ack(receipts[0].alert).await.unwrap();
    for node in [esm, rts] {
        node.close().await;
    }
    let key = relay.logged_key.clone();
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    (receipts, key)
}

fn entries_log(net: &TestNet) -> std::path::PathBuf {
    net.data_dir().join("audit").join("entries.log")
}

/// The byte offset of each entry's record in `entries.log` (from `entries.idx`).
fn offsets(net: &TestNet) -> Vec<u64> {
    let idx = std::fs::read(net.data_dir().join("audit").join("entries.idx")).unwrap();
    idx.chunks(8)
        .map(|c| u64::from_be_bytes(c.try_into().unwrap()))
        .collect()
}

/// The size of the last checkpoint the stopped relay published (kept in the store).
fn published_size(net: &TestNet, key: &str) -> u64 {
    let store = filet_relay::store::Store::open(&net.data_dir().join("store")).unwrap();
    let (_, note) = store.audit_state().unwrap();
    open_checkpoint(&note.unwrap(), &verifier_of(key))
        .unwrap()
        .size
}

async fn try_start(net: &Arc<TestNet>) -> ChildStart {
    let net = net.clone();
    blocking(move || {
        let data_dir = net.data_dir();
        ChildRelay::builder()
            .net(&net)
            .data_dir(&data_dir)
            .try_start()
    })
    .await
}

#[tokio::test]
async fn a_torn_record_at_the_tail_of_the_audit_log_is_removed_and_said() {
    let net = Arc::new(TestNet::new());
    let (receipts, key) = seed_data(&net, 5).await;
    let before = offline_log(&net.data_dir()).len();
    // Half a record: a length prefix of 200 bytes and 37 of them.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(entries_log(&net))
        .unwrap();
    f.write_all(&200u32.to_be_bytes()).unwrap();
    f.write_all(&[b'{'; 37]).unwrap();
    drop(f);

    let relay = start_child(&net).await;

    assert!(
        relay.stderr().contains("audit log: removed an incomplete last record of 41 bytes (written, never synced, never acknowledged)"),
        "{}",
        relay.stderr()
    );
    assert_eq!(relay.logged_key, key);
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&auditor, &verifier_of(&key)).await;
    auditor.close().await;
    // The entries before it are intact, then this start's three (relay_started,
    // agreement_loaded, crl_loaded).
    assert_eq!(log.len(), before + 3);
    assert_eq!(events(&log[before..], "relay_started").len(), 1);
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let waiting: Vec<AlertId> = inbox_ids(&rts).await;
    let promised: Vec<AlertId> = receipts[1..].iter().map(|r| r.alert).collect();
    assert_eq!(waiting, promised);
    rts.close().await;
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}

#[tokio::test]
async fn a_flipped_byte_in_an_early_audit_entry_stops_the_relay_from_starting() {
    let net = Arc::new(TestNet::new());
    let (_, _) = seed_data(&net, 5).await;
    let at = offsets(&net)[2] + 4 + 10; // inside entry 2's JSON
    let mut bytes = std::fs::read(entries_log(&net)).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(entries_log(&net), bytes).unwrap();

    match try_start(&net).await {
        ChildStart::Exited(code, stderr) => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!("is damaged at entry 2 (byte {})", at - 14)),
                "{stderr}"
            );
            assert!(
                stderr.contains("restore the data directory from a backup"),
                "{stderr}"
            );
        }
        ChildStart::Serving(relay) => {
            let stderr = relay.stderr();
            drop(relay);
            panic!("the relay serves a damaged audit log:\n{stderr}");
        }
    }
}

#[tokio::test]
async fn a_hash_level_that_lags_after_a_crash_is_rebuilt_from_the_entries() {
    let net = Arc::new(TestNet::new());
    let (receipts, key) = seed_data(&net, 5).await;
    // The commit thread writes level 0, then level 1, then level 2... without syncing them
    // (they are derived from entries.log). A SIGKILL between two of these writes leaves a
    // level shorter than the ones below it: here, level 1 misses its last hash.
    let level1 = net.data_dir().join("audit").join("level-01.hashes");
    let len = std::fs::metadata(&level1).unwrap().len();
    assert!(len >= 64, "level 1 holds {} hashes", len / 32);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&level1)
        .unwrap()
        .set_len(len - 32)
        .unwrap();

    match try_start(&net).await {
        ChildStart::Exited(code, stderr) => {
            panic!("the relay does not restart after a crash between two level writes ({code:?}):\n{stderr}")
        }
        ChildStart::Serving(relay) => {
            let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
            let (log, _, _) = verified_log(&auditor, &verifier_of(&key)).await;
            auditor.close().await;
            for r in &receipts {
                assert!(
                    matches!(at(&log, r.posted_index), Event::Posted { alert, .. } if *alert == r.alert)
                );
            }
            let (status, stderr) = blocking(move || relay.terminate()).await;
            assert_eq!(status.code(), Some(0), "{stderr}");
        }
    }
}

#[tokio::test]
async fn an_audit_log_cut_below_the_last_checkpoint_stops_the_relay_from_starting() {
    let net = Arc::new(TestNet::new());
    let (_, key) = seed_data(&net, 5).await;
    let published = published_size(&net, &key);
    let keep = 4u64;
    assert!(published > keep);
    let cut = offsets(&net)[keep as usize];
    std::fs::OpenOptions::new()
        .write(true)
        .open(entries_log(&net))
        .unwrap()
        .set_len(cut)
        .unwrap();

    match try_start(&net).await {
        ChildStart::Exited(code, stderr) => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "audit log {} holds {keep} entries, but answers (receipts) were given with a checkpoint of {published} entries (recorded in {}): answered entries were lost; restore the data directory from a backup",
                    entries_log(&net).display(),
                    net.data_dir().join("audit").join("answered").display()
                )),
                "{stderr}"
            );
        }
        ChildStart::Serving(relay) => {
            let stderr = relay.stderr();
            drop(relay);
            panic!("the relay serves a log shorter than its checkpoint:\n{stderr}");
        }
    }
}

/// One flipped bit in the last record of a relay killed after giving its receipts: that
/// record was synced and answered (the receipts carry a checkpoint that covers it), so it
/// cannot be a torn tail. Taken for one, it was cut, the receipted alert deleted, a false
/// `voided` logged, and the log forked from the receipts' checkpoint. The relay refuses to
/// start, naming the file and the entry.
#[tokio::test]
async fn a_damaged_answered_last_audit_record_is_refused_as_damage_not_cut_as_a_torn_tail() {
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut receipts = Vec::new();
    for i in 0..3 {
        receipts.push(
            esm.post(alert(Category::Runaway, &format!("LAST-{i}")))
                .await
                .unwrap(),
        );
    }
    esm.close().await;
    blocking(move || relay.kill()).await;
    let offs = offsets(&net);
    let last = offs.len() - 1;
    let last_receipt = receipts.last().unwrap();
    assert!(last_receipt
        .recipients
        .iter()
        .any(|r| r.audit_index == last as u64));
    let at = offs[last] + 4 + 10;
    let mut bytes = std::fs::read(entries_log(&net)).unwrap();
    bytes[at as usize] ^= 0x01;
    std::fs::write(entries_log(&net), bytes).unwrap();

    match try_start(&net).await {
        ChildStart::Exited(code, stderr) => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains(&format!(
                    "audit log {} is damaged at entry {last} (byte {})",
                    entries_log(&net).display(),
                    offs[last]
                )) && stderr.contains("this is damage, not a torn tail")
                    && stderr.contains("restore the data directory from a backup"),
                "{stderr}"
            );
        }
        ChildStart::Serving(relay) => {
            let stderr = relay.stderr();
            let (status, _) = blocking(move || relay.terminate()).await;
            assert_eq!(status.code(), Some(0));
            let voided: Vec<AlertId> = offline_log(&net.data_dir())
                .iter()
                .filter_map(|e| match &e.event {
                    Event::Voided { alert, .. } => Some(*alert),
                    _ => None,
                })
                .collect();
            panic!(
                "the relay took a damaged, answered record for a torn tail and started (voided: {voided:?}; the last receipt was for {}):\n{stderr}",
                last_receipt.alert
            );
        }
    }
}

/// The directories (not 0700) and files (not 0600) under `dir` that other users could
/// read or enter, with their modes.
fn open_to_others(dir: &Path) -> Vec<(std::path::PathBuf, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode() & 0o777;
        if mode != 0o700 {
            out.push((d.clone(), mode));
        }
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() && m.permissions().mode() & 0o777 != 0o600 {
                out.push((p, m.permissions().mode() & 0o777));
            }
        }
    }
    out
}

/// The data directory holds every alert and the keys: it was created 0755 and its files
/// 0644 (sled's and the audit log's), readable by any local user. Now directories are
/// 0700 and files 0600 whatever the umask, and an older, more open directory is tightened
/// at start with a warning.
#[tokio::test]
async fn the_data_directory_and_every_file_in_it_are_readable_by_the_relays_user_only() {
    use std::os::unix::fs::PermissionsExt;
    let net = Arc::new(TestNet::new());
    let (_, _) = seed_data(&net, 2).await;
    let dir = net.data_dir();
    assert_eq!(open_to_others(&dir), []);
    for (path, mode) in [(dir.clone(), 0o755), (entries_log(&net), 0o644)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let relay = start_child(&net).await;
    assert!(
        relay.stderr().contains(&format!(
            "data directory {}: 2 files or directories were open to other users",
            dir.display()
        )),
        "{}",
        relay.stderr()
    );
    assert_eq!(open_to_others(&dir), []);
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(open_to_others(&dir), []);
}

/// What a relay started on a damaged store must do: refuse with a clear error, or serve
/// everything it promised. Serving less, silently, is the failure.
async fn assert_recovers_or_refuses(net: &Arc<TestNet>, receipts: &[Receipt], damage: &str) {
    match try_start(net).await {
        ChildStart::Exited(code, stderr) => {
            assert_eq!(code, Some(1), "{stderr}");
            assert!(
                stderr.contains("alert store"),
                "the error names the store: {stderr}"
            );
            assert!(stderr.contains("restore the data directory"), "{stderr}");
        }
        ChildStart::Serving(relay) => {
            let rts = net.node("DPJ/RTS", relay.addr).await;
            let waiting: Vec<AlertId> = inbox_ids(&rts).await;
            rts.close().await;
            let promised: Vec<AlertId> = receipts[1..].iter().map(|r| r.alert).collect();
            let stderr = relay.stderr();
            let (status, _) = blocking(move || relay.terminate()).await;
            assert_eq!(status.code(), Some(0));
            let log = offline_log(&net.data_dir());
            let voided: Vec<AlertId> = log
                .iter()
                .filter_map(|e| match &e.event {
                    Event::Voided { alert, .. } => Some(*alert),
                    _ => None,
                })
                .collect();
            assert!(
                voided.iter().all(|v| !promised.contains(v)),
                "{damage}: the relay started and voided posts that had receipts ({} of {}), saying no receipt was given:\n{stderr}",
                voided.len(),
                promised.len() + 1
            );
            assert_eq!(
                waiting, promised,
                "{damage}: the relay started and serves {} of the {} alerts it promised DPJ/RTS:\n{stderr}",
                waiting.len(),
                promised.len()
            );
        }
    }
}

#[tokio::test]
async fn a_truncated_alert_store_is_refused_or_fully_recovered() {
    let net = Arc::new(TestNet::new());
    let (receipts, _) = seed_data(&net, 5).await;
    let db = net.data_dir().join("store").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    assert_recovers_or_refuses(&net, &receipts, "store/db cut to half").await;
}

#[tokio::test]
async fn an_alert_store_with_flipped_bytes_is_refused_or_fully_recovered() {
    let net = Arc::new(TestNet::new());
    let (receipts, _) = seed_data(&net, 5).await;
    let db = net.data_dir().join("store").join("db");
    let mut bytes = std::fs::read(&db).unwrap();
    let n = bytes.len();
    for i in (n / 4..n).step_by(97) {
        bytes[i] ^= 0x5a;
    }
    std::fs::write(&db, bytes).unwrap();

    assert_recovers_or_refuses(&net, &receipts, "bytes flipped in store/db").await;
}

/// After a SIGKILL, posts nobody has received yet prove nothing about the store: no
/// `delivered`, `acknowledged` or `relay_stopped` entry follows them. If the store then
/// lacks them (an older copy put back, or sled losing its tail), the relay cannot tell that
/// from a crash that cut the last batch, unless something outside sled says how far the
/// store had got: `store.mark`. The relay refuses to start instead of voiding posts whose
/// receipt was given.
#[tokio::test]
async fn a_store_that_lost_receipted_posts_nobody_received_is_refused_even_after_a_sigkill() {
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    blocking(move || relay.kill()).await;
    let store = net.data_dir().join("store");
    let before = net.path().join("store-before-posts");
    copy_dir(&store, &before);

    let relay = start_child(&net).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut receipts = Vec::new();
    // One post per group commit; the mark written once each batch is in the store covers
    // all four.
    for i in 0..4 {
        receipts.push(
            esm.post(alert(Category::Runaway, &format!("LOST-{i}")))
                .await
                .unwrap(),
        );
    }
    esm.close().await;
    blocking(move || relay.kill()).await;
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&before, &store);

    match try_start(&net).await {
        ChildStart::Exited(code, stderr) => {
            assert_eq!(code, Some(1), "{stderr}");
            let first = receipts[0].alert;
            assert!(
                stderr.contains("the alert store lacks 4 post(s) whose receipt was given")
                    && stderr.contains(&format!("the first: alert {first}"))
                    && stderr.contains("restore the data directory from a backup"),
                "{stderr}"
            );
        }
        ChildStart::Serving(relay) => {
            let stderr = relay.stderr();
            drop(relay);
            panic!("the relay started on a store that lost 4 receipted posts:\n{stderr}");
        }
    }
}

/// Every file of `dir` (recursively) with its bytes and modification time.
fn files_and_mtimes(dir: &Path) -> BTreeMap<std::path::PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.clone(),
                    (std::fs::read(&p).unwrap(), m.modified().unwrap()),
                );
            }
        }
    }
    out
}

/// A second relay started on a data directory in use is refused, naming the directory
/// and the pid that holds it, before it opens (and repairs) any file: here the first
/// relay's audit log ends with a record being written, which a second relay that opened
/// the log would have cut as a torn tail.
#[tokio::test]
async fn a_second_relay_on_a_data_directory_in_use_is_refused_before_it_touches_a_file() {
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    let log_len = std::fs::metadata(entries_log(&net)).unwrap().len();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(entries_log(&net))
        .unwrap();
    f.write_all(&200u32.to_be_bytes()).unwrap();
    f.write_all(&[b'{'; 37]).unwrap();
    drop(f);
    let audit = net.data_dir().join("audit");
    let before = files_and_mtimes(&audit);

    match try_start(&net).await {
        ChildStart::Exited(code, stderr) => {
            assert_eq!(code, Some(1), "{stderr}");
            let dir = net.data_dir();
            assert!(
                stderr.contains(&format!(
                    "data directory: {}: another relay (pid {}) is running on this data directory (it holds {}); stop it first, or give another --data-dir",
                    dir.display(),
                    relay.pid(),
                    dir.join("lock").display()
                )),
                "{stderr}"
            );
        }
        ChildStart::Serving(second) => {
            drop(second);
            panic!("two relays serve one data directory");
        }
    }
    let after = files_and_mtimes(&audit);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (path, (bytes, mtime)) in &before {
        let (b, m) = &after[path];
        assert!(b == bytes, "the second relay rewrote {}", path.display());
        assert_eq!(m, mtime, "the second relay touched {}", path.display());
    }
    // Take the half record back out before the first relay writes after it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(entries_log(&net))
        .unwrap()
        .set_len(log_len)
        .unwrap();
    assert_relay_serves(&net, relay.addr).await;
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
}
