//! Routing per the agreement (requirements §4): who receives a post, which fields each recipient
//! sees, explicit recipients, and the refusals — not permitted, no rule, invalid alert —
//! each with its exact error and its audit entry.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use filet_proto::alert::{FieldPath, Language};
use filet_proto::audit::{Event, RefusalReason};
use filet_proto::wire::ErrorCode;
use filet_proto::{Category, FieldSet, Kind, Risk, Selector, Status};
use filet_tests::*;

/// The fields of rule `enquete-vers-patrouille`.
fn patrol_fields() -> FieldSet {
    use FieldPath::*;
    [
        SubjectGivenName,
        SubjectAge,
        SubjectDescription,
        LastSeenPlace,
        LastSeenAt,
        Instructions,
        Contact,
    ]
    .into_iter()
    .fold(FieldSet::EMPTY, FieldSet::with)
}

#[tokio::test]
async fn runaway_from_spvq_esm_is_routed_to_exactly_the_four_units_the_agreement_permits() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;

    let receipt = esm.post(runaway()).await.unwrap();

    let got: Vec<(String, Vec<String>, FieldSet)> = receipt
        .recipients
        .iter()
        .map(|r| (r.unit.to_string(), r.rules.clone(), r.fields))
        .collect();
    let rule = |s: &str| vec![s.to_owned()];
    assert_eq!(
        got,
        vec![
            (
                "CJQ/PIVOT".into(),
                rule("police-vers-protection"),
                FieldSet::all()
            ),
            (
                "DPJ/RTS".into(),
                rule("police-vers-protection"),
                FieldSet::all()
            ),
            (
                "SPVQ/GRIPP".into(),
                rule("enquete-vers-patrouille"),
                patrol_fields()
            ),
            (
                "SPVQ/IKAT".into(),
                rule("enquete-vers-patrouille"),
                patrol_fields()
            ),
        ]
    );
    assert!(!receipt.duplicate);
    esm.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn dpj_rts_and_cjq_pivot_receive_every_field_of_the_runaway_alert() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    let mut rts_rx = rts.subscribe().await.unwrap();
    let mut cjq_rx = cjq.subscribe().await.unwrap();
    let draft = runaway();

    let receipt = esm.post(draft.clone()).await.unwrap();

    for d in [
        next_delivery(&mut rts_rx).await,
        next_delivery(&mut cjq_rx).await,
    ] {
        let e = &d.envelope;
        assert_eq!(e.id, receipt.alert);
        assert_eq!(e.kind, Kind::Alert);
        assert_eq!(e.category, Category::Runaway);
        assert_eq!(e.status, Status::Actual);
        assert_eq!(e.risk, Risk::Severe);
        assert_eq!(e.language, Language::FrCa);
        assert_eq!(e.sender.to_string(), "SPVQ/ESM/spvq-esm-01");
        assert_eq!(e.received_at, receipt.received_at);
        assert_eq!(e.expires_at, receipt.expires_at);
        assert_eq!(d.content, draft.content, "every field, as posted");
        assert_eq!(d.fields, FieldSet::all());
        assert_eq!(d.rules, ["police-vers-protection"]);
    }
    for n in [esm, rts, cjq] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn spvq_ikat_and_gripp_receive_only_the_fields_of_enquete_vers_patrouille() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;
    let gripp = net.node("SPVQ/GRIPP", relay.addr).await;
    let mut ikat_rx = ikat.subscribe().await.unwrap();
    let draft = runaway();

    let receipt = esm.post(draft.clone()).await.unwrap();

    let pushed = next_delivery(&mut ikat_rx).await;
    let listed = gripp.inbox().await.unwrap();
    assert_eq!(listed.len(), 1);
    for d in [&pushed, &listed[0]] {
        assert_eq!(d.envelope.id, receipt.alert);
        assert_eq!(d.rules, ["enquete-vers-patrouille"]);
        assert_eq!(d.fields, patrol_fields());
        let c = &d.content;
        assert_eq!(c.subject.reference, None, "subject.reference is left out");
        assert_eq!(c.last_seen.geo, None, "last_seen.geo is left out");
        assert_eq!(c.subject.given_name, draft.content.subject.given_name);
        assert_eq!(c.subject.age, draft.content.subject.age);
        assert_eq!(c.subject.description, draft.content.subject.description);
        assert_eq!(c.last_seen.at, draft.content.last_seen.at);
        assert_eq!(c.last_seen.place, draft.content.last_seen.place);
        assert_eq!(c.instructions, draft.content.instructions);
        assert_eq!(c.contact, draft.content.contact);
        assert_eq!(*c, draft.content.redact(patrol_fields()));
    }
    for n in [esm, ikat, gripp] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn cssc_pivot_receives_nothing_from_spvq_esm() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let cssc = net.node("CSSC/PIVOT", relay.addr).await;
    let mut rts_rx = rts.subscribe().await.unwrap();
    let mut cssc_rx = cssc.subscribe().await.unwrap();

    let receipt = esm.post(runaway()).await.unwrap();
    // The receipt comes after every mailbox entry of the post is published; the others
    // have received it.
    assert_eq!(next_delivery(&mut rts_rx).await.envelope.id, receipt.alert);

    assert!(cssc.inbox().await.unwrap().is_empty());
    assert!(matches!(
        cssc_rx.try_recv(),
        Err(tokio::sync::mpsc::error::TryRecvError::Empty)
    ));
    for n in [esm, rts, cssc] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn an_explicit_recipient_list_gets_only_the_named_permitted_units() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let cjq = net.node("CJQ/PIVOT", relay.addr).await;
    let ikat = net.node("SPVQ/IKAT", relay.addr).await;

    let mut to_rts = runaway();
    to_rts.to = vec![Selector::Unit(unit("DPJ/RTS"))];
    let one = esm.post(to_rts).await.unwrap();
    let units: Vec<String> = one.recipients.iter().map(|r| r.unit.to_string()).collect();
    assert_eq!(units, ["DPJ/RTS"]);

    // A party selects the units of that party the agreement permits, and only those.
    let mut to_spvq = runaway();
    to_spvq.to = vec![Selector::Party("SPVQ".into())];
    let two = esm.post(to_spvq).await.unwrap();
    let units: Vec<String> = two.recipients.iter().map(|r| r.unit.to_string()).collect();
    assert_eq!(units, ["SPVQ/GRIPP", "SPVQ/IKAT"]);

    let ids = |v: Vec<filet_proto::Disclosed>| v.iter().map(|d| d.envelope.id).collect::<Vec<_>>();
    assert_eq!(ids(rts.inbox().await.unwrap()), [one.alert]);
    assert_eq!(ids(ikat.inbox().await.unwrap()), [two.alert]);
    assert_eq!(ids(cjq.inbox().await.unwrap()), []);
    for n in [esm, rts, cjq, ikat] {
        n.close().await;
    }
    relay.stop().await;
}

