//! An alert's life (requirements §5, §6, §7): an update, `located` and `cancel` reach the
//! original's recipients (offline ones too), each with no more than its rules allow; only
//! the sender's party may post them; a closed alert takes none; expiry takes an alert out
//! of every mailbox; content is purged at the end of retention while the log still
//! verifies; the subject's reference is never in the log in clear; an exercise is shown as
//! one everywhere. Time is a [`ManualClock`]: the tests move it instead of waiting.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use filet_client::Node;
use filet_proto::alert::{AlertState, HistoryItem};
use filet_proto::audit::{hex, Entry, Event, RefusalReason};
use filet_proto::time::{DAY_MS, HOUR_MS};
use filet_proto::wire::{ErrorCode, Receipt};
use filet_proto::{
    AlertDraft, AlertId, Category, Content, Disclosed, FieldPath, FieldSet, Kind, Selector, Status,
    Timestamp,
};
use filet_relay::clock::ManualClock;
use filet_tests::*;
use proptest::prelude::*;
use serde_json::Value;
use tokio::sync::mpsc;

/// The recipient units of the runaway alert posted by SPVQ/ESM, in the receipt's order.
const RECIPIENTS: [&str; 4] = ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"];
/// What the located of these tests says.
const FOUND: &str = "Retrouvée saine et sauve, remise à la DPJ";

/// The principal of the dev PKI's node of `unit`: `SPVQ/ESM` → `SPVQ/ESM/spvq-esm-01`.
fn principal(unit: &str) -> String {
    format!("{unit}/{}-01", unit.replace('/', "-").to_lowercase())
}

fn units(r: &Receipt) -> Vec<String> {
    r.recipients.iter().map(|x| x.unit.to_string()).collect()
}

/// An update of `id`: the runaway alert's content, seen somewhere else.
fn update_of(id: AlertId) -> AlertDraft {
    let mut d = follow_up(Kind::Update, id, None);
    d.content = runaway().content;
    d.content.last_seen.place = Some("Galeries de la Capitale, entrée 4".into());
    d
}

fn step(kind: Kind, r: &Receipt, note: Option<&str>) -> HistoryItem {
    HistoryItem {
        kind: Some(kind),
        id: r.alert,
        at: r.received_at,
        note: note.map(str::to_owned),
    }
}

/// A connected, subscribed node of `unit`.
struct Listener {
    unit: &'static str,
    node: Node,
    rx: mpsc::Receiver<Disclosed>,
}

async fn listen(net: &TestNet, relay: &TestRelay, unit: &'static str) -> Listener {
    let node = net.node(unit, relay.addr).await;
    let rx = node.subscribe().await.unwrap();
    Listener { unit, node, rx }
}

/// Proves that nothing else was pushed to `l` before: a fresh alert to its unit only
/// (from `from`, which a rule lets send to it) must be the next delivery.
async fn assert_next_is_a_fresh_alert(l: &mut Listener, from: &Node, reference: &str) {
    let mut draft = alert(Category::Runaway, reference);
    draft.to = vec![Selector::Unit(unit(l.unit))];
    let sentinel = from.post(draft).await.unwrap();
    let d = next_delivery(&mut l.rx).await;
    assert_eq!(
        (d.envelope.kind, d.envelope.id),
        (Kind::Alert, sentinel.alert),
        "{} got {:?} {} before the fresh alert",
        l.unit,
        d.envelope.kind,
        d.envelope.id
    );
}

/// Closes the nodes together (each close waits for the relay to learn of it).
async fn close_all(nodes: impl IntoIterator<Item = Node>) {
    let mut closing = tokio::task::JoinSet::new();
    for n in nodes {
        closing.spawn(n.close());
    }
    while closing.join_next().await.is_some() {}
}

#[tokio::test]
async fn an_update_reaches_every_recipient_of_the_original_as_updated_with_the_fields_of_the_original(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let ijp = net.node("SPVQ/IJP", relay.addr).await;
    let mut listeners = Vec::new();
    for u in RECIPIENTS {
        listeners.push(listen(&net, &relay, u).await);
    }
    let mut cssc = listen(&net, &relay, "CSSC/PIVOT").await;
    let original = esm.post(runaway()).await.unwrap();
    let mut seen = Vec::new();
    for l in &mut listeners {
        let d = next_delivery(&mut l.rx).await;
        assert_eq!(
            (d.envelope.id, d.state),
            (original.alert, AlertState::Active)
        );
        assert_eq!(d.history, [step(Kind::Alert, &original, None)]);
        seen.push(d);
    }

    let draft = update_of(original.alert);
    let update = esm.post(draft.clone()).await.unwrap();

    assert_eq!(units(&update), RECIPIENTS);
    for (r, o) in update.recipients.iter().zip(&original.recipients) {
        assert_eq!((&r.rules, r.fields), (&o.rules, o.fields), "{}", r.unit);
    }
    let mut updates = Vec::new();
    for (l, first) in listeners.iter_mut().zip(&seen) {
        let d = next_delivery(&mut l.rx).await;
        assert_eq!(d.envelope.id, update.alert, "{}", l.unit);
        assert_eq!(d.envelope.kind, Kind::Update);
        assert_eq!(d.envelope.references, Some(original.alert));
        assert_eq!(d.envelope.category, Category::Runaway);
        assert_eq!(d.envelope.sender.to_string(), principal("SPVQ/ESM"));
        assert_eq!(d.state, AlertState::Updated, "{}", l.unit);
        assert_eq!(
            d.history,
            [
                step(Kind::Alert, &original, None),
                step(Kind::Update, &update, None)
            ]
        );
        // The same fields as the original, no more.
        assert_eq!(
            (&d.rules, d.fields),
            (&first.rules, first.fields),
            "{}",
            l.unit
        );
        assert_eq!(d.content, draft.content.redact(first.fields), "{}", l.unit);
        updates.push(d);
    }
    // The patrols get the new place but, like in the original, no file number and no
    // position.
    for (first, d) in seen[2..].iter().zip(&updates[2..]) {
        for c in [&first.content, &d.content] {
            assert_eq!(c.subject.reference, None);
            assert_eq!(c.last_seen.geo, None);
        }
        assert_eq!(
            d.content.last_seen.place.as_deref(),
            Some("Galeries de la Capitale, entrée 4")
        );
    }
    // A school was not a recipient of the original: it gets nothing of the update either.
    assert_next_is_a_fresh_alert(&mut cssc, &ijp, "SENTINEL-CSSC").await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let to_cssc: Vec<Option<AlertId>> = log
        .iter()
        .filter(|e| matches!(&e.event, Event::Disclosed { recipient, .. } if recipient.to_string() == "CSSC/PIVOT"))
        .map(|e| e.event.alert())
        .collect();
    assert_eq!(
        to_cssc.len(),
        1,
        "only the fresh alert was disclosed to CSSC/PIVOT"
    );
    assert_ne!(to_cssc[0], Some(update.alert));
    close_all(listeners.into_iter().map(|l| l.node)).await;
    close_all([esm, ijp, cssc.node, table]).await;
    relay.stop().await;
}

