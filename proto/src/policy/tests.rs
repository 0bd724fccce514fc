//! One unit test per decision, on the reference agreement (`examples/agreement.toml`) and
//! small ones; the messages are those the principals are told.
#![allow(clippy::unwrap_used)] // tests: a panic is a failure, reported with its place

use super::*;
use crate::alert::{FieldPath, Language, Risk, Status};
use crate::time::DAY_MS;

const EXAMPLE: &str = include_str!("../../../examples/agreement.toml");

fn example() -> Agreement {
    Agreement::parse(EXAMPLE, "agreement.example.toml").unwrap()
}

/// The reference agreement, v2: the patrol units get runaways no more, except GRIPP.
fn amended() -> Agreement {
    let text = EXAMPLE.replacen("version = 1", "version = 2", 1).replacen(
        "to = [\"SPVQ/IKAT\", \"SPVQ/GRIPP\"]",
        "to = [\"SPVQ/GRIPP\"]",
        1,
    );
    let a = Agreement::parse(&text, "agreement.v2.toml").unwrap();
    assert_eq!(a.version, 2);
    a
}

fn u(s: &str) -> UnitRef {
    s.parse().unwrap()
}

fn p(s: &str) -> Principal {
    s.parse().unwrap()
}

fn id(n: u8) -> AlertId {
    AlertId::from_parts(1_700_000_000_000 + u64::from(n), [n; 10])
}

const HEAD: &str = "id = \"t\"\nversion = 1\n[parties.A]\nname = \"A\"\nunits = { X = \"x\", Y = \"y\" }\n[parties.B]\nname = \"B\"\nunits = { Z = \"z\" }\n";

fn rule(body: &str) -> String {
    format!("{HEAD}[[rules]]\nid = \"r1\"\n{body}")
}

const OK_RULE: &str = "from = [\"A/X\"]\nto = [\"B\"]\ncategories = [\"runaway\"]\nfields = \"all\"\nlegal_basis = \"L\"\npurpose = \"P\"\nretention = \"1d\"\n";

// ---- route a new alert ---------------------------------------------------------------

#[test]
fn routes_the_runaway_of_spvq_esm() {
    let a = example();
    let r = route_alert(&a, &u("SPVQ/ESM"), Category::Runaway, &[]).unwrap();
    let got: Vec<(String, Vec<String>)> = r
        .iter()
        .map(|d| (d.recipient.to_string(), d.rules.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("CJQ/PIVOT".into(), vec!["police-vers-protection".into()]),
            ("DPJ/RTS".into(), vec!["police-vers-protection".into()]),
            ("SPVQ/GRIPP".into(), vec!["enquete-vers-patrouille".into()]),
            ("SPVQ/IKAT".into(), vec!["enquete-vers-patrouille".into()]),
        ]
    );
    let ikat = &r[3];
    assert!(!ikat.fields.contains(FieldPath::SubjectReference));
    assert!(!ikat.fields.contains(FieldPath::LastSeenGeo));
    assert!(ikat.fields.contains(FieldPath::LastSeenPlace));
    assert!(r[1].fields.is_all());
}

#[test]
fn refuses_recipients_outside_the_rules() {
    let a = example();
    let e = route_alert(
        &a,
        &u("SPVQ/ESM"),
        Category::Runaway,
        &["ULAVAL/RECHERCHE".parse().unwrap()],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "no rule of agreement table-regionale-quebec-esj permits SPVQ/ESM to send runaway alerts to ULAVAL/RECHERCHE; nothing was posted"
    );
    let e = route_alert(
        &a,
        &u("SPVQ/ESM"),
        Category::Runaway,
        &["DPJ/RTS".parse().unwrap(), "CSSC".parse().unwrap()],
    )
    .unwrap_err();
    assert!(matches!(e, RouteRefusal::NotPermitted { ref recipient, .. } if recipient == "CSSC"));
    let e = route_alert(
        &a,
        &u("SPVQ/ESM"),
        Category::Runaway,
        &["NOPE/X".parse().unwrap()],
    )
    .unwrap_err();
    assert!(matches!(e, RouteRefusal::UnknownRecipient { .. }));
    let e = route_alert(&a, &u("DPCP/PROCUREURS"), Category::Runaway, &[]).unwrap_err();
    assert!(matches!(e, RouteRefusal::NoRecipient { .. }));
    // A party names its permitted units only.
    let r = route_alert(
        &a,
        &u("SPVQ/ESM"),
        Category::Runaway,
        &["DPJ".parse().unwrap()],
    )
    .unwrap();
    assert_eq!(
        r.iter()
            .map(|d| d.recipient.to_string())
            .collect::<Vec<_>>(),
        vec!["DPJ/RTS"]
    );
}