#[tokio::test]
async fn a_post_naming_a_recipient_the_agreement_does_not_permit_is_refused_whole_and_audited() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let rts = net.node("DPJ/RTS", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;

    let mut draft = runaway();
    draft.to = vec![
        Selector::Unit(unit("DPJ/RTS")),
        Selector::Unit(unit("ULAVAL/RECHERCHE")),
    ];
    let e = refusal(esm.post(draft).await);

    assert_refusal(
        &e,
        ErrorCode::NotPermitted,
        "SPVQ/ESM/spvq-esm-01: no rule of agreement table-regionale-quebec-esj permits SPVQ/ESM to send runaway alerts to ULAVAL/RECHERCHE; nothing was posted",
    );
    // Nothing was posted, not even to the permitted DPJ/RTS.
    assert!(rts.inbox().await.unwrap().is_empty());
    let log = full_log(&auditor, &relay.verifier()).await;
    assert!(events(&log, "posted").is_empty());
    assert!(events(&log, "disclosed").is_empty());
    let refused = events(&log, "refused");
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].event,
        Event::Refused {
            principal: Some("SPVQ/ESM/spvq-esm-01".into()),
            reason: RefusalReason::NotPermitted,
            detail: e.message.clone(),
            category: Some(Category::Runaway),
            recipient: Some("ULAVAL/RECHERCHE".into()),
            alert: None,
        }
    );
    for n in [esm, rts, auditor] {
        n.close().await;
    }
    relay.stop().await;
    // And nothing reached the store.
    let store = filet_relay::store::Store::open(&net.data_dir().join("store")).unwrap();
    assert_eq!(store.iter().count(), 0);
}