#[tokio::test]
async fn located_reaches_every_recipient_of_the_original_including_one_offline_when_it_was_posted()
{
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    // CJQ/PIVOT is offline all along.
    let mut online = Vec::new();
    for u in ["DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"] {
        online.push(listen(&net, &relay, u).await);
    }
    let original = esm.post(runaway()).await.unwrap();
    for l in &mut online {
        assert_eq!(next_delivery(&mut l.rx).await.envelope.id, original.alert);
    }

    let located = esm
        .post(follow_up(Kind::Located, original.alert, Some(FOUND)))
        .await
        .unwrap();

    assert_eq!(units(&located), RECIPIENTS);
    let history = [
        step(Kind::Alert, &original, None),
        step(Kind::Located, &located, Some(FOUND)),
    ];
    for l in &mut online {
        let d = next_delivery(&mut l.rx).await;
        assert_eq!(
            (d.envelope.id, d.envelope.kind, d.envelope.references),
            (located.alert, Kind::Located, Some(original.alert)),
            "{}",
            l.unit
        );
        assert_eq!(d.state, AlertState::Located, "{}", l.unit);
        // The note is content: the patrols' rule does not allow `note`.
        if l.unit.starts_with("SPVQ/") {
            assert_eq!(d.note, None, "{}", l.unit);
            assert_eq!(
                d.history,
                [
                    step(Kind::Alert, &original, None),
                    step(Kind::Located, &located, None),
                ],
                "{}",
                l.unit
            );
        } else {
            assert_eq!(d.note.as_deref(), Some(FOUND));
            assert_eq!(d.history, history);
        }
    }
    // The late-comer gets both, the original already showing that the youth was found.
    let mut cjq = listen(&net, &relay, "CJQ/PIVOT").await;
    let first = next_delivery(&mut cjq.rx).await;
    let second = next_delivery(&mut cjq.rx).await;
    assert_eq!(
        [
            (first.envelope.id, first.state),
            (second.envelope.id, second.state)
        ],
        [
            (original.alert, AlertState::Located),
            (located.alert, AlertState::Located)
        ]
    );
    assert_eq!(first.history, history);
    assert_eq!(second.history, history);
    cjq.node.close().await;

    let out = filet_as(&net, "CJQ/PIVOT", relay.addr, &["--json", "inbox"]).await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    assert_eq!(lines[0]["id"], original.alert.to_string());
    assert_eq!(lines[1]["id"], located.alert.to_string());
    assert_eq!(lines[1]["kind"], "located");
    assert_eq!(lines[1]["note"], FOUND);
    for l in &lines {
        assert_eq!(l["state"], "located", "{l}");
        let h = l["history"].as_array().unwrap();
        assert_eq!(h.len(), 2, "{l}");
        assert_eq!(h[0]["event"], "alert");
        assert_eq!(h[0]["id"], original.alert.to_string());
        assert_eq!(h[1]["event"], "located");
        assert_eq!(h[1]["id"], located.alert.to_string());
        assert_eq!(h[1]["note"], FOUND);
    }
    close_all(online.into_iter().map(|l| l.node)).await;
    esm.close().await;
    relay.stop().await;
}

/// What the notes of the next test say: what a patrol may not be told (the file number,
/// the position, a full name).
const NOTE_ALERT: &str = "Dossier SPVQ-2026-04417, Maëlle Tremblay, vue à 46.8123,-71.2345";
const NOTE_UPDATE: &str = "Confirmé par SPVQ-2026-04417 : 46.8150,-71.2300";

#[tokio::test]
async fn a_unit_whose_rule_withholds_note_never_receives_a_note_and_the_audit_lists_note_where_it_was_disclosed(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    // DPJ/RTS's rule is "all" (note included); SPVQ/IKAT's lists fields without `note`.
    let mut rts = listen(&net, &relay, "DPJ/RTS").await;
    let mut ikat = listen(&net, &relay, "SPVQ/IKAT").await;

    let mut draft = runaway();
    draft.note = Some(NOTE_ALERT.into());
    let original = esm.post(draft.clone()).await.unwrap();
    let mut update = update_of(original.alert);
    update.note = Some(NOTE_UPDATE.into());
    let updated = esm.post(update).await.unwrap();
    let located = esm
        .post(follow_up(Kind::Located, original.alert, Some(FOUND)))
        .await
        .unwrap();
    let notes = [
        (original.alert, NOTE_ALERT),
        (updated.alert, NOTE_UPDATE),
        (located.alert, FOUND),
    ];
    let full_history = [
        step(Kind::Alert, &original, None),
        step(Kind::Update, &updated, Some(NOTE_UPDATE)),
        step(Kind::Located, &located, Some(FOUND)),
    ];
    let bare_history: Vec<HistoryItem> = full_history
        .iter()
        .cloned()
        .map(|mut h| {
            h.note = None;
            h
        })
        .collect();

    // Pushed: the alert, the update, the located.
    for (id, note) in notes {
        let d = next_delivery(&mut rts.rx).await;
        assert_eq!((d.envelope.id, d.note.as_deref()), (id, Some(note)));
        assert!(d.fields.contains(FieldPath::Note));
        let d = next_delivery(&mut ikat.rx).await;
        assert_eq!(d.envelope.id, id);
        assert_eq!(d.note, None, "IKAT was pushed the note of {id}");
        assert!(!d.fields.contains(FieldPath::Note));
        assert!(
            d.history.iter().all(|h| h.note.is_none()),
            "IKAT was pushed a history note with {id}: {:?}",
            d.history
        );
    }
    // The inbox and GetAlert: the whole thread's history, with notes only for RTS.
    let inbox = ikat.node.inbox().await.unwrap();
    assert_eq!(inbox.len(), 3);
    for d in &inbox {
        assert_eq!(
            d.note, None,
            "IKAT's inbox holds the note of {}",
            d.envelope.id
        );
        assert_eq!(d.history, bare_history);
    }
    for (id, note) in notes {
        let (d, _) = ikat.node.get_alert(id).await.unwrap();
        assert_eq!((d.note, &d.history), (None, &bare_history), "GetAlert {id}");
        let (d, _) = rts.node.get_alert(id).await.unwrap();
        assert_eq!(
            (d.note.as_deref(), &d.history[..]),
            (Some(note), &full_history[..]),
            "GetAlert {id}"
        );
    }
    let out = filet_as(&net, "SPVQ/IKAT", relay.addr, &["--json", "inbox"]).await;
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    for needle in ["SPVQ-2026-04417", "46.81", "Tremblay", "Retrouvée"] {
        assert!(
            !out.stdout.contains(needle),
            "`filet inbox` of IKAT shows {needle:?}: {}",
            out.stdout
        );
    }

    // The audit: `note` is listed in `disclosed` and `delivered` exactly where it was.
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let ids: Vec<AlertId> = notes.iter().map(|(id, _)| *id).collect();
    let (mut disclosed, mut delivered) = (0, 0);
    for e in &log {
        let (alert, unit, fields) = match &e.event {
            Event::Disclosed {
                alert,
                recipient,
                fields,
                ..
            } => (alert, recipient.to_string(), fields),
            Event::Delivered {
                alert,
                recipient,
                fields,
                ..
            } => (alert, recipient.unit.to_string(), fields),
            _ => continue,
        };
        if !ids.contains(alert) {
            continue;
        }
        if e.event.name() == "disclosed" {
            disclosed += 1;
        } else {
            delivered += 1;
        }
        let note_allowed = matches!(unit.as_str(), "DPJ/RTS" | "CJQ/PIVOT");
        assert_eq!(
            fields.contains(FieldPath::Note),
            note_allowed,
            "entry {}: {:?}",
            e.index,
            e.event
        );
    }
    // 3 messages × 4 recipients; deliveries to RTS and IKAT.
    assert_eq!(disclosed, 12);
    assert!(delivered >= 6, "{delivered} delivered entries");
    close_all([esm, rts.node, ikat.node, table]).await;
    relay.stop().await;

    // The commitment covers the note: the logged one is that of the content with it.
    let entries = offline_log(&net.data_dir());
    let store = filet_relay::store::Store::open(&net.data_dir().join("store")).unwrap();
    for r in [&original, &updated, &located] {
        let rec = store.get(&r.alert).unwrap().unwrap();
        let Event::Posted { commitment, .. } = at(&entries, r.posted_index) else {
            panic!("entry {} is not posted", r.posted_index)
        };
        let content = rec.content.as_ref().unwrap();
        assert_eq!(
            *commitment,
            filet_proto::audit::content_commitment(&rec.salt, content, rec.note.as_deref())
        );
        assert_ne!(
            *commitment,
            filet_proto::audit::content_commitment(&rec.salt, content, None),
            "the commitment of {} ignores its note",
            r.alert
        );
    }
}