#[test]
fn no_rules_permit_nothing() {
    let a = Agreement::parse(HEAD, "a.toml").unwrap();
    assert!(route_alert(&a, &u("A/X"), Category::Runaway, &[]).is_err());
    assert!(permits(&a, &u("A/X"), &u("B/Z"), Category::Runaway).is_none());
}

#[test]
fn unions_the_fields_of_every_matching_rule() {
    let two = format!(
        "{}[[rules]]\nid = \"r2\"\nfrom = [\"A\"]\nto = [\"B/Z\"]\ncategories = [\"runaway\"]\nfields = [\"contact\"]\nlegal_basis = \"L2\"\npurpose = \"P\"\nretention = \"30d\"\n",
        rule(&OK_RULE.replace("\"all\"", "[\"subject.age\"]"))
    );
    let a = Agreement::parse(&two, "a.toml").unwrap();
    let d = permits(&a, &u("A/X"), &u("B/Z"), Category::Runaway).unwrap();
    assert_eq!(d.rules, vec!["r1", "r2"]);
    assert_eq!(d.legal_bases, vec!["L", "L2"]);
    assert_eq!(d.fields.paths(), vec!["subject.age", "contact"]);
    assert_eq!(d.retention_ms, 30 * DAY_MS);
    assert_eq!(
        permits(&a, &u("A/Y"), &u("B/Z"), Category::Runaway)
            .unwrap()
            .rules,
        vec!["r2"]
    );
}

#[test]
fn whoami_lists_the_rules_a_unit_sends_and_receives_under() {
    let a = example();
    assert_eq!(
        rules_sending_from(&a, &u("SPVQ/ESM")),
        vec!["police-vers-protection", "enquete-vers-patrouille"]
    );
    assert_eq!(
        rules_received_by(&a, &u("SPVQ/ESM")),
        vec!["protection-vers-police", "observations-vers-enquete"]
    );
    assert!(rules_sending_from(&a, &u("ULAVAL/RECHERCHE")).is_empty());
    assert!(may_send(&a, &u("SPVQ/IKAT"), Category::Sighting));
    assert!(!may_send(&a, &u("SPVQ/IKAT"), Category::Runaway));
}

// ---- follow-ups ----------------------------------------------------------------------

fn runaway_recipients() -> Vec<UnitRef> {
    ["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP", "SPVQ/IKAT"]
        .map(u)
        .to_vec()
}

#[test]
fn only_the_sender_party_follows_up_and_its_other_units_only_if_they_may_send() {
    let a = example();
    let sender = u("SPVQ/ESM");
    let recipients = runaway_recipients();
    let t = Thread {
        alert: id(1),
        sender_unit: &sender,
        category: Category::Runaway,
        recipients: &recipients,
    };
    assert_eq!(
        may_follow_up(&a, &p("SPVQ/ESM/n1"), Kind::Update, &t),
        Ok(())
    );
    // Another unit of the party that may send runaways itself.
    assert_eq!(
        may_follow_up(&a, &p("SPVQ/IJP/n1"), Kind::Cancel, &t),
        Ok(())
    );
    let e = may_follow_up(&a, &p("DPJ/RTS/n1"), Kind::Located, &t).unwrap_err();
    assert_eq!(e.reason(), RefusalReason::NotOwner);
    assert_eq!(
        e.to_string(),
        format!(
            "DPJ/RTS/n1: only party SPVQ may mark as located alert {}; nothing was posted",
            id(1)
        )
    );
    // A patrol unit receives runaways but may not send them: it may not speak for one.
    let e = may_follow_up(&a, &p("SPVQ/IKAT/n1"), Kind::Update, &t).unwrap_err();
    assert_eq!(e.reason(), RefusalReason::NotPermitted);
    assert_eq!(
        e.to_string(),
        format!("SPVQ/IKAT/n1: no rule of agreement table-regionale-quebec-esj v1 lets SPVQ/IKAT send runaway alerts, so it may not update alert {} of SPVQ/ESM; its sender, or another unit of SPVQ that may send runaway alerts, can; nothing was posted", id(1))
    );
    // A purged alert: its party alone is checked.
    assert_eq!(
        may_follow_up_purged(&p("SPVQ/IKAT/n1"), Kind::Cancel, id(1), "SPVQ"),
        Ok(())
    );
    assert_eq!(
        may_follow_up_purged(&p("CJQ/PIVOT/n1"), Kind::Cancel, id(1), "SPVQ")
            .unwrap_err()
            .to_string(),
        format!(
            "CJQ/PIVOT/n1: only party SPVQ may cancel alert {}; nothing was posted",
            id(1)
        )
    );
}

