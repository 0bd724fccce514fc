//! Durability (requirements §6, "a receipt is a promise"): what the relay acknowledged survives a
//! graceful stop (SIGTERM) and a crash (SIGKILL, idle or in the middle of a burst of
//! posts), with the `filet-relay serve` binary restarted on the same data directory; and
//! concurrent posts share group commits.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use filet_client::Node;
use filet_proto::audit::{content_commitment, Entry, Event};
use filet_proto::checkpoint::NoteVerifier;
use filet_proto::wire::Receipt;
use filet_proto::{AlertId, Category};
use filet_tests::*;
use tokio::sync::mpsc;

/// A receipt and the subject reference of the alert it acknowledges.
type Posted = (String, Receipt);

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

/// Posts `n` runaway alerts from `SPVQ/ESM`, references `{prefix}-{i}`, one after another.
async fn post_some(esm: &Node, prefix: &str, n: usize) -> Vec<Posted> {
    let mut out = Vec::new();
    for i in 0..n {
        let reference = format!("{prefix}-{i}");
        let r = esm
            .post(alert(Category::Runaway, &reference))
            .await
            .unwrap();
        out.push((reference, r));
    }
    out
}

/// After a restart: every receipt's alert waits in each of its recipients' mailboxes
/// (unless acknowledged there) with its content, and the audit log verifies with the key
/// `filet-relay audit-key` prints and holds every receipt's entries.
async fn assert_receipts_survived(
    net: &TestNet,
    relay: &ChildRelay,
    posted: &[Posted],
    acked: &[(&str, AlertId)],
) -> Vec<Entry> {
    let key = audit_key(net, &net.data_dir());
    assert_eq!(
        key, relay.logged_key,
        "the key the relay logs is the key of its data directory"
    );
    let verifier = NoteVerifier::parse(&key).unwrap();

    let mut by_unit: BTreeMap<String, Vec<(&str, AlertId)>> = BTreeMap::new();
    for (reference, r) in posted {
        for x in &r.recipients {
            let unit = x.unit.to_string();
            if !acked.contains(&(unit.as_str(), r.alert)) {
                by_unit.entry(unit).or_default().push((reference, r.alert));
            }
        }
    }
    for (unit, expected) in &by_unit {
        let node = net.node(unit, relay.addr).await;
        let inbox = node.inbox().await.unwrap();
        let waiting: BTreeMap<AlertId, &filet_proto::Disclosed> =
            inbox.iter().map(|d| (d.envelope.id, d)).collect();
        for (reference, id) in expected {
            let d = waiting
                .get(id)
                .unwrap_or_else(|| panic!("alert {id} ({reference}) is gone from {unit}"));
            if unit == "DPJ/RTS" {
                assert_eq!(d.content.subject.reference.as_deref(), Some(*reference));
            }
        }
        for (u, id) in acked {
            if u == unit {
                assert!(
                    !waiting.contains_key(id),
                    "acknowledged {id} is back in {unit}"
                );
            }
        }
        node.close().await;
    }

    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &verifier).await;
    table.close().await;
    for (_, r) in posted {
        match at(&log, r.posted_index) {
            Event::Posted {
                alert, recipients, ..
            } => {
                assert_eq!(*alert, r.alert);
                let units: Vec<_> = r.recipients.iter().map(|x| x.unit.clone()).collect();
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
    log
}

/// With the relay stopped: every receipt's record is in the store with the content its
/// `posted` entry commits to, and every `posted` entry of the log has its record in the
/// store or a later `voided` entry (a post logged but never acknowledged).
fn assert_store_matches_log(data_dir: &Path, posted: &[Posted]) {
    let log = offline_log(data_dir);
    let store = filet_relay::store::Store::open(&data_dir.join("store")).unwrap();
    for (reference, r) in posted {
        let rec = store
            .get(&r.alert)
            .unwrap()
            .unwrap_or_else(|| panic!("alert {} ({reference}) is not in the store", r.alert));
        let content = rec.content.as_ref().unwrap();
        assert_eq!(
            content.subject.reference.as_deref(),
            Some(reference.as_str())
        );
        let Event::Posted {
            commitment: logged, ..
        } = at(&log, r.posted_index)
        else {
            panic!("entry {} is not `posted`", r.posted_index)
        };
        assert_eq!(
            *logged,
            content_commitment(&rec.salt, content, rec.note.as_deref()),
            "the log commits to the stored content of {}",
            r.alert
        );
    }
    let voided: BTreeSet<AlertId> = log
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
                "posted alert {alert}: stored {stored}, voided {}",
                voided.contains(alert)
            );
        }
    }
}

#[tokio::test]
async fn a_graceful_stop_on_sigterm_keeps_every_acknowledged_alert_and_exits_0() {
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let posted = post_some(&esm, "TERM", 10).await;
    let first = posted[0].1.alert;
    rts.ack(first).await.unwrap();
    let mut rx = rts.subscribe().await.unwrap();
    next_delivery(&mut rx).await;
    esm.close().await;

    let (status, stderr) = blocking(move || relay.terminate()).await;

    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("SIGTERM: shutting down"), "{stderr}");
    // The connected node is told why, and can act on it.
    let why = tokio::time::timeout(WAIT, rts.closed_reason())
        .await
        .unwrap();
    assert_eq!(
        why,
        "the relay closed the connection: relay shutting down; reconnect later"
    );

    let relay = start_child(&net).await;
    let log = assert_receipts_survived(&net, &relay, &posted, &[("DPJ/RTS", first)]).await;
    assert_eq!(events(&log, "relay_started").len(), 2);
    assert!(
        events(&log, "voided").is_empty(),
        "a graceful stop voids nothing"
    );
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_store_matches_log(&net.data_dir(), &posted);
}