/// SPVQ/ESM posts the runaway alert; `unit` (its node `node`) tries an update, a located
/// and a cancel of it. Each must be refused with `code` and the message `message(kind, id)`
/// gives, audited as a `refused` entry with `reason`, and leave the alert untouched.
async fn assert_every_follow_up_refused(
    unit: &str,
    node: &str,
    code: ErrorCode,
    reason: RefusalReason,
    message: impl Fn(Kind, AlertId) -> String,
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let other = net.node(unit, relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;

    let attempts = [
        (Kind::Update, update_of(id)),
        (Kind::Located, follow_up(Kind::Located, id, Some(FOUND))),
        (Kind::Cancel, follow_up(Kind::Cancel, id, Some("erreur"))),
    ];
    let mut messages = Vec::new();
    for (kind, draft) in attempts {
        let e = refusal(other.post(draft).await);
        let m = message(kind, id);
        assert_refusal(&e, code, &m);
        messages.push(m);
    }

    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let refused: Vec<&Event> = events(&log, "refused").iter().map(|e| &e.event).collect();
    let expected: Vec<Event> = messages
        .iter()
        .map(|m| Event::Refused {
            principal: Some(format!("{unit}/{node}")),
            reason,
            detail: m.clone(),
            category: Some(Category::Runaway),
            recipient: None,
            alert: Some(id),
        })
        .collect();
    assert_eq!(refused, expected.iter().collect::<Vec<_>>());
    assert_eq!(events(&log, "posted").len(), 1, "nothing was posted");
    // The alert is untouched.
    let (d, _) = esm.get_alert(id).await.unwrap();
    assert_eq!((d.state, d.history.len()), (AlertState::Active, 1));
    close_all([esm, other, table]).await;
    relay.stop().await;
}

#[tokio::test]
async fn another_party_posting_an_update_located_or_cancel_is_refused_as_not_owner_and_audited() {
    assert_every_follow_up_refused(
        "DPJ/RTS",
        "dpj-rts-01",
        ErrorCode::NotOwner,
        RefusalReason::NotOwner,
        |kind, id| {
            format!(
                "DPJ/RTS/dpj-rts-01: only party SPVQ may {} alert {id}; nothing was posted",
                verb(kind)
            )
        },
    )
    .await;
}

/// SPVQ/IKAT (a patrol) receives SPVQ/ESM's runaway alerts with a subset of the fields,
/// and no rule lets it send runaway alerts. Being of the sender's party does not let it
/// speak for the alert: its update, located and cancel are refused as not permitted,
/// audited, and nothing is posted.
#[tokio::test]
async fn a_unit_of_the_senders_party_that_may_only_receive_the_category_may_not_follow_it_up() {
    assert_every_follow_up_refused(
        "SPVQ/IKAT",
        "spvq-ikat-01",
        ErrorCode::NotPermitted,
        RefusalReason::NotPermitted,
        |kind, id| {
            format!(
                "SPVQ/IKAT/spvq-ikat-01: no rule of agreement table-regionale-quebec-esj v1 lets SPVQ/IKAT send runaway alerts, so it may not {} alert {id} of SPVQ/ESM; its sender, or another unit of SPVQ that may send runaway alerts, can; nothing was posted",
                verb(kind)
            )
        },
    )
    .await;
}

#[tokio::test]
async fn another_unit_of_the_senders_party_may_update_and_it_reaches_every_recipient_of_the_original_under_the_originals_rules(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let ijp = net.node("SPVQ/IJP", relay.addr).await;
    let mut listeners = Vec::new();
    for u in RECIPIENTS {
        listeners.push(listen(&net, &relay, u).await);
    }
    let original = esm.post(runaway()).await.unwrap();
    for l in &mut listeners {
        assert_eq!(next_delivery(&mut l.rx).await.envelope.id, original.alert);
    }

    let draft = update_of(original.alert);
    let update = ijp.post(draft.clone()).await.unwrap();

    // A follow-up goes to the original's recipients under the original sender's rules
    // (SPVQ/ESM's), whichever unit of the party posts it: the patrols that were told of
    // the runaway hear of the update too, with the fields their rule allows.
    assert_eq!(
        units(&update),
        ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"]
    );
    let rules: Vec<Vec<String>> = update.recipients.iter().map(|r| r.rules.clone()).collect();
    assert_eq!(
        rules,
        [
            vec!["police-vers-protection".to_owned()],
            vec!["police-vers-protection".to_owned()],
            vec!["enquete-vers-patrouille".to_owned()],
            vec!["enquete-vers-patrouille".to_owned()],
        ]
    );
    for l in &mut listeners {
        let d = next_delivery(&mut l.rx).await;
        assert_eq!(d.envelope.id, update.alert, "{}", l.unit);
        assert_eq!(d.envelope.sender.to_string(), principal("SPVQ/IJP"));
        assert_eq!(d.state, AlertState::Updated);
        if l.unit.starts_with("SPVQ/") {
            assert_eq!(d.content.subject.reference, None, "{}", l.unit);
            assert_eq!(d.content.last_seen.geo, None, "{}", l.unit);
        } else {
            assert_eq!(d.content, draft.content, "{}", l.unit);
        }
    }
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    assert!(events(&log, "withheld").is_empty());
    close_all(listeners.into_iter().map(|l| l.node)).await;
    close_all([esm, ijp, table]).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_located_alert_is_closed_and_refuses_every_further_follow_up() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    esm.post(follow_up(Kind::Located, id, Some(FOUND)))
        .await
        .unwrap();

    for (kind, draft) in [
        (Kind::Update, update_of(id)),
        (Kind::Located, follow_up(Kind::Located, id, Some(FOUND))),
        (Kind::Cancel, follow_up(Kind::Cancel, id, Some("erreur"))),
    ] {
        let e = refusal(esm.post(draft).await);
        assert_refusal(
            &e,
            ErrorCode::Closed,
            &format!(
                "SPVQ/ESM/spvq-esm-01: alert {id} is already located: it cannot be {} any more; nothing was posted",
                participle(kind)
            ),
        );
    }
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    assert_eq!(events(&log, "posted").len(), 2, "the alert and its located");
    let reasons: Vec<RefusalReason> = events(&log, "refused")
        .iter()
        .map(|e| match &e.event {
            Event::Refused { reason, alert, .. } => {
                assert_eq!(*alert, Some(id));
                *reason
            }
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(reasons, [RefusalReason::Closed; 3]);
    close_all([esm, table]).await;
    relay.stop().await;
}

#[tokio::test]
async fn a_cancel_needs_a_reason_and_filet_cancel_with_a_reason_closes_the_alert_and_prints_the_receipt(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    let id_text = id.to_string();

    let e = refusal(esm.post(follow_up(Kind::Cancel, id, None)).await);
    assert_refusal(&e, ErrorCode::InvalidAlert, "invalid alert: note: required");
    let no_reason = filet_as(&net, "SPVQ/ESM", relay.addr, &["cancel", &id_text]).await;
    assert_eq!(no_reason.code, Some(2), "{}", no_reason.stderr);
    assert!(
        no_reason
            .stderr
            .contains("the following required arguments were not provided:\n  --reason <REASON>"),
        "{}",
        no_reason.stderr
    );

    let out = filet_as(
        &net,
        "SPVQ/ESM",
        relay.addr,
        &["cancel", &id_text, "--reason", "Signalement en double"],
    )
    .await;

    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", out.stdout);
    let cancel: AlertId = lines[0]
        .strip_prefix("receipt ")
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(lines[1], "  4 recipient unit(s):");
    let listed: Vec<&str> = lines[2..]
        .iter()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, RECIPIENTS);
    let (d, _) = esm.get_alert(id).await.unwrap();
    assert_eq!(d.state, AlertState::Cancelled);
    assert_eq!(d.history.len(), 2);
    assert_eq!(
        (
            d.history[1].kind,
            d.history[1].id,
            d.history[1].note.as_deref()
        ),
        (Some(Kind::Cancel), cancel, Some("Signalement en double"))
    );
    // Closed: nothing more.
    let e = refusal(esm.post(update_of(id)).await);
    assert_refusal(
        &e,
        ErrorCode::Closed,
        &format!(
            "SPVQ/ESM/spvq-esm-01: alert {id} is already cancelled: it cannot be updated any more; nothing was posted"
        ),
    );
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn an_alert_past_its_expiry_is_logged_expired_leaves_every_mailbox_and_takes_no_update() {
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    assert_eq!(rts.inbox().await.unwrap().len(), 1);

    clock.advance(72 * HOUR_MS + 1000);
    relay.run_timers().await;

    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let expired: Vec<&Event> = events(&log, "expired").iter().map(|e| &e.event).collect();
    assert_eq!(
        expired,
        [&Event::Expired {
            alert: id,
            sender: principal("SPVQ/ESM").parse().unwrap()
        }]
    );
    assert!(rts.inbox().await.unwrap().is_empty(), "a connected unit");
    let mut late = listen(&net, &relay, "CJQ/PIVOT").await;
    assert!(late.node.inbox().await.unwrap().is_empty(), "a late-comer");
    assert_next_is_a_fresh_alert(&mut late, &esm, "APRES-EXPIRATION").await;
    let e = refusal(esm.post(update_of(id)).await);
    assert_refusal(
        &e,
        ErrorCode::Closed,
        &format!(
            "SPVQ/ESM/spvq-esm-01: alert {id} is already expired: it cannot be updated any more; nothing was posted"
        ),
    );
    let (d, _) = esm.get_alert(id).await.unwrap();
    assert_eq!(d.state, AlertState::Expired);
    close_all([esm, rts, late.node, table]).await;
    relay.stop().await;
}

#[tokio::test]
async fn content_is_purged_after_the_longest_retention_of_its_rules_and_the_log_still_verifies() {
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let verifier = relay.verifier();
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let original = esm.post(runaway()).await.unwrap().alert;
    let located = esm
        .post(follow_up(Kind::Located, original, Some(FOUND)))
        .await
        .unwrap()
        .alert;
    let before = full_log(&table, &verifier).await;

    // police-vers-protection keeps content 90 days, enquete-vers-patrouille 30: the
    // longest counts, from the located.
    clock.advance(89 * DAY_MS);
    relay.run_timers().await;
    assert!(events(&full_log(&table, &verifier).await, "purged").is_empty());

    clock.advance(DAY_MS + HOUR_MS);
    relay.run_timers().await;

    let after = full_log(&table, &verifier).await;
    let sender: filet_proto::Principal = principal("SPVQ/ESM").parse().unwrap();
    let purged: Vec<&Event> = events(&after, "purged").iter().map(|e| &e.event).collect();
    assert_eq!(
        purged,
        [
            &Event::Purged {
                alert: original,
                sender: sender.clone()
            },
            &Event::Purged {
                alert: located,
                sender
            }
        ]
    );
    // Append-only: every entry before the purge, the commitments among them, is unchanged.
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(events(&after, "posted"), events(&before, "posted"));
    esm.close().await;
    table.close().await;
    relay.stop().await;

    let data = net.data_dir();
    // The same log, and the clean stop recorded after it.
    let stopped = offline_log(&data);
    assert_eq!(stopped[..after.len()], after[..]);
    assert!(matches!(
        stopped[after.len()..],
        [Entry {
            event: Event::RelayStopped { .. },
            ..
        }]
    ));
    let store = filet_relay::store::Store::open(&data.join("store")).unwrap();
    for id in [original, located] {
        let rec = store.get(&id).unwrap().unwrap();
        assert_eq!(rec.content, None, "{id}");
        assert_eq!(rec.note, None, "{id}");
        assert_eq!(rec.salt, [0; 32], "{id}");
        assert!(rec.purged, "{id}");
        assert!(rec.history.iter().all(|h| h.note.is_none()), "{id}");
    }
}

/// sled keeps older versions of a value in its files until it reuses the space: a purge
/// that only rewrote the record left the content readable in `store/db`. Records are
/// sealed under a key per alert kept in `store.keys`; the purge overwrites the key.
#[tokio::test]
async fn purged_content_is_in_no_file_of_the_data_directory_in_clear_nor_is_its_key() {
    const MARKER: &str = "MARQUEUR-PURGE-7f3a9c";
    const NOTE: &str = "Retrouvée, MARQUEUR-PURGE-7f3a9c";
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut draft = runaway();
    draft.content.subject.description = Some(format!("Manteau rouge, {MARKER}"));
    let original = esm.post(draft).await.unwrap().alert;
    let located = esm
        .post(follow_up(Kind::Located, original, Some(NOTE)))
        .await
        .unwrap()
        .alert;
    let data = net.data_dir();
    // While the alert lives, its content is stored (sealed) and has a key.
    let keys_path = data.join("store.keys");
    let keys = std::fs::read(&keys_path).unwrap_or_default();
    let key_of = |id: AlertId| -> Vec<u8> {
        keys.chunks_exact(64)
            .find(|s| s[..16] == id.0)
            .map(|s| s[16..48].to_vec())
            .unwrap_or_else(|| panic!("no key of {id} in {}", keys_path.display()))
    };
    let alert_keys = [key_of(original), key_of(located)];

    clock.advance(90 * DAY_MS + HOUR_MS);
    relay.run_timers().await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let purged: Vec<AlertId> = events(&full_log(&table, &relay.verifier()).await, "purged")
        .iter()
        .filter_map(|e| e.event.alert())
        .collect();
    assert_eq!(purged, [original, located]);
    close_all([esm, table]).await;
    relay.stop().await;

    let secrets: Vec<(&str, &[u8])> = vec![
        ("the marker", MARKER.as_bytes()),
        ("the key of the alert", &alert_keys[0]),
        ("the key of the located", &alert_keys[1]),
    ];
    let found = files_holding(&data, &secrets);
    assert!(found.is_empty(), "after the purge: {found:?}");

    // A restart (recovery reads every record) keeps it so.
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    relay.stop().await;
    let found = files_holding(&data, &secrets);
    assert!(found.is_empty(), "after a restart: {found:?}");
    let store = filet_relay::store::Store::open(&data.join("store")).unwrap();
    let rec = store.get(&original).unwrap().unwrap();
    assert_eq!((rec.content, rec.purged), (None, true));
}

/// The files under `dir` (recursively) that hold one of `secrets`, with its name.
fn files_holding(dir: &std::path::Path, secrets: &[(&str, &[u8])]) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for f in std::fs::read_dir(&d).unwrap() {
            let path = f.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                todo.push(path);
            } else if meta.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                for (what, secret) in secrets {
                    if contains(&bytes, secret) {
                        found.push(format!("{what} in {}", path.display()));
                    }
                }
            }
        }
    }
    found
}