#[test]
fn a_follow_up_reaches_the_original_recipients_still_permitted_with_todays_fields() {
    let sender = u("SPVQ/ESM");
    let recipients = runaway_recipients();
    let t = Thread {
        alert: id(1),
        sender_unit: &sender,
        category: Category::Runaway,
        recipients: &recipients,
    };
    let r = route_follow_up(&example(), &sender, Kind::Update, &t, &[]);
    assert!(r.withheld.is_empty());
    assert_eq!(
        r.disclosures
            .iter()
            .map(|d| d.recipient.clone())
            .collect::<Vec<_>>(),
        recipients
    );
    // Amended: IKAT no longer receives runaways; the update is withheld, and says so.
    let r = route_follow_up(&amended(), &sender, Kind::Update, &t, &[]);
    assert_eq!(
        r.disclosures
            .iter()
            .map(|d| d.recipient.to_string())
            .collect::<Vec<_>>(),
        vec!["CJQ/PIVOT", "DPJ/RTS", "SPVQ/GRIPP"]
    );
    assert_eq!(r.withheld.len(), 1);
    assert_eq!(
        r.withheld[0].to_string(),
        "no rule of agreement table-regionale-quebec-esj v2 permits SPVQ/ESM to send runaway alerts to SPVQ/IKAT any more: the update is not sent"
    );
    // A unit never receives its own message.
    let r = route_follow_up(&example(), &u("SPVQ/GRIPP"), Kind::Update, &t, &[]);
    assert!(!r.disclosures.iter().any(|d| d.recipient == u("SPVQ/GRIPP")));
    assert_eq!(r.disclosures.len(), 3);
}

#[test]
fn a_closing_message_reaches_every_unit_told_of_the_alert_as_a_closing_notice_if_need_be() {
    let sender = u("SPVQ/ESM");
    let recipients = runaway_recipients();
    let t = Thread {
        alert: id(1),
        sender_unit: &sender,
        category: Category::Runaway,
        recipients: &recipients,
    };
    let ikat = u("SPVQ/IKAT");
    let rules = vec!["enquete-vers-patrouille".to_owned()];
    let told = [Told {
        unit: &ikat,
        rules: &rules,
        retention_ms: 30 * DAY_MS,
    }];
    for kind in [Kind::Located, Kind::Cancel] {
        let r = route_follow_up(&amended(), &sender, kind, &t, &told);
        assert!(r.withheld.is_empty(), "{kind}");
        let notice = &r.disclosures[3];
        assert_eq!(
            notice,
            &Disclosure {
                recipient: ikat.clone(),
                rules: rules.clone(),
                legal_bases: vec![CLOSING_NOTICE.to_owned()],
                fields: FieldSet::EMPTY,
                retention_ms: 30 * DAY_MS,
            }
        );
    }
    // An update is no closing message: withheld.
    let r = route_follow_up(&amended(), &sender, Kind::Update, &t, &told);
    assert_eq!(r.withheld.len(), 1);
}

// ---- delivery ------------------------------------------------------------------------

