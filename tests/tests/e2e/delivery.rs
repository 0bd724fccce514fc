//! Delivery (requirements §6): store and forward, acknowledgement, idempotent posts, and log before
//! disclose.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::sync::Arc;

use filet_proto::audit::Event;
use filet_proto::checkpoint::open_checkpoint;
use filet_proto::merkle::{leaf_hash, verify_inclusion};
use filet_proto::wire::ErrorCode;
use filet_proto::{AlertId, Category, Selector};
use filet_tests::*;

fn ids(alerts: &[filet_proto::Disclosed]) -> Vec<AlertId> {
    alerts.iter().map(|d| d.envelope.id).collect()
}

#[tokio::test]
async fn offline_unit_receives_the_alert_when_it_connects() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let draft = runaway();

    // CJQ/PIVOT and SPVQ/IKAT are not connected when the alert is posted.
    let receipt = esm.post(draft.clone()).await.unwrap();

    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    let mut rx = cjq.subscribe().await.unwrap();
    let d = next_delivery(&mut rx).await;
    assert_eq!(d.envelope.id, receipt.alert);
    assert_eq!(d.content, draft.content);

    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    assert_eq!(ids(&ikat.inbox().await.unwrap()), [receipt.alert]);
    for n in [esm, cjq, ikat] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_unit_that_disconnected_gets_what_was_posted_meanwhile_when_it_reconnects() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut rx = rts.subscribe().await.unwrap();
    let first = esm.post(alert(Category::Runaway, "R-1")).await.unwrap();
    assert_eq!(next_delivery(&mut rx).await.envelope.id, first.alert);
    rts.close().await;

    let second = esm.post(alert(Category::Runaway, "R-2")).await.unwrap();

    // Not acknowledged, the first is still waiting too: delivery is at least once.
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut rx = rts.subscribe().await.unwrap();
    let got = [
        next_delivery(&mut rx).await.envelope.id,
        next_delivery(&mut rx).await.envelope.id,
    ];
    assert_eq!(got, [first.alert, second.alert]);
    for n in [esm, rts] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn acknowledging_removes_the_alert_from_the_units_mailbox_only() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    let receipt = esm.post(runaway()).await.unwrap();
    assert_eq!(ids(&rts.inbox().await.unwrap()), [receipt.alert]);

    rts.ack(receipt.alert).await.unwrap();

    assert_eq!(ids(&rts.inbox().await.unwrap()), []);
    // Another node of the same unit sees the mailbox as it is now.
    let rts2 = net.node("DPJ/RTS", relay.addr).await;
    assert_eq!(ids(&rts2.inbox().await.unwrap()), []);
    // CJQ/PIVOT has not acknowledged: it still waits there.
    assert_eq!(ids(&cjq.inbox().await.unwrap()), [receipt.alert]);
    for n in [esm, rts, rts2, cjq] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn acknowledging_twice_returns_the_same_audit_index_and_logs_one_acknowledged_entry() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let receipt = esm.post(runaway()).await.unwrap();

    let first = rts.ack(receipt.alert).await.unwrap();
    let second = rts.ack(receipt.alert).await.unwrap();

    assert_eq!(first, second);
    let log = full_log(&auditor, &relay.verifier()).await;
    assert_eq!(events(&log, "acknowledged").len(), 1);
    assert_eq!(
        *at(&log, first),
        Event::Acknowledged {
            alert: receipt.alert,
            sender: "SPVQ/ESM/spvq-esm-01".parse().unwrap(),
            recipient: "DPJ/RTS/dpj-rts-01".parse().unwrap(),
        }
    );
    for n in [esm, rts, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn acknowledging_an_alert_not_sent_to_the_unit_is_refused_as_unknown() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let mut draft = runaway();
    draft.to = vec![Selector::Unit(unit("SPVQ/IKAT"))];
    let receipt = esm.post(draft).await.unwrap();

    let e = refusal(rts.ack(receipt.alert).await);
    assert_refusal(
        &e,
        ErrorCode::UnknownAlert,
        &format!("alert {} was not sent to DPJ/RTS", receipt.alert),
    );
    let never = AlertId([7; 16]);
    let e = refusal(rts.ack(never).await);
    assert_refusal(
        &e,
        ErrorCode::UnknownAlert,
        &format!("alert {never} was not sent to DPJ/RTS"),
    );
    for n in [esm, rts] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn posting_again_with_the_same_idempotency_key_returns_the_first_receipt_marked_duplicate() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let key = [42u8; 16];

    let first = esm.post_with_key(runaway(), key).await.unwrap();
    let again = esm.post_with_key(runaway(), key).await.unwrap();

    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.alert, first.alert);
    assert_eq!(again.posted_index, first.posted_index);
    assert_eq!(again.recipients, first.recipients);
    let log = full_log(&auditor, &relay.verifier()).await;
    let posted = events(&log, "posted");
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].index, first.posted_index);
    assert_eq!(ids(&rts.inbox().await.unwrap()), [first.alert]);
    for n in [esm, rts, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn concurrent_posts_with_one_idempotency_key_make_one_alert() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let key = [9u8; 16];

    let (a, b) = tokio::join!(
        esm.post_with_key(runaway(), key),
        esm.post_with_key(runaway(), key)
    );

    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.alert, b.alert);
    assert_eq!(
        [a.duplicate, b.duplicate].iter().filter(|d| **d).count(),
        1,
        "exactly one of the two is the duplicate"
    );
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_from_another_principal_is_another_post() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let ijp = net.node("SPVQ/IJP", relay.addr).await;
    let key = [5u8; 16];

    let a = esm.post_with_key(runaway(), key).await.unwrap();
    let b = ijp.post_with_key(runaway(), key).await.unwrap();

    assert_ne!(a.alert, b.alert);
    assert!(!b.duplicate);
    for n in [esm, ijp] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn every_pushed_alert_is_already_in_the_signed_log_when_it_arrives() {
    const POSTS: usize = 5;
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let verifier = relay.verifier();
    let esm = Arc::new(net.node("SPVQ/ESM", relay.addr).await);
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let mut rx = rts.subscribe().await.unwrap();

    let mut posts = tokio::task::JoinSet::new();
    for i in 0..POSTS {
        let esm = esm.clone();
        posts.spawn(async move { esm.post(alert(Category::Runaway, &format!("R-{i}"))).await });
    }
    // As each alert arrives, before any receipt is looked at: the log an auditor gets now
    // already holds the disclosure to DPJ/RTS, under a signed checkpoint.
    for _ in 0..POSTS {
        let d = next_delivery(&mut rx).await;
        let log = full_log(&auditor, &verifier).await;
        let disclosed = log.iter().find(|e| {
            matches!(&e.event, Event::Disclosed { alert, recipient, .. }
                if *alert == d.envelope.id && recipient.to_string() == "DPJ/RTS")
        });
        assert!(
            disclosed.is_some(),
            "alert {} reached DPJ/RTS before its disclosure was in the log",
            d.envelope.id
        );
    }
    // And every receipt's checkpoint covers its entries, each proven included.
    let mut receipts = Vec::new();
    while let Some(r) = posts.join_next().await {
        receipts.push(r.unwrap().unwrap());
    }
    for r in &receipts {
        let cp = open_checkpoint(&r.checkpoint, &verifier).unwrap();
        let mut indices = vec![r.posted_index];
        indices.extend(r.recipients.iter().map(|x| x.audit_index));
        for i in indices {
            assert!(
                i < cp.size,
                "entry {i} is outside the receipt's checkpoint of {}",
                cp.size
            );
            let (entries, _) = auditor
                .audit_entries(i, i + 1, cp.size, true)
                .await
                .unwrap();
            let e = &entries[0];
            verify_inclusion(&leaf_hash(&e.entry), i, cp.size, &e.proof, &cp.root).unwrap();
        }
    }
    for n in [rts, auditor] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_inbox_over_one_frame_is_answered_in_pages_and_only_what_was_sent_is_logged_delivered() {
    use filet_proto::wire::{Request, Response};
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let root = esm.post(runaway()).await.unwrap().alert;
    // 30 updates with the widest notes: each message carries the whole history, so the 31
    // waiting messages take about a megabyte, four times the frame limit.
    let note = "🚨".repeat(filet_proto::alert::MAX_NOTE);
    let mut thread = vec![root];
    for _ in 0..30 {
        let r = esm
            .post(follow_up(filet_proto::Kind::Update, root, Some(&note)))
            .await
            .unwrap();
        thread.push(r.alert);
    }
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let Response::Inbox { alerts, more } = rts
        .request(Request::Inbox { after_seq: 0 })
        .await
        .expect("the first page is answered")
    else {
        panic!("not an inbox page")
    };
    assert!(
        more,
        "{} alerts on the first page and no more",
        alerts.len()
    );
    assert!(
        !alerts.is_empty() && alerts.len() < thread.len(),
        "{} alerts on the first page",
        alerts.len()
    );
    assert_eq!(ids(&alerts), thread[..alerts.len()]);
    let first_page = ids(&alerts);
    // Every page, each answered: the whole thread.
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    assert_eq!(ids(&cjq.inbox().await.unwrap()), thread);
    for n in [esm, rts, cjq] {
        n.close().await;
    }
    let data_dir = net.data_dir();
    relay.stop().await;
    let delivered_to = |unit: &str| {
        let mut got: Vec<AlertId> = offline_log(&data_dir)
            .iter()
            .filter_map(|e| match &e.event {
                Event::Delivered {
                    alert, recipient, ..
                } if recipient.unit.to_string() == unit => Some(*alert),
                _ => None,
            })
            .collect();
        got.sort();
        got
    };
    let mut want = first_page.clone();
    want.sort();
    assert_eq!(
        delivered_to("DPJ/RTS"),
        want,
        "delivered = what the page held"
    );
    let mut all = thread.clone();
    all.sort();
    assert_eq!(delivered_to("CJQ/PIVOT"), all);
}

/// A `delivered` entry names the rules under which the delivery-time check permitted the
/// delivery and the agreement (id and version) in force then: after an amendment that
/// narrows the rule, a later delivery names the new version and the narrowed fields.
#[tokio::test]
async fn a_delivered_entry_names_the_rule_and_the_agreement_version_of_the_delivery_time_check() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let first = esm.post(alert(Category::Runaway, "V-1")).await.unwrap();
    let second = esm.post(alert(Category::Runaway, "V-2")).await.unwrap();
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    // Under version 1: the first alert only.
    let (d1, _) = ikat.get_alert(first.alert).await.unwrap();
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;
    let logged = |id: AlertId| move |e: &filet_proto::audit::Entry| matches!(&e.event, Event::Delivered { alert, .. } if *alert == id);
    wait_for_entry(
        &auditor,
        &relay.verifier(),
        "delivered",
        logged(first.alert),
    )
    .await;

    let patrol = "fields = [\"subject.given_name\", \"subject.age\", \"subject.description\", \"last_seen.place\", \"last_seen.at\", \"instructions\", \"contact\"]";
    assert!(AGREEMENT.contains(patrol));
    let amended = AGREEMENT
        .replace("\nversion = 1\n", "\nversion = 2\n")
        .replace(patrol, "fields = [\"subject.given_name\", \"contact\"]");
    std::fs::write(&net.agreement, amended).unwrap();
    relay.handle.reload().await.unwrap();
    // Under version 2: the second (the first is not logged twice for this node).
    let got = ikat.inbox().await.unwrap();
    let d2 = got.iter().find(|d| d.envelope.id == second.alert).unwrap();
    assert_eq!(d2.fields.paths(), ["subject.given_name", "contact"]);

    // Logged once the answer is written: wait for it.
    wait_for_entry(
        &auditor,
        &relay.verifier(),
        "delivered",
        logged(second.alert),
    )
    .await;
    let log = full_log(&auditor, &relay.verifier()).await;
    let delivered: Vec<&Event> = events(&log, "delivered").iter().map(|e| &e.event).collect();
    let sender: filet_proto::Principal = "SPVQ/ESM/spvq-esm-01".parse().unwrap();
    let node: filet_proto::Principal = "SPVQ/IKAT/spvq-ikat-01".parse().unwrap();
    assert_eq!(
        delivered,
        [
            &Event::Delivered {
                alert: first.alert,
                sender: sender.clone(),
                recipient: node.clone(),
                fields: d1.fields,
                rules: vec!["enquete-vers-patrouille".into()],
                agreement: Some(AGREEMENT_ID.into()),
                agreement_version: Some(1),
            },
            &Event::Delivered {
                alert: second.alert,
                sender,
                recipient: node,
                fields: d2.fields,
                rules: vec!["enquete-vers-patrouille".into()],
                agreement: Some(AGREEMENT_ID.into()),
                agreement_version: Some(2),
            },
        ]
    );
    for n in [esm, ikat, auditor] {
        n.close().await;
    }
    relay.stop().await;
}