/// With a retention shorter than a closing message's life (72 h), the thread was purged,
/// and its `located` taken out of every mailbox, before units offline at the closing
/// heard of it. A closing message is kept at least until its own expiry.
#[tokio::test]
async fn a_closing_message_outlives_a_short_retention_until_its_own_expiry() {
    let net = TestNet::new();
    let cfg = net.relay_config();
    let short = AGREEMENT
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("retention") {
                "retention = \"1d\"".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_ne!(short, AGREEMENT);
    std::fs::write(&cfg.agreement, short).unwrap();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(cfg, Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let original = esm.post(runaway()).await.unwrap();
    assert!(original
        .recipients
        .iter()
        .any(|r| r.unit == unit("DPJ/RTS")));
    let located = esm
        .post(follow_up(Kind::Located, original.alert, Some(FOUND)))
        .await
        .unwrap()
        .alert;
    // Two days later: past the 1-day retention, within the located's 72 hours.
    clock.advance(2 * DAY_MS);
    relay.run_timers().await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    assert_eq!(inbox_ids(&rts).await, [original.alert, located]);
    rts.close().await;
    // Past the located's expiry: the thread is purged.
    clock.advance(DAY_MS + HOUR_MS);
    relay.run_timers().await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    assert_eq!(inbox_ids(&rts).await, []);
    close_all([esm, rts]).await;
    relay.stop().await;
    let purged: Vec<AlertId> = events(&offline_log(&net.data_dir()), "purged")
        .iter()
        .filter_map(|e| match &e.event {
            Event::Purged { alert, .. } => Some(*alert),
            _ => None,
        })
        .collect();
    assert_eq!(purged, [original.alert, located]);
}

#[tokio::test]
async fn an_expired_alerts_content_is_purged_at_the_end_of_retention_counted_from_its_expiry() {
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let verifier = relay.verifier();
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    clock.advance(72 * HOUR_MS + 1000);
    relay.run_timers().await;
    assert_eq!(
        events(&full_log(&table, &verifier).await, "expired").len(),
        1
    );

    clock.advance(89 * DAY_MS);
    relay.run_timers().await;
    assert!(events(&full_log(&table, &verifier).await, "purged").is_empty());
    clock.advance(DAY_MS + 1000);
    relay.run_timers().await;

    let log = full_log(&table, &verifier).await;
    let purged: Vec<&Event> = events(&log, "purged").iter().map(|e| &e.event).collect();
    assert_eq!(
        purged,
        [&Event::Purged {
            alert: id,
            sender: principal("SPVQ/ESM").parse().unwrap()
        }]
    );
    close_all([esm, table]).await;
    relay.stop().await;
    let store = filet_relay::store::Store::open(&net.data_dir().join("store")).unwrap();
    let rec = store.get(&id).unwrap().unwrap();
    assert_eq!((rec.content, rec.salt, rec.purged), (None, [0; 32], true));
}

/// Alert ids sort by received time, then at random: a follow-up received in the same
/// millisecond as its alert (always so with a stopped clock) may sort before it. The index
/// rebuilt at start-up reads the store in id order and files a follow-up under its thread
/// only if the alert came first (relay/src/commit.rs, `Index::insert`), so such a
/// follow-up is left out of its thread: never purged, never taken out of mailboxes.
#[tokio::test]
async fn after_a_restart_every_message_of_a_thread_is_still_purged_even_one_received_in_the_same_millisecond(
) {
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    // Sixteen threads: that every located sorts after its alert has odds of 2^-16.
    let mut messages = Vec::new();
    for i in 0..16 {
        let id = esm
            .post(alert(Category::Runaway, &format!("MEME-MS-{i}")))
            .await
            .unwrap()
            .alert;
        let located = esm
            .post(follow_up(Kind::Located, id, Some(FOUND)))
            .await
            .unwrap()
            .alert;
        messages.extend([id, located]);
    }
    esm.close().await;
    relay.stop().await;
    let relay = TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone())).await;

    clock.advance(90 * DAY_MS + HOUR_MS);
    relay.run_timers().await;

    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let purged: Vec<AlertId> = events(&log, "purged")
        .iter()
        .filter_map(|e| e.event.alert())
        .collect();
    let never: Vec<String> = messages
        .iter()
        .filter(|m| !purged.contains(m))
        .map(ToString::to_string)
        .collect();
    assert!(
        never.is_empty(),
        "{} of {} messages never purged: {never:?}",
        never.len(),
        messages.len()
    );
    table.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn the_subject_reference_is_never_in_the_audit_log_in_clear_only_its_hmac_under_the_relays_key(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let original = esm.post(runaway()).await.unwrap();
    let update = esm.post(update_of(original.alert)).await.unwrap();
    let located = esm
        .post(follow_up(Kind::Located, original.alert, Some(FOUND)))
        .await
        .unwrap();
    let rts = net.node("DPJ/RTS", relay.addr).await;
    rts.ack(original.alert).await.unwrap();

    let log = filet_client::audit::fetch_and_verify(&table, &relay.verifier())
        .await
        .unwrap();

    const REFERENCE: &str = "SPVQ-2026-04417";
    for (i, bytes) in &log.entries {
        assert!(
            !contains(bytes, REFERENCE.as_bytes()),
            "entry {i}: {}",
            String::from_utf8_lossy(bytes)
        );
    }
    let key = std::fs::read(net.data_dir().join("keys/subject-ref.key")).unwrap();
    let mac = ring::hmac::sign(
        &ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key),
        REFERENCE.as_bytes(),
    );
    let expected = hex(mac.as_ref());
    let subject_ref = |index: u64| {
        let (_, bytes) = log.entries.iter().find(|(i, _)| *i == index).unwrap();
        match Entry::from_bytes(bytes).unwrap().event {
            Event::Posted { subject_ref, .. } => subject_ref,
            other => panic!("entry {index} is {other:?}"),
        }
    };
    assert_eq!(subject_ref(original.posted_index), Some(expected.clone()));
    assert_eq!(
        subject_ref(update.posted_index),
        Some(expected),
        "the update names the same youth"
    );
    assert_eq!(subject_ref(located.posted_index), None, "no reference");
    close_all([esm, table, rts]).await;
    relay.stop().await;
    // Nor in any file of the stopped relay's audit log.
    let audit = net.data_dir().join("audit");
    for f in std::fs::read_dir(&audit).unwrap() {
        let path = f.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            assert!(
                !contains(&bytes, REFERENCE.as_bytes()),
                "{}",
                path.display()
            );
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_follow_up_that_switches_the_status_of_its_alert_is_refused_naming_status_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let mut rts = listen(&net, &relay, "DPJ/RTS").await;
    let mut draft = runaway();
    draft.status = Status::Exercise;
    let exercise = esm.post(draft).await.unwrap();
    let actual = esm.post(runaway()).await.unwrap();
    for _ in 0..2 {
        next_delivery(&mut rts.rx).await;
    }

    for (r, from, to) in [
        (&exercise, Status::Exercise, Status::Actual),
        (&actual, Status::Actual, Status::Exercise),
        (&actual, Status::Actual, Status::Test),
    ] {
        for kind in [Kind::Update, Kind::Located, Kind::Cancel] {
            let mut d = if kind == Kind::Update {
                update_of(r.alert)
            } else {
                follow_up(kind, r.alert, Some("raison"))
            };
            d.status = to;
            let e = refusal(esm.post(d).await);
            assert_refusal(
                &e,
                ErrorCode::InvalidAlert,
                &format!(
                    "invalid alert: status: alert {} is {from} and its follow-ups keep that status (not {to}); nothing was posted",
                    r.alert
                ),
            );
        }
    }
    // The alerts are untouched, and a follow-up that keeps the status is taken.
    let mut d = update_of(exercise.alert);
    d.status = Status::Exercise;
    let up = esm.post(d).await.unwrap();
    let pushed = next_delivery(&mut rts.rx).await;
    assert_eq!(
        (pushed.envelope.id, pushed.envelope.status),
        (up.alert, Status::Exercise)
    );
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let refused: Vec<(RefusalReason, String)> = log
        .iter()
        .filter_map(|e| match &e.event {
            Event::Refused { reason, detail, .. } => Some((*reason, detail.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(refused.len(), 9, "{refused:?}");
    assert!(
        refused
            .iter()
            .all(|(r, d)| *r == RefusalReason::Invalid && d.starts_with("invalid alert: status")),
        "{refused:?}"
    );
    close_all([esm, rts.node, table]).await;
    relay.stop().await;
}

#[tokio::test]
async fn an_exercise_is_marked_as_one_in_the_inbox_the_cap_export_and_the_audit_report() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let actual = esm.post(runaway()).await.unwrap().alert;
    let mut draft = runaway();
    draft.status = Status::Exercise;
    draft.content.subject.reference = Some("EXERCICE-2026-01".into());
    let exercise = esm.post(draft).await.unwrap().alert;
    esm.close().await;

    let text = filet_as(&net, "DPJ/RTS", relay.addr, &["inbox"]).await;
    let json = filet_as(&net, "DPJ/RTS", relay.addr, &["--json", "inbox"]).await;
    let cap = filet_as(
        &net,
        "SPVQ/ESM",
        relay.addr,
        &["export", "--cap", &exercise.to_string()],
    )
    .await;

    assert_eq!(text.code, Some(0), "{}", text.stderr);
    let headers: Vec<&str> = text
        .stdout
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .collect();
    assert_eq!(
        headers,
        [
            format!("alert runaway {actual} [severe] from SPVQ/ESM/spvq-esm-01 — rule police-vers-protection"),
            format!("*** EXERCISE — NOT A REAL ALERT *** alert runaway {exercise} [severe] from SPVQ/ESM/spvq-esm-01 — rule police-vers-protection"),
        ]
    );
    assert_eq!(json.code, Some(0), "{}", json.stderr);
    let statuses: Vec<(String, String)> = json
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (actual.to_string(), "actual".to_owned()),
            (exercise.to_string(), "exercise".to_owned())
        ]
    );
    assert_eq!(cap.code, Some(0), "{}", cap.stderr);
    assert!(
        cap.stdout.contains("<status>Exercise</status>"),
        "{}",
        cap.stdout
    );
    assert!(
        cap.stdout
            .contains("<headline>EXERCICE — Fugue d&apos;un jeune à risque</headline>"),
        "{}",
        cap.stdout
    );

    // The report counts the exercise apart from the real alerts.
    let dir = net.path().join("audit-dir");
    let dir = path_str(&dir);
    let pull = filet_as(
        &net,
        "TABLE/CONFORMITE",
        relay.addr,
        &[
            "audit",
            "pull",
            "--dir",
            dir,
            "--verifier-key",
            &relay.verifier_key,
        ],
    )
    .await;
    assert_eq!(pull.code, Some(0), "{}", pull.stderr);
    let report = run_off_runtime(
        "filet",
        ["audit", "report", "--dir", dir]
            .map(str::to_owned)
            .to_vec(),
    )
    .await;
    assert_eq!(report.code, Some(0), "{}", report.stderr);
    let section = |title: &str| -> Vec<Vec<String>> {
        let block = report
            .stdout
            .split("\n\n")
            .find(|b| b.starts_with(&format!("{title}\n")))
            .unwrap_or_else(|| panic!("no section {title:?} in\n{}", report.stdout));
        block
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().map(str::to_owned).collect())
            .collect()
    };
    let rows = |s: Vec<Vec<String>>| -> Vec<String> {
        s.iter().skip(1).map(|r| r[..4].join(" ")).collect()
    };
    let disclosures = [
        "SPVQ CJQ police-vers-protection 1",
        "SPVQ DPJ police-vers-protection 1",
        "SPVQ SPVQ enquete-vers-patrouille 2",
    ];
    assert_eq!(rows(section("Disclosures")), disclosures);
    assert_eq!(
        rows(section("Disclosures — EXERCISE (NOT REAL ALERTS)")),
        disclosures
    );
    let lifecycle: Vec<String> = section("Messages by status and kind (each alert's life)")
        .iter()
        .map(|r| r.join(" "))
        .collect();
    assert_eq!(
        lifecycle[..2],
        ["actual alert 1", "EXERCISE ALERT (NOT REAL) 1"]
    );
    relay.stop().await;
}

// ---- random agreements ----------------------------------------------------------------

/// Five units of the example agreement's parties (so the dev PKI has their nodes), over
/// which the random agreements write their rules.
const POOL: [&str; 5] = [
    "SPVQ/ESM",
    "SPVQ/IKAT",
    "DPJ/RTS",
    "CJQ/PIVOT",
    "CSSC/PIVOT",
];

/// One random rule; bit `i` of a mask stands for `POOL[i]`, `Category::ALL[i]` or
/// `FieldPath::ALL[i]`.
#[derive(Debug, Clone)]
struct RandomRule {
    from: u8,
    to: u8,
    categories: u8,
    /// `None`: `fields = "all"`.
    fields: Option<u16>,
    retention_days: u8,
}

impl RandomRule {
    fn field_set(&self) -> FieldSet {
        match self.fields {
            None => FieldSet::all(),
            Some(bits) => FieldPath::ALL
                .iter()
                .enumerate()
                .filter(|(i, _)| bits & (1 << i) != 0)
                .fold(FieldSet::EMPTY, |s, (_, f)| s.with(*f)),
        }
    }

    fn toml(&self, i: usize) -> String {
        let units = |mask: u8| -> Vec<&str> {
            (0..POOL.len())
                .filter(|u| mask & (1 << u) != 0)
                .map(|u| POOL[u])
                .collect()
        };
        let categories: Vec<&str> = Category::ALL
            .iter()
            .enumerate()
            .filter(|(c, _)| self.categories & (1 << c) != 0)
            .map(|(_, c)| c.as_str())
            .collect();
        let fields = match self.fields {
            None => "\"all\"".to_owned(),
            Some(_) => format!("{:?}", self.field_set().paths()),
        };
        format!(
            "[[rules]]\nid = \"r{i}\"\nfrom = {:?}\nto = {:?}\ncategories = {categories:?}\nfields = {fields}\nlegal_basis = \"Base légale {i}\"\npurpose = \"Propriété {i}\"\nretention = \"{}d\"\n\n",
            units(self.from),
            units(self.to),
            self.retention_days
        )
    }
}

/// A random agreement, who posts, what, and which recipients acknowledge.
#[derive(Debug, Clone)]
struct Case {
    rules: Vec<RandomRule>,
    sender: usize,
    category: Category,
    /// Bit `i`: `POOL[i]` acknowledges the original, if it receives it.
    acks: u8,
}

impl Case {
    /// The example's parties and audit rights, these rules.
    fn agreement(&self) -> String {
        let head = &AGREEMENT[..AGREEMENT.find("[[rules]]").unwrap()];
        let audit = &AGREEMENT[AGREEMENT.find("[audit]").unwrap()..];
        let rules: String = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.toml(i))
            .collect();
        format!("{head}{rules}{audit}")
    }

    /// Each unit the sender's alert may reach, with the union of the fields of every rule
    /// that permits it (requirements §4), worked out here independently of the relay.
    fn expected(&self) -> BTreeMap<&'static str, FieldSet> {
        let cat = 1
            << Category::ALL
                .iter()
                .position(|c| *c == self.category)
                .unwrap();
        let mut out = BTreeMap::new();
        for (i, u) in POOL.iter().enumerate() {
            let fields = self
                .rules
                .iter()
                .filter(|r| {
                    r.from & (1 << self.sender) != 0
                        && r.to & (1 << i) != 0
                        && r.categories & cat != 0
                })
                .map(RandomRule::field_set)
                .reduce(FieldSet::union);
            if let Some(f) = fields {
                out.insert(*u, f);
            }
        }
        out
    }
}