#[test]
fn a_delivery_is_rechecked_against_the_agreement_in_force_and_its_time() {
    let sender = u("SPVQ/ESM");
    let ikat = u("SPVQ/IKAT");
    let at_post = FieldSet::all();
    let m = Waiting {
        kind: Kind::Alert,
        category: Category::Runaway,
        sender_unit: &sender,
        recipient: &ikat,
        legal_bases: &[],
        fields: at_post,
        expires_at: Timestamp(1_000),
    };
    // Never more than the rules in force allow, nor than was disclosed at posting time.
    let d = recheck_delivery(&example(), &m, Timestamp(999)).unwrap();
    let Delivery::Content { fields, rules } = d else {
        panic!("{d:?}")
    };
    assert_eq!(rules, vec!["enquete-vers-patrouille"]);
    assert!(!fields.contains(FieldPath::SubjectReference));
    assert!(fields.contains(FieldPath::LastSeenPlace));
    let narrow = FieldSet::EMPTY
        .with(FieldPath::SubjectAge)
        .with(FieldPath::SubjectReference);
    let d = recheck_delivery(
        &example(),
        &Waiting {
            fields: narrow,
            ..m
        },
        Timestamp(0),
    )
    .unwrap();
    assert_eq!(
        d,
        Delivery::Content {
            fields: FieldSet::EMPTY.with(FieldPath::SubjectAge),
            rules: vec!["enquete-vers-patrouille".into()],
        }
    );
    assert_eq!(
        recheck_delivery(&example(), &m, Timestamp(1_000)),
        Err(NotDelivered::Expired)
    );
    let e = recheck_delivery(&amended(), &m, Timestamp(0)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no rule of agreement table-regionale-quebec-esj v2 permits SPVQ/ESM to send runaway alerts to SPVQ/IKAT any more"
    );
    // A closing notice stays one, whatever the agreement says now.
    let basis = [CLOSING_NOTICE.to_owned()];
    let notice = Waiting {
        kind: Kind::Cancel,
        legal_bases: &basis,
        fields: FieldSet::EMPTY,
        ..m
    };
    assert_eq!(
        recheck_delivery(&amended(), &notice, Timestamp(0)),
        Ok(Delivery::ClosingNotice)
    );
    // An alert under a basis named so is not one.
    let not_notice = Waiting {
        kind: Kind::Alert,
        ..notice
    };
    assert!(recheck_delivery(&amended(), &not_notice, Timestamp(0)).is_err());
}

pub(super) fn envelope(kind: Kind, this: AlertId, original: AlertId) -> Envelope {
    Envelope {
        id: this,
        kind,
        references: (kind != Kind::Alert).then_some(original),
        category: Category::Runaway,
        status: Status::Actual,
        risk: Risk::Severe,
        language: Language::default(),
        sender: "SPVQ/ESM/n1".parse().unwrap(),
        received_at: Timestamp(5),
        expires_at: Timestamp(9),
    }
}

pub(super) fn history(original: AlertId, steps: &[(Kind, AlertId)]) -> Vec<HistoryItem> {
    std::iter::once((Kind::Alert, original))
        .chain(steps.iter().copied())
        .enumerate()
        .map(|(i, (k, id))| HistoryItem {
            kind: Some(k),
            id,
            at: Timestamp(i as i64),
            note: Some(format!("note {i}")),
        })
        .collect()
}

#[test]
fn a_closing_notice_carries_the_envelope_the_state_and_two_times_only() {
    let h = history(id(1), &[(Kind::Update, id(2)), (Kind::Cancel, id(3))]);
    let d = closing_notice(
        envelope(Kind::Cancel, id(3), id(1)),
        vec!["enquete-vers-patrouille".into()],
        7,
        AlertState::Cancelled,
        h,
    );
    assert_eq!(d.content, crate::alert::Content::default());
    assert_eq!(d.note, None);
    assert_eq!(d.fields, FieldSet::EMPTY);
    assert_eq!(d.seq, 7);
    assert_eq!(d.state, AlertState::Cancelled);
    assert_eq!(d.rules, vec!["enquete-vers-patrouille"]);
    assert_eq!(
        d.history
            .iter()
            .map(|h| (h.kind, h.id, h.note.clone()))
            .collect::<Vec<_>>(),
        vec![
            (Some(Kind::Alert), id(1), None),
            (Some(Kind::Cancel), id(3), None)
        ]
    );
}

// ---- who may see an alert, its status ------------------------------------------------

#[test]
fn an_alert_is_seen_by_its_sender_its_recipients_and_its_party_only() {
    let sender = u("SPVQ/ESM");
    let r = runaway_recipients();
    let view = |who: &str| alert_view(&u(who), id(1), &sender, r.iter());
    assert_eq!(view("SPVQ/ESM"), Ok(AlertView::Sender));
    assert_eq!(view("DPJ/RTS"), Ok(AlertView::Recipient));
    assert_eq!(view("SPVQ/IKAT"), Ok(AlertView::Recipient));
    assert_eq!(view("SPVQ/IJP"), Ok(AlertView::OwnerParty));
    let e = view("DPJ/PIVOT").unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("alert {} is not visible to DPJ/PIVOT", id(1))
    );
}