#[tokio::test]
async fn dpcp_procureurs_in_no_rule_may_post_nothing() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let dpcp = net.node("DPCP/PROCUREURS", relay.addr).await;

    for category in [
        Category::Runaway,
        Category::Sighting,
        Category::ExploitationRisk,
    ] {
        let e = refusal(dpcp.post(alert(category, "DPCP-1")).await);
        assert_refusal(
            &e,
            ErrorCode::NotPermitted,
            &format!(
                "DPCP/PROCUREURS/dpcp-procureurs-01: no rule of agreement table-regionale-quebec-esj permits DPCP/PROCUREURS to send {category} alerts to anyone"
            ),
        );
    }
    dpcp.close().await;
    relay.stop().await;
}

#[tokio::test]
async fn an_invalid_alert_is_refused_naming_each_field_and_audited_without_its_content() {
    let net = TestNet::new();
    let relay = net.start_relay().await;
    let esm = net.node("SPVQ/ESM", relay.addr).await;
    let auditor = net.node("TABLE/CONFORMITE", relay.addr).await;

    // The Node API sends the draft as it is: the relay is the one that checks.
    let e = refusal(esm.post(too_long()).await);

    assert_eq!(e.code, ErrorCode::InvalidAlert);
    let reference_problem = "character ' ' is not allowed (only A-Z, a-z, 0-9, '.', '_', '/', '-')";
    let description_problem = "291 characters, the limit is 280";
    assert_eq!(
        e.message,
        format!(
            "invalid alert: subject.reference: {reference_problem}; subject.description: {description_problem}"
        )
    );
    let invalid = e.invalid.clone().expect("each field and its problem");
    let fields: Vec<(&str, &str)> = invalid
        .errors
        .iter()
        .map(|f| (f.path.as_str(), f.problem.as_str()))
        .collect();
    assert_eq!(
        fields,
        [
            ("subject.reference", reference_problem),
            ("subject.description", description_problem),
        ]
    );

    let log = full_log(&auditor, &relay.verifier()).await;
    assert!(events(&log, "posted").is_empty());
    let refused = events(&log, "refused");
    assert_eq!(refused.len(), 1);
    let Event::Refused {
        principal,
        reason,
        detail,
        category,
        recipient,
        alert,
    } = &refused[0].event
    else {
        unreachable!()
    };
    assert_eq!(principal.as_deref(), Some("SPVQ/ESM/spvq-esm-01"));
    assert_eq!(*reason, RefusalReason::Invalid);
    assert_eq!(
        detail,
        "invalid alert: subject.reference, subject.description"
    );
    assert_eq!(
        (*category, recipient, alert),
        (Some(Category::Runaway), &None, &None)
    );
    // The entry's bytes hold none of the content.
    let bytes = String::from_utf8(refused[0].to_bytes()).unwrap();
    for content in ["SPVQ 2026 1", "xxxxxxxxxx", "418 555-0100"] {
        assert!(!bytes.contains(content), "{content:?} in {bytes}");
    }
    for n in [esm, auditor] {
        n.close().await;
    }
    relay.stop().await;
}