fn case() -> impl Strategy<Value = Case> {
    let rule = (
        1u8..32,
        1u8..32,
        1u8..8,
        // Any non-empty subset of the fields, `note` (bit 9) included.
        proptest::option::of(1u16..1024),
        1u8..100,
    )
        .prop_map(
            |(from, to, categories, fields, retention_days)| RandomRule {
                from,
                to,
                categories,
                fields,
                retention_days,
            },
        );
    (
        proptest::collection::vec(rule, 1..4),
        0..POOL.len(),
        proptest::sample::select(Category::ALL),
        any::<u8>(),
    )
        .prop_map(|(mut rules, sender, category, acks)| {
            // A valid agreement (no rule's `from` and `to` overlap) whose first rule lets
            // the sender send this category to someone.
            let cat = 1 << Category::ALL.iter().position(|c| *c == category).unwrap();
            rules[0].from |= 1 << sender;
            rules[0].categories |= cat;
            for r in &mut rules {
                r.to &= !r.from;
            }
            if rules[0].to == 0 {
                rules[0].to = 1 << ((sender + 1) % POOL.len());
                rules[0].from &= !rules[0].to;
            }
            rules.retain(|r| r.to != 0 && r.from != 0);
            Case {
                rules,
                sender,
                category,
                acks,
            }
        })
}