#[tokio::test]
async fn a_crash_while_idle_after_the_receipts_keeps_every_acknowledged_alert() {
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let posted = post_some(&esm, "KILL", 10).await;
    let first = posted[0].1.alert;
    rts.ack(first).await.unwrap();

    let (status, _) = blocking(move || relay.kill()).await;

    assert_eq!(status.signal(), Some(9));
    let relay = start_child(&net).await;
    assert_receipts_survived(&net, &relay, &posted, &[("DPJ/RTS", first)]).await;
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_store_matches_log(&net.data_dir(), &posted);
}

#[tokio::test]
async fn a_crash_during_a_burst_of_posts_keeps_every_receipt_given_before_it() {
    /// Senders, each with this many posts in flight at a time.
    const SENDERS: [&str; 3] = ["SPVQ/ESM", "SPVQ/IJP", "SQ/EILP"];
    const IN_FLIGHT: usize = 8;
    /// Receipts to collect before the crash.
    const BEFORE_CRASH: usize = 40;
    /// Upper bound of posts per loop, so that the burst ends even if the kill failed.
    const MAX_PER_LOOP: usize = 100;
    let net = Arc::new(TestNet::new());
    let relay = start_child(&net).await;
    let (tx, mut rx) = mpsc::channel::<Posted>(SENDERS.len() * IN_FLIGHT * MAX_PER_LOOP);
    let mut burst = tokio::task::JoinSet::new();
    for (s, sender) in SENDERS.iter().enumerate() {
        let node = Arc::new(net.node(sender, relay.addr).await);
        for l in 0..IN_FLIGHT {
            let (node, tx) = (node.clone(), tx.clone());
            burst.spawn(async move {
                for i in 0..MAX_PER_LOOP {
                    let reference = format!("BURST-{s}-{l}-{i}");
                    match node.post(alert(Category::Runaway, &reference)).await {
                        Ok(r) => {
                            if tx.send((reference, r)).await.is_err() {
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
    let mut posted = Vec::new();
    while posted.len() < BEFORE_CRASH {
        let p = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("receipts keep coming")
            .expect("the burst is still running");
        posted.push(p);
    }

    // Posts are in flight: kill the relay now, while the nodes keep reading answers.
    let (status, _) = blocking(move || relay.kill()).await;
    assert_eq!(status.signal(), Some(9));
    burst.abort_all();
    while burst.join_next().await.is_some() {}
    // Every receipt that reached a node before the crash.
    while let Ok(p) = rx.try_recv() {
        posted.push(p);
    }

    let relay = start_child(&net).await;
    assert_receipts_survived(&net, &relay, &posted, &[]).await;
    let (status, stderr) = blocking(move || relay.terminate()).await;
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_store_matches_log(&net.data_dir(), &posted);
}

#[tokio::test]
async fn concurrent_posts_share_group_commits_and_each_gets_its_receipt() {
    const SENDERS: [(&str, Category); 8] = [
        ("SPVQ/ESM", Category::Runaway),
        ("SPVQ/IJP", Category::Runaway),
        ("SQ/EILP", Category::Runaway),
        ("DPJ/RTS", Category::Runaway),
        ("CJQ/ESCALE", Category::Runaway),
        ("CJQ/GOUVERNAIL", Category::Runaway),
        ("SPVQ/IKAT", Category::Sighting),
        ("SPVQ/GRIPP", Category::Sighting),
    ];
    const PER_NODE: usize = 50;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let mut nodes = Vec::new();
    for (unit, category) in SENDERS {
        nodes.push((Arc::new(net.node(unit, relay.addr).await), category));
    }
    let (batches0, posts0) = (
        relay.stats.batches.load(Ordering::Relaxed),
        relay.stats.posts.load(Ordering::Relaxed),
    );

    let mut all = tokio::task::JoinSet::new();
    for (n, (node, category)) in nodes.iter().enumerate() {
        for i in 0..PER_NODE {
            let (node, category) = (node.clone(), *category);
            all.spawn(async move { node.post(alert(category, &format!("GC-{n}-{i}"))).await });
        }
    }
    let mut ids = BTreeSet::new();
    while let Some(r) = tokio::time::timeout(WAIT, all.join_next()).await.unwrap() {
        ids.insert(r.unwrap().unwrap().alert);
    }

    let total = SENDERS.len() * PER_NODE;
    assert_eq!(
        ids.len(),
        total,
        "a receipt for every post, each its own alert"
    );
    let posts = relay.stats.posts.load(Ordering::Relaxed) - posts0;
    let batches = relay.stats.batches.load(Ordering::Relaxed) - batches0;
    assert_eq!(posts, total as u64);
    assert!(
        batches < posts,
        "{posts} posts took {batches} group commits: none was shared"
    );
    relay.stop().await;
}

#[tokio::test]
async fn an_idempotency_key_still_answers_with_the_first_receipt_after_a_restart() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let key = [3u8; 16];
    let first = esm.post_with_key(runaway(), key).await.unwrap();
    esm.close().await;
    relay.stop().await;

    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let again = esm.post_with_key(runaway(), key).await.unwrap();

    assert!(again.duplicate);
    assert_eq!(
        (again.alert, again.posted_index, &again.recipients),
        (first.alert, first.posted_index, &first.recipients)
    );
    esm.close().await;
    relay.stop().await;
}