#[test]
fn status_is_for_the_sender_party_only() {
    let sender = u("SPVQ/ESM");
    assert_eq!(status_access(&u("SPVQ/ESM"), id(1), &sender), Ok(()));
    assert_eq!(status_access(&u("SPVQ/IKAT"), id(1), &sender), Ok(()));
    let e = status_access(&u("DPJ/RTS"), id(1), &sender).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("alert {} is not an alert of DPJ/RTS's party", id(1))
    );
}

// ---- audit ---------------------------------------------------------------------------

#[test]
fn audit_rights_come_from_the_audit_section() {
    let a = example();
    assert_eq!(
        audit_right(&a, &u("DPJ/CONFORMITE")),
        Some(AuditScope::Party("DPJ".into()))
    );
    assert_eq!(audit_right(&a, &u("DPJ/RTS")), None);
    assert_eq!(
        audit_right(&a, &u("TABLE/CONFORMITE")),
        Some(AuditScope::Full)
    );
    assert_eq!(
        audit_scope(
            &a,
            &p("TABLE/CONFORMITE/n1"),
            AuditRequest::ConsistencyProof
        ),
        Ok(AuditScope::Full)
    );
    for (request, what) in [
        (AuditRequest::Entries, "audit entries"),
        (AuditRequest::InclusionProof, "an inclusion proof"),
        (AuditRequest::ConsistencyProof, "a consistency proof"),
    ] {
        let e = audit_scope(&a, &p("DPJ/RTS/n1"), request).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("DPJ/RTS/n1 asked for {what} but DPJ/RTS has no audit right in the agreement")
        );
    }
    assert_eq!(AuditScope::Full.name(), "full");
    assert_eq!(AuditScope::Party("DPJ".into()).name(), "party");
    assert!(AuditScope::Party("DPJ".into()).proofs_required());
    assert!(!AuditScope::Full.proofs_required());
}

#[test]
fn a_party_reads_and_proves_its_own_entries_only() {
    let disclosed = Event::Disclosed {
        alert: id(1),
        sender: p("SPVQ/ESM/n1"),
        recipient: u("DPJ/RTS"),
        category: Category::Runaway,
        status: Status::Actual,
        rules: vec!["police-vers-protection".into()],
        legal_bases: vec!["L".into()],
        fields: FieldSet::all(),
    };
    let dpj = AuditScope::Party("DPJ".into());
    let cjq = AuditScope::Party("CJQ".into());
    assert!(AuditScope::Full.admits(&disclosed));
    assert!(dpj.admits(&disclosed));
    assert!(!cjq.admits(&disclosed));
    assert_eq!(inclusion_access(&dpj, 4, Some(&disclosed)), Ok(()));
    assert_eq!(inclusion_access(&AuditScope::Full, 4, None), Ok(()));
    assert_eq!(
        inclusion_access(&cjq, 4, Some(&disclosed))
            .unwrap_err()
            .to_string(),
        "audit entry 4 does not concern party CJQ"
    );
    // An entry that cannot be read is not shown to a party.
    assert!(inclusion_access(&dpj, 4, None).is_err());
}

#[test]
fn another_unit_of_the_sender_party_sees_the_envelope_state_and_steps_only() {
    let h = history(id(1), &[(Kind::Update, id(2))]);
    let d = owner_party_view(envelope(Kind::Alert, id(1), id(1)), AlertState::Updated, h);
    assert_eq!(d.content, crate::alert::Content::default());
    assert_eq!((d.note, d.fields, d.seq), (None, FieldSet::EMPTY, 0));
    assert!(d.rules.is_empty());
    assert_eq!(d.state, AlertState::Updated);
    assert_eq!(
        d.history
            .iter()
            .map(|h| (h.kind, h.id, h.note.clone()))
            .collect::<Vec<_>>(),
        vec![
            (Some(Kind::Alert), id(1), None),
            (Some(Kind::Update), id(2), None)
        ]
    );
}