/// The bound on one case (a fresh relay, six nodes, three posts).
const CASE_LIMIT: Duration = Duration::from_secs(30);

async fn run_case(case: &Case) {
    let net = TestNet::new();
    std::fs::write(&net.agreement, case.agreement()).unwrap();
    let relay = net.start_relay().await;
    let mut listeners = Vec::new();
    for u in POOL {
        listeners.push(listen(&net, &relay, u).await);
    }
    let want = case.expected();
    let mut draft = runaway();
    draft.category = case.category;

    let original = listeners[case.sender]
        .node
        .post(draft.clone())
        .await
        .unwrap();
    let recipients: Vec<String> = want.keys().map(|u| u.to_string()).collect();
    assert_eq!(units(&original), recipients);
    for (i, l) in listeners.iter_mut().enumerate() {
        let Some(fields) = want.get(l.unit) else {
            continue;
        };
        let d = next_delivery(&mut l.rx).await;
        assert_eq!(d.envelope.id, original.alert, "{}", l.unit);
        assert_eq!(d.fields, *fields, "{}", l.unit);
        assert_eq!(d.content, draft.content.redact(*fields), "{}", l.unit);
        if case.acks & (1 << i) != 0 {
            l.node.ack(original.alert).await.unwrap();
        }
    }
    let update_draft = update_of(original.alert);
    let update = listeners[case.sender]
        .node
        .post(update_draft.clone())
        .await
        .unwrap();
    assert_eq!(units(&update), recipients, "the agreement did not change");
    let located = listeners[case.sender]
        .node
        .post(follow_up(Kind::Located, original.alert, Some(FOUND)))
        .await
        .unwrap();
    assert_eq!(units(&located), recipients);
    for l in &mut listeners {
        if let Some(fields) = want.get(l.unit) {
            let u = next_delivery(&mut l.rx).await;
            assert_eq!(u.envelope.id, update.alert, "{}", l.unit);
            assert_eq!(
                u.content,
                update_draft.content.redact(*fields),
                "{}",
                l.unit
            );
            let x = next_delivery(&mut l.rx).await;
            assert_eq!(x.envelope.id, located.alert, "{}", l.unit);
            // The note is content: only under rules that allow `note`.
            assert_eq!(
                (x.state, x.note.as_deref()),
                (
                    AlertState::Located,
                    fields.contains(FieldPath::Note).then_some(FOUND)
                ),
                "{}",
                l.unit
            );
            assert_eq!(x.content, Content::default());
        }
        // Nothing else was pushed, to a recipient or to anyone else.
        assert!(l.rx.try_recv().is_err(), "{} got more", l.unit);
    }
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let mut disclosed = 0;
    for e in &log {
        let (unit, fields) = match &e.event {
            Event::Disclosed {
                recipient, fields, ..
            } => {
                disclosed += 1;
                (recipient.to_string(), *fields)
            }
            Event::Delivered {
                recipient, fields, ..
            } => (recipient.unit.to_string(), *fields),
            Event::Withheld { recipient, .. } => panic!("withheld from {recipient}"),
            _ => continue,
        };
        let allowed = want
            .get(unit.as_str())
            .unwrap_or_else(|| panic!("entry {}: {unit} is outside the rules", e.index));
        assert_eq!(fields.intersection(*allowed), fields, "entry {}", e.index);
    }
    assert_eq!(disclosed, 3 * want.len());
    close_all(listeners.into_iter().map(|l| l.node).chain([table])).await;
    relay.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 16,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Under a random agreement, a random sender's alert, update and located reach exactly
    /// the units its rules permit, each with no field its rules do not allow, whoever
    /// acknowledged; and the audit log verifies.
    #[test]
    fn under_random_agreements_the_whole_life_of_an_alert_reaches_exactly_the_permitted_units_with_their_fields(
        case in case()
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(CASE_LIMIT, run_case(&case))
                .await
                .unwrap_or_else(|_| panic!("the case did not finish within {CASE_LIMIT:?}"))
        });
    }
}

/// A follow-up's verb in the relay's messages.
fn verb(k: Kind) -> &'static str {
    match k {
        Kind::Alert => "post",
        Kind::Update => "update",
        Kind::Located => "mark as located",
        Kind::Cancel => "cancel",
    }
}

/// The same as a past participle.
fn participle(k: Kind) -> &'static str {
    match k {
        Kind::Alert => "posted",
        Kind::Update => "updated",
        Kind::Located => "marked as located",
        Kind::Cancel => "cancelled",
    }
}

/// A batch that expires or purges an alert writes the store only after its audit entries
/// are durable (relay/src/commit.rs, `Committer::durable`): a crash between the two
/// leaves the change in the log and not in the store. Simulated here by putting back a
/// copy of the store taken before the timers ran. At start-up the relay applies the
/// logged expiry and purge to the record (the alert leaves the mailbox at once, its
/// content is erased) instead of logging either a second time.
#[tokio::test]
async fn an_expiry_and_a_purge_the_store_missed_are_applied_at_start_up_not_logged_twice() {
    let net = TestNet::new();
    let clock = ManualClock::new(Timestamp::now());
    let start = || TestRelay::start_with_clock(net.relay_config(), Arc::new(clock.clone()));
    let relay = start().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    esm.close().await;
    relay.stop().await;
    let store = net.data_dir().join("store");
    let before = net.path().join("store-before-timers");
    copy_dir(&store, &before);
    // The store's content keys go with it: a crash before the store write keeps the key
    // of a record the store has not purged yet (it is cleared after that write).
    let keys = net.data_dir().join("store.keys");
    let keys_before = std::fs::read(&keys).unwrap();

    let relay = start().await;
    clock.advance(72 * HOUR_MS + 1000);
    relay.run_timers().await;
    clock.advance(90 * DAY_MS + 1000);
    relay.run_timers().await;
    relay.stop().await;
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&before, &store);
    std::fs::write(&keys, &keys_before).unwrap();

    let relay = start().await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let waiting: Vec<AlertId> = inbox_ids(&rts).await;
    assert!(
        !waiting.contains(&id),
        "the logged expiry was not applied at start-up: DPJ/RTS still has {id}"
    );
    relay.run_timers().await;
    let table = net.node("TABLE/CONFORMITE", relay.addr).await;
    let log = full_log(&table, &relay.verifier()).await;
    let of = |name: &str| {
        events(&log, name)
            .iter()
            .filter(|e| e.event.alert() == Some(id))
            .count()
    };
    assert_eq!((of("expired"), of("purged")), (1, 1));
    close_all([rts, table]).await;
    relay.stop().await;
    let store = filet_relay::store::Store::open(&store).unwrap();
    let rec = store.get(&id).unwrap().unwrap();
    assert_eq!(
        (rec.state, rec.content, rec.salt, rec.purged),
        (AlertState::Expired, None, [0; 32], true)
    );
}

/// `filet located <an update's id>`: the relay says which alert the update belongs to,
/// and that follow-ups name the original.
#[tokio::test]
async fn a_follow_up_that_names_an_update_instead_of_its_alert_is_told_the_alerts_id() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let id = esm.post(runaway()).await.unwrap().alert;
    let update = esm.post(update_of(id)).await.unwrap().alert;

    let e = refusal(
        esm.post(follow_up(Kind::Located, update, Some(FOUND)))
            .await,
    );
    assert_refusal(
        &e,
        ErrorCode::UnknownAlert,
        &format!("SPVQ/ESM/spvq-esm-01: {update} is a follow-up of alert {id}: updates, located and cancel refer to the original alert's id, {id}"),
    );
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn a_thread_past_its_update_cap_refuses_the_update_and_the_relay_keeps_serving_across_a_restart(
) {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let root = esm.post(runaway()).await.unwrap().alert;
    let note = "🚨".repeat(filet_proto::alert::MAX_NOTE);
    for _ in 0..filet_relay::commit::MAX_FOLLOW_UPS {
        esm.post(follow_up(Kind::Update, root, Some(&note)))
            .await
            .unwrap();
    }

    let e = refusal(esm.post(follow_up(Kind::Update, root, Some(&note))).await);

    assert_eq!(e.code, ErrorCode::InvalidAlert);
    assert!(
        e.message
            .contains("already has 100 updates, the limit per alert is 100"),
        "{}",
        e.message
    );
    assert_relay_serves(&net, relay.addr).await;
    // The whole thread is delivered: every message with its history fits in a frame.
    let rts = net.node("DPJ/RTS", relay.addr).await;
    assert_eq!(
        rts.inbox().await.unwrap().len(),
        1 + filet_relay::commit::MAX_FOLLOW_UPS + 1,
        "the thread and the alert of assert_relay_serves"
    );
    rts.close().await;
    esm.close().await;
    relay.stop().await;

    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let e = refusal(esm.post(follow_up(Kind::Update, root, None)).await);
    assert_eq!(e.code, ErrorCode::InvalidAlert, "{}", e.message);
    esm.post(follow_up(Kind::Cancel, root, Some(&note)))
        .await
        .expect("a cancel closes a thread at its cap");
    assert_relay_serves(&net, relay.addr).await;
    esm.close().await;
    relay.stop().await;
}
